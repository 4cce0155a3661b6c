"""Reads for the forecast: expected orders per period, computed by the database.

An open opportunity (to do, standby) counts in the period of its expected close date; a won or
lost one in the period of its close time, in the account's time zone. Cancelled ones never
count. Open ones without an expected close date have no period: `forecast_undated` counts them.
Money is integer cents; the weighted amount is rounded half-up per opportunity, then summed,
exactly as `OpportunityQuerySet.with_weighted_amount` and `core.money.weighted_cents` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, get_args

from django.db.models import Case, Count, Q, Sum, When
from django.utils.translation import gettext

from opportuna.accounts.models import User
from opportuna.insights.periods import (
    DatePeriodKey,
    Period,
    datetime_period_key,
    local_day_range,
    periods_between,
)
from opportuna.sales.models import OPEN_STATUSES, OpportunityQuerySet, Status
from opportuna.sales.selectors import visible_opportunities

GroupBy = Literal["owner", "team", "pipeline", "step", "product"]
GROUPS: tuple[GroupBy, ...] = get_args(GroupBy)


@dataclass(frozen=True)
class ForecastRow:
    """One period (of one group, when broken down) of the forecast; money in cents.

    `period` is "2026-11", "2026-Q4" or "2026", or "" on a total over the whole range.
    `group_id` is None when not broken down, or for opportunities without a team or product.
    """

    period: str
    group_id: int | None
    group_label: str
    count_open: int
    amount_open: int
    weighted_open: int
    count_won: int
    won: int
    count_lost: int
    lost_amount: int
    expected: int  # won + weighted_open


@dataclass(frozen=True)
class UndatedOpen:
    """Open opportunities with no expected close date, which no period can hold; cents."""

    count: int
    amount: int
    weighted: int


# The column each breakdown groups on, and the columns its label is made from. A team is the
# owner's team today, not when the opportunity was won or lost.
_GROUP_COLUMNS: dict[GroupBy, tuple[str, tuple[str, ...]]] = {
    "owner": ("owner_id", ("owner__first_name", "owner__last_name", "owner__username")),
    "team": ("owner__team_id", ("owner__team__name",)),
    "pipeline": ("pipeline_id", ("pipeline__name",)),
    "step": ("step_id", ("step__pipeline__name", "step__name")),
    "product": ("product_id", ("product__name",)),
}

_OPEN = Q(status__in=OPEN_STATUSES)
_WON = Q(status=Status.WON)
_LOST = Q(status=Status.LOST)


def _sums() -> dict[str, Any]:
    # `weighted` comes from `with_weighted_amount`: the won amount once won, the rounded
    # weighted amount while open, so over open and won rows its sum is the expected total.
    return {
        "count_open": Count("pk", filter=_OPEN),
        "amount_open": Sum("amount", filter=_OPEN, default=0),
        "weighted_open": Sum("weighted", filter=_OPEN, default=0),
        "count_won": Count("pk", filter=_WON),
        "won": Sum("won_amount", filter=_WON, default=0),
        "count_lost": Count("pk", filter=_LOST),
        "lost_amount": Sum("amount", filter=_LOST, default=0),
        "expected": Sum("weighted", filter=_OPEN | _WON, default=0),
    }


def _in_range(*, user: User, start: date, end: date) -> OpportunityQuerySet:
    if start > end:
        raise ValueError("start must not be after end")
    first_instant, after_end = local_day_range(start, end)
    return (
        visible_opportunities(user)
        .filter(
            Q(_OPEN, expected_close_date__gte=start, expected_close_date__lte=end)
            | Q(
                status__in=(Status.WON, Status.LOST),
                closed_at__gte=first_instant,
                closed_at__lt=after_end,
            )
        )
        .with_weighted_amount()
        .order_by()
    )


def _label(by: GroupBy | None, values: Mapping[str, Any]) -> str:
    if by is None:
        return ""
    if by == "owner":
        full_name = f"{values['owner__first_name']} {values['owner__last_name']}".strip()
        return full_name or values["owner__username"]
    if by == "team":
        return values["owner__team__name"] or gettext("(no team)")
    if by == "pipeline":
        return values["pipeline__name"]
    if by == "step":
        return f"{values['step__pipeline__name']} / {values['step__name']}"
    return values["product__name"] or gettext("(no product)")


def _row(values: Mapping[str, Any], *, period: str, by: GroupBy | None) -> ForecastRow:
    return ForecastRow(
        period=period,
        group_id=values[_GROUP_COLUMNS[by][0]] if by else None,
        group_label=_label(by, values),
        count_open=int(values["count_open"]),
        amount_open=int(values["amount_open"]),
        weighted_open=int(values["weighted_open"]),
        count_won=int(values["count_won"]),
        won=int(values["won"]),
        count_lost=int(values["count_lost"]),
        lost_amount=int(values["lost_amount"]),
        expected=int(values["expected"]),
    )


def forecast(
    *,
    user: User,
    period: Period,
    start: date,
    end: date,
    by: GroupBy | None = None,
) -> list[ForecastRow]:
    """Per period (and group) in start..end, what `user` may see; one query, no empty rows."""
    if by is not None and by not in GROUPS:
        raise ValueError(f"by must be one of {', '.join(GROUPS)}; got {by!r}")
    periods_between(start, end, period)  # refuse a bad period or range before querying
    bucket = Case(
        When(_OPEN, then=DatePeriodKey("expected_close_date", period=period)),
        default=datetime_period_key("closed_at", period=period, start=start, end=end),
    )
    columns: tuple[str, ...] = ()
    if by is not None:
        group_id, label_columns = _GROUP_COLUMNS[by]
        columns = (group_id, *label_columns)
    grouped = (
        _in_range(user=user, start=start, end=end)
        .annotate(bucket=bucket)
        .values("bucket", *columns)
        .annotate(**_sums())
    )
    rows = [_row(values, period=values["bucket"], by=by) for values in grouped]
    return sorted(rows, key=lambda row: (row.period, row.group_label, row.group_id or 0))


def forecast_total(*, user: User, start: date, end: date) -> ForecastRow:
    """The whole of start..end in one row (period ""), as `forecast` counts it; one query."""
    values = _in_range(user=user, start=start, end=end).aggregate(**_sums())
    return _row(values, period="", by=None)


def forecast_undated(*, user: User) -> UndatedOpen:
    """Open opportunities `user` may see that have no expected close date; one query."""
    values = (
        visible_opportunities(user)
        .filter(_OPEN, expected_close_date__isnull=True)
        .with_weighted_amount()
        # Aliases must differ from the `weighted` annotation, or the sum would read itself.
        .aggregate(
            undated_count=Count("pk"),
            undated_amount=Sum("amount", default=0),
            undated_weighted=Sum("weighted", default=0),
        )
    )
    return UndatedOpen(
        count=int(values["undated_count"]),
        amount=int(values["undated_amount"]),
        weighted=int(values["undated_weighted"]),
    )


__all__ = [
    "GROUPS",
    "ForecastRow",
    "GroupBy",
    "UndatedOpen",
    "forecast",
    "forecast_total",
    "forecast_undated",
]
