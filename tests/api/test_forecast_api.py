"""The forecast over the API: the same numbers as the forecast selector, per period."""

from datetime import date, datetime, time

import pytest
from django.utils import timezone

from opportuna.accounts.tokens import api_token_authenticate
from opportuna.insights.selectors import forecast
from opportuna.sales.models import Status
from tests.api.test_opportunities_api import Api
from tests.factories import OpportunityFactory, ProductFactory, make_cast

pytestmark = pytest.mark.django_db

FORECAST = "/api/v1/forecast"
YEAR = {"start": "2026-01-01", "end": "2026-12-31"}


@pytest.fixture
def cast():
    return make_cast()


def open_one(cast, close, amount, probability, **values):
    return OpportunityFactory(
        owner=values.pop("owner", cast.owner),
        pipeline=cast.pipeline,
        expected_close_date=close,
        amount=amount,
        probability=probability,
        **values,
    )


def won_one(cast, closed, amount):
    at = timezone.make_aware(datetime.combine(closed, time(12)))
    return OpportunityFactory(
        owner=cast.owner, pipeline=cast.pipeline, status=Status.WON, won_amount=amount, closed_at=at
    )


def test_one_row_per_period_with_exact_money(cast):
    open_one(cast, date(2026, 3, 10), 1000_01, 33)
    open_one(cast, date(2026, 3, 20), 500_00, 50)
    won_one(cast, date(2026, 3, 5), 200_00)
    open_one(cast, date(2026, 5, 1), 100_00, 10)

    response = Api(cast.owner).get(FORECAST, {"period": "month", **YEAR})

    assert response.status_code == 200, response.json()
    rows = {row["period"]: row for row in response.json()["rows"]}
    assert sorted(rows) == ["2026-03", "2026-05"]
    march = rows["2026-03"]
    # 1000.01 x 33 % = 330.0033 -> 330.00; 500.00 x 50 % = 250.00.
    assert (march["count"], march["amount"], march["weighted"]) == (2, "1500.01", "580.00")
    assert (march["won"], march["count_won"], march["expected"]) == ("200.00", 1, "780.00")


def test_the_numbers_are_the_selectors(cast):
    for month in range(1, 13):
        open_one(cast, date(2026, month, 15), 123_45 * month, 10 * (month % 10))

    body = Api(cast.owner).get(FORECAST, {"period": "quarter", **YEAR}).json()

    expected = forecast(
        user=cast.owner, period="quarter", start=date(2026, 1, 1), end=date(2026, 12, 31)
    )
    assert [r["period"] for r in body["rows"]] == [r.period for r in expected]
    assert [r["weighted"] for r in body["rows"]] == [
        f"{r.weighted_open / 100:.2f}" for r in expected
    ]


def test_only_what_the_caller_sees_counts(cast):
    open_one(cast, date(2026, 6, 1), 100_00, 50)
    open_one(cast, date(2026, 6, 1), 900_00, 50, owner=cast.other)

    owner = Api(cast.owner).get(FORECAST, {"period": "year", **YEAR}).json()
    admin = Api(cast.admin).get(FORECAST, {"period": "year", **YEAR}).json()

    assert owner["total"]["amount"] == "100.00"
    assert admin["total"]["amount"] == "1000.00"


def test_broken_down_by_product(cast):
    product = ProductFactory(name="Hosting")
    open_one(cast, date(2026, 6, 1), 100_00, 50, product=product)
    open_one(cast, date(2026, 6, 1), 300_00, 50)

    body = Api(cast.owner).get(FORECAST, {"period": "year", "by": "product", **YEAR}).json()

    groups = {row["group_label"]: row["amount"] for row in body["rows"]}
    assert groups == {"Hosting": "100.00", "(no product)": "300.00"}
    assert body["by"] == "product"


def test_undated_open_opportunities_are_counted_apart(cast):
    open_one(cast, None, 400_00, 25)

    body = Api(cast.owner).get(FORECAST, YEAR).json()

    assert body["rows"] == []
    assert body["undated"] == {"count": 1, "amount": "400.00", "weighted": "100.00"}


@pytest.mark.parametrize(
    "params",
    [
        {"period": "week"},
        {"start": "2026-12-31", "end": "2026-01-01"},
        {"period": "month", "start": "1950-01-01", "end": "2026-12-31"},
        {"start": "0001-01-01"},
        {"by": "colour"},
    ],
)
def test_bad_parameters_are_422(cast, params):
    assert Api(cast.owner).get(FORECAST, params).status_code == 422


def test_defaults_to_this_year_by_month(cast):
    body = Api(cast.owner).get(FORECAST).json()

    year = timezone.localdate().year
    assert (body["period"], body["start"], body["end"]) == (
        "month",
        f"{year}-01-01",
        f"{year}-12-31",
    )


@pytest.mark.parametrize("count", [1, 30])
def test_runs_a_constant_number_of_queries(cast, count, django_assert_num_queries):
    for number in range(count):
        open_one(cast, date(2026, 1 + number % 12, 1), 100_00, 50)
    api = Api(cast.owner)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the periods, 3 the total, 4 the undated ones.
    with django_assert_num_queries(4):
        response = api.get(FORECAST, {"by": "owner", **YEAR})

    assert response.json()["total"]["count"] == count
