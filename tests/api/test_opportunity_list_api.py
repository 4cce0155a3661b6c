"""The opportunity list's sorts and filters, and the actions added to the opportunity."""

from datetime import date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportuna.accounts.tokens import api_token_authenticate
from opportuna.sales.models import Opportunity, Status
from opportuna.sales.selectors.api import OpportunityFilters, opportunity_api_page
from tests.api.test_opportunities_api import Api
from tests.factories import ClientFactory, OpportunityFactory, ProductFactory, make_cast
from tests.plans import ORDER_FROM_AN_INDEX, postgres_plan

pytestmark = pytest.mark.django_db

BASE = "/api/v1/opportunities"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def api(cast):
    return Api(cast.owner)


def opportunity(cast, **values):
    return OpportunityFactory(**{"owner": cast.owner, "pipeline": cast.pipeline, **values})


def walk(api, params, limit=2):
    seen, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = api.get(BASE, query)
        assert response.status_code == 200, response.json()
        seen += [item["id"] for item in response.json()["items"]]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("sort", ["-id", "id", "-created_at", "amount"])
def test_a_page_in_a_not_null_order_is_read_from_its_index_without_sorting(cast, sort):
    for amount in (3, 1, 2):
        opportunity(cast, amount=amount)
    with CaptureQueriesContext(connection) as queries:
        opportunity_api_page(user=cast.admin, filters=OpportunityFilters(), sort=sort)
    sql = queries.captured_queries[0]["sql"]  # the rows (tags and contacts next)
    # As for the web list (tests.web.test_opportunity_list): no NULLS LAST on a NOT NULL key,
    # which PostgreSQL would answer by sorting every visible row (the default page: 0.33 s
    # at 1M).
    assert "NULLS" not in sql
    if connection.vendor == "postgresql":
        assert "Sort" not in postgres_plan(sql, priced_out=ORDER_FROM_AN_INDEX)


@pytest.mark.parametrize("sort", ["amount", "-amount", "title", "-created_at"])
def test_sorted_pages_walk_every_row_once_in_order(api, cast, sort):
    made = [opportunity(cast, amount=amount, title=f"T{amount % 3}") for amount in (5, 1, 5, 3, 5)]
    key = sort.removeprefix("-")
    rows = {o.pk: o for o in made}

    seen = walk(api, {"sort": sort})

    assert sorted(seen) == sorted(rows)
    values = [(getattr(rows[pk], key), pk) for pk in seen]
    assert values == sorted(values, reverse=sort.startswith("-"))


def test_nullable_sort_keys_put_empty_values_last_both_ways(api, cast):
    dated = [opportunity(cast, expected_close_date=date(2026, 1, day)) for day in (3, 1, 2)]
    undated = [opportunity(cast), opportunity(cast)]

    up = walk(api, {"sort": "expected_close_date"})
    down = walk(api, {"sort": "-expected_close_date"})

    assert up[:3] == [dated[1].pk, dated[2].pk, dated[0].pk]
    assert down[:3] == [dated[0].pk, dated[2].pk, dated[1].pk]
    assert sorted(up[3:]) == sorted(down[3:]) == sorted(o.pk for o in undated)


def test_a_sort_outside_the_allow_list_is_422(api):
    assert api.get(BASE, {"sort": "owner__password"}).status_code == 422


def test_a_cursor_of_another_sort_is_422(api, cast):
    for _ in range(3):
        opportunity(cast)
    cursor = api.get(BASE, {"limit": 1, "sort": "amount"}).json()["next_cursor"]

    response = api.get(BASE, {"limit": 1, "sort": "title", "cursor": cursor})

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "open"}, {"open", "standby", "theirs"}),
        ({"status": "closed"}, {"won"}),
        ({"mine": "true"}, set()),  # the admin owns none of them
        ({"team": "TEAM_B"}, {"theirs"}),
        ({"product": "PRODUCT"}, {"open"}),
        ({"q": "acme"}, {"standby"}),
    ],
)
def test_filters_like_the_board(cast, params, expected):
    product = ProductFactory(name="Hosting")
    made = {
        "open": opportunity(cast, product=product),
        "standby": opportunity(cast, status=Status.STANDBY, client=ClientFactory(name="ACME")),
        "won": opportunity(cast, status=Status.WON, won_amount=1, closed_at=timezone.now()),
        "theirs": opportunity(cast, owner=cast.other),
    }
    values = {"TEAM_B": cast.team_b.pk, "PRODUCT": product.pk}
    query = {key: values.get(value, value) for key, value in params.items()}

    # The admin sees everyone's, so only the filter narrows.
    response = Api(cast.admin).get(BASE, query)

    assert {item["id"] for item in response.json()["items"]} == {made[k].pk for k in expected}


def test_mine_keeps_only_the_callers_own(cast):
    opportunity(cast)
    own = opportunity(cast, owner=cast.manager)

    response = Api(cast.manager).get(BASE, {"mine": "true"})

    assert [item["id"] for item in response.json()["items"]] == [own.pk]


def test_updated_after_finds_what_changed_since(api, cast):
    old = opportunity(cast)
    Opportunity.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=2))
    recent = opportunity(cast)
    since = (timezone.now() - timedelta(days=1)).isoformat()

    response = api.get(BASE, {"updated_after": since})

    assert [item["id"] for item in response.json()["items"]] == [recent.pk]


@pytest.mark.parametrize("count", [1, 30])
def test_sorted_list_runs_a_constant_number_of_queries(api, cast, count, django_assert_num_queries):
    for _ in range(count):
        opportunity(cast).contacts.create(name="Anna")
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 opportunities, 3 tags, 4 contacts.
    with django_assert_num_queries(4):
        response = api.get(BASE, {"sort": "-amount"})

    assert len(response.json()["items"]) == count


# Actions ---------------------------------------------------------------------------------


def test_set_probability_by_hand_then_follow_the_step_again(api, cast):
    opp = opportunity(cast)

    manual = api.post(f"{BASE}/{opp.pk}/set-probability", {"probability": 80})
    following = api.post(f"{BASE}/{opp.pk}/set-probability", {"probability": None})

    assert (manual.json()["probability"], manual.json()["probability_is_manual"]) == (80, True)
    assert (following.json()["probability"], following.json()["probability_is_manual"]) == (
        10,
        False,
    )
    assert following["ETag"] == 'W/"3"'


def test_set_probability_needs_the_field(api, cast):
    opp = opportunity(cast)

    assert api.post(f"{BASE}/{opp.pk}/set-probability", {}).status_code == 422


def test_plan_next_action_brings_a_standby_back(api, cast):
    opp = opportunity(cast, status=Status.STANDBY)
    at = (timezone.now() + timedelta(days=3)).isoformat()

    response = api.post(f"{BASE}/{opp.pk}/plan-next-action", {"at": at, "note": "Call Anna"})

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["next_action_note"]) == ("todo", "Call Anna")


def test_standby_until_a_future_date(api, cast):
    opp = opportunity(cast)
    until = timezone.localdate() + timedelta(days=30)

    response = api.post(f"{BASE}/{opp.pk}/standby", {"until": until.isoformat()})

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "standby"
    comes_back = datetime.fromisoformat(body["next_action_at"])
    assert timezone.localtime(comes_back).date() == until


def test_standby_in_the_past_is_409(api, cast):
    opp = opportunity(cast)

    response = api.post(f"{BASE}/{opp.pk}/standby", {"until": "2020-01-01"})

    assert response.status_code == 409
    assert response.json()["field"] == "until"


def test_weighted_amount_is_exact(api, cast):
    opp = opportunity(cast, amount=1000_01, probability=33)

    assert api.get(f"{BASE}/{opp.pk}").json()["weighted_amount"] == "330.00"
