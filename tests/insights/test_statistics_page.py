"""The statistics pages: who may open them, what they show to whom, the filters, the downloads,
and a constant number of queries whatever the data size."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from openpyxl import load_workbook

from opportuna.insights.exports import CSV_TYPE, XLSX_TYPE
from opportuna.insights.facts import rebuild_deal_facts
from opportuna.insights.steps import rebuild_step_visits
from opportuna.sales.models import (
    Activity,
    EventKind,
    Opportunity,
    OpportunityEvent,
    Status,
)
from tests.factories import (
    LostReasonFactory,
    ProductFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db

PAGES = [
    "insights:statistics",
    "insights:statistics_funnel",
    "insights:statistics_lost",
    "insights:statistics_activities",
    "insights:statistics_rotting",
]
DAY = timedelta(days=1)


@pytest.fixture
def cast():
    return make_cast()


def the_range():
    today = timezone.localdate()
    return {"start": str(today - 300 * DAY), "end": str(today)}


def opportunity(cast, *, owner=None, status=Status.TODO, age=100, closed_age=None, **fields):
    """An opportunity created `age` days ago (closed `closed_age` days ago), with its events."""
    now = timezone.now()
    owner = owner or cast.owner
    steps = list(cast.pipeline.steps.order_by("position"))
    is_open = status in (Status.TODO, Status.STANDBY)
    closed_at = None if is_open else now - (closed_age or 1) * DAY
    if status == Status.LOST and "lost_reason" not in fields:
        fields["lost_reason"] = LostReasonFactory(name="Price")
    opp = Opportunity.objects.create(
        title=fields.pop("title", f"Deal of {owner.username}"),
        owner=owner,
        pipeline=cast.pipeline,
        step=steps[1],
        status=status,
        amount=fields.pop("amount", 1000_00),
        won_amount=1200_00 if status == Status.WON else None,
        next_action_at=now + DAY if is_open else None,
        closed_at=closed_at,
        **fields,
    )
    created = now - age * DAY
    Opportunity.objects.filter(pk=opp.pk).update(created_at=created)
    OpportunityEvent.objects.create(
        opportunity=opp, kind=EventKind.CREATED, at=created, data={"step": steps[0].pk}
    )
    OpportunityEvent.objects.create(
        opportunity=opp,
        kind=EventKind.MOVED,
        at=created + 2 * DAY,
        changes={"step": [steps[0].pk, steps[1].pk]},
    )
    if not is_open:
        OpportunityEvent.objects.create(opportunity=opp, kind=status, at=closed_at)
    return opp


def populate(cast, count):
    """`count` opportunities of each kind every page shows, for the owner and a teammate."""
    reason = LostReasonFactory(name="Price")
    product = ProductFactory(name="Licence")
    call = activity_type("call")
    for n in range(count):
        owner = (cast.owner, cast.teammate)[n % 2]
        won = opportunity(cast, owner=owner, status=Status.WON, age=60, product=product)
        lost = opportunity(cast, owner=owner, status=Status.LOST, age=50, lost_reason=reason)
        opportunity(cast, owner=owner, age=90)  # open and idle: rotting
        for opp in (won, lost):
            Activity.objects.create(
                opportunity=opp, type=call, user=owner, done_at=timezone.now() - 20 * DAY
            )
    # Written around the services: derive what the services would have kept in step.
    rebuild_step_visits()
    rebuild_deal_facts()


def url(name, **query):
    return reverse(name), {**the_range(), **query}


# Who may come in ------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_log_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_answer_only_get(client, cast, name):
    client.force_login(cast.owner)
    assert client.post(reverse(name)).status_code == 405


@pytest.mark.parametrize("name", PAGES)
def test_every_page_opens_with_its_tab_marked(client, cast, name):
    populate(cast, 1)
    client.force_login(cast.owner)
    response = client.get(*url(name))
    assert response.status_code == 200
    (tab,) = [tab for tab in response.context["tabs"] if tab["current"]]
    assert tab["url"].startswith(f"{reverse(name)}?")
    assert f'<a href="{escape(tab["url"])}" aria-current="page">' in response.content.decode()


# What each page shows -------------------------------------------------------------------


def test_win_rates_show_counts_rates_and_totals(client, cast):
    opportunity(cast, status=Status.WON, age=40, closed_age=10)
    opportunity(cast, status=Status.LOST, age=40, closed_age=10)
    opportunity(cast, status=Status.LOST, age=40, closed_age=10)
    opportunity(cast, status=Status.CANCELLED, age=40, closed_age=10)
    client.force_login(cast.owner)
    response = client.get(*url("insights:statistics"))
    table = response.context["table"]
    assert (table.total.won, table.total.lost, table.total.cancelled) == (1, 2, 1)
    page = response.content.decode()
    assert "33.3&nbsp;%" in page  # 1 won of 3 decided
    assert str(cast.owner) in page


def test_win_rates_per_month_list_every_month_of_the_range(client, cast):
    client.force_login(cast.owner)
    response = client.get(
        reverse("insights:statistics"), {"start": "2026-01-01", "end": "2026-03-31", "by": "month"}
    )
    assert [row.key for row in response.context["table"].rows] == ["2026-01", "2026-02", "2026-03"]


def test_an_unknown_grouping_falls_back_to_owner(client, cast):
    client.force_login(cast.owner)
    response = client.get(*url("insights:statistics", by="<script>"))
    assert response.status_code == 200
    assert response.context["by"] == "owner"


def test_a_salesperson_sees_only_their_own_numbers(client, cast):
    opportunity(cast, owner=cast.other, status=Status.WON, title="Hidden win")
    opportunity(cast, owner=cast.other, age=90, title="Hidden idle")
    opportunity(cast, status=Status.WON, title="My win")
    client.force_login(cast.owner)
    win_page = client.get(*url("insights:statistics")).content.decode()
    rot_page = client.get(*url("insights:statistics_rotting")).content.decode()
    assert str(cast.other) not in win_page
    assert "Hidden idle" not in rot_page
    client.force_login(cast.admin)
    assert str(cast.other) in client.get(*url("insights:statistics")).content.decode()
    assert "Hidden idle" in client.get(*url("insights:statistics_rotting")).content.decode()


def test_funnel_shows_each_step_of_the_pipeline(client, cast):
    populate(cast, 2)
    client.force_login(cast.owner)
    response = client.get(*url("insights:statistics_funnel"))
    (funnel,) = response.context["funnels"]
    assert [row.step.name for row in funnel.steps] == ["Lead", "Qualified", "Demo", "Proposal"]
    assert [row.entered for row in funnel.steps] == [3, 3, 0, 0]  # the owner's 3 of 6


def test_lost_page_shows_shares_and_the_chosen_breakdown(client, cast):
    opportunity(cast, status=Status.LOST, closed_age=3)
    client.force_login(cast.owner)
    response = client.get(*url("insights:statistics_lost", by="owner"))
    page = response.content.decode()
    assert response.context["reasons"].count == 1
    assert response.context["matrix"].by == "owner"
    assert "Price" in page and "100.0&nbsp;%" in page


def test_activities_page_shows_per_salesperson_and_per_outcome(client, cast):
    populate(cast, 1)
    client.force_login(cast.manager)
    response = client.get(*url("insights:statistics_activities"))
    report, outcome = response.context["report"], response.context["outcome"]
    assert {p.name: p.total for p in report.people} == {str(cast.owner): 2}
    assert (outcome.won_deals, outcome.lost_deals) == (1, 1)


def test_rotting_page_links_each_idle_opportunity(client, cast):
    opp = opportunity(cast, age=90, title="Idle one")
    client.force_login(cast.owner)
    page = client.get(*url("insights:statistics_rotting")).content.decode()
    assert reverse("sales:opportunity_detail", args=[opp.pk]) in page
    assert "Idle one" in page


def test_user_text_is_escaped(client, cast):
    evil = "<script>alert(1)</script>"
    opportunity(cast, age=90, title=evil)
    opportunity(cast, status=Status.LOST, lost_reason=LostReasonFactory(name=evil))
    client.force_login(cast.owner)
    for name in ("insights:statistics_rotting", "insights:statistics_lost"):
        page = client.get(*url(name)).content.decode()
        assert evil not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# Filters --------------------------------------------------------------------------------


def test_every_filter_has_a_label(client, cast):
    client.force_login(cast.manager)
    page = client.get(*url("insights:statistics")).content.decode()
    for field in ("s-start", "s-end", "s-pipeline", "s-owner", "s-team", "s-product", "s-by"):
        assert f'id="{field}"' in page
        assert f'for="{field}"' in page


def test_a_salesperson_gets_no_team_filter(client, cast):
    client.force_login(cast.owner)
    page = client.get(*url("insights:statistics")).content.decode()
    assert 'id="s-team"' not in page


def test_the_tabs_carry_the_filters(client, cast):
    client.force_login(cast.owner)
    response = client.get(
        reverse("insights:statistics_lost"),
        {"start": "2026-01-01", "end": "2026-02-28", "owner": cast.owner.pk},
    )
    tabs = [tab for tab in response.context["tabs"] if "/statistics/" in tab["url"]]
    assert len(tabs) == 5
    for tab in tabs:
        assert f"start=2026-01-01&end=2026-02-28&owner={cast.owner.pk}" in tab["url"]


def test_malformed_filters_are_ignored(client, cast):
    client.force_login(cast.owner)
    response = client.get(
        reverse("insights:statistics_funnel"),
        {"start": "yesterday", "end": "9999-12-31", "owner": "me", "pipeline": "1; DROP"},
    )
    assert response.status_code == 200
    chosen = response.context["filters"]
    assert chosen.owner is None and chosen.pipeline is None


def test_the_owner_filter_narrows_a_manager_s_view(client, cast):
    opportunity(cast, owner=cast.owner, age=90, title="Owner's idle")
    opportunity(cast, owner=cast.teammate, age=90, title="Teammate's idle")
    client.force_login(cast.manager)
    page = client.get(*url("insights:statistics_rotting", owner=cast.teammate.pk))
    text = page.content.decode()
    assert "Teammate&#x27;s idle" in text and "Owner&#x27;s idle" not in text


# Downloads ------------------------------------------------------------------------------


def test_rotting_download_is_formula_safe_csv_with_every_row(client, cast):
    opportunity(cast, age=90, title='=HYPERLINK("http://x")', amount=1234_56)
    for n in range(12):  # more than the page lists
        opportunity(cast, age=60 + n)
    client.force_login(cast.owner)
    response = client.get(*url("insights:statistics_rotting", format="csv"))
    assert response["Content-Type"] == CSV_TYPE
    assert "rotting-deals.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 1 + 13
    first = rows[1]
    assert first[1] == '\'=HYPERLINK("http://x")'
    assert first[5] == "1234.56"


@pytest.mark.parametrize("name", PAGES)
def test_every_page_downloads_as_xlsx(client, cast, name):
    populate(cast, 1)
    client.force_login(cast.owner)
    response = client.get(*url(name, format="xlsx"))
    assert response["Content-Type"] == XLSX_TYPE
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) >= 2
    assert any(isinstance(value, int | float) for value in rows[1])  # numbers stay numbers


def test_win_rate_download_has_a_row_per_group_and_the_total(client, cast):
    opportunity(cast, status=Status.WON)
    opportunity(cast, owner=cast.teammate, status=Status.LOST)
    client.force_login(cast.manager)
    response = client.get(*url("insights:statistics", format="csv"))
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[0] for row in rows[1:]] == sorted(
        [str(cast.owner), str(cast.teammate)], key=str.casefold
    ) + ["Total"]


# Queries --------------------------------------------------------------------------------

# Every page: session, user, filter choices (pipelines, owners, products, and teams for a
# manager), account currency, the navigation's to-do count; then its own:
OWN_QUERIES = {
    # counts per group, cycle quartiles; on SQLite counts and cycles per whole day, the
    # labels, the cycles in the bins that hold the quartiles (statistics._sqlite_win_counts)
    "insights:statistics": 3 if connection.vendor == "sqlite" else 2,
    "insights:statistics_funnel": 3,  # steps, counts per step, times per step
    "insights:statistics_lost": 1,  # the breakdown, which the shares add up from
    "insights:statistics_activities": 4,  # types, per person and week, deals, per outcome
    "insights:statistics_rotting": 2,  # the longest idle per owner and counts, then those
}


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("who", ["owner", "manager"])
@pytest.mark.parametrize("name", PAGES)
def test_each_page_runs_a_constant_number_of_queries(
    client, cast, count, who, name, django_assert_num_queries
):
    populate(cast, count)
    client.force_login(getattr(cast, who))
    common = 7 if who == "owner" else 8
    with django_assert_num_queries(common + OWN_QUERIES[name]):
        response = client.get(*url(name))
    assert response.status_code == 200


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("name", PAGES)
def test_each_download_runs_a_constant_number_of_queries(
    client, cast, count, name, django_assert_num_queries
):
    populate(cast, count)
    client.force_login(cast.manager)
    # session, user, then the page's own queries but the second half of the activities page;
    # the rotting deals all at once, without ranking them first
    own = {
        "insights:statistics_activities": 2,
        "insights:statistics_lost": 1,
        "insights:statistics_rotting": 1,
    }
    with django_assert_num_queries(2 + own.get(name, OWN_QUERIES[name])):
        response = client.get(*url(name, format="csv"))
        b"".join(response.streaming_content)
