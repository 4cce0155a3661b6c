"""The stored facts of closed deals: what they hold, that they follow every committed change
made through the services (once per transaction), and that the analysis and calibration read
from them give exactly what the event-log walk gives."""

import importlib
import io
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.core.announce import announce
from opportuna.insights import analysis, facts
from opportuna.insights.analysis import (
    InsightFilters,
    behaviour_analysis,
    behaviour_analysis_from_log,
    probability_calibration,
    probability_calibration_from_log,
)
from opportuna.insights.facts import deal_facts_update, rebuild_deal_facts
from opportuna.insights.models import DealActivityCount, DealFacts
from opportuna.sales.models import Activity, Opportunity, Status
from opportuna.sales.services import (
    activity_log,
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_import_batch,
    opportunity_move,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_update,
)
from opportuna.sales.services.imports import ImportRow
from tests.factories import LostReasonFactory, OpportunityFactory, activity_type, make_cast

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def reason():
    return LostReasonFactory(name="Price")


@contextmanager
def counting_flushes() -> Iterator[list[list[int]]]:
    flushed: list[list[int]] = []
    with mock.patch.object(facts._pending, "flush", side_effect=flushed.append):
        yield flushed


def stored() -> dict[int, tuple]:
    """Every stored fact (without its timestamp; its owner last) and activity count, by
    opportunity."""
    counts: dict[int, dict[str, int]] = {}
    for opp, key, number in DealActivityCount.objects.values_list(
        "opportunity_id", "type__key", "count"
    ):
        counts.setdefault(opp, {})[key] = number
    return {
        row[0]: (*row[1:], counts.get(row[0], {}))
        for row in DealFacts.objects.values_list(
            "opportunity_id",
            "won",
            "closed_at",
            "visits_before_demo",
            "days_to_first_activity",
            "probability_before",
            "activity_profile",
            "owner_id",
        )
    }


def facts_of(opp) -> tuple | None:
    return stored().get(opp.pk)


def count_outcomes(opp=None) -> dict[tuple[int, str], tuple[bool, datetime]]:
    """The deal outcome and close time each stored activity count repeats, by (opportunity,
    type key); only `opp`'s if given."""
    counts = DealActivityCount.objects.all()
    if opp is not None:
        counts = counts.filter(opportunity_id=opp.pk)
    return {
        (pk, key): (won, closed_at)
        for pk, key, won, closed_at in counts.values_list(
            "opportunity_id", "type__key", "won", "closed_at"
        )
    }


# Following the services -----------------------------------------------------------------


def test_a_closed_deal_gets_its_facts_when_the_close_commits(cast, commit):
    opp = commit(
        opportunity_create,
        T0,
        actor=cast.owner,
        title="Deal",
        pipeline=cast.pipeline,
        probability=30,
    )
    for key, day in (("call", 2), ("visit", 3), ("visit", 4), ("demo", 5), ("visit", 6)):
        commit(
            activity_log,
            T0 + timedelta(days=day),
            opportunity=opp,
            actor=cast.owner,
            type=activity_type(key),
        )
    assert facts_of(opp) is None  # open: nothing stored
    closing = T0 + timedelta(days=50)
    commit(opportunity_close_won, closing, opportunity=opp, actor=cast.owner)

    # won, closed then, 2 visits before the first demo, first activity 2 days in, 30% held
    # 30 days before closing, the profile (type id:count, 3 meaning 3 or more); counts per type
    profile = ",".join(
        f"{pk}:{number}"
        for pk, number in sorted(
            [(activity_type("call").pk, 1), (activity_type("visit").pk, 3)]
            + [(activity_type("demo").pk, 1)]
        )
    )
    assert facts_of(opp) == (
        True,
        closing,
        2,
        2,
        30,
        profile,
        cast.owner.pk,
        {"call": 1, "visit": 3, "demo": 1},
    )


def test_facts_follow_a_reopen_and_the_next_close(cast, reason, commit):
    opp = commit(opportunity_create, T0, actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    demo = activity_type("demo")
    commit(activity_log, T0 + timedelta(days=1), opportunity=opp, actor=cast.owner, type=demo)
    commit(opportunity_close_won, T0 + timedelta(days=5), opportunity=opp, actor=cast.owner)
    assert facts_of(opp)[0] is True

    commit(opportunity_reopen, T0 + timedelta(days=6), opportunity=opp, actor=cast.owner)
    assert facts_of(opp) is None
    assert not DealActivityCount.objects.filter(opportunity_id=opp.pk).exists()
    assert behaviour_analysis(user=cast.admin, filters=InsightFilters()).baseline.n == 0

    call = activity_type("call")
    commit(activity_log, T0 + timedelta(days=7), opportunity=opp, actor=cast.owner, type=call)
    closing = T0 + timedelta(days=8)
    commit(opportunity_close_lost, closing, opportunity=opp, actor=cast.owner, reason=reason)
    won, closed_at, *_rest, counts = facts_of(opp)
    assert (won, closed_at, counts) == (False, closing, {"demo": 1, "call": 1})


def test_a_late_activity_dated_before_the_close_changes_the_facts(cast, commit):
    opp = commit(opportunity_create, T0, actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    commit(
        activity_log,
        T0 + timedelta(days=3),
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("demo"),
    )
    commit(opportunity_close_won, T0 + timedelta(days=10), opportunity=opp, actor=cast.owner)
    assert facts_of(opp)[2:4] == (0, 3)  # demo first, 3 days in

    # Logged after the close, about a visit done before the demo: it counts.
    commit(
        activity_log,
        T0 + timedelta(days=20),
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("visit"),
        done_at=T0 + timedelta(days=1),
    )
    assert facts_of(opp)[2:4] == (1, 1)
    demo = behaviour_analysis(user=cast.admin, filters=InsightFilters()).demo
    assert {row.key: row.n for row in demo.rows}["after_1"] == 1

    # Done after the close: it does not.
    commit(
        activity_log,
        T0 + timedelta(days=21),
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("call"),
    )
    assert facts_of(opp)[-1] == {"visit": 1, "demo": 1}


def test_activity_counts_repeat_the_outcome_and_close_time_through_reopen_and_close(
    cast, reason, commit
):
    opp = commit(opportunity_create, T0, actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    for key, day in (("call", 1), ("demo", 2)):
        commit(
            activity_log,
            T0 + timedelta(days=day),
            opportunity=opp,
            actor=cast.owner,
            type=activity_type(key),
        )
    won_at = T0 + timedelta(days=5)
    commit(opportunity_close_won, won_at, opportunity=opp, actor=cast.owner)
    assert count_outcomes(opp) == {
        (opp.pk, "call"): (True, won_at),
        (opp.pk, "demo"): (True, won_at),
    }

    commit(opportunity_reopen, T0 + timedelta(days=6), opportunity=opp, actor=cast.owner)
    assert count_outcomes(opp) == {}

    lost_at = T0 + timedelta(days=9)
    commit(opportunity_close_lost, lost_at, opportunity=opp, actor=cast.owner, reason=reason)
    assert set(count_outcomes(opp).values()) == {(False, lost_at)}

    # Logged after the close, done before it: a new count, with the deal's outcome too.
    commit(
        activity_log,
        T0 + timedelta(days=12),
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("visit"),
        done_at=T0 + timedelta(days=8),
    )
    assert count_outcomes(opp) == {
        (opp.pk, key): (False, lost_at) for key in ("call", "demo", "visit")
    }


def test_a_closed_deal_handed_to_another_owner_takes_its_facts_along(cast, commit, reason):
    opp = commit(opportunity_create, T0, actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    call = activity_type("call")
    commit(activity_log, T0 + timedelta(days=1), opportunity=opp, actor=cast.owner, type=call)
    counts = DealActivityCount.objects.filter(opportunity_id=opp.pk)
    commit(
        opportunity_close_lost,
        T0 + timedelta(days=3),
        opportunity=opp,
        actor=cast.owner,
        reason=reason,
    )
    before = facts_of(opp)
    assert before[-2] == cast.owner.pk
    assert list(counts.values_list("owner_id", flat=True)) == [cast.owner.pk]

    commit(
        opportunity_update,
        T0 + timedelta(days=4),
        opportunity=opp,
        actor=cast.admin,
        version=Opportunity.objects.get(pk=opp.pk).version,
        owner=cast.teammate,
    )
    assert facts_of(opp) == (*before[:-2], cast.teammate.pk, before[-1])
    assert list(counts.values_list("owner_id", flat=True)) == [cast.teammate.pk]
    owners = probability_calibration(user=cast.admin, filters=InsightFilters()).owners
    assert [(o.key, o.n) for o in owners] == [(str(cast.teammate.pk), 1)]

    # Any other edit leaves the facts as they are: not even computed again.
    with counting_flushes() as flushed:
        commit(
            opportunity_update,
            T0 + timedelta(days=5),
            opportunity=opp,
            actor=cast.admin,
            version=Opportunity.objects.get(pk=opp.pk).version,
            title="Deal, renamed",
        )
    assert flushed == []


def test_cancelled_and_open_deals_have_no_facts(cast, commit):
    opp = commit(opportunity_create, T0, actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    commit(opportunity_cancel, T0 + timedelta(days=2), opportunity=opp, actor=cast.owner)
    assert facts_of(opp) is None
    assert not DealFacts.objects.exists()


def test_a_deleted_opportunity_takes_its_facts_along(
    cast, commit, django_capture_on_commit_callbacks
):
    opp = commit(opportunity_create, T0, actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    commit(
        activity_log,
        T0 + timedelta(days=1),
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("call"),
    )
    commit(opportunity_close_won, T0 + timedelta(days=2), opportunity=opp, actor=cast.owner)
    assert facts_of(opp) is not None
    pk = opp.pk

    Opportunity.objects.filter(pk=pk).delete()
    # A deletion (no service deletes opportunities yet) is followed too.
    with counting_flushes() as flushed, django_capture_on_commit_callbacks(execute=True):
        announce("opportunity.deleted", actor_id=cast.admin.pk, object_id=pk, data={})
    deal_facts_update(flushed[0])

    assert flushed == [[pk]]
    assert not DealFacts.objects.exists() and not DealActivityCount.objects.exists()


@pytest.mark.parametrize(
    ("kind", "follows"),
    [
        ("opportunity.won", True),
        ("opportunity.lost", True),
        ("opportunity.reopened", True),
        ("opportunity.cancelled", True),
        ("opportunity.deleted", True),
        ("activity.logged", True),
        ("opportunity.activity_completed", True),
        ("opportunity.activity_planned", True),
        ("opportunity.updated", False),
        ("opportunity.moved", False),
        ("opportunity.probability", False),
        ("comment.added", False),
        ("client.updated", False),
    ],
)
def test_only_changes_that_can_alter_a_closed_deal_are_followed(
    kind, follows, django_capture_on_commit_callbacks
):
    with counting_flushes() as flushed, django_capture_on_commit_callbacks(execute=True):
        announce(kind, actor_id=None, object_id=7, data={})
    assert flushed == ([[7]] if follows else [])


def test_an_import_of_closed_deals_flushes_once(cast, django_capture_on_commit_callbacks):
    rows = [
        ImportRow(
            number=index,
            given=frozenset({"title", "status", "created_at", "closed_at", "probability"}),
            title=f"Imported {index}",
            status="won" if index % 2 else "lost",
            probability=10 * index,
            created_at=T0,
            closed_at=T0 + timedelta(days=40 + index),
            lost_reason="Price",
        )
        for index in range(1, 6)
    ]
    LostReasonFactory(name="Price")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = opportunity_import_batch(actor=cast.admin, rows=rows)
    assert all(row.action == "created" for row in report.rows)

    # The facts are written once after the commit, not once per imported row or event.
    ours = [
        c
        for c in callbacks
        if getattr(getattr(c, "__self__", None), "flush", None) is facts.deal_facts_update
    ]
    assert len(ours) == 1
    rows_stored = stored()
    assert len(rows_stored) == 5
    assert sorted(r[4] for r in rows_stored.values()) == [10, 20, 30, 40, 50]


# Reads equal the event-log walk -----------------------------------------------------------


def play(cast, commit, rng, reason, count):
    """`count` deals through the services at random: activities (some at the same instant,
    some before creation), moves, probabilities, then won, lost, cancelled or left open;
    some reopened and closed again, some with activities logged after closing."""
    steps = list(cast.pipeline.steps.order_by("position"))
    types = [activity_type(key) for key in ("visit", "demo", "call", "visit", "demo")]
    owners = [cast.owner, cast.teammate, cast.other]
    for index in range(count):
        at = T0 + timedelta(days=rng.randrange(300), hours=rng.randrange(24))
        opp = commit(
            opportunity_create,
            at,
            actor=cast.admin,
            owner=rng.choice(owners),
            title=f"Deal {index}",
            pipeline=cast.pipeline,
            probability=rng.choice([None, 5, 35, 80]),
        )
        last_done = at

        def log(at, done_at, opp=opp):
            commit(
                activity_log,
                at,
                opportunity=opp,
                actor=cast.admin,
                type=rng.choice(types),
                done_at=done_at,
            )

        for _ in range(rng.randrange(9)):
            at += timedelta(hours=rng.randrange(24 * 15))
            action = rng.random()
            if action < 0.6:
                same = rng.random() < 0.2
                last_done = last_done if same else at - timedelta(hours=rng.randrange(72))
                log(at, last_done)
            elif action < 0.8:
                commit(
                    opportunity_move, at, opportunity=opp, step=rng.choice(steps), actor=cast.admin
                )
            else:
                probability = rng.choice([None, rng.randrange(101)])
                commit(
                    opportunity_set_probability,
                    at,
                    opportunity=opp,
                    probability=probability,
                    actor=cast.admin,
                )
        for round_ in range(2):
            at += timedelta(hours=1 + rng.randrange(24 * 40))
            outcome = rng.choices(["won", "lost", "cancelled", "open"], [4, 4, 1, 1])[0]
            if outcome == "won":
                commit(opportunity_close_won, at, opportunity=opp, actor=cast.admin)
            elif outcome == "lost":
                commit(opportunity_close_lost, at, opportunity=opp, actor=cast.admin, reason=reason)
            elif outcome == "cancelled":
                commit(opportunity_cancel, at, opportunity=opp, actor=cast.admin)
            else:
                break
            closed_at = at
            if rng.random() < 0.3:  # a late activity, dated before or after the close
                at += timedelta(hours=rng.randrange(24 * 10))
                log(at, min(at, closed_at + timedelta(hours=rng.randrange(-96, 96))))
            if round_ == 1 or rng.random() < 0.7:
                break
            at += timedelta(hours=rng.randrange(24 * 5))
            commit(opportunity_reopen, at, opportunity=opp, actor=cast.admin)
        if rng.random() < 0.3:  # handed to another owner, closed or not
            at += timedelta(hours=1 + rng.randrange(24 * 5))
            commit(
                opportunity_update,
                at,
                opportunity=opp,
                actor=cast.admin,
                version=Opportunity.objects.get(pk=opp.pk).version,
                owner=rng.choice(owners),
            )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reads_from_the_facts_equal_the_event_log_walk(cast, commit, reason, seed):
    play(cast, commit, random.Random(seed), reason, count=30)
    assert DealFacts.objects.exists()
    middle = (T0 + timedelta(days=200)).date()
    cases = [
        (cast.admin, InsightFilters()),
        (cast.manager, InsightFilters()),
        (cast.admin, InsightFilters(start=middle)),
        (cast.admin, InsightFilters(end=middle, team=cast.team_a.pk)),
        (cast.manager, InsightFilters(owner=cast.teammate.pk)),
    ]
    for user, filters in cases:
        assert behaviour_analysis(user=user, filters=filters) == behaviour_analysis_from_log(
            user=user, filters=filters
        )
        assert probability_calibration(
            user=user, filters=filters
        ) == probability_calibration_from_log(user=user, filters=filters)
    account = Account.load()
    account.visibility = VisibilityPolicy.OWN
    account.save()
    assert behaviour_analysis(
        user=cast.owner, filters=InsightFilters()
    ) == behaviour_analysis_from_log(user=cast.owner, filters=InsightFilters())

    # What followed the changes is what a rebuild from scratch writes, and every activity
    # count repeats its deal's outcome and close time.
    followed, followed_outcomes = stored(), count_outcomes()
    assert rebuild_deal_facts() == len(followed)
    assert stored() == followed
    assert count_outcomes() == followed_outcomes
    assert followed_outcomes
    assert all(outcome == followed[pk][:2] for (pk, _key), outcome in followed_outcomes.items())


@pytest.mark.parametrize(
    "view",
    ["admin", "manager", "manager, one owner", "admin, one team"],
)
def test_deals_narrowed_by_owners_only_are_read_from_the_facts_alone(cast, commit, reason, view):
    user = cast.manager if view.startswith("manager") else cast.admin
    filters = InsightFilters(
        owner=cast.teammate.pk if "owner" in view else None,
        team=cast.team_a.pk if "team" in view else None,
    )
    play(cast, commit, random.Random(4), reason, count=30)
    DealFacts.objects.filter(
        pk__in=list(DealFacts.objects.order_by("pk").values_list("pk", flat=True)[:12])
    ).delete()  # as after a load without the services
    closed = analysis.closed_opportunities(user=user, filters=filters)
    assert closed.exists() and closed.count() < Opportunity.objects.count()
    with mock.patch.object(analysis, "_pattern_rows", wraps=analysis._pattern_rows) as rows:
        alone = behaviour_analysis(user=user, filters=filters)
        assert rows.call_args.kwargs["facts"] is not None
        # The same deals joined with their facts, as a pipeline or a date brings in.
        with mock.patch.object(analysis, "_deal_facts", return_value=None):
            joined = behaviour_analysis(user=user, filters=filters)
        assert rows.call_args.kwargs["facts"] is None
    assert alone == joined  # deals without facts still count, as deals without activities
    assert alone.baseline.n == closed.count()
    assert alone.baseline.won == closed.filter(status=Status.WON).count()

    # The calibration too: the facts alone when they hold every deal of the view...
    DealFacts.objects.all().delete()
    rebuild_deal_facts()
    with mock.patch.object(
        analysis, "_calibration_rows", wraps=analysis._calibration_rows
    ) as joins:
        with CaptureQueriesContext(connection) as queries:
            alone = probability_calibration(user=user, filters=filters)
        assert len(queries) == 1 and not joins.called
        assert alone == probability_calibration_from_log(user=user, filters=filters)
        # ... and joined with the deals when some have none.
        joins.reset_mock()
        missing = closed.order_by("pk").values("pk")[:1]
        DealFacts.objects.filter(opportunity__in=missing).delete()
        with CaptureQueriesContext(connection) as queries:
            fallen_back = probability_calibration(user=user, filters=filters)
        assert len(queries) == 2 and joins.called
    with mock.patch.object(analysis, "_deal_facts", return_value=None):
        assert fallen_back == probability_calibration(user=user, filters=filters)
    assert fallen_back.overall.n == alone.overall.n == closed.count()


def test_a_pipeline_or_a_date_joins_the_deals_with_their_facts(cast):
    assert analysis._deal_facts(user=cast.admin, filters=InsightFilters()) is not None
    for filters in (
        InsightFilters(pipeline=cast.pipeline.pk),
        InsightFilters(start=T0.date()),
        InsightFilters(end=T0.date()),
    ):
        assert analysis._deal_facts(user=cast.admin, filters=filters) is None


# Rebuilding ---------------------------------------------------------------------------------


def closed_by_hand(cast, *, won):
    """A closed deal written straight into the database, as a bulk load would."""
    opp = OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        status=Status.WON if won else Status.LOST,
        won_amount=100_00 if won else None,
        lost_reason=None if won else LostReasonFactory(name="Price"),
        closed_at=T0 + timedelta(days=30),
        probability=60,
    )
    return opp


def test_rebuild_writes_the_facts_of_rows_written_without_the_services(cast):
    won = closed_by_hand(cast, won=True)
    lost = closed_by_hand(cast, won=False)
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)  # open
    assert not DealFacts.objects.exists()

    assert rebuild_deal_facts() == 2

    assert set(stored()) == {won.pk, lost.pk}
    assert rebuild_deal_facts() == 2  # again: the same, not twice as many
    assert DealFacts.objects.count() == 2


def test_rebuild_gives_the_activity_counts_their_deals_outcome_and_close_time(cast):
    won = closed_by_hand(cast, won=True)
    lost = closed_by_hand(cast, won=False)
    for opp in (won, lost):
        Activity.objects.create(
            opportunity=opp, type=activity_type("call"), user=cast.owner, done_at=T0
        )
    rebuild_deal_facts()

    closing = T0 + timedelta(days=30)
    assert count_outcomes() == {
        (won.pk, "call"): (True, closing),
        (lost.pk, "call"): (False, closing),
    }


def test_the_migration_fills_the_counts_outcome_and_close_time_from_the_facts(cast):
    won = closed_by_hand(cast, won=True)
    Activity.objects.create(
        opportunity=won, type=activity_type("call"), user=cast.owner, done_at=T0
    )
    rebuild_deal_facts()
    written = count_outcomes()
    # As the rows stood before the migration: nothing known of the deal (wrong values here,
    # as the columns are not nullable any more).
    DealActivityCount.objects.update(won=False, closed_at=T0)

    migration = importlib.import_module("opportuna.insights.migrations.0006_activities_calibration")
    with connection.cursor() as cursor:
        editor = SimpleNamespace(connection=connection, execute=cursor.execute)
        migration.fill_outcomes(django_apps, editor)

    assert count_outcomes() == written == {(won.pk, "call"): (True, T0 + timedelta(days=30))}


def test_the_migration_gives_the_counts_their_deals_owner(cast):
    won = closed_by_hand(cast, won=True)
    Activity.objects.create(
        opportunity=won, type=activity_type("call"), user=cast.teammate, done_at=T0
    )
    rebuild_deal_facts()
    assert list(DealActivityCount.objects.values_list("owner_id", flat=True)) == [cast.owner.pk]
    DealActivityCount.objects.update(owner=None)  # as the rows stood before the migration

    migration = importlib.import_module("opportuna.insights.migrations.0014_activity_count_owner")
    migration.fill(django_apps, None)

    assert list(DealActivityCount.objects.values_list("owner_id", flat=True)) == [cast.owner.pk]


def test_updating_any_number_of_deals_takes_the_same_queries(cast, django_assert_num_queries):
    ids = [closed_by_hand(cast, won=index % 2 == 0).pk for index in range(40)]
    # activity types, savepoint, lock the opportunities, delete counts, delete facts, insert
    # counts, insert facts, release savepoint
    with django_assert_num_queries(8):
        deal_facts_update(ids[:1])
    with django_assert_num_queries(8):
        deal_facts_update(ids)
    assert len(stored()) == 40
    with django_assert_num_queries(0):
        deal_facts_update([])


def test_the_command_rebuilds_and_says_how_many(cast):
    closed_by_hand(cast, won=True)
    out = io.StringIO()

    call_command("rebuild_insights", stdout=out)

    text = out.getvalue()
    assert "1 closed deals, 0 activity counts" in text
    assert "Forecast openings" in text
    assert "Step visits" in text
    assert DealFacts.objects.count() == 1


def test_the_command_has_help(capsys):
    with pytest.raises(SystemExit):
        call_command("rebuild_insights", "--help")
    assert "behaviour analysis" in capsys.readouterr().out
