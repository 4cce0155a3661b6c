"""Stored month openings: forecast versus actual gives what the event-log replay gives."""

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.apps import apps as django_apps
from django.db import models, transaction
from django.db.models import Count, Sum, Value
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opportuna.insights.analysis import InsightFilters
from opportuna.insights.history import (
    ForecastAccuracy,
    MonthAccuracy,
    forecast_accuracy,
    opportunities_as_of,
    pipeline_as_of,
)
from opportuna.insights.models import ForecastMonth, ForecastOpening
from opportuna.insights.openings import (
    ensure_forecast_openings,
    forget_openings_since,
    rebuild_forecast_openings,
)
from opportuna.insights.periods import (
    DatePeriodKey,
    add_months,
    datetime_period_key,
    local_day_range,
    local_midnight,
    period_key,
)
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import OPEN_STATUSES, Opportunity, Status
from opportuna.sales.selectors import visible_opportunities
from opportuna.sales.services import (
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_import_batch,
    opportunity_move,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_standby,
    opportunity_update,
)
from opportuna.sales.services.imports import ImportRow
from tests.factories import LostReasonFactory, make_cast

pytestmark = pytest.mark.django_db

START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)


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


# The reference: forecast versus actual as it was computed before the openings were stored,
# replaying the event log for every month on every call ---------------------------------


def forecast_accuracy_from_log(
    *, user, filters: InsightFilters, months: int, today: date
) -> ForecastAccuracy:
    current = today.replace(day=1)
    firsts = [add_months(current, -back) for back in range(months, -1, -1)]
    branches = []
    for first in firsts:
        at = local_midnight(first)
        key = period_key(first, "month")
        branches.append(
            opportunities_as_of(user=user, at=at, filters=filters)
            .filter(models.Q(status__in=OPEN_STATUSES) | models.Q(updated_at__gt=at - SLACK))
            .annotate(closing_month=DatePeriodKey("expected_close_date_then", period="month"))
            .filter(closing_month=key)
            .filter(status_then__in=OPEN_STATUSES)
            .annotate(month=Value(key, output_field=models.CharField()))
            .values("month")
            .annotate(
                opp_count=Count("pk"),
                amount_sum=Sum("amount_then", default=0),
                weighted_sum=Sum("weighted_then", default=0),
            )
            .order_by()
        )
    union = branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]
    said = {row["month"]: row for row in union}
    end = add_months(current, 1) - timedelta(days=1)
    first_instant, after_end = local_day_range(firsts[0], end)
    won = {
        row["bucket"]: row
        for row in filters.narrow(visible_opportunities(user))
        .filter(status=Status.WON, closed_at__gte=first_instant, closed_at__lt=after_end)
        .annotate(bucket=datetime_period_key("closed_at", period="month", start=firsts[0], end=end))
        .values("bucket")
        .annotate(won_count=Count("pk"), won_sum=Sum("won_amount", default=0))
        .order_by()
    }
    open_now = (
        filters.narrow(visible_opportunities(user))
        .open()
        .filter(expected_close_date__gte=current, expected_close_date__lte=end)
        .with_weighted_amount()
        .aggregate(open_weighted=Sum("weighted", default=0))
    )
    rows = []
    for first in firsts:
        key = period_key(first, "month")
        said_row: Mapping[str, Any] = said.get(key) or {}
        won_row: Mapping[str, Any] = won.get(key) or {}
        rows.append(
            MonthAccuracy(
                key=key,
                first_day=first,
                open_count=int(said_row.get("opp_count") or 0),
                open_amount=int(said_row.get("amount_sum") or 0),
                forecast=int(said_row.get("weighted_sum") or 0),
                won_count=int(won_row.get("won_count") or 0),
                won=int(won_row.get("won_sum") or 0),
                in_progress=first == current,
            )
        )
    return ForecastAccuracy(rows, rows[-1].won + int(open_now["open_weighted"]))


SLACK = timedelta(seconds=1)


# Property: stored openings, computed whenever, say what the replay says at the end ------

operations = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "create",
                "create",
                "move",
                "probability",
                "amount",
                "close_date",
                "no_close_date",
                "won",
                "lost",
                "cancel",
                "reopen",
                "standby",
                "look",  # someone opens forecast versus actual: months get stored
            ]
        ),
        st.integers(min_value=0, max_value=5),  # which opportunity / step / owner
        st.integers(min_value=0, max_value=100),  # a probability, an amount, a day
        st.integers(min_value=1, max_value=60 * 24 * 25),  # minutes until the next call
    ),
    max_size=16,
)


def play(cast, reason, operation, index, number, opportunities):
    """One service call at the mocked time, as a user would make it; refused ones change
    nothing."""
    kind = operation
    steps = list(cast.pipeline.steps.order_by("position"))
    today = timezone.localdate()
    if kind == "look":
        forecast_accuracy(user=cast.admin, filters=InsightFilters(), months=3, today=today)
        return
    if kind == "create" or not opportunities:
        owner = cast.other if index % 3 == 2 else cast.owner
        opportunities.append(
            opportunity_create(
                actor=owner,
                title=f"Deal {len(opportunities)}",
                pipeline=cast.pipeline,
                step=steps[index % len(steps)],
                amount=number * 100_01,
                probability=number if index % 2 else None,
                expected_close_date=today + timedelta(days=number - 10),
            )
        )
        return
    opp = opportunities[index % len(opportunities)]
    actor = cast.admin
    version = Opportunity.objects.values_list("version", flat=True).get(pk=opp.pk)
    if kind == "move":
        opportunity_move(opportunity=opp.pk, step=steps[number % len(steps)], actor=actor)
    elif kind == "probability":
        opportunity_set_probability(opportunity=opp.pk, probability=number, actor=actor)
    elif kind == "amount":
        opportunity_update(opportunity=opp.pk, actor=actor, version=version, amount=number * 7)
    elif kind == "close_date":
        day = today + timedelta(days=number - 50)
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
        opportunity_standby(opportunity=opp.pk, actor=actor, until=today + timedelta(days=3))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=operations)
def test_stored_openings_give_the_numbers_the_event_log_gives(cast, calls):
    with transaction.atomic():
        reason = LostReasonFactory(name="Price")
        opportunities: list[Opportunity] = []
        at = START
        for operation, index, number, minutes in calls:
            with clock(at), suppress(SalesRuleError):
                play(cast, reason, operation, index, number, opportunities)
            at += timedelta(minutes=minutes)

        today = timezone.localtime(at).date()
        views = [
            (cast.admin, InsightFilters()),
            (cast.other, InsightFilters()),
            (cast.manager, InsightFilters()),
            (cast.admin, InsightFilters(owner=cast.owner.pk)),
            (cast.admin, InsightFilters(team=cast.team_b.pk)),
            (cast.manager, InsightFilters(pipeline=cast.pipeline.pk)),
        ]
        for user, filters in views:
            expected = forecast_accuracy_from_log(
                user=user, filters=filters, months=12, today=today
            )
            assert forecast_accuracy(user=user, filters=filters, months=12, today=today) == (
                expected
            )
        transaction.set_rollback(True)


# Which months are stored, and when -------------------------------------------------------


def deal(cast, *, amount=1000_00, probability=50, closing=date(2024, 3, 10), owner=None):
    return opportunity_create(
        actor=owner or cast.owner,
        title="Deal",
        pipeline=cast.pipeline,
        amount=amount,
        probability=probability,
        expected_close_date=closing,
    )


def stored() -> list[tuple[date, int, int, int]]:
    return list(
        ForecastOpening.objects.order_by("month", "opportunity_id").values_list(
            "month", "opportunity_id", "amount", "probability"
        )
    )


def test_a_month_stores_what_was_open_and_closing_in_it_at_its_first_instant(cast):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        march = deal(cast, closing=date(2024, 3, 10))
        april = deal(cast, closing=date(2024, 4, 2))
        won = deal(cast, closing=date(2024, 3, 20))
        opportunity_close_won(opportunity=won, actor=cast.owner)
    with clock(datetime(2024, 3, 5, 10, tzinfo=UTC)):
        opportunity_set_probability(opportunity=march, probability=90, actor=cast.owner)

    assert ensure_forecast_openings([date(2024, 3, 1)]) == 1

    assert stored() == [(date(2024, 3, 1), march.pk, 1000_00, 50)]
    assert list(ForecastMonth.objects.values_list("month", flat=True)) == [date(2024, 3, 1)]
    assert april.pk not in [row[1] for row in stored()]


def test_only_missing_months_are_computed(cast):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        deal(cast)
    assert ensure_forecast_openings([date(2024, 3, 1)]) == 1

    assert ensure_forecast_openings([date(2024, 2, 1), date(2024, 3, 1)]) == 1
    assert ensure_forecast_openings([date(2024, 2, 1), date(2024, 3, 1)]) == 0


def test_storing_months_that_are_all_stored_takes_one_query(cast, django_assert_num_queries):
    ensure_forecast_openings([date(2024, 2, 1), date(2024, 3, 1)])

    with django_assert_num_queries(1):  # which of the months are stored
        ensure_forecast_openings([date(2024, 2, 1), date(2024, 3, 1)])


def test_a_month_that_has_not_begun_is_refused(cast):
    next_month = add_months(timezone.localdate().replace(day=1), 1)

    with pytest.raises(ValueError, match="has not begun"):
        ensure_forecast_openings([next_month])
    with pytest.raises(ValueError, match="first day"):
        ensure_forecast_openings([date(2024, 3, 2)])


def test_changes_after_a_month_began_leave_its_opening_as_it_was(cast):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        opp = deal(cast, closing=date(2024, 3, 10))
    with clock(datetime(2024, 3, 2, 10, tzinfo=UTC)):
        ensure_forecast_openings([date(2024, 3, 1)])  # the current month, first needed
        opportunity_set_probability(opportunity=opp, probability=80, actor=cast.owner)
    with clock(datetime(2024, 3, 20, 10, tzinfo=UTC)):
        opportunity_close_won(opportunity=opp, actor=cast.owner, won_amount=1500_00)

    accuracy = forecast_accuracy(
        user=cast.admin, filters=InsightFilters(), months=1, today=date(2024, 4, 10)
    )

    march = accuracy.months[0]
    assert (march.key, march.open_count, march.forecast, march.won) == (
        "2024-03",
        1,
        500_00,
        1500_00,
    )
    assert accuracy == forecast_accuracy_from_log(
        user=cast.admin, filters=InsightFilters(), months=1, today=date(2024, 4, 10)
    )


def test_stored_openings_follow_their_opportunity_to_another_owner(
    cast, django_capture_on_commit_callbacks
):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        moved = deal(cast, closing=date(2024, 3, 10))
        kept = deal(cast, amount=300_00, closing=date(2024, 3, 12))
    ensure_forecast_openings([date(2024, 3, 1)])
    today = date(2024, 4, 10)

    def opening(user):
        accuracy = forecast_accuracy(user=user, filters=InsightFilters(), months=1, today=today)
        assert accuracy == forecast_accuracy_from_log(
            user=user, filters=InsightFilters(), months=1, today=today
        )
        return accuracy.months[0].open_amount

    assert (opening(cast.manager), opening(cast.other)) == (1300_00, 0)
    with (
        clock(datetime(2024, 3, 15, 10, tzinfo=UTC)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        version = Opportunity.objects.get(pk=moved.pk).version
        opportunity_update(opportunity=moved, actor=cast.admin, version=version, owner=cast.other)

    owners = dict(ForecastOpening.objects.values_list("opportunity_id", "owner_id"))
    assert owners == {moved.pk: cast.other.pk, kept.pk: cast.owner.pk}
    # Who may see it, and the owner filter, are today's.
    assert (opening(cast.manager), opening(cast.other)) == (300_00, 1000_00)
    only_other = InsightFilters(owner=cast.other.pk)
    assert forecast_accuracy(
        user=cast.admin, filters=only_other, months=1, today=today
    ) == forecast_accuracy_from_log(user=cast.admin, filters=only_other, months=1, today=today)


def test_the_migration_gives_the_openings_their_opportunitys_owner(cast):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        mine = deal(cast, closing=date(2024, 3, 10))
        theirs = deal(cast, closing=date(2024, 3, 10), owner=cast.other)
    ensure_forecast_openings([date(2024, 3, 1)])
    ForecastOpening.objects.update(owner=None)  # as the rows stood before the migration

    migration = importlib.import_module("opportuna.insights.migrations.0015_forecast_opening_owner")
    migration.fill(django_apps, None)

    assert dict(ForecastOpening.objects.values_list("opportunity_id", "owner_id")) == {
        mine.pk: cast.owner.pk,
        theirs.pk: cast.other.pk,
    }


def test_rebuild_stores_every_month_from_the_first_with_data_to_this_one(cast):
    with clock(datetime(2024, 1, 20, 10, tzinfo=UTC)):
        first = deal(cast, closing=date(2024, 2, 10))
        deal(cast, closing=date(2024, 3, 10), probability=20)
    ForecastMonth.objects.create(month=date(2023, 5, 1))  # stale: dropped by the rebuild

    written = rebuild_forecast_openings()

    months = list(ForecastMonth.objects.values_list("month", flat=True))
    this_month = timezone.localdate().replace(day=1)
    assert months[0] == date(2024, 1, 1)
    assert months[-1] == this_month
    assert len(months) == len(set(months))
    assert months == [add_months(date(2024, 1, 1), n) for n in range(len(months))]
    assert written == 2
    assert stored()[0] == (date(2024, 2, 1), first.pk, 1000_00, 50)


def test_rebuild_of_an_empty_database_stores_nothing(cast):
    ForecastMonth.objects.create(month=date(2023, 5, 1))

    assert rebuild_forecast_openings() == 0
    assert not ForecastMonth.objects.exists()


def test_a_back_dated_creation_shows_after_the_rebuild(cast):
    """What the module promises for back-dated imports: stale until the rebuild."""
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        deal(cast, closing=date(2024, 3, 10))
    forecast_accuracy(user=cast.admin, filters=InsightFilters(), months=1, today=date(2024, 3, 5))
    with clock(datetime(2024, 2, 12, 10, tzinfo=UTC)):  # written now, dated in the past
        deal(cast, closing=date(2024, 3, 12), amount=3000_00)

    def march_forecast():
        return (
            forecast_accuracy(
                user=cast.admin, filters=InsightFilters(), months=1, today=date(2024, 3, 5)
            )
            .months[-1]
            .forecast
        )

    assert march_forecast() == 500_00
    rebuild_forecast_openings()
    assert march_forecast() == 500_00 + 1500_00


def test_a_back_dated_import_drops_the_months_it_changed_and_they_are_computed_again(cast):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        deal(cast, closing=date(2024, 3, 10))
    ensure_forecast_openings([date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)])
    row = ImportRow(
        number=2,
        given=frozenset({"title", "amount", "probability", "expected_close_date", "created_at"}),
        title="Imported",
        amount=3000_00,
        probability=50,
        expected_close_date=date(2024, 3, 12),
        created_at=datetime(2024, 2, 12, 10, tzinfo=UTC),
    )
    report = opportunity_import_batch(actor=cast.admin, rows=[row])
    assert report.count("created") == 1
    # January and February began before the import's earliest time: kept; March is gone.
    assert sorted(ForecastMonth.objects.values_list("month", flat=True)) == [
        date(2024, 1, 1),
        date(2024, 2, 1),
    ]
    accuracy = forecast_accuracy(
        user=cast.admin, filters=InsightFilters(), months=1, today=date(2024, 3, 5)
    )
    assert accuracy.months[-1].forecast == 500_00 + 1500_00


def test_forgetting_since_an_instant_drops_the_months_that_began_at_or_after_it(cast):
    with clock(datetime(2024, 1, 10, 10, tzinfo=UTC)):
        deal(cast)
    months = [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)]
    ensure_forecast_openings(months)
    assert forget_openings_since(timezone.now()) == 0  # nothing began since now
    assert forget_openings_since(local_midnight(date(2024, 2, 1))) == 2
    assert list(ForecastMonth.objects.values_list("month", flat=True)) == [date(2024, 1, 1)]
    assert not ForecastOpening.objects.filter(month__gte=date(2024, 2, 1)).exists()


def test_the_opening_is_the_pipeline_of_that_instant_closing_in_the_month(cast):
    with clock(datetime(2024, 2, 10, 10, tzinfo=UTC)):
        for n in range(4):
            deal(cast, amount=(n + 1) * 333_33, probability=n * 25, closing=date(2024, 3, n + 1))
        deal(cast, closing=date(2024, 2, 28))
    ensure_forecast_openings([date(2024, 3, 1)])

    pipeline = pipeline_as_of(user=cast.admin, at=local_midnight(date(2024, 3, 1)))
    expected = sorted(
        (date(2024, 3, 1), pk, amount, probability)
        for pk, amount, probability, closing in pipeline.values_list(
            "pk", "amount_then", "probability_then", "expected_close_date_then"
        )
        if closing.month == 3
    )
    assert stored() == expected
    assert len(expected) == 4
