"""The pipeline on a past date, rebuilt from the event log, and forecast-versus-actual."""

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opportuna.insights import history
from opportuna.insights.analysis import InsightFilters
from opportuna.insights.history import (
    AS_OF_FIELDS,
    forecast_accuracy,
    opportunities_as_of,
    pipeline_as_of,
    pipeline_snapshot,
)
from opportuna.insights.models import StepVisit
from opportuna.insights.steps import rebuild_step_visits
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import OPEN_STATUSES, ChangesKey, Opportunity, OpportunityEvent
from opportuna.sales.services import (
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_move,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_standby,
    opportunity_update,
    step_delete,
)
from tests.factories import LostReasonFactory, OpportunityFactory, make_cast
from tests.plans import sqlite_plan

pytestmark = pytest.mark.django_db

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)
FIELDS = ("status", "step_id", "probability", "amount", "expected_close_date")
THEN = tuple(f"{name}_then" for name in AS_OF_FIELDS)
ZERO, SECOND = timedelta(0), timedelta(seconds=1)


@pytest.fixture(autouse=True)
def _rome(settings):
    settings.TIME_ZONE = "Europe/Rome"


@pytest.fixture
def cast():
    return make_cast()


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    """Run the services as if it were `at` (they stamp events with timezone.now())."""
    with mock.patch.object(timezone, "now", lambda: at):
        yield


def current():
    return {
        row[0]: row[1:] for row in Opportunity.objects.values_list("pk", *FIELDS).order_by("pk")
    }


def as_of(user, at):
    return {
        row[0]: row[1:]
        for row in opportunities_as_of(user=user, at=at).values_list("pk", *THEN).order_by("pk")
    }


def snapshot_then(user, at):
    """The snapshot's pipeline at `at` per step id: (count, amount, weighted)."""
    snapshot = pipeline_snapshot(user=user, at=at, filters=InsightFilters())
    return {
        row.step_id: (row.then.count, row.then.amount, row.then.weighted)
        for row in snapshot.rows
        if row.then.count
    }


def replayed_then(user, at):
    """The same summed in Python from the event-log replay (`opportunities_as_of`)."""
    totals: dict[int, tuple[int, int, int]] = {}
    rows = opportunities_as_of(user=user, at=at).values_list(
        "status_then", "step_then", "amount_then", "probability_then"
    )
    for status, step, amount, probability in rows:
        if status in OPEN_STATUSES:
            count, total, weighted = totals.get(step, (0, 0, 0))
            totals[step] = (
                count + 1,
                total + amount,
                weighted + (amount * probability + 50) // 100,
            )
    return totals


# Property: replaying the log gives back every state the opportunities passed through ------

operations = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "create",
                "move",
                "probability",
                "auto_probability",
                "amount",
                "close_date",
                "no_close_date",
                "won",
                "lost",
                "cancel",
                "reopen",
                "standby",
            ]
        ),
        st.integers(min_value=0, max_value=5),  # which opportunity / step
        st.integers(min_value=0, max_value=100),  # a probability, an amount, a day
        st.integers(min_value=1, max_value=60 * 24 * 20),  # minutes until the next call
    ),
    max_size=14,
)


def play(cast, reason, operation, index, number, opportunities):
    """One service call, as a salesperson would make it; refused ones change nothing."""
    kind = operation
    actor = cast.owner
    steps = list(cast.pipeline.steps.order_by("position"))
    if kind == "create" or not opportunities:
        opportunities.append(
            opportunity_create(
                actor=actor,
                title=f"Deal {len(opportunities)}",
                pipeline=cast.pipeline,
                step=steps[index % len(steps)],
                amount=number * 100_00,
                expected_close_date=timezone.localdate() + timedelta(days=number),
            )
        )
        return
    opp = opportunities[index % len(opportunities)]
    version = Opportunity.objects.values_list("version", flat=True).get(pk=opp.pk)
    if kind == "move":
        opportunity_move(opportunity=opp.pk, step=steps[number % len(steps)], actor=actor)
    elif kind == "probability":
        opportunity_set_probability(opportunity=opp.pk, probability=number, actor=actor)
    elif kind == "auto_probability":
        opportunity_set_probability(opportunity=opp.pk, probability=None, actor=actor)
    elif kind == "amount":
        opportunity_update(opportunity=opp.pk, actor=actor, version=version, amount=number * 7)
    elif kind == "close_date":
        day = timezone.localdate() + timedelta(days=number - 50)
        opportunity_update(
            opportunity=opp.pk, actor=actor, version=version, expected_close_date=day
        )
    elif kind == "no_close_date":
        opportunity_update(
            opportunity=opp.pk, actor=actor, version=version, expected_close_date=None
        )
    elif kind == "won":
        opportunity_close_won(opportunity=opp.pk, actor=actor, won_amount=number)
    elif kind == "lost":
        opportunity_close_lost(opportunity=opp.pk, actor=actor, reason=reason)
    elif kind == "cancel":
        opportunity_cancel(opportunity=opp.pk, actor=actor)
    elif kind == "reopen":
        opportunity_reopen(opportunity=opp.pk, actor=actor)
    elif kind == "standby":
        opportunity_standby(
            opportunity=opp.pk, actor=actor, until=timezone.localdate() + timedelta(days=3)
        )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=operations)
def test_the_pipeline_as_of_any_moment_is_the_state_it_had_then(cast, calls):
    with transaction.atomic():
        reason = LostReasonFactory(name="Price")
        opportunities: list[Opportunity] = []
        moments: list[tuple[datetime, dict]] = []
        at = START
        for operation, index, number, minutes in calls:
            with clock(at), suppress(SalesRuleError):
                play(cast, reason, operation, index, number, opportunities)
            moments.append((at, current()))
            at += timedelta(minutes=minutes)

        assert as_of(cast.admin, timezone.now()) == current()
        for moment, state in moments:
            assert as_of(cast.admin, moment) == state
        assert as_of(cast.admin, START - timedelta(seconds=1)) == {}

        # The snapshot's pipeline then is the replay's, whether the step visits are stored
        # (as each commit stores them) or not (as here, inside one transaction), and today's
        # when the date is now.
        instants = [m + shift for m, _ in moments for shift in (-SECOND, ZERO, SECOND)]
        for instant in instants:
            assert snapshot_then(cast.admin, instant) == replayed_then(cast.admin, instant)
        rebuild_step_visits()
        for instant in instants:
            assert snapshot_then(cast.admin, instant) == replayed_then(cast.admin, instant)
        now = pipeline_snapshot(user=cast.admin, at=timezone.now(), filters=InsightFilters())
        assert [row.then for row in now.rows] == [row.now for row in now.rows]
        transaction.set_rollback(True)


# A past date, step by step --------------------------------------------------------------


def day(n, hour=10):
    return START + timedelta(days=n, hours=hour - 9)


@pytest.fixture
def story(cast):
    """Created on day 0 (Lead, 10%, 1000.00, closing 1 March); demo on day 10 (50%); amount
    2000.00 and 1 April on day 20; won on day 30."""
    steps = list(cast.pipeline.steps.order_by("position"))
    with clock(day(0)):
        opp = opportunity_create(
            actor=cast.owner,
            title="Deal",
            pipeline=cast.pipeline,
            amount=1000_00,
            expected_close_date=date(2024, 3, 1),
        )
    with clock(day(10)):
        opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)
    with clock(day(20)):
        opportunity_update(
            opportunity=opp,
            actor=cast.owner,
            version=Opportunity.objects.get(pk=opp.pk).version,
            amount=2000_00,
            expected_close_date=date(2024, 4, 1),
        )
    with clock(day(30)):
        opportunity_close_won(opportunity=opp, actor=cast.owner)
    return {"opp": opp, "steps": steps}


def test_on_a_past_date_each_field_has_the_value_it_had_then(cast, story):
    lead, demo = story["steps"][0], story["steps"][2]

    assert as_of(cast.admin, day(5)) == {
        story["opp"].pk: ("todo", lead.pk, 10, 1000_00, date(2024, 3, 1))
    }
    assert as_of(cast.admin, day(15)) == {
        story["opp"].pk: ("todo", demo.pk, 50, 1000_00, date(2024, 3, 1))
    }
    assert as_of(cast.admin, day(25)) == {
        story["opp"].pk: ("todo", demo.pk, 50, 2000_00, date(2024, 4, 1))
    }
    assert as_of(cast.admin, day(35)) == {
        story["opp"].pk: ("won", demo.pk, 50, 2000_00, date(2024, 4, 1))
    }


def test_the_pipeline_holds_what_was_open_then_and_nothing_not_yet_created(cast, story):
    assert list(pipeline_as_of(user=cast.admin, at=day(-1)).values_list("pk", flat=True)) == []
    assert list(pipeline_as_of(user=cast.admin, at=day(15)).values_list("pk", flat=True)) == [
        story["opp"].pk
    ]
    assert list(pipeline_as_of(user=cast.admin, at=day(35)).values_list("pk", flat=True)) == []


def test_weighted_then_rounds_half_up_like_the_forecast(cast):
    with clock(day(0)):
        opportunity_create(
            actor=cast.owner, title="Odd", pipeline=cast.pipeline, amount=1005, probability=50
        )

    weighted = pipeline_as_of(user=cast.admin, at=day(1)).values_list("weighted_then", flat=True)

    assert list(weighted) == [503]


def test_the_past_pipeline_shows_only_what_the_user_may_see(cast):
    with clock(day(0)):
        opportunity_create(actor=cast.owner, title="Mine", pipeline=cast.pipeline)
        opportunity_create(actor=cast.other, title="Theirs", pipeline=cast.pipeline)

    titles = pipeline_as_of(user=cast.other, at=day(1)).values_list("title", flat=True)

    assert list(titles) == ["Theirs"]


def test_snapshot_sets_each_step_then_beside_today_in_three_queries(
    cast, story, django_assert_num_queries
):
    with django_assert_num_queries(3):  # steps, the pipeline then, the pipeline now
        snapshot = pipeline_snapshot(user=cast.admin, at=day(15), filters=InsightFilters())

    demo = story["steps"][2]
    assert [
        (row.step_id, row.then.count, row.then.amount, row.then.weighted) for row in snapshot.rows
    ] == [(demo.pk, 1, 1000_00, 500_00)]
    assert snapshot.now.count == 0


# The snapshot's pipeline then, with the step visits stored as each commit stores them -----


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run services as if it were `at` and their transactions committed, so the step visits
    are stored as in production (inside a test's transaction nothing else stores them)."""

    @contextmanager
    def run(at: datetime) -> Iterator[None]:
        with clock(at), django_capture_on_commit_callbacks(execute=True):
            yield

    return run


@pytest.fixture
def life(cast, committed):
    """Created on day 0 (Lead, 10%, 1000.00); Demo on day 10 (50%); won on day 20; reopened
    on day 30; 3000.00 and 80% by hand on day 40; Proposal on day 50 (still 80%); lost on
    day 60."""
    steps = list(cast.pipeline.steps.order_by("position"))
    with committed(day(0)):
        opp = opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, amount=1000_00
        )
    with committed(day(10)):
        opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)
    with committed(day(20)):
        opportunity_close_won(opportunity=opp, actor=cast.owner)
    with committed(day(30)):
        opportunity_reopen(opportunity=opp, actor=cast.owner)
    with committed(day(40)):
        version = Opportunity.objects.get(pk=opp.pk).version
        opportunity_update(opportunity=opp, actor=cast.owner, version=version, amount=3000_00)
        opportunity_set_probability(opportunity=opp, probability=80, actor=cast.owner)
    with committed(day(50)):
        opportunity_move(opportunity=opp, step=steps[3], actor=cast.owner)
    with committed(day(60)):
        opportunity_close_lost(
            opportunity=opp, actor=cast.owner, reason=LostReasonFactory(name="Price")
        )
    # Lead, Demo, Demo again after the reopen only from its move: Proposal.
    assert StepVisit.objects.filter(opportunity_id=opp.pk).count() == 3
    return {"opp": opp, "steps": steps}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (-1, None),  # created after the date
        (5, (0, 1, 1000_00, 100_00)),  # moved after the date
        (10, (2, 1, 1000_00, 500_00)),  # moved at that very instant
        (15, (2, 1, 1000_00, 500_00)),  # closed after the date
        (25, None),  # won then, reopened since
        (30, (2, 1, 1000_00, 500_00)),  # reopened at that very instant
        (35, (2, 1, 1000_00, 500_00)),  # reopened, not moved yet: no visit covers the date
        (45, (2, 1, 3000_00, 2400_00)),  # amount and probability changed before the date
        (55, (3, 1, 3000_00, 2400_00)),  # a hand-set probability survives the move
        (65, None),  # lost
    ],
    ids=[
        "created-after",
        "moved-after",
        "moved-then",
        "closed-after",
        "closed-then",
        "reopened-then",
        "reopened-before",
        "changed-before",
        "moved-again",
        "lost",
    ],
)
def test_the_snapshot_then_follows_moves_closes_and_reopens(cast, life, when, expected):
    at = day(when)
    want = {}
    if expected is not None:
        position, *totals = expected
        want = {life["steps"][position].pk: tuple(totals)}

    assert snapshot_then(cast.admin, at) == want
    assert replayed_then(cast.admin, at) == want


def test_changes_after_the_date_do_not_reach_the_snapshot_then(cast, committed):
    with committed(day(0)):
        opp = opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, amount=1000_00
        )
    with committed(day(10)):
        version = Opportunity.objects.get(pk=opp.pk).version
        opportunity_update(opportunity=opp, actor=cast.owner, version=version, amount=5000_00)
        opportunity_set_probability(opportunity=opp, probability=90, actor=cast.owner)

    lead = cast.pipeline.steps.order_by("position").first()
    assert snapshot_then(cast.admin, day(5)) == {lead.pk: (1, 1000_00, 100_00)}
    assert snapshot_then(cast.admin, day(15)) == {lead.pk: (1, 5000_00, 4500_00)}


def test_a_step_deleted_since_keeps_its_row_by_id(cast, committed):
    steps = list(cast.pipeline.steps.order_by("position"))
    with committed(day(0)):
        opp = opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, step=steps[1]
        )
    with committed(day(10)):
        opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)
    qualified = steps[1].pk
    with committed(day(11)):
        step_delete(step=steps[1], actor=cast.admin)

    snapshot = pipeline_snapshot(user=cast.admin, at=day(5), filters=InsightFilters())

    assert [(row.step, row.step_id, row.label, row.then.count) for row in snapshot.rows] == [
        (steps[2], steps[2].pk, "Sales / Demo", 0),  # where it is now
        (None, qualified, f"#{qualified}", 1),
    ]
    assert snapshot_then(cast.admin, day(5)) == replayed_then(cast.admin, day(5))


def test_an_opportunity_the_visits_do_not_know_is_read_from_the_log(cast):
    # Written around the services: no event, so no visit; its current values stand.
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, amount=700_00)

    assert snapshot_then(cast.admin, timezone.now()) == {opp.step_id: (1, 700_00, 70_00)}


def test_the_snapshot_then_shows_only_what_the_user_may_see(cast, committed):
    with committed(day(0)):
        opportunity_create(actor=cast.owner, title="Mine", pipeline=cast.pipeline)
        opportunity_create(actor=cast.other, title="Theirs", pipeline=cast.pipeline, amount=5)
    with committed(day(10)):
        for opp in Opportunity.objects.all():
            opportunity_close_won(opportunity=opp, actor=opp.owner)

    lead = cast.pipeline.steps.order_by("position").first()
    assert snapshot_then(cast.other, day(5)) == {lead.pk: (1, 5, 1)}


# Forecast versus actual -----------------------------------------------------------------


@pytest.fixture
def months(cast):
    """At 1 February 2024 (Rome) the pipeline holds A (2000.00 at 50%, closing in February),
    B (1000.00 at 10%, closing in March) and the other team's D (4000.00 at 50%, closing in
    February, lost half an hour into February). A is won in February for 1800.00; C, created
    on 10 February, is won in February for 500.00; B slips to April and stays open."""
    lost = LostReasonFactory(name="Price")
    with clock(datetime(2024, 1, 15, 10, tzinfo=UTC)):
        a = opportunity_create(
            actor=cast.owner,
            title="A",
            pipeline=cast.pipeline,
            amount=2000_00,
            probability=50,
            expected_close_date=date(2024, 2, 20),
        )
        b = opportunity_create(
            actor=cast.owner,
            title="B",
            pipeline=cast.pipeline,
            amount=1000_00,
            expected_close_date=date(2024, 3, 10),
        )
        d = opportunity_create(
            actor=cast.other,
            title="D",
            pipeline=cast.pipeline,
            amount=4000_00,
            probability=50,
            expected_close_date=date(2024, 2, 10),
        )
    with clock(datetime(2024, 1, 31, 23, 30, tzinfo=UTC)):  # 00:30 on 1 February in Rome
        opportunity_close_lost(opportunity=d, actor=cast.other, reason=lost)
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        c = opportunity_create(
            actor=cast.owner,
            title="C",
            pipeline=cast.pipeline,
            amount=500_00,
            expected_close_date=date(2024, 2, 28),
        )
    with clock(datetime(2024, 2, 20, 10, tzinfo=UTC)):
        opportunity_close_won(opportunity=a, actor=cast.owner, won_amount=1800_00)
        opportunity_close_won(opportunity=c, actor=cast.owner)
        version = Opportunity.objects.get(pk=b.pk).version
        opportunity_update(
            opportunity=b, actor=cast.owner, version=version, expected_close_date=date(2024, 4, 5)
        )
    return {"a": a, "b": b, "c": c}


def test_each_month_compares_the_forecast_at_its_start_with_what_was_won(cast, months):
    accuracy = forecast_accuracy(
        user=cast.admin, filters=InsightFilters(), months=2, today=date(2024, 3, 15)
    )

    got = [
        (m.key, m.open_count, m.forecast, m.won_count, m.won, m.in_progress)
        for m in accuracy.months
    ]
    assert got == [
        ("2024-01", 0, 0, 0, 0, False),
        ("2024-02", 2, 3000_00, 2, 2300_00, False),
        ("2024-03", 0, 0, 0, 0, True),  # B had slipped to April by 1 March
    ]
    assert accuracy.months[1].ratio == pytest.approx(2300 / 3000)
    assert accuracy.expected_now == 0


def test_the_current_month_expects_won_so_far_plus_weighted_open_now(cast, months):
    accuracy = forecast_accuracy(
        user=cast.admin, filters=InsightFilters(), months=1, today=date(2024, 4, 2)
    )

    april = accuracy.months[-1]
    assert (april.key, april.open_count, april.forecast) == ("2024-04", 1, 100_00)
    assert accuracy.expected_now == 100_00


def test_forecast_accuracy_takes_two_queries_for_any_number_of_months(
    cast, months, django_assert_num_queries
):
    # The first call stores the months' openings (insights.openings); later ones read them.
    forecast_accuracy(user=cast.admin, filters=InsightFilters(), months=12, today=date(2024, 3, 1))
    for count in (1, 12):
        # the stored openings per month (and which are stored), the forecast's sums per month
        with django_assert_num_queries(2):
            forecast_accuracy(
                user=cast.admin, filters=InsightFilters(), months=count, today=date(2024, 3, 1)
            )


def test_forecast_accuracy_follows_the_filters_and_the_users_view(cast, months):
    def february(user, **filters):
        accuracy = forecast_accuracy(
            user=user, filters=InsightFilters(**filters), months=1, today=date(2024, 2, 15)
        )
        return accuracy.months[-1].forecast

    assert february(cast.admin) == 1000_00 + 2000_00
    assert february(cast.other) == 2000_00
    assert february(cast.admin, team=cast.team_a.pk) == 1000_00
    assert february(cast.admin, owner=cast.other.pk) == 2000_00


def test_accuracy_summary_reads_the_complete_months_only(cast, months):
    accuracy = forecast_accuracy(
        user=cast.admin, filters=InsightFilters(), months=2, today=date(2024, 3, 15)
    )

    assert accuracy.median_error == pytest.approx(700 / 3000)
    assert accuracy.within_20 == 0
    assert accuracy.overall_ratio == pytest.approx(2300 / 3000)


def test_months_out_of_range_are_refused(cast):
    with pytest.raises(ValueError):
        forecast_accuracy(user=cast.admin, filters=InsightFilters(), months=0)


def test_an_opportunity_without_events_keeps_its_current_values(cast):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, amount=12_34)

    values = as_of(cast.admin, timezone.now())[opp.pk]

    assert values == ("todo", opp.step_id, opp.probability, 12_34, None)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own planner")
@pytest.mark.parametrize(
    ("field", "index"),
    [
        ("amount", "USING INDEX history_amount_idx"),
        # It holds the changes too: the log's rows are not read at all.
        ("probability", "USING COVERING INDEX history_probability_idx"),
    ],
)
def test_sqlite_seeks_the_first_later_change_of_amount_and_probability_by_their_indexes(
    field, index
):
    # SQLite uses a partial index only for a query repeating its condition literally: with
    # the key as a parameter it walked every later event of each opportunity instead.
    replayed = Opportunity.objects.annotate(then=history._replayed(field, START)).values("then")
    sql, params = replayed.query.sql_with_params()
    plan = sqlite_plan(sql, params)
    assert f"{index} (opportunity_id=? AND at>?)" in plan


def test_has_key_on_the_log_finds_the_events_changing_a_field_on_both_databases(story):
    # `changes__has_key` is the log's own lookup (ChangesKey): the key written into the SQL.
    events = OpportunityEvent.objects.filter(opportunity=story["opp"])
    assert list(events.filter(changes__has_key="amount").values_list("at", flat=True)) == [day(20)]
    assert events.filter(changes__has_key="probability").count() == 1  # the move
    assert not events.filter(changes__has_key="title").exists()
    assert not events.filter(changes__has_key="it's 100%").exists()  # quoted
    assert events.filter(ChangesKey(F("changes"), "amount")).count() == 1
