"""Forecast periods: their keys ("2026-11", "2026-Q4", "2026"), their days, and their SQL.

A key sorts as text in time order, so the database and Python agree on the order of periods.
Dates (an expected close date) are keyed by the database with strftime on SQLite and
to_char on PostgreSQL; Django's Extract/Trunc would call Python once per row on SQLite.
Datetimes (a close time) belong to the day they fall on in the account's time zone
(settings.TIME_ZONE). SQLite knows no time zones, so each period's first instant is computed
here with zoneinfo and the database compares against those instants: exact across daylight
saving changes, the same SQL on both databases, and still one query.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from typing import Any, Literal, get_args

from django.db import NotSupportedError, models
from django.db.models import Case, Func, Value, When
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

Period = Literal["month", "quarter", "year"]
PERIODS: tuple[Period, ...] = get_args(Period)

# 50 years of months: a range longer than this is a mistake, and each period costs one
# comparison in the SQL that buckets close times.
MAX_PERIODS = 600

_MONTHS_IN: dict[Period, int] = {"month": 1, "quarter": 3, "year": 12}


def _check(period: str) -> None:
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}; got {period!r}")


def period_key(day: date, period: Period) -> str:
    """The key of the period `day` falls in: "2026-11", "2026-Q4" or "2026"."""
    _check(period)
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year:04d}"


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), moved back to the month's last day if needed."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last_day))


def period_start(day: date, period: Period) -> date:
    """The first day of the period `day` falls in."""
    _check(period)
    size = _MONTHS_IN[period]
    return date(day.year, (day.month - 1) // size * size + 1, 1)


def periods_between(start: date, end: date, period: Period) -> list[tuple[str, date]]:
    """(key, first day) of every period that overlaps the days start..end, in order."""
    _check(period)
    if start > end:
        raise ValueError("start must not be after end")
    first = period_start(start, period)
    found: list[tuple[str, date]] = []
    while first <= end:
        if len(found) == MAX_PERIODS:
            raise ValueError(f"at most {MAX_PERIODS} periods at a time; shorten the range")
        found.append((period_key(first, period), first))
        first = add_months(first, _MONTHS_IN[period])
    return found


def local_midnight(day: date, zone: tzinfo | None = None) -> datetime:
    """The instant `day` starts in `zone` (default: the account's time zone)."""
    return datetime.combine(day, time.min, tzinfo=zone or timezone.get_default_timezone())


def local_day_range(start: date, end: date) -> tuple[datetime, datetime]:
    """[first instant of start, first instant after end) in the account's time zone."""
    return local_midnight(start), local_midnight(end + timedelta(days=1))


class DatePeriodKey(Func):
    """The period key of a date column, computed by the database (strftime / to_char)."""

    arity = 1
    output_field = models.CharField()

    def __init__(self, expression: Any, *, period: Period) -> None:
        _check(period)
        super().__init__(expression)
        self.period = period

    def as_sql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(
            f"forecast periods are written for SQLite and PostgreSQL, not {connection.vendor}"
        )

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        # `%%` is a literal `%` once Django hands the query to the driver.
        sql, params = compiler.compile(self.source_expressions[0])
        if self.period == "month":
            return f"strftime('%%Y-%%m', {sql})", params
        if self.period == "year":
            return f"strftime('%%Y', {sql})", params
        quarter = f"((CAST(strftime('%%m', {sql}) AS INTEGER) + 2) / 3)"
        return f"(strftime('%%Y', {sql}) || '-Q' || {quarter})", (*params, *params)

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        pattern = {"month": "YYYY-MM", "quarter": 'YYYY-"Q"Q', "year": "YYYY"}[self.period]
        # A date goes through `timestamp` (no time zone), so the session's zone cannot move it.
        return f"to_char(CAST(({sql}) AS timestamp), '{pattern}')", params


def datetime_period_key(field: str, *, period: Period, start: date, end: date) -> Case:
    """The period key of a datetime column, in the account's time zone, for start..end.

    Only meaningful on rows whose `field` lies within `local_day_range(start, end)`.
    """
    periods = periods_between(start, end, period)
    zone = timezone.get_default_timezone()
    cases = [
        When(**{f"{field}__lt": local_midnight(following, zone)}, then=Value(key))
        for (key, _first), (_key, following) in pairwise(periods)
    ]
    return Case(*cases, default=Value(periods[-1][0]), output_field=models.CharField())


__all__ = [
    "MAX_PERIODS",
    "PERIODS",
    "DatePeriodKey",
    "Period",
    "add_months",
    "datetime_period_key",
    "local_day_range",
    "local_midnight",
    "period_key",
    "period_start",
    "periods_between",
]
