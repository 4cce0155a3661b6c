"""The forecast: per period and group, exact to the cent, only what the user may see, in a
constant number of queries; and the `opportuna forecast` command over it."""

import csv
import io
import json
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.core.money import from_cents, weighted_cents
from opportuna.insights import selectors
from opportuna.insights.management.commands.forecast import Command as ForecastCommand
from opportuna.insights.periods import (
    MAX_PERIODS,
    add_months,
    period_key,
    period_start,
    periods_between,
)
from opportuna.insights.selectors import (
    ForecastFilters,
    ForecastRow,
    UndatedOpen,
    forecast,
    forecast_cells,
    forecast_total,
    forecast_undated,
)
from opportuna.sales.models import Opportunity, Status
from tests.factories import (
    LostReasonFactory,
    PipelineFactory,
    ProductFactory,
    UserFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

ROME = ZoneInfo("Europe/Rome")
OPEN = (Status.TODO, Status.STANDBY)
COUNTERS = (
    "count_open",
    "amount_open",
    "weighted_open",
    "count_won",
    "won",
    "count_lost",
    "lost_amount",
    "expected",
)


@pytest.fixture(autouse=True)
def _rome(settings):
    settings.TIME_ZONE = "Europe/Rome"


@pytest.fixture
def world():
    """The cast, a second pipeline (with its steps), two products and a lost reason."""
    cast = make_cast()
    renewals = PipelineFactory(name="Renewals", steps=[("Contacted", 20), ("Agreed", 90)])
    return {
        "cast": cast,
        "users": {
            name: getattr(cast, name) for name in ("owner", "teammate", "other", "manager", "admin")
        },
        "pipelines": [cast.pipeline, renewals],
        "steps": [list(p.steps.order_by("position")) for p in (cast.pipeline, renewals)],
        "products": [None, ProductFactory(name="Licence"), ProductFactory(name="Training")],
        "reason": LostReasonFactory(name="Price"),
    }


def make_opportunity(
    world,
    *,
    owner,
    status,
    amount=0,
    probability=0,
    expected_close_date=None,
    closed_at=None,
    won_amount=None,
    pipeline=0,
    step=0,
    product=0,
):
    """An Opportunity (unsaved) that satisfies the database's status constraints."""
    chosen, steps = world["pipelines"][pipeline], world["steps"][pipeline]
    is_open = status in OPEN
    return Opportunity(
        title=f"{status} {amount}",
        owner=world["users"][owner] if isinstance(owner, str) else owner,
        pipeline=chosen,
        step=steps[step % len(steps)],
        status=status,
        amount=amount,
        probability=probability,
        expected_close_date=expected_close_date,
        next_action_at=datetime(2026, 1, 1, 9, tzinfo=UTC) if is_open else None,
        closed_at=None if is_open else (closed_at or datetime(2026, 1, 1, 9, tzinfo=UTC)),
        won_amount=(won_amount if won_amount is not None else amount)
        if status == Status.WON
        else None,
        lost_reason=world["reason"] if status == Status.LOST else None,
        product=world["products"][product],
    )


def create(world, **fields):
    opportunity = make_opportunity(world, **fields)
    opportunity.save()
    return opportunity


# The straightforward Python computation the database must agree with ---------------------


def python_key(day, period):
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month + 2) // 3}"
    return str(day.year)


def python_group(opportunity, by):
    if by is None:
        return None, ""
    if by == "owner":
        return opportunity.owner.pk, str(opportunity.owner)
    if by == "team":
        team = opportunity.owner.team
        return (team.pk, team.name) if team else (None, "(no team)")
    if by == "pipeline":
        return opportunity.pipeline.pk, opportunity.pipeline.name
    if by == "step":
        return opportunity.step.pk, f"{opportunity.pipeline.name} / {opportunity.step.name}"
    product = opportunity.product
    return (product.pk, product.name) if product else (None, "(no product)")


def python_forecast(opportunities, *, period, start, end, by):
    sums = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for o in opportunities:
        if o.status in OPEN:
            day = o.expected_close_date
        elif o.status in (Status.WON, Status.LOST):
            day = o.closed_at.astimezone(ROME).date()
        else:
            continue
        if day is None or not start <= day <= end:
            continue
        row = sums[(python_key(day, period), *python_group(o, by))]
        if o.status in OPEN:
            row["count_open"] += 1
            row["amount_open"] += o.amount
            row["weighted_open"] += weighted_cents(o.amount, o.probability)
        elif o.status == Status.WON:
            row["count_won"] += 1
            row["won"] += o.won_amount
        else:
            row["count_lost"] += 1
            row["lost_amount"] += o.amount
    rows = []
    for (key, group_id, label), row in sums.items():
        row["expected"] = row["won"] + row["weighted_open"]
        rows.append(ForecastRow(period=key, group_id=group_id, group_label=label, **row))
    return sorted(rows, key=lambda r: (r.period, r.group_label, r.group_id or 0))


def python_sees(world, user, opportunity):
    cast = world["cast"]
    if user == cast.admin:
        return True
    if user == cast.manager:
        return opportunity.owner == user or opportunity.owner.team_id == cast.team_a.pk
    return opportunity.owner == user  # the default policy: salespeople see their own


def merged(*forecasts):
    """Rows of several forecasts summed per (period, group)."""
    sums = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    labels = {}
    for rows in forecasts:
        for row in rows:
            key = (row.period, row.group_id)
            labels[key] = row.group_label
            for name in COUNTERS:
                sums[key][name] += getattr(row, name)
    rows = [
        ForecastRow(period=p, group_id=g, group_label=labels[(p, g)], **values)
        for (p, g), values in sums.items()
    ]
    return sorted(rows, key=lambda r: (r.period, r.group_label, r.group_id or 0))


# Random data -------------------------------------------------------------------------------

FIRST_DAY, LAST_DAY = date(2025, 12, 1), date(2027, 1, 31)
# Keys change on the first of a month, so half the days and close times are drawn next to one.
firsts = st.integers(min_value=0, max_value=14).map(lambda n: add_months(FIRST_DAY, n))
days = st.one_of(
    st.dates(min_value=FIRST_DAY, max_value=LAST_DAY),
    st.tuples(firsts, st.integers(min_value=-1, max_value=0)).map(
        lambda pair: pair[0] + timedelta(days=pair[1])
    ),
)
close_times = st.one_of(
    st.datetimes(
        min_value=datetime.combine(FIRST_DAY, time()),
        max_value=datetime.combine(LAST_DAY, time(23, 59)),
        timezones=st.just(UTC),
    ),
    # 21:30 to 00:30 UTC before a first: midnight in Rome is 22:00 (summer) or 23:00 UTC.
    st.tuples(firsts, st.integers(min_value=-150, max_value=30)).map(
        lambda pair: datetime.combine(pair[0], time(), tzinfo=UTC) + timedelta(minutes=pair[1])
    ),
)
amounts = st.integers(min_value=0, max_value=10**10)


def opportunity_fields(owners):
    return st.fixed_dictionaries(
        {
            "owner": st.sampled_from(owners),
            "status": st.sampled_from(list(Status)),
            "amount": amounts,
            "probability": st.integers(min_value=0, max_value=100),
            "expected_close_date": st.one_of(st.none(), days, days),
            "closed_at": close_times,
            "won_amount": amounts,
            "pipeline": st.integers(min_value=0, max_value=1),
            "step": st.integers(min_value=0, max_value=3),
            "product": st.integers(min_value=0, max_value=2),
        }
    )


# Ranges over most of the data, starting and ending on period boundaries or between them.
ranges = st.tuples(
    st.sampled_from([date(2026, 1, 1), date(2025, 12, 15), date(2026, 4, 1), date(2026, 2, 28)]),
    st.sampled_from([date(2026, 12, 31), date(2026, 11, 15), date(2026, 6, 30), date(2027, 1, 1)]),
)
periods = st.sampled_from(["month", "quarter", "year"])
breakdowns = st.sampled_from([None, "owner", "team", "pipeline", "step", "product"])

# Each example writes its opportunities in a savepoint it rolls back, so the function-scoped
# `world` (read only) is safely shared by the examples of one test.
property_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def in_savepoint(check):
    """Run `check` inside a savepoint that is rolled back afterwards, whatever happens."""
    with transaction.atomic():
        check()
        transaction.set_rollback(True)


@property_settings
@given(
    data=st.lists(
        opportunity_fields(["owner", "teammate", "other", "manager", "admin"]), max_size=20
    ),
    viewer=st.sampled_from(["admin", "manager", "owner", "other"]),
    period=periods,
    by=breakdowns,
    dates=ranges,
    branched=st.booleans(),
)
def test_forecast_equals_python_computation(world, data, viewer, period, by, dates, branched):
    start, end = dates
    user = world["users"][viewer]
    # Both ways of reading the periods: a branch per period, or one query grouped per row.
    limit = selectors.BRANCHED_PERIODS if branched else 0

    def check():
        created = Opportunity.objects.bulk_create(
            [make_opportunity(world, **fields) for fields in data]
        )
        visible = [o for o in created if python_sees(world, user, o)]
        expected = python_forecast(visible, period=period, start=start, end=end, by=by)
        with mock.patch.object(selectors, "BRANCHED_PERIODS", limit):
            got = forecast(user=user, period=period, start=start, end=end, by=by)
        assert got == expected
        total = forecast_total(user=user, start=start, end=end)
        for name in COUNTERS:
            assert getattr(total, name) == sum(getattr(row, name) for row in expected)

    in_savepoint(check)


@property_settings
@given(
    data=st.lists(opportunity_fields(["owner", "teammate", "other"]), max_size=20),
    period=periods,
    by=st.sampled_from([None, "pipeline", "product"]),
    dates=ranges,
)
def test_manager_forecast_is_the_sum_of_his_team_members(world, data, period, by, dates):
    """The manager owns nothing here, so his team's work is exactly owner's plus teammate's."""
    start, end = dates
    cast = world["cast"]

    def check():
        Opportunity.objects.bulk_create([make_opportunity(world, **fields) for fields in data])
        args = {"period": period, "start": start, "end": end, "by": by}
        members = [forecast(user=member, **args) for member in (cast.owner, cast.teammate)]
        assert forecast(user=cast.manager, **args) == merged(*members)

    in_savepoint(check)


@property_settings
@given(
    data=st.lists(
        opportunity_fields(["owner", "teammate", "other", "manager", "admin"]), max_size=20
    ),
    viewer=st.sampled_from(["admin", "manager", "owner"]),
    period=periods,
    by=st.sampled_from([None, "owner", "team"]),
    dates=ranges,
    team_only=st.booleans(),
)
def test_page_cells_read_by_branches_equal_the_grouped_query(
    world, data, viewer, period, by, dates, team_only
):
    """The page's sums and band inputs, a branch per period or grouped per row: the same."""
    start, end = dates
    user = world["users"][viewer]
    filters = ForecastFilters(team=world["cast"].team_a.pk) if team_only else None
    args = {"user": user, "period": period, "start": start, "end": end, "by": by}

    def check():
        Opportunity.objects.bulk_create([make_opportunity(world, **fields) for fields in data])
        branched = forecast_cells(**args, filters=filters)
        with mock.patch.object(selectors, "BRANCHED_PERIODS", 0):
            grouped = forecast_cells(**args, filters=filters)
        assert [cell.row for cell in branched] == [cell.row for cell in grouped]
        for mine, theirs in zip(branched, grouped, strict=True):
            assert replace(mine.range, variance_x10000=0.0) == replace(
                theirs.range, variance_x10000=0.0
            )
            # Float sums in another order may differ in the last bits.
            assert mine.range.variance_x10000 == pytest.approx(theirs.range.variance_x10000)

    in_savepoint(check)


# Periods and time zones ------------------------------------------------------------------


def test_quarter_and_year_keys_at_boundaries(world):
    for day in (date(2026, 3, 31), date(2026, 4, 1), date(2026, 12, 31), date(2027, 1, 1)):
        create(world, owner="owner", status=Status.TODO, amount=100, expected_close_date=day)
    admin = world["cast"].admin
    span = {"start": date(2026, 1, 1), "end": date(2027, 12, 31)}

    quarters = forecast(user=admin, period="quarter", **span)
    assert [(r.period, r.count_open) for r in quarters] == [
        ("2026-Q1", 1),
        ("2026-Q2", 1),
        ("2026-Q4", 1),
        ("2027-Q1", 1),
    ]
    years = forecast(user=admin, period="year", **span)
    assert [(r.period, r.count_open) for r in years] == [("2026", 3), ("2027", 1)]
    months = forecast(user=admin, period="month", **span)
    assert [r.period for r in months] == ["2026-03", "2026-04", "2026-12", "2027-01"]


@pytest.mark.parametrize(
    ("closed_at", "month", "quarter", "year"),
    [
        # 00:30 on 1 January in Rome (winter time, UTC+1): the next year.
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "2027-01", "2027-Q1", "2027"),
        (datetime(2026, 12, 31, 22, 59, tzinfo=UTC), "2026-12", "2026-Q4", "2026"),
        # 00:30 on 1 April in Rome (summer time, UTC+2): the second quarter.
        (datetime(2026, 3, 31, 22, 30, tzinfo=UTC), "2026-04", "2026-Q2", "2026"),
        (datetime(2026, 3, 31, 21, 59, tzinfo=UTC), "2026-03", "2026-Q1", "2026"),
        # 00:30 on 1 November in Rome, the week after summer time ended.
        (datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "2026-11", "2026-Q4", "2026"),
    ],
)
def test_close_time_counts_in_the_local_period(world, closed_at, month, quarter, year):
    create(world, owner="owner", status=Status.WON, amount=5000, closed_at=closed_at)
    admin = world["cast"].admin
    span = {"start": date(2026, 1, 1), "end": date(2027, 12, 31)}
    for period, key in (("month", month), ("quarter", quarter), ("year", year)):
        (row,) = forecast(user=admin, period=period, **span)
        assert (row.period, row.count_won, row.won) == (key, 1, 5000)


def test_close_time_at_the_ends_of_the_range(world):
    create(
        world,
        owner="owner",
        status=Status.LOST,
        amount=7,
        closed_at=datetime(2025, 12, 31, 23, 0, tzinfo=UTC),
    )  # 1 Jan 2026 00:00 in Rome
    create(
        world,
        owner="owner",
        status=Status.LOST,
        amount=9,
        closed_at=datetime(2026, 1, 31, 23, 0, tzinfo=UTC),
    )  # 1 Feb 2026 00:00 in Rome
    (row,) = forecast(
        user=world["cast"].admin, period="month", start=date(2026, 1, 1), end=date(2026, 1, 31)
    )
    assert (row.period, row.count_lost, row.lost_amount) == ("2026-01", 1, 7)


def test_period_helpers():
    assert period_key(date(2026, 11, 5), "month") == "2026-11"
    assert period_key(date(2026, 11, 5), "quarter") == "2026-Q4"
    assert period_key(date(2026, 11, 5), "year") == "2026"
    assert period_start(date(2026, 11, 5), "quarter") == date(2026, 10, 1)
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 1), 12) == date(2027, 11, 1)
    assert [key for key, _ in periods_between(date(2026, 2, 15), date(2026, 7, 1), "quarter")] == [
        "2026-Q1",
        "2026-Q2",
        "2026-Q3",
    ]
    with pytest.raises(ValueError, match="at most"):
        periods_between(date(1900, 1, 1), date(1900 + MAX_PERIODS // 12 + 1, 1, 1), "month")
    with pytest.raises(ValueError, match="after"):
        periods_between(date(2026, 2, 1), date(2026, 1, 1), "month")


# Who sees what ---------------------------------------------------------------------------


def test_salesperson_forecast_holds_only_his_own(world):
    cast = world["cast"]
    for name in ("owner", "teammate", "other"):
        create(
            world,
            owner=name,
            status=Status.TODO,
            amount=1000,
            probability=50,
            expected_close_date=date(2026, 5, 1),
        )
    rows = forecast(
        user=cast.owner, period="year", start=date(2026, 1, 1), end=date(2026, 12, 31), by="owner"
    )
    assert [(r.group_id, r.count_open, r.weighted_open) for r in rows] == [(cast.owner.pk, 1, 500)]


def test_team_policy_shows_the_team_but_not_other_teams(world):
    cast = world["cast"]
    Account.objects.filter(pk=Account.load().pk).update(visibility=VisibilityPolicy.TEAM)
    for name in ("owner", "teammate", "other"):
        create(
            world, owner=name, status=Status.TODO, amount=1000, expected_close_date=date(2026, 5, 1)
        )
    rows = forecast(
        user=cast.owner, period="year", start=date(2026, 1, 1), end=date(2026, 12, 31), by="owner"
    )
    assert {r.group_id for r in rows} == {cast.owner.pk, cast.teammate.pk}


def test_inactive_user_sees_an_empty_forecast(world):
    create(world, owner="owner", status=Status.TODO, expected_close_date=date(2026, 5, 1))
    admin = world["cast"].admin
    admin.is_active = False
    admin.save()
    assert (
        forecast(user=admin, period="month", start=date(2026, 1, 1), end=date(2026, 12, 31)) == []
    )


# What counts -----------------------------------------------------------------------------


def test_undated_and_cancelled_stay_out_of_the_periods(world):
    admin = world["cast"].admin
    create(world, owner="owner", status=Status.TODO, amount=1001, probability=50)
    create(world, owner="owner", status=Status.STANDBY, amount=999, probability=50)
    create(
        world,
        owner="other",
        status=Status.TODO,
        amount=5,
        probability=10,
        expected_close_date=date(2026, 3, 1),
    )
    create(
        world,
        owner="owner",
        status=Status.CANCELLED,
        amount=777,
        expected_close_date=date(2026, 3, 1),
        closed_at=datetime(2026, 3, 1, 9, tzinfo=UTC),
    )
    (row,) = forecast(user=admin, period="year", start=date(2026, 1, 1), end=date(2026, 12, 31))
    assert (row.count_open, row.amount_open, row.weighted_open, row.count_lost) == (1, 5, 1, 0)
    # 1001 x 50% = 500.5 -> 501 and 999 x 50% = 499.5 -> 500: half-up per opportunity.
    assert forecast_undated(user=admin) == UndatedOpen(count=2, amount=2000, weighted=1001)
    assert forecast_undated(user=world["cast"].other) == UndatedOpen(count=0, amount=0, weighted=0)


def test_weighted_rounds_each_opportunity_half_up_before_summing(world):
    for _ in range(3):
        create(
            world,
            owner="owner",
            status=Status.TODO,
            amount=1,
            probability=50,
            expected_close_date=date(2026, 6, 1),
        )
    create(
        world,
        owner="owner",
        status=Status.WON,
        amount=10,
        won_amount=12,
        closed_at=datetime(2026, 6, 2, 9, tzinfo=UTC),
    )
    (row,) = forecast(
        user=world["cast"].admin, period="month", start=date(2026, 6, 1), end=date(2026, 6, 30)
    )
    assert (row.weighted_open, row.won, row.expected) == (3, 12, 15)


# Query counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 30])
@pytest.mark.parametrize("by", [None, "owner", "team", "pipeline", "step", "product"])
def test_forecast_is_one_query_whatever_the_size(world, django_assert_num_queries, size, by):
    for i in range(size):
        create(
            world,
            owner=["owner", "teammate", "other"][i % 3],
            status=[Status.TODO, Status.WON, Status.LOST][i % 3],
            amount=100 * i,
            probability=i % 101,
            expected_close_date=date(2026, 1 + i % 12, 1 + i % 28),
            closed_at=datetime(2026, 1 + i % 12, 1 + i % 28, 12, tzinfo=UTC),
            pipeline=i % 2,
            step=i,
            product=i % 3,
        )
    manager = world["cast"].manager
    span = {"start": date(2026, 1, 1), "end": date(2028, 12, 31)}
    # the sums, visibility included: the 36 months' branches (open, won, lost) in one UNION
    # ALL when the indexes hold the breakdown, else one query grouped per row
    with django_assert_num_queries(1) as context:
        forecast(user=manager, period="month", by=by, **span)
    branches = context.captured_queries[0]["sql"].count("UNION ALL") + 1
    assert branches == (3 * 36 if by in (None, "owner", "team") else 1)
    with django_assert_num_queries(1) as context:  # past BRANCHED_PERIODS: grouped per row
        forecast(user=manager, period="month", by=by, start=span["start"], end=date(2040, 1, 1))
    assert "UNION" not in context.captured_queries[0]["sql"]
    with django_assert_num_queries(1):  # the aggregate over the whole range
        forecast_total(user=manager, **span)
    with django_assert_num_queries(1):  # the undated open ones
        forecast_undated(user=manager)


# The command line --------------------------------------------------------------------------


def run(*args):
    out = io.StringIO()
    call_command("forecast", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def sold(world):
    """A small year: open, won and lost opportunities in two quarters of 2026."""
    create(
        world,
        owner="owner",
        status=Status.TODO,
        amount=1000_00,
        probability=25,
        expected_close_date=date(2026, 2, 10),
        product=1,
    )
    create(
        world,
        owner="teammate",
        status=Status.STANDBY,
        amount=333_33,
        probability=33,
        expected_close_date=date(2026, 5, 20),
        product=2,
    )
    create(
        world,
        owner="owner",
        status=Status.WON,
        amount=500_00,
        won_amount=480_50,
        closed_at=datetime(2026, 3, 31, 22, 30, tzinfo=UTC),
    )  # 1 April in Rome
    create(
        world,
        owner="other",
        status=Status.LOST,
        amount=250_00,
        closed_at=datetime(2026, 1, 15, 10, tzinfo=UTC),
    )
    create(world, owner="owner", status=Status.TODO, amount=99_99, probability=50)  # undated
    return world


SPAN = ("--start", "2026-01-01", "--end", "2026-12-31")


def test_command_json_totals_equal_the_selectors(sold):
    admin = sold["cast"].admin
    document = json.loads(run("--period", "quarter", "--by", "owner", "--format", "json", *SPAN))
    total = forecast_total(user=admin, start=date(2026, 1, 1), end=date(2026, 12, 31))
    rows = forecast(
        user=admin, period="quarter", start=date(2026, 1, 1), end=date(2026, 12, 31), by="owner"
    )

    assert document["user"] == "admin"
    assert document["currency"] == "EUR"
    for name in COUNTERS:
        value = getattr(total, name)
        expected = value if name.startswith("count") else str(from_cents(value))
        assert document["totals"][name] == expected
        column = [Decimal(str(row[name])) for row in document["rows"]]
        assert sum(column) == Decimal(str(expected))
    assert [(r["period"], r["group_id"], r["group"]) for r in document["rows"]] == [
        (r.period, r.group_id, r.group_label) for r in rows
    ]
    # 1000.00 x 25% + 333.33 x 33% (109.9989, to the cent 110.00) + 480.50 won.
    assert document["totals"]["expected"] == "840.50"
    assert document["undated"] == {
        "count_open": 1,
        "amount_open": "99.99",
        "weighted_open": "50.00",
    }


def test_command_table_is_aligned_with_totals_and_the_undated_note(sold):
    output = run("--period", "quarter", "--by", "owner", *SPAN)
    table, note = output.rstrip("\n").split("\n\n")
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["Period", "Owner"]
    assert len({len(line) for line in lines}) == 1, output  # right-aligned numbers line up
    assert lines[-1].startswith("Total")
    assert lines[-1].endswith("840.50")
    assert str(sold["cast"].owner) in table
    assert note == (
        "1 open opportunity has no expected close date and no period "
        "(amount 99.99, weighted 50.00)."
    )


def test_command_csv_numbers_stay_numbers_and_formulas_are_defused(sold):
    owner = sold["cast"].owner
    owner.first_name, owner.last_name = "=HYPERLINK(1)", ""
    owner.save()
    output = run("--period", "quarter", "--by", "owner", "--format", "csv", *SPAN)
    header, *rows = list(csv.reader(io.StringIO(output)))
    assert header[:3] == ["period", "owner", "owner_id"]
    by_key = {(row[0], row[2]): row for row in rows}
    row = by_key[("2026-Q1", str(owner.pk))]
    assert row[1] == "'=HYPERLINK(1)"
    assert row[header.index("amount_open")] == "1000.00"
    assert row[header.index("weighted_open")] == "250.00"
    assert row[header.index("count_open")] == "1"


def test_command_defaults_to_the_first_active_admin_and_twelve_months(sold, monkeypatch):
    monkeypatch.setattr(
        "opportuna.insights.management.commands.forecast.timezone.localdate",
        lambda: date(2026, 2, 17),
    )
    document = json.loads(run("--format", "json"))
    assert (document["user"], document["period"]) == ("admin", "month")
    assert (document["start"], document["end"]) == ("2026-02-01", "2027-01-31")
    # The lost one of January falls before the start.
    assert document["totals"]["count_lost"] == 0


def test_command_uses_the_view_of_the_given_user(sold):
    document = json.loads(run("--user", "other", "--format", "json", "--by", "owner", *SPAN))
    assert {row["group"] for row in document["rows"]} == {str(sold["cast"].other)}
    assert document["totals"]["lost_amount"] == "250.00"


def test_command_rejects_a_bad_user_or_date(sold):
    with pytest.raises(CommandError, match="No user named"):
        run("--user", "nobody")
    UserFactory(username="gone", is_active=False)
    with pytest.raises(CommandError, match="not active"):
        run("--user", "gone")
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("--start", "31/12/2026")
    with pytest.raises(CommandError, match="after"):
        run("--start", "2026-12-31", "--end", "2026-01-01")


def test_command_help_names_every_option():
    text = ForecastCommand().create_parser("opportuna", "forecast").format_help()
    for option in ("--period", "--by", "--start", "--end", "--user", "--format"):
        assert option in text
    assert "weighted" in text
