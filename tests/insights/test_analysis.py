"""Behaviour analysis and probability calibration: what is counted, how it is bucketed, what
makes a sentence, and only what the user may see, in a fixed number of queries.

Each case runs twice: on the stored closed-deal facts (what the pages read; rebuilt first,
since these rows are written straight into the database) and on the event log walk they are
computed from (the reference)."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.insights.analysis import (
    MIN_SAMPLE,
    InsightFilters,
    behaviour_analysis,
    behaviour_analysis_from_log,
    probability_calibration,
    probability_calibration_from_log,
    wilson,
)
from opportuna.insights.facts import rebuild_deal_facts
from opportuna.insights.steps import rebuild_step_visits
from opportuna.sales.models import Activity, Opportunity, Status
from opportuna.sales.services import (
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_move,
    opportunity_set_probability,
)
from tests.factories import (
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    UserFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def reason():
    return LostReasonFactory(name="Price")


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    """Run the services as if it were `at` (they stamp events with timezone.now())."""
    with mock.patch.object(timezone, "now", lambda: at):
        yield


def closed(cast, *, won, owner=None, days=30, probability=None, pipeline=None, **kwargs):
    """A won or lost opportunity created at T0 and closed `days` later, without events."""
    pipeline = pipeline or cast.pipeline
    step = pipeline.steps.order_by("position").first()
    opp = OpportunityFactory(
        owner=owner or cast.owner,
        pipeline=pipeline,
        step=step,
        probability=step.probability if probability is None else probability,
        status=Status.WON if won else Status.LOST,
        won_amount=1000_00 if won else None,
        lost_reason=None if won else LostReasonFactory(name="Price"),
        closed_at=T0 + timedelta(days=days),
        **kwargs,
    )
    Opportunity.objects.filter(pk=opp.pk).update(created_at=T0)
    opp.created_at = T0
    return opp


def did(opp, key, *, day, hour=10):
    """An activity of type `key` done `day` days after T0."""
    return Activity.objects.create(
        opportunity=opp,
        type=activity_type(key),
        user=opp.owner,
        done_at=T0 + timedelta(days=day, hours=hour - 9),
    )


def rows(dimension):
    return {row.key: (row.n, row.won) for row in dimension.rows}


@pytest.fixture(params=["facts", "log"])
def analyse(request):
    """behaviour_analysis on freshly rebuilt facts, or the event-log reference."""

    def run(user, **filters):
        if request.param == "log":
            return behaviour_analysis_from_log(user=user, filters=InsightFilters(**filters))
        rebuild_deal_facts()
        return behaviour_analysis(user=user, filters=InsightFilters(**filters))

    return run


@pytest.fixture(params=["facts", "log"])
def calibrate(request):
    """probability_calibration on freshly rebuilt facts and step visits, or the event-log
    reference."""

    def run(user, step=None, **filters):
        compute = probability_calibration
        if request.param == "log":
            compute = probability_calibration_from_log
        else:
            rebuild_deal_facts()
            rebuild_step_visits()
        return compute(user=user, filters=InsightFilters(**filters), step=step)

    return run


# Wilson interval ------------------------------------------------------------------------


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson(0, 20)
    assert low == 0 and round(high, 4) == 0.1611


def test_wilson_interval_of_nothing_is_everything():
    assert wilson(0, 0) == (0.0, 1.0)


# Position of the first demo ------------------------------------------------------------


def test_demo_position_counts_the_visits_done_before_the_first_demo(analyse, cast):
    demo_first = closed(cast, won=False)
    did(demo_first, "demo", day=1)
    did(demo_first, "visit", day=2)  # after the demo: does not count
    after_one = closed(cast, won=True)
    did(after_one, "visit", day=1)
    did(after_one, "demo", day=2)
    did(after_one, "demo", day=5)
    after_two = closed(cast, won=True)
    did(after_two, "visit", day=1)
    did(after_two, "visit", day=2)
    did(after_two, "demo", day=3)
    after_three = closed(cast, won=False)
    for day in (1, 2, 3, 4):
        did(after_three, "visit", day=day)
    did(after_three, "demo", day=5)
    no_demo = closed(cast, won=True)
    did(no_demo, "visit", day=1)

    result = analyse(cast.admin)

    assert rows(result.demo) == {
        "demo_first": (1, 0),
        "after_1": (1, 1),
        "after_2": (1, 1),
        "after_3": (1, 0),
        "no_demo": (1, 1),
    }


def test_activities_after_closing_or_only_planned_do_not_count(analyse, cast):
    opp = closed(cast, won=True, days=10)
    did(opp, "demo", day=20)  # after closing
    Activity.objects.create(
        opportunity=opp, type=activity_type("visit"), user=opp.owner, due_at=T0
    )  # planned, never done

    result = analyse(cast.admin)

    assert rows(result.demo)["no_demo"] == (1, 1)
    visits = next(d for d in result.activities if d.key == "activity:visit")
    assert rows(visits)["0"] == (1, 1)


def test_win_rate_is_won_over_won_and_lost_ignoring_open_and_cancelled(analyse, cast):
    closed(cast, won=True)
    closed(cast, won=False)
    closed(cast, won=False)
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)  # open
    OpportunityFactory(
        owner=cast.owner, pipeline=cast.pipeline, status=Status.CANCELLED, closed_at=T0
    )

    baseline = analyse(cast.admin).baseline

    assert (baseline.n, baseline.won) == (3, 1)
    assert baseline.rate == pytest.approx(1 / 3)


def test_activity_counts_are_bucketed_none_one_two_three_or_more(analyse, cast):
    for calls in (0, 1, 2, 3, 5):
        opp = closed(cast, won=calls >= 2)
        for day in range(calls):
            did(opp, "call", day=day + 1)

    calls = next(d for d in analyse(cast.admin).activities if d.key == "activity:call")

    assert rows(calls) == {"0": (1, 0), "1": (1, 0), "2": (1, 1), "3": (2, 2)}


def test_time_to_first_activity_is_measured_from_creation(analyse, cast):
    for days_later in (0, 2, 5, 12):
        opp = closed(cast, won=True, days=40)
        did(opp, "call", day=days_later, hour=11)
    closed(cast, won=False, days=40)  # no activity at all

    contact = analyse(cast.admin).first_contact

    assert rows(contact) == {
        "same_day": (1, 1),
        "1_2": (1, 1),
        "3_7": (1, 1),
        "8_": (1, 1),
        "none": (1, 0),
    }


# Who sees what, and filters -------------------------------------------------------------


def test_a_salesperson_analyses_only_the_opportunities_they_may_see(analyse, cast):
    account = Account.load()
    account.visibility = VisibilityPolicy.OWN
    account.save()
    closed(cast, won=True, owner=cast.owner)
    closed(cast, won=True, owner=cast.teammate)
    closed(cast, won=False, owner=cast.other)

    assert analyse(cast.owner).baseline.n == 1
    assert analyse(cast.manager).baseline.n == 2
    assert analyse(cast.admin).baseline.n == 3


def test_filters_narrow_by_pipeline_owner_team_and_close_dates(analyse, cast):
    other_pipeline = PipelineFactory(name="Renewals")
    closed(cast, won=True, owner=cast.owner, days=10)
    closed(cast, won=True, owner=cast.teammate, days=40)
    closed(cast, won=False, owner=cast.other, days=40, pipeline=other_pipeline)

    assert analyse(cast.admin, pipeline=other_pipeline.pk).baseline.n == 1
    assert analyse(cast.admin, owner=cast.teammate.pk).baseline.n == 1
    assert analyse(cast.admin, team=cast.team_a.pk).baseline.n == 2
    after = (T0 + timedelta(days=20)).date()
    assert analyse(cast.admin, start=after).baseline.n == 2
    assert analyse(cast.admin, end=after).baseline.n == 1


def test_filters_from_a_query_string_ignore_malformed_values_and_order_the_dates():
    filters = InsightFilters.from_query(
        {"start": "2025-05-01", "end": "2025-01-01", "owner": "x", "team": "-3", "pipeline": "7"}
    )
    assert filters == InsightFilters(
        start=date(2025, 1, 1), end=date(2025, 5, 1), pipeline=7, owner=None, team=None
    )
    assert InsightFilters.from_query(filters.as_query()) == filters


# Significance and sentences -------------------------------------------------------------


def make_pattern(cast, *, demo_first, after_two):
    """Deals with the demo first and deals with it after two visits: (n, won) each."""
    for index in range(demo_first[0]):
        opp = closed(cast, won=index < demo_first[1])
        did(opp, "demo", day=1)
    for index in range(after_two[0]):
        opp = closed(cast, won=index < after_two[1])
        did(opp, "visit", day=1)
        did(opp, "visit", day=2)
        did(opp, "demo", day=3)


def test_a_clear_difference_on_enough_deals_makes_a_sentence_with_sample_sizes(analyse, cast):
    make_pattern(cast, demo_first=(40, 6), after_two=(40, 30))

    result = analyse(cast.admin)

    demo = next(f for f in result.findings if f.dimension == "demo")
    assert demo.sentence == (
        "On your deals, a demo after two visits wins 75% of the time (n=40), "
        "against 15% when the demo comes first (n=40)."
    )
    marks = {row.key: row.versus for row in result.demo.rows}
    assert marks["after_2"] == "above" and marks["demo_first"] == "below"


def test_small_samples_are_labelled_and_never_make_a_sentence(analyse, cast):
    make_pattern(cast, demo_first=(MIN_SAMPLE - 1, 0), after_two=(MIN_SAMPLE - 1, MIN_SAMPLE - 1))

    result = analyse(cast.admin)

    assert not [f for f in result.findings if f.dimension == "demo"]
    by_key = {row.key: row for row in result.demo.rows}
    assert by_key["demo_first"].small and by_key["after_2"].small
    assert by_key["demo_first"].versus == "" == by_key["after_2"].versus


def test_no_sentence_when_buckets_do_not_differ(analyse, cast):
    make_pattern(cast, demo_first=(40, 20), after_two=(40, 20))

    assert not [f for f in analyse(cast.admin).findings if f.dimension == "demo"]


@pytest.mark.parametrize(
    ("compute", "queries"),
    [
        # activity types; the facts grouped by demo position, days to the first activity and
        # activity profile (which give the totals and the per-type counts too)
        (behaviour_analysis, 2),
        # activity types; closed opportunities and wins; the activity walk, grouped
        (behaviour_analysis_from_log, 3),
    ],
)
def test_the_analysis_takes_a_fixed_number_of_queries_whatever_the_data(
    compute, queries, cast, django_assert_num_queries
):
    with django_assert_num_queries(queries):
        compute(user=cast.admin, filters=InsightFilters())
    make_pattern(cast, demo_first=(15, 2), after_two=(15, 12))
    rebuild_deal_facts()
    with django_assert_num_queries(queries):
        compute(user=cast.admin, filters=InsightFilters())


# Calibration ----------------------------------------------------------------------------


def test_probability_thirty_days_before_closing_comes_from_the_event_log(calibrate, cast, reason):
    with clock(T0):
        opp = opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    steps = list(cast.pipeline.steps.order_by("position"))
    with clock(T0 + timedelta(days=10)):
        opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)  # 50%
    with clock(T0 + timedelta(days=50)):
        opportunity_set_probability(opportunity=opp, probability=80, actor=cast.owner)
    with clock(T0 + timedelta(days=60)):
        opportunity_close_lost(opportunity=opp, actor=cast.owner, reason=reason)

    result = calibrate(cast.admin)

    assert result.overall.n == 1
    assert result.overall.predicted == pytest.approx(0.50)
    assert [band.n for band in result.bands][5] == 1


def test_a_deal_younger_than_thirty_days_carries_its_creation_probability(calibrate, cast):
    with clock(T0):
        opp = opportunity_create(
            actor=cast.owner, title="Quick", pipeline=cast.pipeline, probability=35
        )
    with clock(T0 + timedelta(days=5)):
        opportunity_set_probability(opportunity=opp, probability=90, actor=cast.owner)
    with clock(T0 + timedelta(days=10)):
        opportunity_close_won(opportunity=opp, actor=cast.owner)

    overall = calibrate(cast.admin).overall

    assert overall.predicted == pytest.approx(0.35)
    assert (overall.n, overall.won) == (1, 1)


def test_a_deal_without_events_carries_its_current_probability(calibrate, cast):
    closed(cast, won=True, probability=70)

    overall = calibrate(cast.admin).overall

    assert overall.predicted == pytest.approx(0.70)


def test_at_a_step_the_probability_is_the_one_carried_on_reaching_it(calibrate, cast, reason):
    steps = list(cast.pipeline.steps.order_by("position"))
    with clock(T0):
        reached = opportunity_create(actor=cast.owner, title="A", pipeline=cast.pipeline)
        never = opportunity_create(actor=cast.owner, title="B", pipeline=cast.pipeline)
    with clock(T0 + timedelta(days=3)):
        opportunity_set_probability(opportunity=reached, probability=60, actor=cast.owner)
    with clock(T0 + timedelta(days=5)):
        opportunity_move(opportunity=reached, step=steps[2], actor=cast.owner)  # manual: stays
    with clock(T0 + timedelta(days=8)):
        opportunity_set_probability(opportunity=reached, probability=95, actor=cast.owner)
    with clock(T0 + timedelta(days=9)):
        opportunity_close_won(opportunity=reached, actor=cast.owner)
        opportunity_close_lost(opportunity=never, actor=cast.owner, reason=reason)

    result = calibrate(cast.admin, step=steps[2])

    assert (result.overall.n, result.overall.won) == (1, 1)
    assert result.overall.predicted == pytest.approx(0.60)
    assert result.basis == "step"


def test_bands_hold_probabilities_by_tens_with_100_in_the_last(calibrate, cast):
    for probability in (0, 9, 10, 55, 99, 100):
        closed(cast, won=True, probability=probability)

    bands = calibrate(cast.admin).bands

    assert [band.n for band in bands] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert bands[-1].label == "90–100%"


def test_owners_who_over_and_under_estimate_are_told_apart(calibrate, cast):
    hopeful = UserFactory(username="hopeful", team=cast.team_a)
    cautious = UserFactory(username="cautious", team=cast.team_a)
    for index in range(MIN_SAMPLE):
        closed(cast, won=index < 3, owner=hopeful, probability=90)
        closed(cast, won=index >= 3, owner=cautious, probability=10)
    closed(cast, won=True, owner=cast.owner, probability=50)

    owners = {c.key: c.verdict for c in calibrate(cast.admin).owners}

    assert owners == {
        str(hopeful.pk): "over",
        str(cautious.pk): "under",
        str(cast.owner.pk): "small",
    }


@pytest.mark.parametrize("compute", [probability_calibration, probability_calibration_from_log])
@pytest.mark.parametrize("at_step", [False, True])
def test_calibration_shows_only_visible_opportunities_in_one_query(
    compute, at_step, cast, django_assert_num_queries
):
    closed(cast, won=True, owner=cast.owner, probability=40)
    closed(cast, won=False, owner=cast.other, probability=40)
    step = None
    if at_step:  # reached through the services (the log), then the visits rebuilt
        step = cast.pipeline.steps.order_by("position").first()
        with clock(T0):
            for owner in (cast.owner, cast.other):
                opp = opportunity_create(
                    actor=cast.admin, owner=owner, title="Reached", pipeline=cast.pipeline
                )
                opportunity_close_won(opportunity=opp, actor=cast.admin)
        rebuild_step_visits()
    rebuild_deal_facts()

    with django_assert_num_queries(1):  # per band and owner, with the names
        result = compute(user=cast.owner, filters=InsightFilters(), step=step)

    assert result.overall.n == 1
    assert [c.label for c in result.owners] == [str(cast.owner.get_full_name() or cast.owner)]
