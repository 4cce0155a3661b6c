"""The to-do list (home): groups by next action time, standby, done + plan next, tasks."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.sales.context_processors import navigation
from opportuna.sales.models import Activity, EventKind, OpportunityEvent, Status
from opportuna.sales.selectors.todo import (
    LATER,
    OVERDUE,
    STANDBY,
    TODAY,
    TODO_PAGE,
    WEEK,
    Bounds,
    todo_counts,
    todo_due_count,
    todo_first_pages,
    todo_planned_activities,
)
from opportuna.sales.services import activity_plan, opportunity_standby, opportunity_update
from tests.factories import ClientFactory, OpportunityFactory, activity_type, make_cast
from tests.plans import postgres_plan, sqlite_plan

pytestmark = pytest.mark.django_db

TODO = reverse("sales:todo")
MORE = reverse("sales:todo_more")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def owner_client(client, cast):
    client.force_login(cast.owner)
    return client


def opp_for(cast, **kwargs):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, **kwargs)


def done_url(opp):
    return reverse("sales:todo_done", args=[opp.pk])


def events(opp, kind):
    return list(OpportunityEvent.objects.filter(opportunity=opp, kind=kind))


def local(day, hour=0, minute=0, second=0):
    return datetime.combine(day, time(hour, minute, second), tzinfo=ZoneInfo(settings.TIME_ZONE))


# Who may come in ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,name,args",
    [
        ("get", "sales:todo", []),
        ("get", "sales:todo_more", []),
        ("get", "sales:todo_done_form", [1]),
        ("post", "sales:todo_done", [1]),
        ("post", "sales:todo_activity_done", [1]),
    ],
)
def test_anonymous_is_sent_to_login(client, method, name, args):
    response = getattr(client, method)(reverse(name, args=args))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_outsider_gets_404_for_every_fragment_and_action(client, cast):
    opp = opp_for(cast)
    task = activity_plan(
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("call"),
        due_at=timezone.now() + timedelta(days=1),
    )
    client.force_login(cast.other)
    assert client.get(reverse("sales:todo_done_form", args=[opp.pk])).status_code == 404
    assert client.get(reverse("sales:todo_done_form", args=[opp.pk]), **HTMX).status_code == 404
    data = {"type": activity_type("call").pk, "next": "tomorrow"}
    assert client.post(done_url(opp), data).status_code == 404
    assert client.post(done_url(opp), data, **HTMX).status_code == 404
    url = reverse("sales:todo_activity_done", args=[task.pk])
    assert client.post(url).status_code == 404
    assert not Activity.objects.filter(done_at__isnull=False).exists()


# Groups ---------------------------------------------------------------------------------


def test_groups_cut_at_local_midnight_and_monday(cast):
    # Wednesday 11 June 2025, 10:00 in the account's time zone.
    day = datetime(2025, 6, 11).date()
    now = local(day, 10)
    bounds = Bounds.at(now)
    tomorrow, sunday, monday = day + timedelta(1), day + timedelta(4), day + timedelta(5)
    expected = {
        "yesterday late": (local(day - timedelta(1), 23, 59), OVERDUE),
        "this morning": (local(day, 9, 59), OVERDUE),
        "in a minute": (local(day, 10, 1), TODAY),
        "tonight": (local(day, 23, 59, 59), TODAY),
        "tomorrow midnight": (local(tomorrow), WEEK),
        "sunday night": (local(sunday, 23, 59, 59), WEEK),
        "monday midnight": (local(monday), LATER),
    }
    opps = {
        title: opp_for(cast, title=title, next_action_at=at) for title, (at, _) in expected.items()
    }
    standby_back = opp_for(
        cast, title="back today", status=Status.STANDBY, next_action_at=local(day, 9)
    )
    standby_later = opp_for(
        cast, title="parked", status=Status.STANDBY, next_action_at=local(tomorrow, 9)
    )
    standby_today_later = opp_for(
        cast, title="back at noon", status=Status.STANDBY, next_action_at=local(day, 12)
    )

    pages = todo_first_pages(user=cast.owner, bounds=bounds)
    found = {group: [o.title for o in page.rows] for group, page in pages.items()}
    for title, (_, group) in expected.items():
        assert title in found[group], (title, found)
        assert bounds.group_of(opps[title]) == group
    assert "back today" in found[OVERDUE]
    assert "back at noon" in found[TODAY]
    assert found[STANDBY] == ["parked"]
    assert bounds.group_of(standby_back) == OVERDUE
    assert bounds.group_of(standby_today_later) == TODAY
    assert bounds.group_of(standby_later) == STANDBY
    counts = todo_counts(user=cast.owner, bounds=bounds)
    assert counts == {OVERDUE: 3, TODAY: 3, WEEK: 2, LATER: 1, STANDBY: 1}
    assert todo_due_count(user=cast.owner, now=now) == 6


def test_today_is_the_local_day_not_the_utc_one(cast):
    # 23:30 in Rome is still "today" there, though already tomorrow in UTC... and the other
    # way round: 00:30 Rome tomorrow is 22:30 UTC today, which must not count as today.
    day = datetime(2025, 6, 11).date()
    bounds = Bounds.at(local(day, 10))
    late = opp_for(cast, title="late", next_action_at=local(day, 23, 30))
    after_midnight = opp_for(
        cast, title="after midnight", next_action_at=local(day + timedelta(1), 0, 30)
    )
    assert after_midnight.next_action_at.astimezone(ZoneInfo("UTC")).date() == day
    assert bounds.group_of(late) == TODAY
    assert bounds.group_of(after_midnight) == WEEK


def test_sunday_has_no_this_week_group(cast):
    sunday = datetime(2025, 6, 15).date()
    bounds = Bounds.at(local(sunday, 10))
    monday = opp_for(cast, next_action_at=local(sunday + timedelta(1), 9))
    assert bounds.tomorrow == bounds.next_week
    assert bounds.group_of(monday) == LATER


def test_page_shows_groups_with_their_rows(owner_client, cast):
    now = timezone.now()
    opp_for(cast, title="Late one", next_action_at=now - timedelta(days=2))
    opp_for(cast, title="Far one", next_action_at=now + timedelta(days=40))
    OpportunityFactory(title="Not mine", next_action_at=now - timedelta(days=1))
    html = owner_client.get(TODO).content.decode()
    assert 'id="group-overdue"' in html and "Late one" in html
    assert 'id="group-later"' in html and "Far one" in html
    assert "Not mine" not in html
    assert html.index("Late one") < html.index("Far one")


def test_closed_opportunities_are_not_on_the_list(owner_client, cast):
    opp_for(
        cast,
        title="Won already",
        status=Status.WON,
        won_amount=10,
        closed_at=timezone.now(),
        next_action_at=None,
    )
    assert "Won already" not in owner_client.get(TODO).content.decode()


def test_standby_is_hidden_until_its_date(owner_client, cast):
    opp = opp_for(cast, title="Parked deal", next_action_at=timezone.now() - timedelta(hours=1))
    until = timezone.localdate() + timedelta(days=3)
    opportunity_standby(opportunity=opp, until=until, actor=cast.owner)
    html = owner_client.get(TODO).content.decode()
    standby = html[html.index('class="todo-group todo-standby"') :]
    assert "Parked deal" in standby  # only in the collapsed standby section
    assert html.count("Parked deal") == standby.count("Parked deal")
    assert '<details class="todo-group todo-standby">' in html  # collapsed (no "open")
    assert todo_due_count(user=cast.owner) == 0

    # Its date comes: it is back with the others, and counted.
    type(opp).objects.filter(pk=opp.pk).update(next_action_at=timezone.now() - timedelta(minutes=1))
    html = owner_client.get(TODO).content.decode()
    assert "todo-standby" not in html
    overdue = html[html.index('id="group-overdue"') :]
    assert "Parked deal" in overdue and "back from standby" in overdue
    assert todo_due_count(user=cast.owner) == 1


def test_load_more_continues_a_group_without_duplicates(owner_client, cast):
    start = timezone.now() + timedelta(days=60)
    # Equal times on purpose: the id breaks the tie in the cursor.
    for n in range(TODO_PAGE + 5):
        opp_for(cast, title=f"Later {n:03d}", next_action_at=start)
    html = owner_client.get(TODO).content.decode()
    first = {t for t in (f"Later {n:03d}" for n in range(TODO_PAGE + 5)) if t in html}
    assert len(first) == TODO_PAGE
    page = todo_first_pages(user=cast.owner, bounds=Bounds.at())[LATER]
    assert page.next is not None
    response = owner_client.get(MORE, {"group": LATER, "after": str(page.next)}, **HTMX)
    assert response.status_code == 200
    more = {
        t
        for t in (f"Later {n:03d}" for n in range(TODO_PAGE + 5))
        if t in response.content.decode()
    }
    assert len(more) == 5
    assert not first & more
    assert "Show more" not in response.content.decode()
    # Without htmx the same link is a page of its own.
    plain = owner_client.get(MORE, {"group": LATER, "after": str(page.next)})
    assert plain.status_code == 200
    assert plain.content.decode().startswith("<!DOCTYPE html>")


def test_load_more_refuses_bad_group_or_cursor(owner_client):
    assert owner_client.get(MORE, {"group": "nope", "after": "x|1"}).status_code == 400
    assert owner_client.get(MORE, {"group": LATER, "after": "yesterday"}).status_code == 400


def test_empty_list_is_friendly_and_offers_to_create(owner_client):
    html = owner_client.get(TODO).content.decode()
    assert "Nothing to do right now" in html
    assert "Create an opportunity" in html
    assert 'href="/o/new/"' in html


def test_row_shows_client_amount_step_and_note(owner_client, cast):
    client_folder = ClientFactory(name="Acme Lagoon")
    opp_for(
        cast,
        client=client_folder,
        amount=1234_56,
        next_action_note="Call back about the budget",
        next_action_at=timezone.now() - timedelta(hours=1),
    )
    html = owner_client.get(TODO).content.decode()
    assert "Acme Lagoon" in html
    assert "1,234.56 EUR" in html
    assert "Lead" in html
    assert "Call back about the budget" in html


def test_user_text_is_escaped(owner_client, cast):
    opp_for(cast, title="<script>alert(1)</script>", next_action_note="<b>bold</b>")
    html = owner_client.get(TODO).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html


# Done + plan next -----------------------------------------------------------------------


def test_done_form_loads_inline_or_as_a_page(owner_client, cast):
    opp = opp_for(cast)
    url = reverse("sales:todo_done_form", args=[opp.pk])
    fragment = owner_client.get(url, **HTMX)
    assert fragment.status_code == 200
    assert b"<!DOCTYPE html>" not in fragment.content
    assert b'hx-post="' in fragment.content
    page = owner_client.get(url)
    assert page.content.decode().startswith("<!DOCTYPE html>")
    assert b'hx-post="' not in page.content  # the plain page posts without htmx
    # The first active type is chosen by default.
    assert b"selected>Call<" in fragment.content.replace(b"\n", b"")


def test_done_logs_an_activity_and_plans_the_next_action(owner_client, cast):
    opp = opp_for(cast, next_action_at=timezone.now() - timedelta(hours=2))
    response = owner_client.post(
        done_url(opp),
        {
            "type": activity_type("visit").pk,
            "note": "Met the CFO",
            "next": "tomorrow",
            "next_note": "Send the offer",
        },
    )
    assert response.status_code == 302
    assert response.url == TODO
    activity = Activity.objects.get(opportunity=opp)
    assert activity.type.key == "visit"
    assert activity.note == "Met the CFO"
    assert activity.done_at is not None
    opp.refresh_from_db()
    tomorrow = timezone.localdate() + timedelta(days=1)
    assert timezone.localtime(opp.next_action_at) == local(tomorrow, 9)
    assert opp.next_action_note == "Send the offer"
    assert len(events(opp, EventKind.ACTIVITY_LOGGED)) == 1
    assert len(events(opp, EventKind.NEXT_ACTION)) == 1


def test_done_with_htmx_returns_the_list_and_the_nav_count(owner_client, cast):
    opp = opp_for(cast, title="Hot deal", next_action_at=timezone.now() - timedelta(hours=2))
    response = owner_client.post(
        done_url(opp), {"type": activity_type("call").pk, "next": "nextweek"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="todo-list">')
    assert 'hx-swap-oob="outerHTML:.nav a' in html
    assert "just-done" in html
    assert "HX-Request" in response["Vary"]
    opp.refresh_from_db()
    assert timezone.localtime(opp.next_action_at).weekday() == 0  # next Monday
    assert timezone.localtime(opp.next_action_at).time() == time(9, 0)


def test_done_with_a_custom_time(owner_client, cast):
    opp = opp_for(cast)
    when = (timezone.localtime() + timedelta(days=5)).replace(
        hour=14, minute=30, second=0, microsecond=0
    )
    owner_client.post(
        done_url(opp),
        {
            "type": activity_type("call").pk,
            "next": "custom",
            "at": when.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    opp.refresh_from_db()
    assert opp.next_action_at == when


def test_done_brings_a_standby_opportunity_back(owner_client, cast):
    opp = opp_for(cast)
    opportunity_standby(
        opportunity=opp, until=timezone.localdate() + timedelta(days=9), actor=cast.owner
    )
    owner_client.post(done_url(opp), {"type": activity_type("call").pk, "next": "3days"})
    opp.refresh_from_db()
    assert opp.status == Status.TODO
    assert timezone.localtime(opp.next_action_at).date() == timezone.localdate() + timedelta(3)


@pytest.mark.parametrize(
    "data,message",
    [
        ({"next": "custom"}, "Pick the date and time"),
        ({"next": "custom", "at": "2001-01-01T10:00"}, "must be in the future"),
        ({"next": "someday"}, "Select a valid choice"),
        ({"next": "tomorrow", "next_note": "x" * 201}, "at most 200 characters"),
    ],
)
def test_invalid_done_shows_errors_and_writes_nothing(owner_client, cast, data, message):
    opp = opp_for(cast)
    before = opp.next_action_at
    response = owner_client.post(done_url(opp), {"type": activity_type("call").pk, **data})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert response.content.decode().startswith("<!DOCTYPE html>")
    assert not Activity.objects.exists()
    opp.refresh_from_db()
    assert opp.next_action_at == before
    assert not events(opp, EventKind.ACTIVITY_LOGGED)


def test_invalid_done_with_htmx_answers_the_form_in_place(owner_client, cast):
    opp = opp_for(cast)
    response = owner_client.post(
        done_url(opp),
        {"type": activity_type("call").pk, "next": "custom", "note": "kept <i>text</i>"},
        **HTMX,
    )
    assert response.status_code == 422
    assert response["HX-Retarget"] == "this"
    assert response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert html.lstrip().startswith("<form")
    assert "Pick the date and time" in html
    assert 'value="kept &lt;i&gt;text&lt;/i&gt;"' in html
    assert not Activity.objects.exists()


def test_inactive_activity_type_is_refused(owner_client, cast):
    call = activity_type("call")
    type(call).objects.filter(pk=call.pk).update(is_active=False)
    opp = opp_for(cast)
    response = owner_client.post(done_url(opp), {"type": call.pk, "next": "tomorrow"})
    assert response.status_code == 422
    assert not Activity.objects.exists()


def test_teammate_who_may_only_look_gets_403_and_nothing_is_written(client, cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    opp = opp_for(cast)
    client.force_login(cast.teammate)
    response = client.post(done_url(opp), {"type": activity_type("call").pk, "next": "tomorrow"})
    assert response.status_code == 403
    # The activity logged first was rolled back with the refused plan.
    assert not Activity.objects.exists()
    assert not events(opp, EventKind.ACTIVITY_LOGGED)


def test_post_without_csrf_token_is_refused(cast):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(cast.owner)
    opp = opp_for(cast)
    response = csrf_client.post(done_url(opp), {"type": activity_type("call").pk, "next": "3days"})
    assert response.status_code == 403
    assert not Activity.objects.exists()


def test_done_needs_post(owner_client, cast):
    assert owner_client.get(done_url(opp_for(cast))).status_code == 405


# Planned activities ---------------------------------------------------------------------


def test_planned_activities_are_listed_and_can_be_done(owner_client, cast):
    opp = opp_for(cast, title="With a task")
    task = activity_plan(
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("demo"),
        due_at=timezone.now() - timedelta(hours=3),
        note="Prepare the demo room",
    )
    html = owner_client.get(TODO).content.decode()
    tasks = html[html.index('id="group-activities"') :]
    assert "Prepare the demo room" in tasks and "Overdue" in tasks
    response = owner_client.post(reverse("sales:todo_activity_done", args=[task.pk]), **HTMX)
    assert response.status_code == 200
    assert "Prepare the demo room" not in response.content.decode()
    task.refresh_from_db()
    assert task.done_at is not None
    assert len(events(opp, EventKind.ACTIVITY_COMPLETED)) == 1


def test_my_planned_activities_are_those_on_deals_i_still_see_read_from_their_index(cast):
    mine, handed_over = opp_for(cast), opp_for(cast)
    for opp in (mine, handed_over):
        activity_plan(
            opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=timezone.now()
        )
    opportunity_update(
        opportunity=handed_over, actor=cast.admin, version=handed_over.version, owner=cast.other
    )
    with CaptureQueriesContext(connection) as queries:
        planned = todo_planned_activities(user=cast.owner)
    assert [a.opportunity_id for a in planned] == [mine.pk]
    (sql,) = [q["sql"] for q in queries.captured_queries]
    # The few planned activities from their own index, not a scan of every activity; and
    # kept by the owner each repeats, not matched with every opportunity the user sees.
    if connection.vendor == "postgresql":
        assert "activity_planned_idx" in postgres_plan(sql)
    else:
        plan = sqlite_plan(sql)
        assert "USING INDEX activity_planned_idx" in plan
        assert "opp_owner_created_idx" not in plan


def test_completing_twice_says_so(owner_client, cast):
    opp = opp_for(cast)
    task = activity_plan(
        opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=timezone.now()
    )
    url = reverse("sales:todo_activity_done", args=[task.pk])
    assert owner_client.post(url).status_code == 302
    response = owner_client.post(url, follow=True)
    assert "already done" in response.content.decode()
    htmx = owner_client.post(url, **HTMX)
    assert htmx.status_code == 422
    assert len(events(opp, EventKind.ACTIVITY_COMPLETED)) == 1


def test_my_task_on_a_deal_handed_to_another_team_is_out_of_sight(owner_client, cast):
    opp = opp_for(cast)
    task = activity_plan(
        opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=timezone.now()
    )
    opportunity_update(opportunity=opp, actor=cast.admin, version=opp.version, owner=cast.other)
    response = owner_client.post(reverse("sales:todo_activity_done", args=[task.pk]))
    assert response.status_code == 404
    task.refresh_from_db()
    assert task.done_at is None


def test_someone_elses_task_on_a_visible_opportunity_is_refused(client, cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    opp = opp_for(cast)
    task = activity_plan(
        opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=timezone.now()
    )
    client.force_login(cast.teammate)
    response = client.post(reverse("sales:todo_activity_done", args=[task.pk]))
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.done_at is None


# Navigation count -----------------------------------------------------------------------


def test_navigation_counts_my_overdue_and_today(owner_client, cast):
    now = timezone.now()
    opp_for(cast, next_action_at=now - timedelta(days=3))
    opp_for(cast, next_action_at=now - timedelta(minutes=5))
    opp_for(cast, next_action_at=now + timedelta(days=20))
    OpportunityFactory(owner=cast.teammate, next_action_at=now - timedelta(days=1))
    html = owner_client.get(TODO).content.decode()
    assert '<span class="badge">2</span>' in html


def test_navigation_count_costs_nothing_for_anonymous(django_assert_num_queries):
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    with django_assert_num_queries(0):
        assert navigation(request) == {}


def test_navigation_count_is_one_query_and_only_when_shown(cast, django_assert_num_queries):
    opp_for(cast, next_action_at=timezone.now() - timedelta(days=1))
    request = RequestFactory().get("/board/")
    request.user = cast.owner
    with django_assert_num_queries(0):
        links = navigation(request)["nav_links"]
    todo = next(link for link in links if link["url"] == TODO)
    with django_assert_num_queries(1):
        assert int(str(todo["count"])) == 1
        assert bool(todo["count"])


# Query counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 30])
def test_page_runs_a_constant_number_of_queries(client, cast, rows, django_assert_num_queries):
    now = timezone.now()
    offsets = [-timedelta(days=2), timedelta(minutes=1), timedelta(days=3), timedelta(days=30)]
    client_folder = ClientFactory()
    for n in range(rows):
        opp = opp_for(cast, client=client_folder, next_action_at=now + offsets[n % len(offsets)])
        activity_plan(opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=now)
    standby = opp_for(cast)
    opportunity_standby(
        opportunity=standby, until=timezone.localdate() + timedelta(days=5), actor=cast.owner
    )
    client.force_login(cast.owner)
    # session, user, group counts, first rows of every group, planned activities,
    # account currency, navigation count
    with django_assert_num_queries(7):
        response = client.get(TODO)
    assert response.status_code == 200


@pytest.mark.parametrize("rows", [1, 30])
def test_load_more_runs_a_constant_number_of_queries(client, cast, rows, django_assert_num_queries):
    start = timezone.now() + timedelta(days=60)
    for _ in range(rows + 1):
        opp_for(cast, next_action_at=start)
    client.force_login(cast.owner)
    first = todo_first_pages(user=cast.owner, bounds=Bounds.at(), limit=1)[LATER]
    # session, user, the rows, account currency
    with django_assert_num_queries(4):
        response = client.get(MORE, {"group": LATER, "after": str(first.next)}, **HTMX)
    assert response.status_code == 200
