"""The P10 / P50 / P90 band: exact on few deals, close to brute force on many, computed by the
database from sums and the largest deals, and combined exactly over periods."""

import itertools
import math
import random
from datetime import UTC, date, datetime
from unittest import mock

import pytest

from opportuna.insights import selectors
from opportuna.insights.range import (
    LUMPS,
    Band,
    Lump,
    RangeInputs,
    band,
    combine,
    top_lumps,
)
from opportuna.insights.selectors import ForecastFilters, forecast_cells
from opportuna.sales.models import Opportunity, Status
from tests.factories import LostReasonFactory, OpportunityFactory, TagFactory, make_cast


def inputs_of(deals, *, won=0):
    """What the database would hand over for these open (amount, probability) deals."""
    uncertain = [Lump(a, p) for a, p in deals if 0 < p < 100 and a > 0]
    return RangeInputs(
        won=won,
        sure=sum(a for a, p in deals if p >= 100),
        uncertain_count=len(uncertain),
        uncertain_amount=sum(lump.amount for lump in uncertain),
        mean_x100=sum(lump.amount * lump.probability for lump in uncertain),
        variance_x10000=float(sum(lump.spread for lump in uncertain)),
        lumps=top_lumps(uncertain),
    )


def brute_force_band(deals, *, won=0):
    """Every combination of won / not won, with its probability: the exact quantiles."""
    outcomes = {}
    for taken in itertools.product((False, True), repeat=len(deals)):
        chance, total = 1.0, won
        for (amount, probability), came in zip(deals, taken, strict=True):
            chance *= probability / 100 if came else 1 - probability / 100
            total += amount if came else 0
        outcomes[total] = outcomes.get(total, 0.0) + chance
    values = []
    for q in (0.1, 0.5, 0.9):
        cumulative = 0.0
        for total in sorted(outcomes):
            cumulative += outcomes[total]
            if cumulative >= q - 1e-9:
                values.append(total)
                break
    return Band(*values)


def monte_carlo_band(deals, *, won=0, draws=40_000, seed=7):
    rng = random.Random(seed)
    totals = sorted(
        won + sum(amount for amount, p in deals if rng.random() * 100 < p) for _ in range(draws)
    )
    return Band(*(totals[math.ceil(q * draws) - 1] for q in (0.1, 0.5, 0.9)))


def random_deals(rng, count):
    return [
        (
            rng.choice([rng.randint(100_00, 5_000_00), rng.randint(5_000_00, 90_000_00)]),
            rng.choice([0, 10, 25, 40, 50, 70, 90, 100]),
        )
        for _ in range(count)
    ]


# Edge cases -----------------------------------------------------------------------------


def test_no_open_deals_make_the_band_the_won_amount():
    assert band(inputs_of([], won=12_345_67)) == Band(12_345_67, 12_345_67, 12_345_67)


def test_deals_at_100_percent_are_certain():
    deals = [(1_000_00, 100), (2_500_00, 100)]
    assert band(inputs_of(deals, won=500_00)) == Band(4_000_00, 4_000_00, 4_000_00)


def test_deals_at_0_percent_never_count():
    assert band(inputs_of([(9_999_00, 0)], won=1_00)) == Band(1_00, 1_00, 1_00)


def test_one_deal_at_50_percent_is_all_or_nothing():
    # Half the time nothing: the median is the lower outcome, P90 the whole amount.
    assert band(inputs_of([(1_000_00, 50)])) == Band(0, 0, 1_000_00)


def test_one_likely_deal_lands_at_its_amount_from_p10_up():
    assert band(inputs_of([(1_000_00, 95)], won=7)) == Band(1_000_07, 1_000_07, 1_000_07)


# Exactness and accuracy -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_band_is_exact_when_a_period_has_few_uncertain_deals(seed):
    rng = random.Random(seed)
    deals = random_deals(rng, LUMPS)
    won = rng.randint(0, 50_000_00)
    assert band(inputs_of(deals, won=won)) == brute_force_band(deals, won=won)


@pytest.mark.parametrize("seed,count", [(1, 20), (2, 40), (3, 90), (4, 160)])
def test_band_matches_monte_carlo_on_many_deals(seed, count):
    rng = random.Random(seed)
    deals = random_deals(rng, count)
    computed = band(inputs_of(deals))
    simulated = monte_carlo_band(deals, draws=20_000)
    spread = math.sqrt(sum(a * a * p * (100 - p) for a, p in deals) / 10_000)
    for mine, theirs in zip(
        (computed.p10, computed.p50, computed.p90),
        (simulated.p10, simulated.p50, simulated.p90),
        strict=True,
    ):
        # Monte Carlo's own error at 20,000 draws is about 0.015 standard deviations.
        assert abs(mine - theirs) <= 0.06 * spread


def test_one_huge_deal_among_many_small_ones_keeps_the_band_lumpy():
    # A normal approximation would put P10 far below the won-nothing-big outcome.
    small = [(1_000_00, 50)] * 60
    deals = [(1_000_000_00, 50), *small]
    computed = band(inputs_of(deals))
    simulated = monte_carlo_band(deals)
    spread = math.sqrt(sum(a * a * p * (100 - p) for a, p in deals) / 10_000)
    assert abs(computed.p10 - simulated.p10) <= 0.02 * spread
    assert abs(computed.p90 - simulated.p90) <= 0.02 * spread


def test_band_stays_within_what_is_possible():
    rng = random.Random(11)
    for _ in range(30):
        deals = random_deals(rng, rng.randint(1, 60))
        inputs = inputs_of(deals, won=1_000)
        computed = band(inputs)
        low = inputs.won + inputs.sure
        assert low <= computed.p10 <= computed.p50 <= computed.p90
        assert computed.p90 <= low + inputs.uncertain_amount


def test_combined_periods_give_the_band_of_all_their_deals():
    rng = random.Random(5)
    first, second = random_deals(rng, 30), random_deals(rng, 12)
    together = combine([inputs_of(first, won=100_00), inputs_of(second, won=50_00)])
    assert together == inputs_of(first + second, won=150_00)
    assert band(together) == band(inputs_of(first + second, won=150_00))


# What the database hands over -------------------------------------------------------------


def opportunity(cast, *, amount, probability, day, status=Status.TODO, owner=None, **extra):
    closed = status in (Status.WON, Status.LOST)
    fields = {
        "owner": owner or cast.owner,
        "pipeline": cast.pipeline,
        "status": status,
        "amount": amount,
        "probability": probability,
        "expected_close_date": None if closed else day,
        **extra,
    }
    if closed:
        fields["closed_at"] = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        fields["next_action_at"] = None
        if status == Status.WON:
            fields["won_amount"] = amount
        else:
            fields["lost_reason"] = LostReasonFactory()
    return OpportunityFactory(**fields)


@pytest.mark.django_db
def test_database_sums_and_largest_deals_match_python_per_period_and_owner():
    cast = make_cast()
    rng = random.Random(3)
    deals = {}
    for _ in range(40):
        owner = rng.choice([cast.owner, cast.teammate])
        day = date(2026, rng.choice([3, 4]), rng.randint(1, 28))
        amount, probability = rng.randint(1, 90_000_00), rng.choice([0, 5, 35, 50, 80, 100])
        opportunity(cast, amount=amount, probability=probability, day=day, owner=owner)
        deals.setdefault((f"2026-{day.month:02d}", owner.pk), []).append((amount, probability))
    opportunity(cast, amount=3_000_00, probability=0, day=date(2026, 3, 9), status=Status.WON)
    deals[("2026-03", cast.owner.pk)].append((0, 0))  # changes nothing but the won amount
    cells = forecast_cells(
        user=cast.admin, period="month", start=date(2026, 3, 1), end=date(2026, 4, 30), by="owner"
    )
    assert len(cells) == 4
    for cell in cells:
        expected = inputs_of(
            deals[(cell.row.period, cell.row.group_id)],
            won=cell.row.won,
        )
        assert cell.range.won == (
            3_000_00 if (cell.row.period, cell.row.group_id) == ("2026-03", cast.owner.pk) else 0
        )
        assert cell.range.sure == expected.sure
        assert cell.range.uncertain_count == expected.uncertain_count
        assert cell.range.uncertain_amount == expected.uncertain_amount
        assert cell.range.mean_x100 == expected.mean_x100
        assert cell.range.variance_x10000 == pytest.approx(expected.variance_x10000, rel=1e-12)
        assert sorted(cell.range.lumps) == sorted(expected.lumps)


@pytest.mark.django_db
def test_large_amounts_do_not_overflow_the_variance():
    cast = make_cast()
    # 90 billion in currency units: its square in cents is far past 64-bit integers.
    opportunity(cast, amount=9 * 10**12, probability=50, day=date(2026, 5, 5))
    (cell,) = forecast_cells(
        user=cast.admin, period="month", start=date(2026, 5, 1), end=date(2026, 5, 31)
    )
    assert cell.range.variance_x10000 == pytest.approx(float(9 * 10**12) ** 2 * 2500)
    assert band(cell.range) == Band(0, 0, 9 * 10**12)


@pytest.mark.django_db
def test_a_deal_with_two_tags_counts_in_each_tags_band():
    cast = make_cast()
    red, blue = TagFactory(name="red"), TagFactory(name="blue")
    deal = opportunity(cast, amount=1_000_00, probability=40, day=date(2026, 6, 1))
    deal.tags.add(red, blue)
    opportunity(cast, amount=500_00, probability=60, day=date(2026, 6, 2))  # no tag
    cells = forecast_cells(
        user=cast.admin, period="month", start=date(2026, 6, 1), end=date(2026, 6, 30), by="tag"
    )
    by_label = {cell.row.group_label: cell.range.lumps for cell in cells}
    assert by_label == {
        "blue": (Lump(1_000_00, 40),),
        "red": (Lump(1_000_00, 40),),
        "(no tag)": (Lump(500_00, 60),),
    }


@pytest.mark.django_db
def test_band_inputs_follow_the_filters_and_what_the_user_may_see():
    cast = make_cast()
    opportunity(cast, amount=1_000_00, probability=40, day=date(2026, 6, 1), owner=cast.other)
    mine = opportunity(cast, amount=2_000_00, probability=30, day=date(2026, 6, 3))
    June = {"period": "month", "start": date(2026, 6, 1), "end": date(2026, 6, 30)}
    (cell,) = forecast_cells(user=cast.owner, **June)
    assert cell.range.lumps == (Lump(2_000_00, 30),)
    (cell,) = forecast_cells(user=cast.admin, filters=ForecastFilters(owner=cast.other.pk), **June)
    assert cell.range.lumps == (Lump(1_000_00, 40),)
    assert Opportunity.objects.filter(pk=mine.pk).exists()


def lumps_of_both_ways(**args):
    """The largest deals per cell read a branch per period, and grouped per row."""
    branched = forecast_cells(**args)
    with mock.patch.object(selectors, "BRANCHED_PERIODS", 0):
        grouped = forecast_cells(**args)
    return [c.range.lumps for c in branched], [c.range.lumps for c in grouped]


@pytest.mark.django_db
@pytest.mark.parametrize("by", [None, "owner"])
def test_largest_deals_are_the_same_read_per_period_or_grouped(by):
    cast = make_cast()
    rng = random.Random(8)
    for _ in range(100):
        day = date(2026, rng.choice([7, 8]), rng.randint(1, 28))
        amount, probability = rng.randint(1, 50_000_00), rng.choice([0, 10, 50, 90, 100])
        owner = rng.choice([cast.owner, cast.teammate])
        opportunity(cast, amount=amount, probability=probability, day=day, owner=owner)
    July_August = {"period": "month", "start": date(2026, 7, 1), "end": date(2026, 8, 31)}
    branched, grouped = lumps_of_both_ways(user=cast.admin, by=by, **July_August)
    assert branched == grouped
    assert max(len(lumps) for lumps in branched) == LUMPS  # cells with more deals than that


@pytest.mark.django_db
def test_largest_deals_tied_on_variance_keep_the_larger_amount():
    cast = make_cast()
    # 500² · 20 · 80 = 400² · 50 · 50: the same variance, so the larger amount goes first.
    for _ in range(LUMPS - 1):
        opportunity(cast, amount=9_000, probability=50, day=date(2026, 9, 3))
    opportunity(cast, amount=400, probability=50, day=date(2026, 9, 4))
    opportunity(cast, amount=500, probability=20, day=date(2026, 9, 5))
    September = {"period": "month", "start": date(2026, 9, 1), "end": date(2026, 9, 30)}
    branched, grouped = lumps_of_both_ways(user=cast.admin, **September)
    assert branched == grouped == [(Lump(9_000, 50),) * (LUMPS - 1) + (Lump(500, 20),)]


@pytest.mark.django_db
def test_inactive_user_gets_no_band_inputs():
    cast = make_cast()
    opportunity(cast, amount=1_000_00, probability=40, day=date(2026, 6, 1))
    cast.admin.is_active = False
    cast.admin.save()
    June = {"period": "month", "start": date(2026, 6, 1), "end": date(2026, 6, 30)}
    assert forecast_cells(user=cast.admin, **June) == []


@pytest.mark.django_db
@pytest.mark.parametrize("branched", [True, False])
def test_closed_deals_stay_out_of_the_band_inputs(branched):
    cast = make_cast()
    day = date(2026, 10, 6)
    opportunity(cast, amount=7_000_00, probability=100, day=day, status=Status.WON)
    opportunity(cast, amount=5_000_00, probability=50, day=day, status=Status.LOST)
    opportunity(cast, amount=1_000_00, probability=40, day=day)
    October = {"period": "month", "start": date(2026, 10, 1), "end": date(2026, 10, 31)}
    limit = selectors.BRANCHED_PERIODS if branched else 0
    with mock.patch.object(selectors, "BRANCHED_PERIODS", limit):
        (cell,) = forecast_cells(user=cast.admin, **October)
    assert cell.range == RangeInputs(
        won=7_000_00,
        sure=0,
        uncertain_count=1,
        uncertain_amount=1_000_00,
        mean_x100=1_000_00 * 40,
        variance_x10000=float(1_000_00**2 * 40 * 60),
        lumps=(Lump(1_000_00, 40),),
    )
