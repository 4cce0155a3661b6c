"""The opportunity list: filters, sortable columns, keyset pages and bulk actions."""

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client as Browser
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.sales.models import EventKind, Opportunity, OpportunityEvent, Status
from opportuna.sales.search import search_index_rebuild
from opportuna.sales.selectors.opportunity_list import (
    PAGE_SIZE,
    SORT_KEYS,
    ListFilters,
    opportunity_list_page,
)
from tests.factories import (
    ClientFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    TagFactory,
    make_cast,
)
from tests.plans import ORDER_FROM_AN_INDEX, postgres_plan

pytestmark = pytest.mark.django_db

URL = "/opportunities/"
BULK = "/opportunities/bulk/"


@pytest.fixture
def cast():
    return make_cast()


def opp(cast, owner=None, **values):
    return OpportunityFactory(owner=owner or cast.owner, pipeline=cast.pipeline, **values)


def listed(response):
    """Opportunity ids in the table, in order."""
    return [int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', response.content.decode())]


def test_url_names_and_paths():
    assert reverse("sales:opportunity_list") == URL
    assert reverse("sales:opportunity_bulk") == BULK


def test_anonymous_user_is_sent_to_login(client):
    for response in (client.get(URL), client.post(BULK, {"ids": [1], "action": "tag"})):
        assert response.status_code == 302
        assert response.url.startswith(reverse("accounts:login"))


def test_bulk_needs_post(client, cast):
    client.force_login(cast.owner)
    assert client.get(BULK).status_code == 405


def test_lists_only_visible_opportunities(client, cast):
    mine = opp(cast, title="Mine")
    theirs = opp(cast, cast.other, title="Theirs")
    client.force_login(cast.owner)
    response = client.get(URL)
    assert listed(response) == [mine.pk]
    assert "Theirs" not in response.content.decode()
    client.force_login(cast.admin)
    assert set(listed(client.get(URL))) == {mine.pk, theirs.pk}


def test_title_links_to_the_opportunity_and_client_to_its_folder(client, cast):
    folder = ClientFactory(name="Folder One")
    row = opp(cast, client=folder)
    client.force_login(cast.owner)
    html = client.get(URL).content.decode()
    assert f'href="/o/{row.pk}/"' in html
    assert f'href="/clients/{folder.pk}/"' in html


def test_filters(client, cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    tag = TagFactory(name="agency")
    product = ProductFactory(name="Licence")
    folder = ClientFactory()
    other_pipeline = PipelineFactory(name="Renewals")
    a = opp(cast, title="Alpha", product=product, client=folder)
    a.tags.add(tag)
    b = opp(cast, cast.teammate, title="Beta")
    c = OpportunityFactory(owner=cast.owner, pipeline=other_pipeline, title="Gamma")
    won = opp(
        cast,
        title="Won one",
        status=Status.WON,
        won_amount=1,
        next_action_at=None,
        closed_at=timezone.now(),
    )
    second_step = cast.pipeline.steps.order_by("position")[1]
    b.step = second_step
    b.save()
    client.force_login(cast.owner)

    def ids(**params):
        return set(listed(client.get(URL, params)))

    assert ids() == {a.pk, b.pk, c.pk, won.pk}
    assert ids(mine="on") == {a.pk, c.pk, won.pk}
    assert ids(owner=cast.teammate.pk) == {b.pk}
    assert ids(team=cast.team_a.pk) == {a.pk, b.pk, c.pk, won.pk}
    assert ids(team=cast.team_b.pk) == set()
    assert ids(tag=tag.pk) == {a.pk}
    assert ids(product=product.pk) == {a.pk}
    assert ids(client=folder.pk) == {a.pk}
    assert ids(pipeline=other_pipeline.pk) == {c.pk}
    assert ids(step=second_step.pk) == {b.pk}
    assert ids(status="open") == {a.pk, b.pk, c.pk}
    assert ids(status="closed") == {won.pk}
    assert ids(status="won") == {won.pk}
    assert ids(status="lost") == set()
    # A bad value drops that filter only, and says so.
    assert ids(owner="nobody", mine="on") == {a.pk, c.pk, won.pk}
    assert "Ignored:" in client.get(URL, {"owner": "nobody"}).content.decode()


def test_text_filter_uses_the_search_index(client, cast):
    hit = opp(cast, title="Solar panels", description="roof of the depot")
    opp(cast, title="Wind farm")
    search_index_rebuild()
    client.force_login(cast.owner)
    assert listed(client.get(URL, {"q": "depot"})) == [hit.pk]
    assert listed(client.get(URL, {"q": "sola"})) == [hit.pk]


# Sorting and pages -----------------------------------------------------------------------


def _sort_fixture(cast):
    """Rows with ties and NULLs in every sortable column."""
    today = date(2030, 1, 1)
    rows = []
    for index in range(23):
        row = opp(
            cast,
            title=f"Deal {index % 5}",
            amount=(index % 4) * 100_00,
            probability=(index % 3) * 25,
            expected_close_date=None if index % 4 == 0 else today + timedelta(days=index % 6),
        )
        rows.append(row)
    # created_at is set on insert: make ties on purpose.
    moment = timezone.now()
    Opportunity.objects.filter(pk__in=[r.pk for r in rows[::2]]).update(created_at=moment)
    # Closed rows have no next action: NULLs in next_action_at.
    Opportunity.objects.filter(pk__in=[r.pk for r in rows[::5]]).update(
        status=Status.CANCELLED, next_action_at=None, closed_at=moment
    )
    return rows


def _expected(sort):
    key = sort.lstrip("-")
    rows = list(Opportunity.objects.values("pk", key))
    present = [r for r in rows if r[key] is not None]
    missing = [r for r in rows if r[key] is None]
    reverse_order = sort.startswith("-")
    present.sort(key=lambda r: (r[key], r["pk"]), reverse=reverse_order)
    missing.sort(key=lambda r: r["pk"], reverse=reverse_order)
    return [r["pk"] for r in present + missing]


@pytest.mark.parametrize("sort", [*SORT_KEYS, *(f"-{key}" for key in SORT_KEYS)])
def test_keyset_pages_follow_each_sort_without_duplicates_or_gaps(cast, sort):
    _sort_fixture(cast)
    seen, cursor = [], None
    for _ in range(20):
        page = opportunity_list_page(
            user=cast.admin, filters=ListFilters(), sort=sort, cursor=cursor, page_size=4
        )
        seen += [row.pk for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == _expected(sort)


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "-amount", "amount"])
def test_a_page_in_a_not_null_order_is_read_from_its_index_without_sorting(cast, sort):
    _sort_fixture(cast)
    with CaptureQueriesContext(connection) as queries:
        opportunity_list_page(user=cast.admin, filters=ListFilters(), sort=sort)
    sql = queries.captured_queries[0]["sql"]  # the rows (their tags next)
    # NULLS LAST on a NOT NULL key: PostgreSQL does not know no NULL is there, does not read
    # the index in that order, and sorts every visible row for one page (1.2 s at 1M).
    assert "NULLS" not in sql
    if connection.vendor == "postgresql":
        assert "Sort" not in postgres_plan(sql, priced_out=ORDER_FROM_AN_INDEX)


@pytest.mark.parametrize("sort", ["title", "-expected_close_date", "next_action_at"])
def test_a_page_is_chosen_on_the_opportunities_alone_before_its_rows_are_joined(cast, sort):
    _sort_fixture(cast)
    with CaptureQueriesContext(connection) as queries:
        page = opportunity_list_page(user=cast.admin, filters=ListFilters(), sort=sort)
    assert [row.pk for row in page.rows] == _expected(sort)[:PAGE_SIZE]
    sql = queries.captured_queries[0]["sql"]
    # No index gives these orders: the page's ids are sorted out of the opportunities alone,
    # then only those rows are joined with client, owner, pipeline, step and product (at 1M,
    # joining every row first took 2.1 s on SQLite, 1.1 s on PostgreSQL).
    chosen = sql[sql.index("IN (SELECT") :]
    assert f"LIMIT {PAGE_SIZE + 1}" in chosen
    assert " JOIN " not in chosen


def test_next_link_keeps_filters_and_sort(client, cast):
    rows = [opp(cast, amount=index) for index in range(55)]
    opp(cast, cast.other)
    client.force_login(cast.owner)
    response = client.get(URL, {"sort": "-amount", "mine": "on"})
    first = listed(response)
    assert len(first) == 50
    html = response.content.decode()
    link = re.search(r'rel="next" href="\?([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "sort=-amount" in link
    assert "mine=on" in link
    second = listed(client.get(f"{URL}?{link}"))
    assert first + second == [r.pk for r in sorted(rows, key=lambda r: -r.amount)]


def test_sort_header_flips_direction(client, cast):
    opp(cast)
    client.force_login(cast.owner)
    html = client.get(URL, {"sort": "amount"}).content.decode()
    assert 'aria-sort="ascending"' in html
    assert 'href="?sort=-amount"' in html
    html = client.get(URL, {"sort": "-amount"}).content.decode()
    assert 'aria-sort="descending"' in html


def test_unknown_sort_and_broken_cursor_fall_back_to_the_first_page(client, cast):
    row = opp(cast)
    client.force_login(cast.owner)
    response = client.get(URL, {"sort": "password", "after": "garbage"})
    assert response.status_code == 200
    assert listed(response) == [row.pk]


def test_htmx_gets_only_the_results(client, cast):
    row = opp(cast)
    client.force_login(cast.owner)
    response = client.get(URL, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html
    assert 'id="opportunity-results"' in html
    assert listed(response) == [row.pk]
    assert "HX-Request" in response["Vary"]


def test_titles_are_escaped(client, cast):
    opp(cast, title="<script>alert(1)</script>", client=ClientFactory(name="<i>x</i>"))
    client.force_login(cast.owner)
    html = client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>x</i>" not in html


@pytest.mark.parametrize("rows", [1, 30])
def test_query_count_is_constant(client, cast, rows, django_assert_num_queries):
    tag = TagFactory()
    for _ in range(rows):
        row = opp(cast, client=ClientFactory(), product=ProductFactory())
        row.tags.add(tag)
    client.force_login(cast.owner)
    # session, user, filter choices (owners, teams, tags, products, steps), assignees,
    # the page, its tags, account currency, the to-do badge in the navigation
    with django_assert_num_queries(12):
        response = client.get(URL, {"q": "", "sort": "amount"})
    assert len(listed(response)) == rows


# Bulk actions ----------------------------------------------------------------------------


def last_message(response):
    return str(list(response.wsgi_request._messages)[-1])


def bulk(client, ids, action, **data):
    return client.post(
        BULK, {"ids": ids, "action": action, "return_query": "sort=amount&mine=on", **data}
    )


def test_bulk_assign_owner_changes_visible_editable_ones_only(client, cast):
    mine = opp(cast)
    team_row = opp(cast, cast.teammate)
    outsider = opp(cast, cast.other)
    client.force_login(cast.manager)
    response = bulk(client, [mine.pk, team_row.pk, outsider.pk], "owner", owner=cast.teammate.pk)
    assert response.status_code == 302
    assert response.url == f"{URL}?sort=amount&mine=on"
    mine.refresh_from_db()
    outsider.refresh_from_db()
    assert mine.owner == cast.teammate
    assert outsider.owner == cast.other
    event = OpportunityEvent.objects.get(opportunity=mine, kind=EventKind.UPDATED)
    assert event.changes["owner"] == [cast.owner.pk, cast.teammate.pk]
    assert event.actor == cast.manager
    assert not OpportunityEvent.objects.filter(opportunity=outsider).exists()
    message = last_message(response)
    assert message.startswith("1 changed, 1 already so, 1 refused: not found (1)")


def test_bulk_refuses_what_the_user_may_see_but_not_edit(client, cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    theirs = opp(cast, cast.teammate)
    mine = opp(cast)
    client.force_login(cast.owner)
    tag = TagFactory(name="hot")
    response = bulk(client, [theirs.pk, mine.pk], "tag", tag="hot")
    assert list(theirs.tags.all()) == []
    assert list(mine.tags.all()) == [tag]
    message = last_message(response)
    assert "1 changed" in message
    assert "1 refused: Only the owner" in message
    assert OpportunityEvent.objects.filter(opportunity=mine, kind=EventKind.TAG_ADDED).exists()
    assert not OpportunityEvent.objects.filter(opportunity=theirs).exists()


def test_bulk_add_tag_creates_a_new_tag_once(client, cast):
    rows = [opp(cast) for _ in range(3)]
    client.force_login(cast.owner)
    bulk(client, [r.pk for r in rows], "tag", tag="Brand New")
    for row in rows:
        assert [t.name for t in row.tags.all()] == ["Brand New"]
    assert OpportunityEvent.objects.filter(kind=EventKind.TAG_ADDED).count() == 3


def test_bulk_move_step_goes_through_the_service(client, cast):
    row = opp(cast)
    closed = opp(cast, status=Status.CANCELLED, next_action_at=None, closed_at=timezone.now())
    elsewhere = OpportunityFactory(owner=cast.owner, pipeline=PipelineFactory(name="Other"))
    target = cast.pipeline.steps.order_by("position")[2]
    client.force_login(cast.owner)
    response = bulk(client, [row.pk, closed.pk, elsewhere.pk], "step", step=target.pk)
    row.refresh_from_db()
    assert row.step == target
    assert row.probability == target.probability
    assert OpportunityEvent.objects.filter(opportunity=row, kind=EventKind.MOVED).exists()
    elsewhere.refresh_from_db()
    assert elsewhere.step != target
    message = last_message(response)
    assert "1 changed" in message
    assert "2 refused" in message
    assert "does not belong to this pipeline" in message
    assert "Reopen a closed opportunity" in message


def test_bulk_without_selection_or_choice_says_so(client, cast):
    row = opp(cast)
    client.force_login(cast.owner)
    response = bulk(client, [], "tag", tag="x")
    assert "Select at least one" in last_message(response)
    response = bulk(client, [row.pk], "owner")
    assert "Choose the new owner" in last_message(response)
    response = bulk(client, [row.pk], "delete")
    assert "Choose an action" in last_message(response)
    assert not OpportunityEvent.objects.filter(opportunity=row).exists()


def test_bulk_htmx_gets_the_results_with_the_summary(client, cast):
    row = opp(cast)
    client.force_login(cast.owner)
    response = client.post(
        BULK,
        {"ids": [row.pk], "action": "tag", "tag": "vip", "return_query": "mine=on"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "1 changed." in html
    assert listed(response) == [row.pk]
    response = client.post(
        BULK, {"ids": [], "action": "tag", "tag": "vip"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422


def test_bulk_refuses_a_post_without_csrf_token(cast):
    row = opp(cast)
    browser = Browser(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    response = browser.post(BULK, {"ids": [row.pk], "action": "tag", "tag": "x"})
    assert response.status_code == 403
    assert not row.tags.exists()


def test_date_range_filters_narrow_by_expected_close_and_by_closing_day(client, cast):
    march = opp(cast, title="March deal", expected_close_date=date(2026, 3, 15))
    opp(cast, title="April deal", expected_close_date=date(2026, 4, 2))
    undated = opp(cast, title="Someday deal", expected_close_date=None)
    # Closed at 23:30 UTC on 31 March: already 1 April in the account's time zone (Rome).
    late_march_utc = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    closed = opp(
        cast,
        title="Closed deal",
        status=Status.WON,
        won_amount=100,
        closed_at=late_march_utc,
    )
    client.force_login(cast.owner)

    spring = {"expected_close_from": "2026-03-01", "expected_close_to": "2026-03-31"}
    assert listed(client.get(URL, spring)) == [march.pk]
    assert listed(client.get(URL, {"expected_close": "none", "status": "open"})) == [undated.pk]
    april = {"closed_from": "2026-04-01", "closed_to": "2026-04-30"}
    assert listed(client.get(URL, april)) == [closed.pk]
    assert listed(client.get(URL, {"closed_from": "2026-03-01", "closed_to": "2026-03-31"})) == []
