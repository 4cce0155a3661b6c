"""Money is integer cents, rounded half-up, and the database agrees with Python to the cent."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import Sum

from opportuna.core.money import format_money, from_cents, to_cents, weighted_cents
from opportuna.sales.models import Opportunity, Status
from tests.factories import LostReasonFactory, PipelineFactory, UserFactory

# Pure functions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        ("1234.5", 123450),
        ("1234.56", 123456),
        ("0.005", 1),  # half a cent rounds up
        ("0.0049", 0),
        ("2.675", 268),  # a float would say 2.67499...
        ("-0.005", -1),  # half-up is away from zero
        (" 1 234.50 ", 123450),
        ("0", 0),
        (Decimal("19.99"), 1999),
        (7, 700),
        ("100000000000.01", 10_000_000_000_001),
    ],
)
def test_to_cents(value, cents):
    assert to_cents(value) == cents


@pytest.mark.parametrize("value", ["", "abc", "1,5", "NaN", "Infinity", "1.2.3"])
def test_to_cents_refuses_what_is_not_an_amount(value):
    with pytest.raises(ValueError, match="not an amount"):
        to_cents(value)


@pytest.mark.parametrize(
    ("cents", "value"),
    [
        (123450, "1234.50"),
        (1, "0.01"),
        (0, "0.00"),
        (-5, "-0.05"),
        (10**15 + 7, "10000000000000.07"),
    ],
)
def test_from_cents(cents, value):
    result = from_cents(cents)
    assert result == Decimal(value)
    assert str(result) == value


@pytest.mark.parametrize("cents", [0, 1, 99, 100, 12345, 10**13 + 1])
def test_from_cents_and_to_cents_round_trip(cents):
    assert to_cents(from_cents(cents)) == cents


@pytest.mark.parametrize(
    ("amount", "probability", "weighted"),
    [
        (100_00, 50, 50_00),
        (1, 50, 1),  # 0.5 cent rounds up
        (1, 49, 0),
        (99, 33, 33),  # 32.67
        (99, 67, 66),  # 66.33
        (150, 1, 2),  # 1.5 rounds up
        (12345, 33, 4074),  # 4073.85
        (10**13, 99, 99 * 10**11),
        (10**13 + 1, 33, 33 * 10**11),  # 3300000000000.33
        (0, 100, 0),
        (12345, 100, 12345),
        (12345, 0, 0),
    ],
)
def test_weighted_cents_rounds_half_up(amount, probability, weighted):
    assert weighted_cents(amount, probability) == weighted


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [
        (123456789, "EUR", "1,234,567.89 EUR"),
        (5, "EUR", "0.05 EUR"),
        (-150, "CHF", "-1.50 CHF"),
        (0, "EUR", "0.00 EUR"),
        (None, "EUR", ""),
    ],
)
def test_format_money(cents, currency, text):
    assert format_money(cents, currency) == text


# In the database ------------------------------------------------------------------------

AMOUNTS = [0, 1, 49, 50, 99, 150, 12345, 999_999, 10**13, 10**13 + 1]
PROBABILITIES = [0, 1, 33, 50, 67, 99, 100]


@pytest.fixture
def awkward_rows():
    """One open opportunity per (amount, probability) pair, plus won, lost and cancelled."""
    owner = UserFactory(username="owner")
    pipeline = PipelineFactory(name="Sales")
    step = pipeline.steps.first()
    reason = LostReasonFactory()
    now = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    rows = [
        Opportunity(
            title=f"{amount} at {probability}%",
            owner=owner,
            pipeline=pipeline,
            step=step,
            amount=amount,
            probability=probability,
            next_action_at=now,
        )
        for amount, probability in itertools.product(AMOUNTS, PROBABILITIES)
    ]
    closed = {"owner": owner, "pipeline": pipeline, "step": step, "closed_at": now}
    rows += [
        Opportunity(title="won", status=Status.WON, amount=777, won_amount=701, **closed),
        Opportunity(
            title="won big", status=Status.WON, amount=10**13, won_amount=10**13 + 3, **closed
        ),
        Opportunity(title="lost", status=Status.LOST, amount=999, lost_reason=reason, **closed),
        Opportunity(title="cancelled", status=Status.CANCELLED, amount=12345, **closed),
    ]
    for row in rows[-4:]:
        row.probability = 67
    Opportunity.objects.bulk_create(rows)
    return Opportunity.objects.all()


def python_weighted(opportunity):
    if opportunity.status == Status.WON:
        return opportunity.won_amount
    if opportunity.status in (Status.TODO, Status.STANDBY):
        return weighted_cents(opportunity.amount, opportunity.probability)
    return 0


@pytest.mark.django_db
def test_weighted_annotation_matches_python_per_row(awkward_rows):
    for opportunity in awkward_rows.with_weighted_amount():
        assert opportunity.weighted == python_weighted(opportunity), opportunity.title
        assert opportunity.weighted == opportunity.weighted_amount, opportunity.title


@pytest.mark.django_db
def test_weighted_sum_in_the_database_equals_the_python_sum_exactly(awkward_rows):
    expected = sum(python_weighted(o) for o in awkward_rows)
    total = awkward_rows.with_weighted_amount().aggregate(total=Sum("weighted"))["total"]
    assert isinstance(total, int)
    assert total == expected


@pytest.mark.django_db
def test_weighted_sum_of_open_rows_equals_weighted_cents_sum(awkward_rows):
    expected = sum(weighted_cents(a, p) for a, p in itertools.product(AMOUNTS, PROBABILITIES))
    total = awkward_rows.open().with_weighted_amount().aggregate(total=Sum("weighted"))["total"]
    assert total == expected
    # Rounding each row, not the sum, is what makes the total exact; prove it matters here.
    unrounded = sum(Decimal(a * p) / 100 for a, p in itertools.product(AMOUNTS, PROBABILITIES))
    assert total != unrounded


@pytest.mark.django_db
def test_lost_and_cancelled_weigh_nothing_and_won_weighs_its_won_amount(awkward_rows):
    weighted = dict(awkward_rows.closed().with_weighted_amount().values_list("title", "weighted"))
    assert weighted == {"won": 701, "won big": 10**13 + 3, "lost": 0, "cancelled": 0}
