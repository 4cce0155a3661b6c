"""The statistics selectors: every number checked against a straightforward Python computation
over the same small data set (run on SQLite and PostgreSQL), medians and times in step with
known timestamps, visibility and filters."""

import math
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from opportuna.insights import statistics
from opportuna.insights.analysis import InsightFilters
from opportuna.insights.facts import rebuild_deal_facts
from opportuna.insights.periods import add_months
from opportuna.insights.statistics import (
    DEFAULT_ROT_DAYS,
    MAX_RANGE_MONTHS,
    StatisticsFilters,
    activities_per_outcome,
    activities_per_outcome_from_activities,
    activity_report,
    activity_types,
    default_range,
    lost_reason_matrix,
    lost_reasons,
    lost_reasons_of,
    rotting_deals,
    step_funnel,
    step_funnel_from_log,
    weeks_between,
    win_rates,
)
from opportuna.insights.steps import rebuild_step_visits
from opportuna.sales.models import (
    Activity,
    EventKind,
    Opportunity,
    OpportunityEvent,
    Status,
)
from opportuna.sales.services import (
    activity_log,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_update,
)
from tests.factories import (
    LostReasonFactory,
    PipelineFactory,
    ProductFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db

ROME = ZoneInfo("Europe/Rome")
OPEN = (Status.TODO, Status.STANDBY)
START, END = date(2026, 1, 1), date(2026, 6, 30)
NOW = datetime(2026, 7, 1, 10, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _rome(settings):
    settings.TIME_ZONE = "Europe/Rome"


@pytest.fixture
def world():
    cast = make_cast()
    renewals = PipelineFactory(name="Renewals", steps=[("Contacted", 20), ("Agreed", 90)])
    return {
        "cast": cast,
        "pipelines": {"sales": cast.pipeline, "renewals": renewals},
        "steps": {
            "sales": list(cast.pipeline.steps.order_by("position")),
            "renewals": list(renewals.steps.order_by("position")),
        },
        "products": {"licence": ProductFactory(name="Licence"), "training": ProductFactory()},
        "reasons": {"price": LostReasonFactory(name="Price"), "timing": LostReasonFactory()},
    }


def filters(**kwargs):
    kwargs.setdefault("start", START)
    kwargs.setdefault("end", END)
    return StatisticsFilters(**kwargs)


def at(day, hour=10, minute=0):
    """An instant in Rome."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ROME)


def deal(
    world,
    *,
    owner="owner",
    status=Status.TODO,
    created=None,
    closed=None,
    amount=1000_00,
    won_amount=None,
    product=None,
    reason="price",
    pipeline="sales",
    step=0,
):
    """An opportunity straight into the database, with the given creation time."""
    cast = world["cast"]
    is_open = status in OPEN
    opportunity = Opportunity.objects.create(
        title=f"{status} {amount}",
        owner=getattr(cast, owner),
        pipeline=world["pipelines"][pipeline],
        step=world["steps"][pipeline][step],
        status=status,
        amount=amount,
        won_amount=(amount if won_amount is None else won_amount) if status == Status.WON else None,
        lost_reason=world["reasons"][reason] if status == Status.LOST else None,
        product=world["products"][product] if product else None,
        next_action_at=NOW if is_open else None,
        closed_at=None if is_open else closed,
    )
    created = created or at(date(2025, 12, 1))
    Opportunity.objects.filter(pk=opportunity.pk).update(created_at=created)
    opportunity.created_at = created
    return opportunity


def event(opportunity, kind, when, **fields):
    return OpportunityEvent.objects.create(opportunity=opportunity, kind=kind, at=when, **fields)


def sees(world, user, opportunity):
    """The default policy: admins all, managers their team, salespeople their own."""
    cast = world["cast"]
    if user == cast.admin:
        return True
    if user == cast.manager:
        return opportunity.owner == user or opportunity.owner.team_id == cast.team_a.pk
    return opportunity.owner == user


def percentile(values, p):
    """Continuous percentile: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def assert_quantiles(found, values):
    if not values:
        assert found is None
        return
    assert found is not None
    assert found.count == len(values)
    assert found.p25 == pytest.approx(percentile(values, 0.25), abs=1e-6)
    assert found.median == pytest.approx(percentile(values, 0.5), abs=1e-6)
    assert found.p75 == pytest.approx(percentile(values, 0.75), abs=1e-6)


def days(later, earlier):
    return (later - earlier).total_seconds() / 86400


def local_day(moment):
    return moment.astimezone(ROME).date()


# Percentiles, on their own --------------------------------------------------------------


@pytest.mark.parametrize(
    "cycles,expected",
    [
        ([7], (7, 7, 7)),
        ([1, 2, 3, 4, 10], (2, 3, 4)),
        ([1, 2, 3, 4], (1.75, 2.5, 3.25)),
        ([5, 5, 5, 20], (5, 5, 8.75)),
        ([0.5, 30], (7.875, 15.25, 22.625)),
    ],
)
def test_cycle_quartiles_interpolate_between_ranks(world, cycles, expected):
    for cycle in cycles:
        created = at(date(2026, 1, 5))
        deal(world, status=Status.WON, created=created, closed=created + cycle * DAY)
    total = win_rates(user=world["cast"].admin, filters=filters(), by="owner").total
    assert (total.cycle_won.p25, total.cycle_won.median, total.cycle_won.p75) == pytest.approx(
        expected
    )
    assert total.cycle_won.count == len(cycles)
    assert total.cycle_lost is None


# Win rates ------------------------------------------------------------------------------


def closed_world(world):
    """A spread of closed (and some open) opportunities, in and out of the range."""
    specs = [
        # owner, status, created (Rome day), cycle in days, amount, won amount, product
        ("owner", Status.WON, date(2025, 11, 3), 60.5, 1200_00, 1100_01, "licence"),
        ("owner", Status.WON, date(2026, 1, 10), 20.25, 800_00, None, None),
        ("owner", Status.LOST, date(2026, 2, 1), 14, 500_55, None, "training"),
        ("owner", Status.CANCELLED, date(2026, 2, 2), 3, 999_99, None, "licence"),
        ("owner", Status.WON, date(2026, 3, 1), 45.75, 3333_33, 3000_00, "licence"),
        ("teammate", Status.LOST, date(2026, 1, 2), 90, 7000_00, None, "licence"),
        ("teammate", Status.LOST, date(2026, 4, 4), 2.5, 100_01, None, None),
        ("teammate", Status.WON, date(2026, 4, 5), 33, 250_00, 260_00, "training"),
        ("other", Status.WON, date(2026, 1, 20), 10, 4000_00, None, "training"),
        ("other", Status.LOST, date(2026, 5, 20), 12, 1500_00, None, "licence"),
        ("manager", Status.WON, date(2026, 2, 14), 5, 10_00, None, None),
        ("admin", Status.LOST, date(2026, 6, 1), 7, 20_00, None, "training"),
        # closed before the range, and after it
        ("owner", Status.WON, date(2025, 10, 1), 30, 50_00, None, None),
        ("owner", Status.LOST, date(2026, 6, 20), 15, 60_00, None, None),
        # open ones never count
        ("owner", Status.TODO, date(2026, 2, 1), None, 70_00, None, None),
    ]
    for owner, status, created_day, cycle, amount, won_amount, product in specs:
        created = at(created_day, 9, 30)
        deal(
            world,
            owner=owner,
            status=status,
            created=created,
            closed=None if cycle is None else created + cycle * DAY,
            amount=amount,
            won_amount=won_amount,
            product=product,
        )
    # Closed at 23:30 UTC on 31 January: 1 February in Rome, so in February's row.
    deal(
        world,
        owner="owner",
        status=Status.WON,
        created=datetime(2026, 1, 1, 12, tzinfo=UTC),
        closed=datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
        amount=1_00,
    )


def python_group(opportunity, by):
    if by == "owner":
        return opportunity.owner_id, str(opportunity.owner)
    if by == "team":
        team = opportunity.owner.team
        return (team.pk, team.name) if team else (None, "(no team)")
    if by == "product":
        product = opportunity.product
        return (product.pk, product.name) if product else (None, "(no product)")
    if by == "pipeline":
        return opportunity.pipeline_id, opportunity.pipeline.name
    day = local_day(opportunity.closed_at)
    key = {
        "month": f"{day.year}-{day.month:02d}",
        "quarter": f"{day.year}-Q{(day.month + 2) // 3}",
        "year": str(day.year),
    }[by]
    return key, key


def python_win_rates(world, user, by, chosen):
    groups = defaultdict(lambda: defaultdict(list))
    for o in Opportunity.objects.select_related("owner__team", "product", "pipeline"):
        if not sees(world, user, o) or o.status in OPEN:
            continue
        if not chosen.start <= local_day(o.closed_at) <= chosen.end:
            continue
        group = groups[python_group(o, by)]
        group[o.status].append(o)
    return groups


@pytest.mark.parametrize("by", ["owner", "team", "product", "pipeline", "month", "quarter", "year"])
@pytest.mark.parametrize("who", ["owner", "manager", "admin"])
def test_win_rates_match_python(world, by, who):
    closed_world(world)
    user = getattr(world["cast"], who)
    table = win_rates(user=user, filters=filters(), by=by)
    expected = python_win_rates(world, user, by, filters())

    found = {(row.key, row.label): row for row in table.rows}
    if by in ("month", "quarter", "year"):
        # Every period of the range has a row, the empty ones too.
        assert len(table.rows) == {"month": 6, "quarter": 2, "year": 1}[by]
        found = {k: r for k, r in found.items() if r.won or r.lost or r.cancelled}
    assert set(found) == set(expected)
    for group, outcomes in expected.items():
        row = found[group]
        won, lost, cancelled = (outcomes[s] for s in (Status.WON, Status.LOST, Status.CANCELLED))
        assert (row.won, row.lost, row.cancelled) == (len(won), len(lost), len(cancelled))
        assert row.won_value == sum(o.won_amount for o in won)
        assert row.lost_value == sum(o.amount for o in lost)
        assert row.cancelled_value == sum(o.amount for o in cancelled)
        decided = len(won) + len(lost)
        assert row.win_rate == (pytest.approx(100 * len(won) / decided) if decided else None)
        assert_quantiles(row.cycle_won, [days(o.closed_at, o.created_at) for o in won])
        assert_quantiles(row.cycle_lost, [days(o.closed_at, o.created_at) for o in lost])

    everything = [o for outcomes in expected.values() for os in outcomes.values() for o in os]
    won_all = [o for o in everything if o.status == Status.WON]
    lost_all = [o for o in everything if o.status == Status.LOST]
    assert table.total.won == len(won_all)
    assert table.total.lost == len(lost_all)
    assert table.total.won_value == sum(o.won_amount for o in won_all)
    assert_quantiles(table.total.cycle_won, [days(o.closed_at, o.created_at) for o in won_all])
    assert_quantiles(table.total.cycle_lost, [days(o.closed_at, o.created_at) for o in lost_all])


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own way")
def test_quartiles_from_the_wanted_bins_are_those_of_sorting_every_cycle(
    world, django_assert_num_queries
):
    chance = random.Random(11)
    for _ in range(60):
        created = at(date(2026, 1, 1) + timedelta(days=chance.randrange(90)), chance.randrange(24))
        # Whole, tied and fractional days; some deals without a product (a NULL group).
        cycle = chance.choice([3, 3, 7.5, chance.random() * 40, chance.randrange(60)])
        deal(
            world,
            owner=chance.choice(["owner", "teammate", "other"]),
            status=chance.choice([Status.WON, Status.LOST]),
            created=created,
            closed=created + cycle * DAY,
            product=chance.choice(["licence", "training", None]),
        )
    cycles = (
        Opportunity.objects.filter(status__in=(Status.WON, Status.LOST))
        .annotate(
            grp=F("product_id"),
            outcome=F("status"),
            val=statistics.DaysBetween(F("closed_at"), F("created_at")),
        )
        .values("grp", "outcome", "val")
    )
    keys = {"keys": ("grp", "outcome"), "total_by": ("outcome",)}
    sorted_all = statistics._quantiles(cycles, **keys)
    assert len(sorted_all[0]) == 6
    with django_assert_num_queries(2):  # the bins, then the values in the wanted ones
        assert statistics._binned_quantiles(cycles, **keys) == sorted_all

    # The cycles changed between counting the bins and ranking in them: it sorts them all.
    tally = statistics._run(
        "SELECT grp, outcome, CAST(val AS INTEGER), COUNT(*) FROM ({source}) s GROUP BY 1, 2, 3",
        cycles,
    )
    stale = [(*key, bin_, n + 1) for *key, bin_, n in tally]
    assert statistics._binned_quantiles(cycles, **keys, tally=stale) == sorted_all


def test_cancelled_ones_count_in_no_win_rate(world):
    deal(world, status=Status.WON, closed=at(date(2026, 2, 1)), amount=300_00)
    deal(world, status=Status.LOST, closed=at(date(2026, 2, 1)), amount=100_00)
    for _ in range(5):
        deal(world, status=Status.CANCELLED, closed=at(date(2026, 2, 1)), amount=900_00)
    total = win_rates(user=world["cast"].owner, filters=filters(), by="owner").total
    assert total.win_rate == 50
    assert total.value_win_rate == 75
    assert (total.cancelled, total.cancelled_value) == (5, 4500_00)


def test_win_rate_by_value_uses_the_won_amount_and_the_lost_expected_amount(world):
    deal(world, status=Status.WON, closed=at(date(2026, 2, 1)), amount=100_00, won_amount=300_00)
    deal(world, status=Status.LOST, closed=at(date(2026, 2, 1)), amount=100_00)
    row = win_rates(user=world["cast"].owner, filters=filters(), by="owner").rows[0]
    assert row.value_win_rate == 75


def test_average_won_deal_is_exact_cents_rounded_half_up(world):
    for won in (1, 2, 4_000_000_000_00):
        deal(world, status=Status.WON, closed=at(date(2026, 2, 1)), won_amount=won)
    total = win_rates(user=world["cast"].owner, filters=filters(), by="owner").total
    assert total.won_value == 4_000_000_000_03
    assert total.average_won == 1_333_333_333_34  # 133 333 333 334.33 cents


def test_a_close_time_falls_in_the_period_of_its_day_in_the_account_time_zone(world):
    deal(world, status=Status.WON, closed=datetime(2026, 1, 31, 23, 30, tzinfo=UTC))
    rows = {
        row.key: row
        for row in win_rates(user=world["cast"].owner, filters=filters(), by="month").rows
    }
    assert rows["2026-01"].won == 0
    assert rows["2026-02"].won == 1


def test_the_range_is_of_days_in_the_account_time_zone(world):
    # 30 June 22:30 UTC is 1 July 00:30 in Rome: out. 31 December 23:30 UTC is 1 January
    # 00:30 in Rome: in.
    deal(world, status=Status.WON, closed=datetime(2026, 6, 30, 22, 30, tzinfo=UTC))
    deal(world, status=Status.LOST, closed=datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    total = win_rates(user=world["cast"].owner, filters=filters(), by="owner").total
    assert (total.won, total.lost) == (0, 1)


def test_win_rate_groups_without_team_or_product_are_labelled(world):
    deal(world, owner="admin", status=Status.WON, closed=at(date(2026, 2, 1)))
    by_team = win_rates(user=world["cast"].admin, filters=filters(), by="team").rows
    by_product = win_rates(user=world["cast"].admin, filters=filters(), by="product").rows
    assert [(r.key, r.label) for r in by_team] == [(None, "(no team)")]
    assert [(r.key, r.label) for r in by_product] == [(None, "(no product)")]


@pytest.mark.parametrize(
    "narrowing,expected_owners",
    [
        ({"owner": "teammate"}, {"teammate"}),
        ({"team": "team_b"}, {"other"}),
        ({"product": "licence"}, {"owner", "teammate", "other"}),
        ({"pipeline": "renewals"}, {"teammate"}),
    ],
)
def test_filters_narrow_the_win_rates(world, narrowing, expected_owners):
    cast = world["cast"]
    closed = at(date(2026, 3, 1))
    deal(world, owner="owner", status=Status.WON, closed=closed, product="licence")
    deal(world, owner="teammate", status=Status.LOST, closed=closed, product="licence")
    deal(world, owner="teammate", status=Status.WON, closed=closed, pipeline="renewals")
    deal(world, owner="other", status=Status.WON, closed=closed, product="licence")
    name, value = next(iter(narrowing.items()))
    target = {
        "owner": lambda: getattr(cast, value).pk,
        "team": lambda: getattr(cast, value).pk,
        "product": lambda: world["products"][value].pk,
        "pipeline": lambda: world["pipelines"][value].pk,
    }[name]()
    rows = win_rates(user=cast.admin, filters=filters(**{name: target}), by="owner").rows
    assert {row.label for row in rows} == {str(getattr(cast, o)) for o in expected_owners}


def test_a_salesperson_counts_only_what_they_see(world):
    closed_world(world)
    rows = win_rates(user=world["cast"].owner, filters=filters(), by="owner").rows
    assert [row.key for row in rows] == [world["cast"].owner.pk]


def test_win_rates_refuse_an_unknown_grouping(world):
    with pytest.raises(ValueError):
        win_rates(user=world["cast"].admin, filters=filters(), by="step")


# Step funnel and time in step -----------------------------------------------------------


def created_event(opportunity, step, when):
    return event(opportunity, EventKind.CREATED, when, data={"step": step.pk, "amount": 0})


def moved_event(opportunity, before, after, when):
    changes = {"step": [before.pk, after.pk], "probability": [10, 50]}
    return event(opportunity, EventKind.MOVED, when, changes=changes)


def history(world, *, owner="owner", created, moves, close=None, pipeline="sales"):
    """An opportunity whose events enter steps at known times: moves are (step index, when);
    close is (status, when). The opportunity ends on its last step."""
    steps = world["steps"][pipeline]
    final = moves[-1][0] if moves else 0
    status, closed = close or (Status.TODO, None)
    opportunity = deal(
        world,
        owner=owner,
        status=status,
        created=created,
        closed=closed,
        pipeline=pipeline,
        step=final,
    )
    created_event(opportunity, steps[0], created)
    current = 0
    for index, when in moves:
        moved_event(opportunity, steps[current], steps[index], when)
        current = index
    if close:
        kind = {Status.WON: EventKind.WON, Status.LOST: EventKind.LOST}.get(
            status, EventKind.CANCELLED
        )
        event(opportunity, kind, closed, changes={"status": ["todo", status]})
    return opportunity


def funnel_world(world):
    t0 = at(date(2026, 2, 2), 9)
    a = history(world, created=t0, moves=[(1, t0 + 2 * DAY), (2, t0 + 5 * DAY)],
                close=(Status.WON, t0 + 6 * DAY))  # fmt: skip
    b = history(world, created=t0, moves=[(1, t0 + DAY)], close=(Status.LOST, t0 + 4 * DAY))
    c = history(
        world,
        owner="teammate",
        created=t0,
        moves=[(2, t0 + 3 * DAY), (1, t0 + 4 * DAY)],  # forward over a step, then back
    )
    # Noise that must not cut a stay: a logged activity, a probability-only "move".
    event(a, EventKind.ACTIVITY_LOGGED, t0 + DAY, data={"type": 1})
    event(a, EventKind.MOVED, t0 + 3 * DAY, changes={"probability": [25, 30]})
    # Created before the range: not in the cohort.
    history(world, created=at(date(2025, 12, 1)), moves=[(1, at(date(2026, 2, 1)))])
    # Another team's, seen only by the admin.
    history(world, owner="other", created=t0, moves=[(3, t0 + 10 * DAY)],
            close=(Status.CANCELLED, t0 + 11 * DAY))  # fmt: skip
    rebuild_step_visits()  # the events above were written around the services
    return t0, a, b, c


def sales_funnel(funnels):
    (found,) = [funnel for funnel in funnels if funnel.pipeline.name == "Sales"]
    return found


def test_time_in_step_with_known_timestamps(world):
    t0, a, b, c = funnel_world(world)
    funnels = step_funnel(user=world["cast"].manager, filters=filters(), now=NOW)
    lead, qualified, demo, proposal = sales_funnel(funnels).steps

    assert (lead.entered, lead.forward, lead.back, lead.current) == (3, 3, 0, 0)
    assert_quantiles(lead.stay, [2, 1, 3])  # a: 2 days, b: 1 day, c: 3 days
    assert lead.stay.median == pytest.approx(2)

    assert (qualified.entered, qualified.forward, qualified.lost) == (3, 1, 1)
    assert qualified.current == 1  # c, back on it
    assert_quantiles(qualified.stay, [3, 3])  # a: day 2 to 5, b: day 1 to 4 (lost)
    assert_quantiles(qualified.waiting, [days(NOW, t0 + 4 * DAY)])

    assert (demo.entered, demo.forward, demo.back, demo.won) == (2, 0, 1, 1)
    assert_quantiles(demo.stay, [1, 1])
    assert demo.advance_rate == 50

    assert proposal.entered == 0
    assert proposal.stay is None and proposal.advance_rate is None


def test_the_funnel_flags_where_deals_stall(world):
    funnel_world(world)
    funnels = step_funnel(user=world["cast"].manager, filters=filters(), now=NOW)
    lead, qualified, demo, proposal = sales_funnel(funnels).steps
    assert [s.longest_stay for s in (lead, qualified, demo, proposal)] == [
        False,
        True,
        False,
        False,
    ]
    assert [s.most_lost for s in (lead, qualified, demo, proposal)] == [
        False,
        True,
        False,
        False,
    ]


def python_funnel(world, user, chosen, now):
    """Walk each opportunity's events in order, exactly as the page explains the funnel."""
    first, after = (
        datetime.combine(chosen.start, datetime.min.time(), ROME),
        datetime.combine(chosen.end + DAY, datetime.min.time(), ROME),
    )
    positions = {s.pk: (s.position, s.pk) for steps in world["steps"].values() for s in steps}
    sets = defaultdict(lambda: defaultdict(set))
    stays, waiting = defaultdict(list), defaultdict(list)
    for o in Opportunity.objects.select_related("owner"):
        if not sees(world, user, o) or not first <= o.created_at < after:
            continue
        kept = [
            e
            for e in OpportunityEvent.objects.filter(opportunity=o).order_by("at", "pk")
            if e.kind in (EventKind.CREATED, EventKind.WON, EventKind.LOST, EventKind.CANCELLED)
            or (e.kind == EventKind.MOVED and "step" in e.changes)
        ]
        for e, following in zip(kept, [*kept[1:], None], strict=True):
            step = e.data["step"] if e.kind == EventKind.CREATED else None
            if e.kind == EventKind.MOVED:
                step = e.changes["step"][1]
            if step is None:
                continue
            sets[step]["entered"].add(o.pk)
            if following is None:
                if o.status in OPEN and o.step_id == step:
                    waiting[step].append(days(now, e.at))
                continue
            stays[step].append(days(following.at, e.at))
            if following.kind == EventKind.MOVED:
                target = following.changes["step"][1]
                direction = "forward" if positions[target] > positions[step] else "back"
                sets[step][direction].add(o.pk)
            else:
                sets[step][following.kind].add(o.pk)
        if o.status in OPEN and o.pk in sets[o.step_id]["entered"]:
            sets[o.step_id]["current"].add(o.pk)
    return sets, stays, waiting


@pytest.mark.parametrize("who", ["owner", "manager", "admin"])
def test_step_funnel_matches_python(world, who):
    funnel_world(world)
    t1 = at(date(2026, 3, 9), 8)
    for n in range(6):
        moves = [(1, t1 + (n + 1) * DAY), (2, t1 + (2 * n + 3) * DAY)][: n % 3]
        close = [(Status.WON, t1 + 20 * DAY), (Status.LOST, t1 + (n + 9) * DAY), None][n % 3]
        owner = ("owner", "teammate", "other")[n % 3]
        history(world, owner=owner, created=t1 + n * timedelta(hours=1), moves=moves, close=close)
    renewal = history(world, created=t1, moves=[(1, t1 + 7.5 * DAY)], pipeline="renewals")
    event(renewal, EventKind.WON, t1 + 9 * DAY)
    Opportunity.objects.filter(pk=renewal.pk).update(
        status=Status.WON, won_amount=1, next_action_at=None, closed_at=t1 + 9 * DAY
    )
    rebuild_step_visits()

    user = getattr(world["cast"], who)
    sets, stays, waiting = python_funnel(world, user, filters(), NOW)
    funnels = step_funnel(user=user, filters=filters(), now=NOW)
    assert funnels == step_funnel_from_log(user=user, filters=filters(), now=NOW)
    assert sorted(f.pipeline.name for f in funnels) == ["Renewals", "Sales"]
    for funnel in funnels:
        for row in funnel.steps:
            expected = sets[row.step.pk]
            found = {
                "entered": row.entered,
                "forward": row.forward,
                "back": row.back,
                "won": row.won,
                "lost": row.lost,
                "cancelled": row.cancelled,
                "current": row.current,
            }
            assert found == {name: len(expected[name]) for name in found}, row.step.name
            assert_quantiles(row.stay, stays[row.step.pk])
            assert_quantiles(row.waiting, waiting[row.step.pk])


def test_the_funnel_follows_only_the_chosen_pipeline(world):
    funnel_world(world)
    chosen = filters(pipeline=world["pipelines"]["renewals"].pk)
    funnels = step_funnel(user=world["cast"].admin, filters=chosen, now=NOW)
    assert [f.pipeline.name for f in funnels] == ["Renewals"]
    assert all(step.entered == 0 for step in funnels[0].steps)


def test_the_funnel_counts_only_opportunities_created_in_the_range(world):
    funnel_world(world)
    later = filters(start=date(2026, 2, 3))
    funnels = step_funnel(user=world["cast"].admin, filters=later, now=NOW)
    assert sum(step.entered for step in sales_funnel(funnels).steps) == 0


# Lost reasons ---------------------------------------------------------------------------


def lost_world(world):
    specs = [
        ("owner", "price", date(2026, 1, 15), 100_00, "licence"),
        ("owner", "price", date(2026, 1, 20), 250_50, None),
        ("owner", "timing", date(2026, 3, 2), 75_25, "training"),
        ("teammate", "price", date(2026, 3, 30), 1000_00, "licence"),
        ("teammate", "timing", date(2026, 5, 5), 10_00, "licence"),
        ("other", "timing", date(2026, 2, 1), 5000_00, "training"),
        ("owner", "price", date(2025, 12, 31), 9_00, None),  # before the range
    ]
    for owner, reason, day, amount, product in specs:
        deal(world, owner=owner, status=Status.LOST, closed=at(day), amount=amount,
             reason=reason, product=product)  # fmt: skip
    deal(world, status=Status.WON, closed=at(date(2026, 2, 2)))  # won: not a lost reason


def python_lost(world, user, chosen):
    return [
        o
        for o in Opportunity.objects.select_related("owner", "product", "lost_reason")
        if sees(world, user, o)
        and o.status == Status.LOST
        and chosen.start <= local_day(o.closed_at) <= chosen.end
    ]


@pytest.mark.parametrize("who", ["owner", "manager", "admin"])
def test_lost_reason_shares_match_python(world, who):
    lost_world(world)
    user = getattr(world["cast"], who)
    lost = python_lost(world, user, filters())
    found = lost_reasons(user=user, filters=filters())
    assert found.count == len(lost)
    assert found.value == sum(o.amount for o in lost)
    expected = defaultdict(lambda: [0, 0])
    for o in lost:
        expected[o.lost_reason.name][0] += 1
        expected[o.lost_reason.name][1] += o.amount
    assert {r.name: [r.count, r.value] for r in found.rows} == expected
    for row in found.rows:
        assert row.count_share == pytest.approx(100 * row.count / found.count)
        assert row.value_share == pytest.approx(100 * row.value / found.value)
    assert [r.count for r in found.rows] == sorted((r.count for r in found.rows), reverse=True)


@pytest.mark.parametrize("by", ["month", "quarter", "owner", "product"])
def test_lost_reason_breakdown_matches_python(world, by):
    lost_world(world)
    user = world["cast"].admin
    matrix = lost_reason_matrix(user=user, filters=filters(), by=by)
    expected = defaultdict(lambda: [0, 0])
    for o in python_lost(world, user, filters()):
        key, _label = python_group(o, by)
        expected[(o.lost_reason_id, key)][0] += 1
        expected[(o.lost_reason_id, key)][1] += o.amount
    assert {k: [c.count, c.value] for k, c in matrix.cells.items()} == expected
    for column in matrix.columns:
        in_column = [v for (_reason, key), v in expected.items() if key == column.key]
        assert column.count == sum(n for n, _v in in_column)
        assert column.value == sum(v for _n, v in in_column)
        for (_reason, key), cell in matrix.cells.items():
            if key == column.key:
                assert cell.share == pytest.approx(100 * cell.count / column.count)
    if by == "month":
        assert [c.key for c in matrix.columns] == [f"2026-0{m}" for m in range(1, 7)]
    # The page adds the shares up from the breakdown rather than asking again.
    assert lost_reasons_of(matrix) == lost_reasons(user=user, filters=filters())


# Activity report ------------------------------------------------------------------------


def done(opportunity, key, when, user=None):
    return Activity.objects.create(
        opportunity=opportunity,
        type=activity_type(key),
        user=user or opportunity.owner,
        done_at=when,
    )


def test_weeks_start_on_monday_and_cover_the_range():
    assert weeks_between(date(2026, 3, 4), date(2026, 3, 16)) == [
        date(2026, 3, 2),
        date(2026, 3, 9),
        date(2026, 3, 16),
    ]


def test_activities_fall_in_their_week_in_the_account_time_zone(world):
    opportunity = deal(world)
    # Sunday 8 March, 23:30 UTC is Monday 9 March, 00:30 in Rome.
    done(opportunity, "call", datetime(2026, 3, 8, 23, 30, tzinfo=UTC))
    # Sunday 29 March (summer time from 02:00), 22:30 UTC is Monday 30 March, 00:30 in Rome.
    done(opportunity, "visit", datetime(2026, 3, 29, 22, 30, tzinfo=UTC))
    types = activity_types()
    report = activity_report(user=world["cast"].owner, filters=filters(), types=types)
    (person,) = report.people
    busy = {week.monday: week.total for week in person.weeks if week.total}
    assert busy == {date(2026, 3, 9): 1, date(2026, 3, 30): 1}
    assert len(person.weeks) == len(weeks_between(START, END))


def test_every_day_falls_in_its_own_week_at_both_ends(world):
    opportunity = deal(world)
    call = activity_type("call")
    chosen = filters(start=date(2026, 3, 4), end=date(2026, 5, 20))  # Wednesday to Wednesday
    day, instants = chosen.start, []
    while day <= chosen.end:
        instants += [at(day, 0, 0), at(day, 23, 59)]
        day += DAY
    Activity.objects.bulk_create(
        Activity(
            opportunity=opportunity,
            type=call,
            user=opportunity.owner,
            opportunity_owner=opportunity.owner,
            done_at=when,
        )
        for when in instants
    )
    (person,) = activity_report(user=world["cast"].owner, filters=chosen, types=[call]).people
    expected = defaultdict(int)
    for when in instants:
        expected[when.date() - timedelta(days=when.weekday())] += 1
    assert {week.monday: week.total for week in person.weeks} == expected
    assert person.weeks[0].monday == date(2026, 3, 2)


def activity_world(world):
    cast = world["cast"]
    mine = deal(world, product="licence")
    theirs = deal(world, owner="other")
    mate = deal(world, owner="teammate")
    when = at(date(2026, 3, 3))
    done(mine, "call", when)
    done(mine, "call", when + DAY)
    done(mine, "visit", when + 7 * DAY)
    done(mine, "demo", when + 8 * DAY, user=cast.teammate)  # a teammate helped
    done(theirs, "call", when)
    done(theirs, "visit", when, user=cast.owner)  # helped on a deal of another team
    done(mate, "call", when + 2 * DAY)
    done(mine, "email", at(date(2025, 12, 30)))  # before the range
    Activity.objects.create(  # planned, not done
        opportunity=mine, type=activity_type("call"), user=cast.owner, due_at=when
    )
    return mine, theirs


def narrowed(world, narrowing):
    """The `filters()` a narrowing names, and whether it keeps an opportunity."""
    name, value = next(iter(narrowing.items()), (None, None))
    if name is None:
        return filters(), lambda _opportunity: True
    cast = world["cast"]
    if name == "owner":
        pk = getattr(cast, value).pk
        return filters(owner=pk), lambda opportunity: opportunity.owner_id == pk
    if name == "team":
        pk = getattr(cast, value).pk
        return filters(team=pk), lambda opportunity: opportunity.owner.team_id == pk
    pk = world[f"{name}s"][value].pk
    return filters(**{name: pk}), lambda opportunity: getattr(opportunity, f"{name}_id") == pk


def python_activity_report(world, user, keeps):
    expected = defaultdict(int)
    for a in Activity.objects.select_related("opportunity__owner", "user", "type"):
        if a.done_at is None or not sees(world, user, a.opportunity) or not keeps(a.opportunity):
            continue
        day = local_day(a.done_at)
        if START <= day <= END:
            monday = day - timedelta(days=day.weekday())
            expected[(str(a.user), monday, a.type.key)] += 1
    return expected


def found_in(report):
    return {
        (p.name, week.monday, t.key): n
        for p in report.people
        for week in p.weeks
        for t, n in zip(report.types, week.counts, strict=True)
        if n
    }


@pytest.mark.parametrize(
    ("who", "narrowing"),
    [
        ("owner", {}),
        ("manager", {}),
        ("admin", {}),
        ("manager", {"owner": "teammate"}),
        ("manager", {"owner": "other"}),  # not theirs: nothing
        ("admin", {"owner": "other"}),
        ("admin", {"team": "team_a"}),
        ("manager", {"product": "licence"}),
        ("admin", {"pipeline": "sales"}),
    ],
)
def test_activity_report_matches_python(world, who, narrowing):
    activity_world(world)
    user = getattr(world["cast"], who)
    chosen, keeps = narrowed(world, narrowing)
    report = activity_report(user=user, filters=chosen, types=activity_types())
    expected = python_activity_report(world, user, keeps)
    assert found_in(report) == expected
    assert report.total == sum(expected.values())
    if (who, narrowing) == ("manager", {}):
        assert report.total == 5  # the team's four in the range, not the other team's deal
    for p in report.people:
        assert p.total == sum(n for (name, _m, _t), n in expected.items() if name == p.name)
        assert p.per_week == pytest.approx(p.total / report.weeks)


def test_the_activity_report_follows_an_owner_change(world):
    cast = world["cast"]
    _mine, theirs = activity_world(world)
    before = activity_report(user=cast.manager, filters=filters(), types=activity_types())

    opportunity_update(
        opportunity=theirs, actor=cast.admin, version=theirs.version, owner=cast.teammate
    )

    report = activity_report(user=cast.manager, filters=filters(), types=activity_types())
    assert report.total == before.total + 2  # the other team's deal is now the team's
    assert found_in(report) == python_activity_report(world, cast.manager, lambda _o: True)
    other = activity_report(user=cast.other, filters=filters(), types=activity_types())
    assert other.total == 0


def test_activities_per_won_and_lost_deal(world):
    closing = at(date(2026, 4, 10))
    won = deal(world, status=Status.WON, closed=closing)
    deal(world, status=Status.WON, closed=closing)  # won with no activity
    lost = deal(world, status=Status.LOST, closed=closing)
    cancelled = deal(world, status=Status.CANCELLED, closed=closing)
    done(won, "call", closing - 5 * DAY)
    done(won, "call", closing - DAY)
    done(won, "visit", closing - 2 * DAY)
    done(won, "call", closing + DAY)  # after closing: did not lead to it
    done(lost, "call", closing - 3 * DAY)
    done(cancelled, "demo", closing - 3 * DAY)
    rebuild_deal_facts()  # the activities above were written around the services
    outcome = activities_per_outcome(
        user=world["cast"].owner, filters=filters(), types=activity_types()
    )
    assert outcome == activities_per_outcome_from_activities(
        user=world["cast"].owner, filters=filters(), types=activity_types()
    )
    assert (outcome.won_deals, outcome.lost_deals) == (2, 1)
    per_type = {t.key: (w, lo) for t, w, lo in outcome.rows}
    assert per_type["call"] == (1.0, 1.0)
    assert per_type["visit"] == (0.5, 0.0)
    assert per_type["demo"] == (0.0, 0.0)
    assert (outcome.total_per_won, outcome.total_per_lost) == (1.5, 1.0)


@pytest.mark.parametrize(
    ("who", "narrowing"),
    [
        ("admin", {}),
        ("manager", {}),
        ("owner", {}),
        ("admin", {"owner": "teammate"}),
        ("manager", {"owner": "teammate"}),
        ("manager", {"owner": "other"}),  # not theirs: nothing
        ("admin", {"product": "licence"}),
        ("admin", {"pipeline": "renewals"}),
        ("manager", {"pipeline": "renewals"}),
    ],
)
def test_activities_per_outcome_count_the_deals_closed_in_the_range_only(world, who, narrowing):
    cast = world["cast"]
    # Rome: the range runs from 1 January 00:00 to 1 July 00:00 (UTC+2 then).
    closings = [
        at(date(2025, 12, 31), 23, 59),  # before the range
        at(date(2026, 1, 1), 0, 0),
        at(date(2026, 6, 30), 23, 59),
        at(date(2026, 7, 1), 0, 0),  # after it
    ]
    for index, closing in enumerate(closings):
        for owner, product, pipeline, status in (
            ("owner", "licence", "sales", Status.WON),
            ("teammate", None, "renewals", Status.LOST),
            ("other", "licence", "sales", Status.WON if index % 2 else Status.LOST),
        ):
            opp = deal(
                world,
                owner=owner,
                status=status,
                closed=closing,
                product=product,
                pipeline=pipeline,
            )
            for key in ("call", "visit", "call")[: index + 1]:
                done(opp, key, closing - DAY)
    rebuild_deal_facts()
    user = getattr(cast, who)
    name, value = next(iter(narrowing.items()), (None, None))
    chosen = filters()
    if name is not None:
        target = {
            "owner": lambda: getattr(cast, value).pk,
            "product": lambda: world["products"][value].pk,
            "pipeline": lambda: world["pipelines"][value].pk,
        }[name]()
        chosen = filters(**{name: target})

    outcome = activities_per_outcome(user=user, filters=chosen, types=activity_types())

    assert outcome == activities_per_outcome_from_activities(
        user=user, filters=chosen, types=activity_types()
    )
    if (who, narrowing) == ("admin", {}):
        # the two closed on the range's first and last day, of three owners each
        assert (outcome.won_deals, outcome.lost_deals) == (3, 3)
        per_type = {t.key: (w, lo) for t, w, lo in outcome.rows}
        # a visit on each; a call on those of the first day, two on those of the last day:
        # won the owner's two and the other's first, lost the teammate's two and the other's
        # last
        assert per_type["call"] == (4 / 3, 5 / 3)
        assert per_type["visit"] == (1.0, 1.0)


def test_activities_per_outcome_follow_the_services(world, django_capture_on_commit_callbacks):
    cast, price = world["cast"], world["reasons"]["price"]
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(4):
            opp = opportunity_create(actor=cast.owner, title=f"Deal {n}", pipeline=cast.pipeline)
            for key in ("call", "visit", "call", "demo")[: n + 1]:
                activity_log(opportunity=opp, actor=cast.owner, type=activity_type(key))
            if n % 2:
                opportunity_close_lost(opportunity=opp, actor=cast.owner, reason=price)
            else:
                opportunity_close_won(opportunity=opp, actor=cast.owner)
            activity_log(opportunity=opp, actor=cast.owner, type=activity_type("visit"))
    today = timezone.localdate()
    chosen = filters(start=today - 30 * DAY, end=today)
    for user in (cast.admin, cast.manager, cast.other):  # all, their team's, none of them
        assert activities_per_outcome(
            user=user, filters=chosen, types=activity_types()
        ) == activities_per_outcome_from_activities(
            user=user, filters=chosen, types=activity_types()
        )
    outcome = activities_per_outcome(user=cast.owner, filters=chosen, types=activity_types())
    assert (outcome.won_deals, outcome.lost_deals, sum(outcome.won_counts)) == (2, 2, 4)


# Rotting deals --------------------------------------------------------------------------


def test_rotting_uses_the_step_limit_or_the_default(world):
    cast = world["cast"]
    lead, qualified = world["steps"]["sales"][:2]
    lead.rot_days = 5
    lead.save()
    fresh = deal(world, created=NOW - 100 * DAY)
    done(fresh, "call", NOW - 4 * DAY)
    stale = deal(world, created=NOW - 100 * DAY, amount=123_45)
    done(stale, "call", NOW - 6 * DAY)
    done(stale, "call", NOW - 60 * DAY)
    never = deal(world, created=NOW - (DEFAULT_ROT_DAYS + 1) * DAY, step=1)  # default limit
    young = deal(world, created=NOW - (DEFAULT_ROT_DAYS - 1) * DAY, step=1)
    planned = deal(world, created=NOW - 100 * DAY, step=1)
    Activity.objects.create(  # a planned activity is no activity done
        opportunity=planned, type=activity_type("call"), user=cast.owner, due_at=NOW
    )
    deal(world, status=Status.WON, created=NOW - 300 * DAY, closed=NOW - 200 * DAY)

    (owner,) = rotting_deals(user=cast.owner, filters=filters(), now=NOW)
    assert owner.owner_id == cast.owner.pk
    assert [o.pk for o in owner.listed] == [planned.pk, never.pk, stale.pk]
    assert owner.count == 3
    assert owner.amount == planned.amount + never.amount + stale.amount
    by_pk = {o.pk: o for o in owner.listed}
    assert by_pk[stale.pk].idle_days == pytest.approx(6)
    assert by_pk[stale.pk].rot_limit == 5
    assert by_pk[never.pk].rot_limit == DEFAULT_ROT_DAYS
    assert by_pk[never.pk].last_activity is None
    assert fresh.pk not in by_pk and young.pk not in by_pk


def test_rotting_lists_per_owner_the_longest_idle_first_up_to_the_limit(world):
    cast = world["cast"]
    for n in range(4):
        deal(world, owner="owner", created=NOW - (40 + n) * DAY)
        deal(world, owner="teammate", created=NOW - (50 + n) * DAY)
    deal(world, owner="other", created=NOW - 90 * DAY)
    owners = {
        o.owner_id: o
        for o in rotting_deals(user=cast.manager, filters=filters(), now=NOW, listed=2)
    }
    assert {pk: (o.name, o.count, len(o.listed)) for pk, o in owners.items()} == {
        cast.owner.pk: (str(cast.owner), 4, 2),
        cast.teammate.pk: (str(cast.teammate), 4, 2),
    }
    assert [round(o.idle_days) for o in owners[cast.teammate.pk].listed] == [53, 52]
    everything = rotting_deals(user=cast.admin, filters=filters(), now=NOW, listed=None)
    assert sum(len(o.listed) for o in everything) == 9


# Filters --------------------------------------------------------------------------------


def test_the_default_range_is_the_last_twelve_months():
    assert default_range(date(2026, 6, 15)) == (date(2025, 7, 1), date(2026, 6, 15))
    chosen = StatisticsFilters.from_query({}, today=date(2026, 6, 15))
    assert (chosen.start, chosen.end) == (date(2025, 7, 1), date(2026, 6, 15))


def test_filters_read_from_the_query_ignore_bad_values():
    chosen = StatisticsFilters.from_query(
        {"start": "2026-13-01", "end": "x", "owner": "abc", "team": "-1", "product": "7"},
        today=date(2026, 6, 15),
    )
    assert (chosen.start, chosen.end) == default_range(date(2026, 6, 15))
    assert (chosen.owner, chosen.team, chosen.product, chosen.pipeline) == (None, None, 7, None)
    odd = StatisticsFilters.from_query(
        {"start": "0001-01-01", "end": "9999-12-31", "pipeline": "\u00b2"}, today=date(2026, 6, 15)
    )
    assert (odd.start, odd.end, odd.pipeline) == (*default_range(date(2026, 6, 15)), None)


def test_filters_swap_reversed_dates_and_cut_a_too_long_range():
    swapped = StatisticsFilters.from_query(
        {"start": "2026-05-01", "end": "2026-02-01"}, today=date(2026, 6, 15)
    )
    assert (swapped.start, swapped.end) == (date(2026, 2, 1), date(2026, 5, 1))
    long = StatisticsFilters.from_query(
        {"start": "1900-01-01", "end": "2026-02-01"}, today=date(2026, 6, 15)
    )
    assert long.start == add_months(date(2026, 2, 1), -MAX_RANGE_MONTHS)


def test_filters_round_trip_through_the_query_string():
    chosen = filters(pipeline=3, owner=4, team=5, product=6)
    assert StatisticsFilters.from_query(chosen.as_query(), today=date(2020, 1, 1)) == chosen


def test_a_team_filter_names_the_members_without_joining_the_users(world):
    # As the visibility door does (see tests.sales.test_visibility): no join with the users.
    team = world["cast"].team_a.pk
    for narrowed in (
        filters(team=team).apply(Opportunity.objects.all()),
        InsightFilters(team=team).narrow(Opportunity.objects.all()),
    ):
        sql = str(narrowed.query)
        assert " JOIN " not in sql
        assert '"owner_id" IN (SELECT' in sql
