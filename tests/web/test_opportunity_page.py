"""The opportunity page: who sees it, what it shows, and that it costs a fixed number of queries."""

from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.sales.models import EventKind, OpportunityEvent, Status
from opportuna.sales.services import (
    activity_log,
    activity_plan,
    comment_add,
    contact_add,
    opportunity_close_lost,
    opportunity_duplicate,
    opportunity_move,
    opportunity_set_probability,
    opportunity_update,
    proposal_create,
    tag_add,
)
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    LostReasonFactory,
    OpportunityFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    return OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        client=ClientFactory(name="Rossi Logistica"),
        title="Fleet renewal",
        amount=12_000_00,
    )


def page_url(opp):
    return reverse("sales:opportunity_detail", args=[opp.pk])


def team_policy():
    account = Account.load()
    account.visibility = VisibilityPolicy.TEAM
    account.save()


def test_url_is_the_agreed_one(opp):
    assert page_url(opp) == f"/o/{opp.pk}/"


def test_anonymous_is_sent_to_login(client, opp):
    response = client.get(page_url(opp))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_outsider_gets_404(client, cast, opp):
    client.force_login(cast.other)
    assert client.get(page_url(opp)).status_code == 404


def test_outsider_gets_404_for_the_htmx_partial(client, cast, opp):
    client.force_login(cast.other)
    assert client.get(page_url(opp), HTTP_HX_REQUEST="true").status_code == 404


def test_teammate_without_team_policy_gets_404(client, cast, opp):
    client.force_login(cast.teammate)
    assert client.get(page_url(opp)).status_code == 404


def test_header_shows_the_opportunity(client, cast, opp):
    definition = FieldDefinitionFactory(label="Budget holder", key="budget_holder")
    opp.fields = {definition.key: "Anna Bianchi"}
    opp.description = "Met at the fair."
    opp.expected_close_date = timezone.localdate() + timedelta(days=40)
    opp.save()
    tag_add(opportunity=opp, actor=cast.owner, tag="Agency X")
    client.force_login(cast.owner)
    response = client.get(page_url(opp))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Fleet renewal" in html
    assert "Rossi Logistica" in html
    assert "12,000.00 EUR" in html  # amount
    assert "1,200.00 EUR" in html  # weighted at the first step's 10%
    assert "10%" in html
    assert "Lead" in html  # the step
    assert str(cast.owner) in html
    assert "Agency X" in html
    assert "Budget holder" in html and "Anna Bianchi" in html
    assert html.index("Anna Bianchi") < html.index('class="separator"') < html.index("Met at")
    assert reverse("sales:opportunity_edit", args=[opp.pk]) in html


def test_contacts_main_first_with_mail_and_call_links(client, cast, opp):
    contact_add(
        opportunity=opp, actor=cast.owner, name="Anna", email="anna@rossi.it", phone="+39 02 123"
    )
    contact_add(opportunity=opp, actor=cast.owner, name="Bruno", role="CFO")
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    html = html[html.index('id="contacts"') :]
    assert html.index("Anna") < html.index("Bruno")
    assert 'href="mailto:anna@rossi.it"' in html
    assert 'href="tel:+3902123"' in html
    assert ">main<" in html


def test_timeline_merges_comments_activities_and_events_newest_first(client, cast, opp):
    steps = list(cast.pipeline.steps.order_by("position"))
    comment_add(opportunity=opp, actor=cast.owner, body="First call went well")
    activity_log(opportunity=opp, actor=cast.owner, type=activity_type("call"), note="Called Anna")
    opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    timeline = html[html.index('id="timeline-title"') :]
    moved = f"{cast.owner} moved it from Lead to Demo"
    assert moved in timeline
    assert "probability 10 → 50" in timeline
    assert timeline.index(moved) < timeline.index("Called Anna") < timeline.index("First call")


def test_pinned_comments_are_on_top(client, cast, opp):
    comment_add(opportunity=opp, actor=cast.owner, body="Pinned: budget is approved", pinned=True)
    comment_add(opportunity=opp, actor=cast.owner, body="A later remark")
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    assert html.index("Pinned: budget is approved") < html.index('id="timeline-title"')
    assert html.index('id="timeline-title"') < html.index("A later remark")


def test_every_event_kind_reads_as_a_sentence(client, cast, opp):
    steps = list(cast.pipeline.steps.order_by("position"))
    other_client = ClientFactory(name="Verdi SpA")
    reason = LostReasonFactory(name="Price too high")
    opportunity_update(
        opportunity=opp,
        actor=cast.owner,
        version=opp.version,
        amount=15_000_00,
        client=other_client,
    )
    opportunity_set_probability(opportunity=opp, probability=60, actor=cast.owner)
    opportunity_move(opportunity=opp, step=steps[1], actor=cast.owner)
    tag_add(opportunity=opp, actor=cast.owner, tag="renewal")
    contact_add(opportunity=opp, actor=cast.owner, name="Carla")
    proposal_create(
        opportunity=opp, actor=cast.owner, lines=[{"description": "Setup", "unit_price": 500_00}]
    )
    new = opportunity_duplicate(opportunity=opp, actor=cast.owner, title="Fleet renewal 2")
    opportunity_close_lost(
        opportunity=opp, actor=cast.owner, reason=reason, note="Went with a rival"
    )
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    owner = str(cast.owner)
    assert f"{owner} edited it" in html
    assert "amount: 12,000.00 EUR → 15,000.00 EUR" in html
    assert "client folder: Rossi Logistica → Verdi SpA" in html
    assert f"{owner} changed the probability from 10 to 60" in html
    assert f"{owner} moved it from Lead to Qualified" in html
    assert f"{owner} added the tag renewal" in html
    assert f"{owner} added the contact Carla" in html
    assert f"{owner} wrote proposal v1 for 500.00 EUR" in html
    assert f"{owner} duplicated it into" in html
    assert reverse("sales:opportunity_detail", args=[new.pk]) in html
    assert f"{owner} closed it as lost: Price too high" in html
    assert "Went with a rival" in html
    assert f"{owner} created the opportunity" not in html  # the factory wrote no event


def test_planned_activities_are_listed_with_a_done_button(client, cast, opp):
    activity = activity_plan(
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("visit"),
        due_at=timezone.now() + timedelta(days=2),
        note="Visit the warehouse",
    )
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    assert "Visit the warehouse" in html
    assert reverse("sales:opportunity_activity_done", args=[opp.pk, activity.pk]) in html


def test_title_and_user_text_are_escaped(client, cast):
    opp = OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        title="<script>alert(1)</script>",
        description="<b>bold</b>",
    )
    comment_add(opportunity=opp, actor=cast.owner, body="<img src=x onerror=alert(2)>")
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html
    assert "<img src=x" not in html


def test_teammate_under_team_policy_sees_it_without_edit_actions(client, cast, opp):
    team_policy()
    client.force_login(cast.teammate)
    response = client.get(page_url(opp))
    assert response.status_code == 200
    html = response.content.decode()
    assert reverse("sales:opportunity_comment", args=[opp.pk]) in html
    assert reverse("sales:opportunity_edit", args=[opp.pk]) not in html
    assert reverse("sales:opportunity_won", args=[opp.pk]) not in html


def test_closed_opportunity_offers_reopen_not_close(client, cast, opp):
    opp.status = Status.WON
    opp.won_amount = opp.amount
    opp.closed_at = timezone.now()
    opp.next_action_at = None
    opp.save()
    client.force_login(cast.owner)
    html = client.get(page_url(opp)).content.decode()
    assert reverse("sales:opportunity_reopen", args=[opp.pk]) in html
    assert reverse("sales:opportunity_won", args=[opp.pk]) not in html


def test_htmx_request_gets_the_page_partial(client, cast, opp):
    client.force_login(cast.owner)
    response = client.get(page_url(opp), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="opportunity-page"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_dialog_url_opens_the_page_with_that_dialog(client, cast, opp):
    client.force_login(cast.owner)
    response = client.get(reverse("sales:opportunity_lost", args=[opp.pk]))
    assert response.status_code == 200
    assert 'id="dialog-lost" open' in response.content.decode()


def test_older_entries_are_paged_by_keyset(client, cast, opp):
    start = timezone.now() - timedelta(days=10)
    OpportunityEvent.objects.bulk_create(
        OpportunityEvent(
            opportunity=opp,
            actor=cast.owner,
            at=start + timedelta(minutes=i),
            kind=EventKind.REOPENED,
        )
        for i in range(60)
    )
    comment_add(opportunity=opp, actor=cast.owner, body="Newest comment")
    client.force_login(cast.owner)
    first = client.get(page_url(opp))
    page = first.context["page"]
    assert len(page.timeline) == 50
    assert page.timeline[0].comment is not None
    seen = {item.event.pk for item in page.timeline if item.event}
    second = client.get(page_url(opp), {"until": page.older.isoformat()}).context["page"]
    rest = {item.event.pk for item in second.timeline if item.event}
    assert not seen & rest
    assert len(seen | rest) == 60
    assert second.older is None


def test_a_page_never_splits_entries_of_one_timestamp(client, cast, opp):
    moment = timezone.now() - timedelta(days=1)
    OpportunityEvent.objects.bulk_create(
        OpportunityEvent(
            opportunity=opp,
            actor=cast.owner,
            at=moment + timedelta(minutes=i // 7),
            kind=EventKind.REOPENED,
        )
        for i in range(70)
    )
    client.force_login(cast.owner)
    seen: list[int] = []
    until = None
    for _round in range(5):
        params = {"until": until.isoformat()} if until else {}
        page = client.get(page_url(opp), params).context["page"]
        seen += [item.event.pk for item in page.timeline]
        until = page.older
        if until is None:
            break
    assert sorted(seen) == sorted(set(seen))
    assert len(seen) == 70


def fill(opp, cast, n):
    """n contacts, comments, activities and moves, plus a client change and a pinned comment."""
    steps = list(cast.pipeline.steps.order_by("position"))
    call = activity_type("call")
    for i in range(n):
        contact_add(
            opportunity=opp, actor=cast.owner, name=f"Contact {i}", email=f"c{i}@example.com"
        )
        comment_add(opportunity=opp, actor=cast.owner, body=f"Comment {i}")
        activity_log(opportunity=opp, actor=cast.owner, type=call, note=f"Call {i}")
        activity_plan(
            opportunity=opp,
            actor=cast.owner,
            type=call,
            note=f"Plan {i}",
            due_at=timezone.now() + timedelta(days=i + 1),
        )
        opportunity_move(opportunity=opp, step=steps[1 + i % 2], actor=cast.owner)
        tag_add(opportunity=opp, actor=cast.owner, tag=f"tag {i}")
        proposal_create(opportunity=opp, actor=cast.owner)
    comment_add(opportunity=opp, actor=cast.owner, body="Pinned", pinned=True)
    opp.refresh_from_db()
    opportunity_update(
        opportunity=opp, actor=cast.owner, version=opp.version, client=ClientFactory(), product=None
    )


# session, user; opportunity, its tags; field definitions; contacts; pinned comments;
# planned activities; timeline comments, activities, events; steps; lost reasons;
# activity types; proposals; client folders named by events; account (currency).
PARTIAL_QUERIES = 17
# The full page also shows the navigation's to-do count.
PAGE_QUERIES = PARTIAL_QUERIES + 1


@pytest.mark.parametrize("rows", [1, 30])
def test_page_runs_a_fixed_number_of_queries(client, cast, opp, rows, django_assert_num_queries):
    fill(opp, cast, rows)
    client.force_login(cast.owner)
    with django_assert_num_queries(PAGE_QUERIES):
        response = client.get(page_url(opp))
    assert response.status_code == 200
    assert f"Contact {rows - 1}" in response.content.decode()


@pytest.mark.parametrize("rows", [1, 30])
def test_htmx_partial_runs_the_same_queries(client, cast, opp, rows, django_assert_num_queries):
    fill(opp, cast, rows)
    client.force_login(cast.owner)
    with django_assert_num_queries(PARTIAL_QUERIES):
        client.get(page_url(opp), HTTP_HX_REQUEST="true")


def test_csrf_is_enforced_on_the_page_forms(cast, opp):
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    url = reverse("sales:opportunity_comment", args=[opp.pk])
    assert browser.post(url, {"body": "no token"}).status_code == 403
    assert not opp.comments.exists()


@pytest.mark.parametrize("who", ["manager", "admin"])
def test_manager_of_the_team_and_admin_get_the_edit_actions(client, cast, opp, who):
    client.force_login(getattr(cast, who))
    html = client.get(page_url(opp)).content.decode()
    assert reverse("sales:opportunity_edit", args=[opp.pk]) in html
    assert reverse("sales:opportunity_won", args=[opp.pk]) in html
