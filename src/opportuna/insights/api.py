"""The forecast API: expected orders per period, the same numbers as the forecast page.

`GET /forecast?period=month|quarter|year&start=YYYY-MM-DD&end=YYYY-MM-DD&by=...` answers one
row per period (per period and group with `by`), the whole range's total and the open
opportunities without an expected close date, over what the caller may see: three queries.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.errors import ValidationError

from opportuna.accounts.models import User
from opportuna.accounts.schemas import READ_ERRORS
from opportuna.core.money import from_cents
from opportuna.insights import selectors
from opportuna.insights.periods import MAX_PERIODS, Period, periods_between
from opportuna.insights.selectors import ForecastRow, GroupBy, UndatedOpen
from opportuna.sales.schemas import Day

router = Router(tags=["forecast"])


def _invalid(name: str, message: str) -> ValidationError:
    return ValidationError([{"type": "value_error", "loc": ["query", name], "msg": message}])


class ForecastRowOut(Schema):
    period: str = Field(description='"2026-11", "2026-Q4" or "2026"; "" on the total.')
    group_id: int | None = Field(description="With `by`: the owner, team, ... id; else null.")
    group_label: str
    count: int = Field(description="Open opportunities expected to close in the period.")
    amount: Decimal = Field(description="Their amount.")
    weighted: Decimal = Field(description="Their weighted amount (amount x probability).")
    won: Decimal = Field(description="Won in the period: the won amounts.")
    count_won: int
    count_lost: int
    lost_amount: Decimal
    expected: Decimal = Field(description="won + weighted: the expected orders.")

    @staticmethod
    def resolve_count(row: ForecastRow) -> int:
        return row.count_open

    @staticmethod
    def resolve_amount(row: ForecastRow) -> Decimal:
        return from_cents(row.amount_open)

    @staticmethod
    def resolve_weighted(row: ForecastRow) -> Decimal:
        return from_cents(row.weighted_open)

    @staticmethod
    def resolve_won(row: ForecastRow) -> Decimal:
        return from_cents(row.won)

    @staticmethod
    def resolve_lost_amount(row: ForecastRow) -> Decimal:
        return from_cents(row.lost_amount)

    @staticmethod
    def resolve_expected(row: ForecastRow) -> Decimal:
        return from_cents(row.expected)


class UndatedOut(Schema):
    """Open opportunities without an expected close date: no period holds them."""

    count: int
    amount: Decimal
    weighted: Decimal

    @staticmethod
    def resolve_amount(undated: UndatedOpen) -> Decimal:
        return from_cents(undated.amount)

    @staticmethod
    def resolve_weighted(undated: UndatedOpen) -> Decimal:
        return from_cents(undated.weighted)


class ForecastOut(Schema):
    period: Period
    start: date
    end: date
    by: GroupBy | None
    rows: list[ForecastRowOut] = Field(description="By period (then group); empty ones left out.")
    total: ForecastRowOut
    undated: UndatedOut


class ForecastQuery(Schema):
    period: Period = "month"
    start: Day | None = Field(None, description="Default: 1 January of this year.")
    end: Day | None = Field(None, description="Default: 31 December of the start's year.")
    by: Literal["owner", "team", "product", "pipeline", "step"] | None = Field(
        None, description="Break each period down by this."
    )


@router.get(
    "/forecast",
    response={200: ForecastOut, **READ_ERRORS},
    url_name="forecast",
    summary="Expected orders per period: open, weighted and won",
)
def forecast(request: HttpRequest, query: Query[ForecastQuery]) -> dict[str, Any]:
    user: User = request.auth  # type: ignore[attr-defined]
    start = query.start or date(timezone.localdate().year, 1, 1)
    end = query.end or date(start.year, 12, 31)
    if start > end:
        raise _invalid("end", _("The end must not be before the start."))
    try:
        periods_between(start, end, query.period)
    except ValueError as exc:
        message = _("At most %(count)d periods at a time; shorten the range.")
        raise _invalid("end", message % {"count": MAX_PERIODS}) from exc
    return {
        "period": query.period,
        "start": start,
        "end": end,
        "by": query.by,
        "rows": selectors.forecast(
            user=user, period=query.period, start=start, end=end, by=query.by
        ),
        "total": selectors.forecast_total(user=user, start=start, end=end),
        "undated": selectors.forecast_undated(user=user),
    }
