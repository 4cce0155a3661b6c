"""The pipeline as it was on a past date, rebuilt from the event log, and forecast-versus-actual.

Every change of an opportunity's status, step, probability, amount or expected close date is
an event whose `changes` hold [before, after]. So its value at an instant is the "before" of
the first change after that instant, or, when nothing changed since, its value today: one
correlated subquery per field, evaluated by the database (`value_as_of`). An opportunity
belongs to the pipeline at an instant when it existed (created by then) and was open then.
Times are the events' times: a closing recorded on the 10th with a close date of the 3rd
was still open in the pipeline as it looked on the 5th.

The snapshot page (`pipeline_snapshot`) sums the same pipeline without asking the log where
the stored step visits (`StepVisit`) already tell whether an opportunity was open then and on
which step; `pipeline_as_of`, the plain replay, stays the reference its tests compare with.

Forecast versus actual needs the pipeline at the start of each month (`month_opening`);
replaying the log for a year of months on every request is slow on a large database, so each
month's opening is stored once (`insights.openings`) and read from there.

Owner and team filters, and who may see what, are today's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import median
from typing import Any

from django.db import models
from django.db.models import Case, Count, Exists, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.insights.analysis import InsightFilters
from opportuna.insights.models import ForecastMonth, ForecastOpening, StepVisit
from opportuna.insights.periods import (
    DatePeriodKey,
    add_months,
    local_midnight,
    period_key,
)
from opportuna.insights.selectors import period_sums
from opportuna.sales.models import (
    OPEN_STATUSES,
    Opportunity,
    OpportunityEvent,
    OpportunityQuerySet,
    Step,
    weighted_expression,
)
from opportuna.sales.selectors import visible_opportunities

# The fields the pipeline needs, as the event log names them, and their column types.
AS_OF_FIELDS: dict[str, models.Field[Any, Any]] = {
    "status": models.CharField(),
    "step": models.IntegerField(),
    "probability": models.IntegerField(),
    "amount": models.BigIntegerField(),
    "expected_close_date": models.DateField(),
}
MAX_MONTHS = 36


# Every service saves the opportunity (stamping `updated_at`) before it records the change,
# in the same transaction, so no tracked change is later than `updated_at` by more than the
# moment between the two. An opportunity not updated since `at` (less this slack) still has
# the values it had then, and the event log need not be read for it.
SLACK = timedelta(seconds=1)


def value_as_of(field: str, at: datetime) -> Any:
    """The outer opportunity's `field` as it was at `at`, as an SQL expression.

    The "before" of its first change after `at`, else its current value; opportunities not
    updated since `at` skip the lookup (see SLACK).
    """
    output = AS_OF_FIELDS[field]
    column = Opportunity._meta.get_field(field).attname  # type: ignore[union-attr]
    return Case(
        When(updated_at__lte=at - SLACK, then=F(column)),
        default=_replayed(field, at),
        output_field=output,
    )


def _replayed(field: str, at: datetime) -> Any:
    """`value_as_of` without the SLACK shortcut: always read from the log. Values travel as
    text so a JSON null (no expected close date then) stays distinct from "no later change"."""
    output = AS_OF_FIELDS[field]
    column = Opportunity._meta.get_field(field).attname  # type: ignore[union-attr]
    first_change_after = (
        OpportunityEvent.objects.filter(opportunity=OuterRef("pk"), at__gt=at)
        .filter(changes__has_key=field)  # written for the history indexes: see ChangesKey
        # By time alone, so the (opportunity, at) index hands the rows over in order and the
        # first match ends the scan; the services never change a field twice in one instant.
        .order_by("at")
        .annotate(
            before=Coalesce(KT(f"changes__{field}__0"), Value(""), output_field=models.TextField())
        )
        .values("before")[:1]
    )
    as_text = NullIf(
        Coalesce(
            Subquery(first_change_after, output_field=models.TextField()),
            Cast(F(column), models.TextField()),
            output_field=models.TextField(),
        ),
        Value(""),
        output_field=models.TextField(),
    )
    return as_text if isinstance(output, models.CharField) else Cast(as_text, output)


def as_of(queryset: OpportunityQuerySet, at: datetime) -> OpportunityQuerySet:
    """The opportunities of `queryset` that existed at `at`, annotated with what they were:
    `status_then`, `step_then`, `probability_then`, `amount_then`, `expected_close_date_then`
    and `weighted_then` (amount x probability / 100, rounded half-up like the forecast)."""
    return (
        queryset.filter(created_at__lte=at)
        .order_by()
        .annotate(**{f"{name}_then": value_as_of(name, at) for name in AS_OF_FIELDS})
        .annotate(weighted_then=weighted_expression("amount_then", "probability_then"))
    )


def opportunities_as_of(
    *, user: User, at: datetime, filters: InsightFilters | None = None
) -> OpportunityQuerySet:
    """The opportunities `user` may see that existed at `at`, annotated as `as_of` does."""
    queryset = visible_opportunities(user)
    if filters is not None:
        queryset = filters.narrow(queryset)
    return as_of(queryset, at)


def month_opening(queryset: OpportunityQuerySet, first: date) -> OpportunityQuerySet:
    """What the forecast said at the first instant of the month starting `first`: the
    opportunities of `queryset` open then whose expected close date (then) fell in the month,
    annotated as `as_of` does."""
    at = local_midnight(first)
    return (
        as_of(queryset, at)
        # Closed now and not updated since: closed then too. Cheap, and spares the log.
        .filter(Q(status__in=OPEN_STATUSES) | Q(updated_at__gt=at - SLACK))
        # The month first: one lookup per opportunity, and the status only for the few
        # expected to close in it.
        .annotate(closing_month=DatePeriodKey("expected_close_date_then", period="month"))
        .filter(closing_month=period_key(first, "month"))
        .filter(status_then__in=OPEN_STATUSES)
    )


def pipeline_as_of(
    *, user: User, at: datetime, filters: InsightFilters | None = None
) -> OpportunityQuerySet:
    """The pipeline at `at`: the opportunities of `opportunities_as_of` that were open then."""
    return (
        opportunities_as_of(user=user, at=at, filters=filters)
        # Closed now and not updated since: closed then too. Cheap, and spares the log.
        .filter(Q(status__in=OPEN_STATUSES) | Q(updated_at__gt=at - SLACK))
        .filter(status_then__in=OPEN_STATUSES)
    )


# The pipeline on a date, next to today's ------------------------------------------------


@dataclass(frozen=True)
class StepTotals:
    count: int = 0
    amount: int = 0
    weighted: int = 0


@dataclass(frozen=True)
class SnapshotRow:
    step: Step | None  # None: a step deleted since (its id only in the log)
    step_id: int
    then: StepTotals
    now: StepTotals

    @property
    def label(self) -> str:
        if self.step is None:
            return f"#{self.step_id}"
        return f"{self.step.pipeline.name} / {self.step.name}"


@dataclass(frozen=True)
class PipelineSnapshot:
    at: datetime
    rows: list[SnapshotRow]
    then: StepTotals
    now: StepTotals


def _totals(values: Mapping[str, Any]) -> StepTotals:
    return StepTotals(
        count=int(values["opp_count"]),
        amount=int(values["amount_sum"]),
        weighted=int(values["weighted_sum"]),
    )


def _sum_totals(rows: list[StepTotals]) -> StepTotals:
    return StepTotals(
        sum(r.count for r in rows), sum(r.amount for r in rows), sum(r.weighted for r in rows)
    )


def _stay_step(at: datetime) -> Subquery:
    """The step of the outer opportunity's stay (`StepVisit`) that covers `at`, as an SQL
    expression; NULL when no stay covers it (closed then, not created yet, reopened and not
    moved since, or unknown to the visits)."""
    covering = (
        StepVisit.objects.filter(opportunity=OuterRef("pk"), entered_at__lte=at)
        .filter(Q(left_at__isnull=True) | Q(left_at__gt=at))
        .values("step_id")[:1]
    )
    return Subquery(covering, output_field=models.IntegerField())


def _snapshot_then(*, user: User, at: datetime, filters: InsightFilters) -> dict[int, StepTotals]:
    """The pipeline at `at` per step, as `pipeline_as_of` sums it; one query, the UNION ALL
    of two parts that each read only the rows they need.

    Not updated since `at` (see SLACK): open now means open then, with today's values; the
    open ones' board index (`opp_board_idx`: step, times, amount, probability) sums them
    without reading the table. Updated since (a range of `opp_updated_idx`): whether it was
    open then, and on which step, is read from the stay that covers `at` (`StepVisit`, one
    narrow row: a stay starts with the event that enters its step and ends with the next
    move or close, so one covers `at` exactly when the log says the opportunity was open on
    that step then), and from the log only when none does (closed then, reopened and not
    moved since, which enters no step, or unknown to the visits); amount and probability
    from the log. Those closed then fall in a NULL step, left out here.
    """
    since = at - SLACK
    existing = filters.narrow(visible_opportunities(user)).filter(created_at__lte=at).order_by()
    unchanged = (
        # Open: `next_action_at` is set exactly on open opportunities (a check constraint).
        # Said by it alone, not by `open()`, whose status test would send both databases to
        # the table: the board's partial index, read alone here, holds no status.
        existing.filter(next_action_at__isnull=False, updated_at__lte=since)
        .values(step_then=F("step_id"))
        .annotate(
            opp_count=Count("*"),
            amount_sum=Sum("amount", default=0),
            weighted_sum=Sum(weighted_expression(), default=0),
        )
    )
    open_then = Case(
        When(Q(status_then__in=OPEN_STATUSES), then=_replayed("step", at)),
        default=None,
        output_field=models.IntegerField(),
    )
    changed = (
        existing.filter(updated_at__gt=since)
        .alias(status_then=_replayed("status", at))
        .annotate(
            step_then=Coalesce(_stay_step(at), open_then, output_field=models.IntegerField()),
            amount_then=_replayed("amount", at),
            probability_then=_replayed("probability", at),
        )
        .values("step_then")
        .annotate(
            opp_count=Count("*"),
            amount_sum=Sum("amount_then", default=0),
            weighted_sum=Sum(weighted_expression("amount_then", "probability_then"), default=0),
        )
    )
    totals: dict[int, StepTotals] = {}
    for row in unchanged.union(changed, all=True):
        step = row["step_then"]
        if step is None:
            continue
        found = _totals(row)
        before = totals.get(step)
        totals[step] = _sum_totals([before, found]) if before else found
    return totals


def pipeline_snapshot(*, user: User, at: datetime, filters: InsightFilters) -> PipelineSnapshot:
    """Open opportunities per step at `at` and today (count, amount, weighted); 3 queries."""
    steps = {
        s.pk: s
        for s in Step.objects.select_related("pipeline").order_by(
            "pipeline__position", "pipeline__name", "position", "pk"
        )
    }
    then = _snapshot_then(user=user, at=at, filters=filters)
    now = {
        row["step_id"]: _totals(row)
        # Open, said as above: the board's partial index holds every column read.
        for row in filters.narrow(visible_opportunities(user))
        .filter(next_action_at__isnull=False)
        .order_by()
        .values("step_id")
        .annotate(
            opp_count=Count("*"),
            amount_sum=Sum("amount", default=0),
            weighted_sum=Sum(weighted_expression(), default=0),
        )
    }
    order = list(steps)
    order += sorted((set(then) | set(now)) - set(steps))
    rows = [
        SnapshotRow(steps.get(pk), pk, then.get(pk, StepTotals()), now.get(pk, StepTotals()))
        for pk in order
        if pk in then or pk in now
    ]
    return PipelineSnapshot(
        at, rows, _sum_totals([r.then for r in rows]), _sum_totals([r.now for r in rows])
    )


# Forecast versus actual -----------------------------------------------------------------


@dataclass(frozen=True)
class MonthAccuracy:
    """One month: what the forecast said at its first instant, and what was won in it.

    `forecast` is the weighted amount of the opportunities open then whose expected close date
    (then) fell in the month; `won` is today's won amount of those closed in the month. Cents.
    """

    key: str
    first_day: date
    open_count: int
    open_amount: int
    forecast: int
    won_count: int
    won: int
    in_progress: bool

    @property
    def difference(self) -> int:
        return self.won - self.forecast

    @property
    def ratio(self) -> float | None:
        """Won over forecast (1.0 = spot on); None when nothing was forecast."""
        return self.won / self.forecast if self.forecast else None


@dataclass(frozen=True)
class ForecastAccuracy:
    months: list[MonthAccuracy]  # oldest first; the last is the current month, in progress
    expected_now: int  # the current month: won so far + weighted open now, in cents

    @property
    def complete(self) -> list[MonthAccuracy]:
        return [m for m in self.months if not m.in_progress]

    @property
    def median_error(self) -> float | None:
        """Median of |won - forecast| / forecast over the complete months with a forecast."""
        errors = [abs(m.won - m.forecast) / m.forecast for m in self.complete if m.forecast]
        return median(errors) if errors else None

    @property
    def within_20(self) -> int:
        """Complete months whose won amount came within 20% of the forecast."""
        return sum(
            1 for m in self.complete if m.forecast and abs(m.won - m.forecast) <= m.forecast / 5
        )

    @property
    def overall_ratio(self) -> float | None:
        forecast = sum(m.forecast for m in self.complete)
        return sum(m.won for m in self.complete) / forecast if forecast else None


def _said(
    *, user: User, filters: InsightFilters, firsts: list[date]
) -> tuple[set[date], dict[date, Mapping[str, Any]]]:
    """The stored months among `firsts`, and per month the opening `user` may see; one query.

    A UNION ALL of the stored openings' per-month sums and one marker row (count -1) per
    stored month, so the same query says which months still have to be computed.
    """
    visible = filters.narrow(visible_opportunities(user))
    openings = ForecastOpening.objects.filter(month__in=firsts)
    # Without filters every opportunity is visible, and each opening's opportunity exists
    # (deleting one deletes its openings): no need to look.
    owners = filters.chosen_owners(user) if visible.query.has_filters() else None
    if owners is not None:
        # Narrowed by owners only: by the owner each opening repeats, from the index that
        # holds the month, the owner and what is summed.
        openings = openings.filter(owner_id__in=owners)
    elif visible.query.has_filters():
        # EXISTS per stored row, not `IN (the visible ids)`: SQLite would probe the openings'
        # (month, opportunity) index once per visible id and month.
        openings = openings.filter(Exists(visible.filter(pk=OuterRef("opportunity_id"))))
    sums = (
        openings.values("month")
        .annotate(
            opp_count=Count("pk"),
            amount_sum=Sum("amount", default=0),
            weighted_sum=Sum(weighted_expression(), default=0),
        )
        .order_by()
    )
    stored = (
        ForecastMonth.objects.filter(month__in=firsts)
        .annotate(
            opp_count=Value(-1, output_field=models.BigIntegerField()),
            amount_sum=Value(0, output_field=models.BigIntegerField()),
            weighted_sum=Value(0, output_field=models.BigIntegerField()),
        )
        .values("month", "opp_count", "amount_sum", "weighted_sum")
        .order_by()
    )
    months: set[date] = set()
    said: dict[date, Mapping[str, Any]] = {}
    for row in sums.union(stored, all=True):
        if row["opp_count"] == -1:
            months.add(row["month"])
        else:
            said[row["month"]] = row
    return months, said


def forecast_accuracy(
    *, user: User, filters: InsightFilters, months: int = 12, today: date | None = None
) -> ForecastAccuracy:
    """The last `months` complete months and the current one: forecast at each month's start
    against the amount won in it. Two queries, whatever the number of months, once the
    months' openings are stored (the first request of a month stores the missing ones).

    (1) the stored openings per month (`insights.openings`), joined to what `user` may see;
    (2) the forecast's sums per month (`selectors.period_sums`): won in each, and the open
    ones expected to close in the current one now.
    """
    # Imported here: `openings` builds the stored months with this module's replay.
    from opportuna.insights.openings import ensure_forecast_openings

    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be between 1 and {MAX_MONTHS}")
    today = today or timezone.localdate()
    current = today.replace(day=1)
    firsts = [add_months(current, -back) for back in range(months, -1, -1)]
    stored, said = _said(user=user, filters=filters, firsts=firsts)
    if stored != set(firsts):
        ensure_forecast_openings(set(firsts) - stored)
        stored, said = _said(user=user, filters=filters, firsts=firsts)

    end = add_months(current, 1) - timedelta(days=1)
    sums = {
        row["bucket"]: row
        for row in period_sums(
            filters.narrow(visible_opportunities(user)),
            period="month",
            start=firsts[0],
            end=end,
            # The pipeline is not in the forecast indexes; owner and team are.
            indexed=filters.pipeline is None,
        )
    }
    rows = []
    for first in firsts:
        key = period_key(first, "month")
        said_row: Mapping[str, Any] = said.get(first) or {}
        sums_row: Mapping[str, Any] = sums.get(key) or {}
        rows.append(
            MonthAccuracy(
                key=key,
                first_day=first,
                open_count=int(said_row.get("opp_count") or 0),
                open_amount=int(said_row.get("amount_sum") or 0),
                forecast=int(said_row.get("weighted_sum") or 0),
                won_count=int(sums_row.get("count_won") or 0),
                won=int(sums_row.get("won") or 0),
                in_progress=first == current,
            )
        )
    current_sums: Mapping[str, Any] = sums.get(period_key(current, "month")) or {}
    return ForecastAccuracy(rows, rows[-1].won + int(current_sums.get("weighted_open") or 0))


__all__ = [
    "AS_OF_FIELDS",
    "MAX_MONTHS",
    "ForecastAccuracy",
    "MonthAccuracy",
    "PipelineSnapshot",
    "SnapshotRow",
    "StepTotals",
    "as_of",
    "forecast_accuracy",
    "month_opening",
    "opportunities_as_of",
    "pipeline_as_of",
    "pipeline_snapshot",
    "value_as_of",
]
