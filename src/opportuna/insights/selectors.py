"""Reads for the forecast: expected orders per period, computed by the database.

An open opportunity (to do, standby) counts in the period of its expected close date; a won or
lost one in the period of its close time, in the account's time zone. Cancelled ones never
count. Open ones without an expected close date have no period: `forecast_undated` counts them.
Money is integer cents; the weighted amount is rounded half-up per opportunity, then summed,
exactly as `OpportunityQuerySet.with_weighted_amount` and `core.money.weighted_cents` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any, Literal, get_args

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Aggregate,
    BigIntegerField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Cast, RowNumber
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext

from opportuna.accounts.models import Team, User, VisibilityPolicy
from opportuna.accounts.selectors import team_members, visible_owner_filter
from opportuna.insights.models import Target
from opportuna.insights.periods import (
    DatePeriodKey,
    Period,
    add_months,
    datetime_period_key,
    local_day_range,
    periods_between,
)
from opportuna.insights.range import LUMPS, Band, Lump, RangeInputs, band, combine, top_lumps
from opportuna.sales.models import (
    OPEN_STATUSES,
    Opportunity,
    OpportunityQuerySet,
    Status,
    weighted_expression,
)
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
_MONTHS: dict[Period, int] = {"month": 1, "quarter": 3, "year": 12}


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


# The sums read by period, one branch per period ------------------------------------------
#
# Grouping a million rows by a period computed per row is slow on PostgreSQL: the planner
# cannot tell how few periods there are, so it sorts every row (on disk) instead of hashing.
# Each period's open, won and lost opportunities are instead summed in a branch of their own
# (a range of `opp_forecast_idx` or `opp_closed_idx`), the branches joined with UNION ALL
# into one query, and a period's three branches added here. That pays only while a branch
# reads the index alone: the indexes hold the status, dates, amounts, probability and owner
# (and the id), so visibility, the owner and team filters and those breakdowns qualify; a
# pipeline, product, tag or client would send every branch to the table, and the one query
# grouped per row (`_grouped_sums`) is faster then. So it is past this many periods too,
# where the branches would make an unwieldy statement (SQLite takes at most 500 parts).
BRANCHED_PERIODS = 120
INDEXED_BREAKDOWNS = frozenset({"owner", "team"})

_COUNTS = ("count_open", "count_won", "count_lost")
_FLOAT_SUMS = frozenset({"range_variance"})


def _open_sums() -> dict[str, Any]:
    # Counting the status, not the id: the index holds no id, and reading it would visit
    # every row (and COUNT(*) takes no filter in Django).
    return {
        "count_open": Count("status"),
        "amount_open": Sum("amount", default=0),
        "weighted_open": Sum(weighted_expression(), default=0),
    }


def _zero(name: str) -> Value:
    if name in _FLOAT_SUMS:
        return Value(0.0, output_field=FloatField())
    return Value(0, output_field=BigIntegerField())


def _spans(period: Period, start: date, end: date) -> list[tuple[str, date, date]]:
    """(key, first day, last day) of each period of start..end, cut to the range."""
    spans = []
    for key, first in periods_between(start, end, period):
        last = add_months(first, _MONTHS[period]) - timedelta(days=1)
        spans.append((key, max(first, start), min(last, end)))
    return spans


# Stand-ins for a period's bounds and key in the one branch of each kind that is compiled;
# every period's branch is that SQL again with its own values in their places (building a
# hundred querysets with the ORM would cost more than the database's work).
_FIRST_DAY, _LAST_DAY = date(1, 1, 1), date(1, 1, 2)
_FIRST_INSTANT, _AFTER_LAST = (datetime(1, 1, day, tzinfo=UTC) for day in (1, 2))
_KEY = "\x1fperiod\x1f"


class _Branch:
    """A values() queryset over one period, compiled once with the stand-ins, and where its
    period's bounds and key go in the parameters. `instants`: bounded by close times."""

    def __init__(self, queryset: QuerySet[Any], *, instants: bool) -> None:
        query = queryset.query
        self.sql, params = query.sql_with_params()  # EmptyResultSet if nothing can match
        if query.is_sliced:
            # A branch's own ORDER BY and LIMIT must sit in a subquery: SQLite takes neither
            # on a member of a UNION ALL, nor parentheses around one.
            self.sql = f'SELECT * FROM ({self.sql}) AS "branch"'  # noqa: S608 - Django's SQL
        self.params = list(params)
        self.instants = instants
        # The names `values()` gives the columns, in the order of the SELECT.
        if query.selected:
            self.names = list(query.selected)
        else:
            self.names = [*query.extra_select, *query.values_select, *query.annotation_select]
        first, last = (_FIRST_INSTANT, _AFTER_LAST) if instants else (_FIRST_DAY, _LAST_DAY)
        stand_ins = {"first": self._adapt(first), "last": self._adapt(last), "key": _KEY}
        self.slots: dict[str, list[int]] = {}
        for name, value in stand_ins.items():
            found = [i for i, param in enumerate(self.params) if _same(param, value)]
            if not found:
                raise RuntimeError(f"the forecast branch has no {name}")
            self.slots[name] = found

    def _adapt(self, value: date) -> Any:
        if self.instants:
            return connection.ops.adapt_datetimefield_value(value)
        return connection.ops.adapt_datefield_value(value)

    def bind(self, key: str, first: date, last: date) -> list[Any]:
        """The parameters for the days first..last, keyed `key`."""
        values: dict[str, Any] = {"key": key}
        if self.instants:
            first_instant, after_last = local_day_range(first, last)
            values.update(first=self._adapt(first_instant), last=self._adapt(after_last))
        else:
            values.update(first=self._adapt(first), last=self._adapt(last))
        params = list(self.params)
        for name, value in values.items():
            for slot in self.slots[name]:
                params[slot] = value
        return params


def _same(param: Any, stand_in: Any) -> bool:
    return type(param) is type(stand_in) and param == stand_in


def _per_span(branches: list[_Branch], spans: list[tuple[str, date, date]]) -> list[dict[str, Any]]:
    """Every branch for every span, in one UNION ALL query; its rows as dicts."""
    names = branches[0].names
    if any(branch.names != names for branch in branches):
        raise RuntimeError("the forecast branches differ in their columns")
    parts, params = [], []
    for key, first, last in spans:
        for branch in branches:
            parts.append(branch.sql)
            params += branch.bind(key, first, last)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _branched_sums(
    queryset: OpportunityQuerySet,
    spans: list[tuple[str, date, date]],
    columns: tuple[str, ...],
    open_extra: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Per span (and group): the sums of its open opportunities by expected close date and
    of its won and lost ones by close time; one UNION ALL query, empty spans left out.

    The won and the lost are two branches, each a range of `opp_closed_idx` summed without
    a filter per row: on PostgreSQL a third faster than one range of both, each row tested
    for its status by every sum."""
    open_sums = {**_open_sums(), **open_extra}
    won_sums = {"count_won": Count("status"), "won": Sum("won_amount", default=0)}
    lost_sums = {"count_lost": Count("status"), "lost_amount": Sum("amount", default=0)}
    names = [*open_sums, *won_sums, *lost_sums]

    def branch(narrowed: OpportunityQuerySet, sums: dict[str, Any], instants: bool) -> _Branch:
        return _Branch(
            narrowed.annotate(bucket=Value(_KEY, output_field=CharField()))
            .values("bucket", *columns)
            .annotate(**{name: sums.get(name, _zero(name)) for name in names})
            .order_by(),
            instants=instants,
        )

    try:
        opened = branch(
            queryset.filter(
                _OPEN, expected_close_date__gte=_FIRST_DAY, expected_close_date__lte=_LAST_DAY
            ),
            open_sums,
            instants=False,
        )
        won, lost = (
            branch(
                queryset.filter(
                    status=status, closed_at__gte=_FIRST_INSTANT, closed_at__lt=_AFTER_LAST
                ),
                sums,
                instants=True,
            )
            for status, sums in ((Status.WON, won_sums), (Status.LOST, lost_sums))
        )
    except EmptyResultSet:  # nothing can match (an inactive user sees nothing)
        return []
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for values in _per_span([opened, won, lost], spans):
        if not any(values[name] for name in _COUNTS):
            continue  # a branch without groups answers one row of zeros
        row_key = (values["bucket"], *(values[column] for column in columns))
        row = merged.get(row_key)
        if row is None:
            merged[row_key] = values
        else:
            for name in names:
                row[name] += values[name]
    rows = list(merged.values())
    for row in rows:
        row["expected"] = row["won"] + row["weighted_open"]
    return rows


def _grouped_sums(
    queryset: OpportunityQuerySet,
    *,
    period: Period,
    start: date,
    end: date,
    columns: tuple[str, ...],
    extra: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The same sums as `_branched_sums`, grouped by a period key computed per row."""
    first_instant, after_end = local_day_range(start, end)
    bucket = Case(
        When(_OPEN, then=DatePeriodKey("expected_close_date", period=period)),
        default=datetime_period_key("closed_at", period=period, start=start, end=end),
    )
    grouped = (
        queryset.filter(
            Q(_OPEN, expected_close_date__gte=start, expected_close_date__lte=end)
            | Q(
                status__in=(Status.WON, Status.LOST),
                closed_at__gte=first_instant,
                closed_at__lt=after_end,
            )
        )
        .with_weighted_amount()
        .annotate(bucket=bucket)
        .values("bucket", *columns)
        .annotate(**_sums(), **{name: _over_open(sum_) for name, sum_ in extra.items()})
        .order_by()
    )
    return list(grouped)


def _over_open(aggregate: Aggregate) -> Aggregate:
    """`aggregate` over the open ones only, in a query that reads the closed ones too."""
    narrowed = aggregate.copy()
    narrowed.filter = _OPEN if aggregate.filter is None else _OPEN & aggregate.filter
    return narrowed


def period_sums(
    queryset: OpportunityQuerySet,
    *,
    period: Period,
    start: date,
    end: date,
    columns: tuple[str, ...] = (),
    open_extra: Mapping[str, Any] | None = None,
    indexed: bool = True,
) -> list[dict[str, Any]]:
    """Per period of start..end (and group by `columns`), the sums over the opportunities of
    `queryset` as the forecast counts them; one query, no empty rows.

    Each row has "bucket" (the period key), the `columns`, count_open, amount_open,
    weighted_open, count_won, won, count_lost, lost_amount and expected (money in cents),
    and the sums of `open_extra` (aggregates) over the open ones. `indexed`: the queryset's
    filters and `columns` need no more than the forecast indexes hold (see BRANCHED_PERIODS).
    """
    if start > end:
        raise ValueError("start must not be after end")
    spans = _spans(period, start, end)
    if not indexed or len(spans) > BRANCHED_PERIODS:
        return _grouped_sums(
            queryset, period=period, start=start, end=end, columns=columns, extra=open_extra or {}
        )
    return _branched_sums(queryset, spans, columns, open_extra or {})


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
    columns: tuple[str, ...] = ()
    if by is not None:
        group_id, label_columns = _GROUP_COLUMNS[by]
        columns = (group_id, *label_columns)
    grouped = period_sums(
        visible_opportunities(user),
        period=period,
        start=start,
        end=end,
        columns=columns,
        indexed=by is None or by in INDEXED_BREAKDOWNS,
    )
    rows = [_row(values, period=values["bucket"], by=by) for values in grouped]
    return sorted(rows, key=lambda row: (row.period, row.group_label, row.group_id or 0))


def forecast_total(*, user: User, start: date, end: date) -> ForecastRow:
    """The whole of start..end in one row (period ""), as `forecast` counts it; one query."""
    if start > end:
        raise ValueError("start must not be after end")
    rows = _branched_sums(visible_opportunities(user), [("", start, end)], (), {})
    if not rows:
        return _empty_row("")
    return _row(rows[0], period="", by=None)


def _undated(queryset: OpportunityQuerySet) -> UndatedOpen:
    """The open ones of `queryset` without an expected close date, summed from
    `opp_forecast_idx` alone: the weighted amount of an open one, as `with_weighted_amount`
    computes it, without the won amount that the index does not hold."""
    values = queryset.filter(_OPEN, expected_close_date__isnull=True).aggregate(**_open_sums())
    return UndatedOpen(
        count=int(values["count_open"]),
        amount=int(values["amount_open"]),
        weighted=int(values["weighted_open"]),
    )


def forecast_undated(*, user: User) -> UndatedOpen:
    """Open opportunities `user` may see that have no expected close date; one query."""
    return _undated(visible_opportunities(user))


__all__ = [
    "GROUPS",
    "ForecastRow",
    "GroupBy",
    "UndatedOpen",
    "forecast",
    "forecast_total",
    "forecast_undated",
    "period_sums",
]


# The forecast page: filters, more breakdowns, the range (P10 / P50 / P90) and targets ---------
# Added for the page and its exports; the functions above keep serving the CLI unchanged.

ForecastBy = Literal["owner", "team", "pipeline", "step", "product", "tag", "client"]
BREAKDOWNS: tuple[ForecastBy, ...] = get_args(ForecastBy)

# An opportunity with several tags counts under each of them, so tag rows may add up to more
# than the period; every other breakdown splits a period exactly.
_BREAKDOWN_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    **_GROUP_COLUMNS,
    "tag": ("tags__id", ("tags__name",)),
    "client": ("client_id", ("client__name",)),
}

# Of the open ones: those whose outcome is uncertain, and those at 100 %. `period_sums`
# sums its `open_extra` over open ones only, so the range's sums filter on these alone (a
# status test per row and per sum less where a branch reads only open ones).
_UNCERTAIN_TERMS = Q(probability__gt=0, probability__lt=100, amount__gt=0)
_SURE_TERMS = Q(probability__gte=100)
_UNCERTAIN = _OPEN & _UNCERTAIN_TERMS


@dataclass(frozen=True)
class ForecastFilters:
    """What narrows the forecast, as the board's filters do; each travels in the URL."""

    owner: int | None = None
    team: int | None = None
    pipeline: int | None = None
    product: int | None = None
    tag: int | None = None
    client: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ForecastFilters:
        """Read the filters from a query string; a malformed value is ignored, not an error."""

        def number(name: str) -> int | None:
            raw = (query.get(name) or "").strip()
            return int(raw) if raw.isdigit() and len(raw) < 12 else None

        return cls(**{name: number(name) for name in cls.__dataclass_fields__})

    def as_query(self) -> dict[str, str]:
        """The filters that are set, as query-string values."""
        return {
            name: str(getattr(self, name))
            for name in self.__dataclass_fields__
            if getattr(self, name) is not None
        }

    @property
    def beyond_people(self) -> bool:
        """Narrowed by something other than who sells: no target speaks for such a subset."""
        return any(v is not None for v in (self.pipeline, self.product, self.tag, self.client))

    def apply(self, queryset: OpportunityQuerySet) -> OpportunityQuerySet:
        exact = {
            "owner_id": self.owner,
            "owner__in": None if self.team is None else team_members(self.team),
            "pipeline_id": self.pipeline,
            "product_id": self.product,
            "client_id": self.client,
        }
        queryset = queryset.filter(**{k: v for k, v in exact.items() if v is not None})
        if self.tag is not None:
            # A subquery, not a join: a join would also narrow a breakdown by tag.
            through = Opportunity.tags.through
            queryset = queryset.filter(
                Exists(through.objects.filter(opportunity_id=OuterRef("pk"), tag_id=self.tag))
            )
        return queryset


@dataclass(frozen=True)
class ForecastCell:
    """One period (of one group) of the forecast with what its range is computed from."""

    row: ForecastRow
    range: RangeInputs


def _float(name: str) -> Cast:
    # Squares of cents overflow 64-bit integers from about 30 million in currency units.
    return Cast(name, FloatField())


def _spread() -> Any:
    """amount² · p · (100 − p): the variance of an opportunity's outcome, times 10,000."""
    return (
        _float("amount")
        * _float("amount")
        * _float("probability")
        * (Value(100.0) - _float("probability"))
    )


def _range_sums() -> dict[str, Any]:
    return {
        "range_sure": Sum("amount", filter=_SURE_TERMS, default=0),
        "range_count": Count("status", filter=_UNCERTAIN_TERMS),
        "range_amount": Sum("amount", filter=_UNCERTAIN_TERMS, default=0),
        "range_mean": Sum(
            F("amount") * F("probability"),
            filter=_UNCERTAIN_TERMS,
            default=0,
            output_field=BigIntegerField(),
        ),
        "range_variance": Sum(
            _spread(), filter=_UNCERTAIN_TERMS, default=0.0, output_field=FloatField()
        ),
    }


def _group_label(by: ForecastBy | None, values: Mapping[str, Any]) -> str:
    if by == "tag":
        return values["tags__name"] or gettext("(no tag)")
    if by == "client":
        return values["client__name"] or gettext("(no client)")
    return _label(by, values)


def _check_range(period: Period, start: date, end: date, by: ForecastBy | None) -> None:
    if by is not None and by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {', '.join(BREAKDOWNS)}; got {by!r}")
    periods_between(start, end, period)  # refuse a bad period or range before querying


def forecast_cells(
    *,
    user: User,
    period: Period,
    start: date,
    end: date,
    by: ForecastBy | None = None,
    filters: ForecastFilters | None = None,
) -> list[ForecastCell]:
    """Per period (and group) in start..end, what `user` may see narrowed by `filters`, with
    the inputs of its P10/P50/P90 band; two queries (the sums, the largest uncertain deals),
    no empty rows. Counts and money agree with `forecast` for the same breakdown."""
    _check_range(period, start, end, by)
    filters = filters or ForecastFilters()
    columns: tuple[str, ...] = ()
    group_id: str | None = None
    if by is not None:
        group_id, label_columns = _BREAKDOWN_COLUMNS[by]
        columns = (group_id, *label_columns)
    indexed = (by is None or by in INDEXED_BREAKDOWNS) and not filters.beyond_people
    grouped = period_sums(
        filters.apply(visible_opportunities(user)),
        period=period,
        start=start,
        end=end,
        columns=columns,
        open_extra=_range_sums(),
        indexed=indexed,
    )
    lumps = _largest_lumps(
        user=user,
        period=period,
        start=start,
        end=end,
        group_id=group_id,
        filters=filters,
        indexed=indexed,
    )
    cells = []
    for values in grouped:
        key = (values["bucket"], values[group_id] if group_id else None)
        row = ForecastRow(
            period=values["bucket"],
            group_id=key[1],
            group_label=_group_label(by, values),
            count_open=int(values["count_open"]),
            amount_open=int(values["amount_open"]),
            weighted_open=int(values["weighted_open"]),
            count_won=int(values["count_won"]),
            won=int(values["won"]),
            count_lost=int(values["count_lost"]),
            lost_amount=int(values["lost_amount"]),
            expected=int(values["expected"]),
        )
        inputs = RangeInputs(
            won=row.won,
            sure=int(values["range_sure"]),
            uncertain_count=int(values["range_count"]),
            uncertain_amount=int(values["range_amount"]),
            mean_x100=int(values["range_mean"]),
            variance_x10000=float(values["range_variance"]),
            lumps=top_lumps(lumps.get(key, ())),
        )
        cells.append(ForecastCell(row=row, range=inputs))
    return sorted(cells, key=lambda c: (c.row.period, c.row.group_label, c.row.group_id or 0))


def _largest_lumps(
    *,
    user: User,
    period: Period,
    start: date,
    end: date,
    group_id: str | None,
    filters: ForecastFilters,
    indexed: bool = False,
) -> dict[tuple[str, int | None], list[Lump]]:
    """The LUMPS uncertain open opportunities with the largest variance of each period (and
    group): one query whose size is bounded by the number of cells, not of opportunities.
    `indexed`: as for `period_sums`, each period is ranked in a branch of its own."""
    spans = _spans(period, start, end)
    branched = indexed and len(spans) <= BRANCHED_PERIODS
    if branched and not group_id:
        return _largest_lumps_per_span(user=user, spans=spans, filters=filters)
    if branched:
        bucket: Any = Value(_KEY, output_field=CharField())
        partition: list[Any] = [F(group_id)] if group_id else []
        first, last = _FIRST_DAY, _LAST_DAY
    else:
        bucket = DatePeriodKey("expected_close_date", period=period)
        partition = [F("bucket")] + ([F(group_id)] if group_id else [])
        first, last = start, end
    ranked = (
        filters.apply(visible_opportunities(user))
        .filter(_UNCERTAIN, expected_close_date__gte=first, expected_close_date__lte=last)
        .annotate(bucket=bucket, spread=_spread())
        .annotate(
            lump_rank=Window(
                RowNumber(),
                partition_by=partition or None,
                order_by=[F("spread").desc(), F("amount").desc(), F("pk").asc()],
            )
        )
        .filter(lump_rank__lte=LUMPS)
        .order_by()
        .values("bucket", *((group_id,) if group_id else ()), "amount", "probability")
    )
    if branched:
        try:
            rows = _per_span([_Branch(ranked, instants=False)], spans)
        except EmptyResultSet:  # nothing can match (an inactive user sees nothing)
            return {}
    else:
        rows = list(ranked)
    found: dict[tuple[str, int | None], list[Lump]] = {}
    for values in rows:
        key = (values["bucket"], values[group_id] if group_id else None)
        found.setdefault(key, []).append(Lump(values["amount"], values["probability"]))
    return found


def _largest_lumps_per_span(
    *, user: User, spans: list[tuple[str, date, date]], filters: ForecastFilters
) -> dict[tuple[str, int | None], list[Lump]]:
    """`_largest_lumps` of whole periods, not broken down: each period's largest deals by
    ORDER BY ... LIMIT in a branch of its own. The database keeps the LUMPS best rows while
    it reads the period instead of sorting every row as the ranking window would; the same
    order (variance, amount, then id) picks the same deals."""
    top = (
        filters.apply(visible_opportunities(user))
        .filter(_UNCERTAIN, expected_close_date__gte=_FIRST_DAY, expected_close_date__lte=_LAST_DAY)
        .annotate(bucket=Value(_KEY, output_field=CharField()), spread=_spread())
        .order_by(F("spread").desc(), F("amount").desc(), F("pk").asc())
        .values("bucket", "amount", "probability")[:LUMPS]
    )
    try:
        rows = _per_span([_Branch(top, instants=False)], spans)
    except EmptyResultSet:  # nothing can match (an inactive user sees nothing)
        return {}
    found: dict[tuple[str, int | None], list[Lump]] = {}
    for values in rows:
        found.setdefault((values["bucket"], None), []).append(
            Lump(values["amount"], values["probability"])
        )
    return found


def forecast_undated_filtered(*, user: User, filters: ForecastFilters) -> UndatedOpen:
    """`forecast_undated` narrowed by `filters`; one query."""
    return _undated(filters.apply(visible_opportunities(user)))


# Targets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetScope:
    """Whom a target is about: the company (no id), a team or a user."""

    kind: Literal["company", "team", "user"]
    id: int | None = None

    @property
    def key(self) -> str:
        """ "company", "team:3" or "user:5": how a form names it."""
        return self.kind if self.id is None else f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> TargetScope | None:
        kind, _sep, raw = (text or "").partition(":")
        if kind == "company" and not raw:
            return cls("company")
        if kind in ("team", "user") and raw.isdigit() and len(raw) < 12:
            return cls(kind, int(raw))  # type: ignore[arg-type]
        return None

    @classmethod
    def of(cls, target: Target) -> TargetScope:
        if target.team_id is not None:
            return cls("team", target.team_id)
        if target.user_id is not None:
            return cls("user", target.user_id)
        return cls("company")


COMPANY = TargetScope("company")


def visible_targets(*, user: User) -> QuerySet[Target]:
    """Targets `user` may read: the company's, their own team's and the teams they manage,
    and those of people whose opportunities they may see."""
    people = visible_owner_filter(user, prefix="user")
    if people is None:  # admins
        return Target.objects.all()
    if not user.is_active:
        return Target.objects.none()
    managed = Team.objects.filter(managers=user).values("id")
    return Target.objects.filter(
        Q(team__isnull=True, user__isnull=True)
        | (Q(user__isnull=False) & people)
        | Q(team_id=user.team_id)
        | Q(team_id__in=managed)
    )


def forecast_targets(*, user: User, keys: list[str]) -> dict[tuple[str, TargetScope], Target]:
    """The visible targets of these periods, by (period key, scope); one query."""
    targets = visible_targets(user=user).for_periods(keys).select_related("team", "user")
    return {(t.period_key, TargetScope.of(t)): t for t in targets.order_by()}


# The page's report ------------------------------------------------------------------------


def period_label(key: str) -> str:
    """A period key for people: "Nov 2026", "Q4 2026" or "2026", in the active language."""
    if "-Q" in key:
        year, quarter = key.split("-Q")
        return gettext("Q%(quarter)s %(year)s") % {"quarter": quarter, "year": year}
    if "-" in key:
        year, month = key.split("-")
        return date_format(date(int(year), int(month), 1), "M Y")
    return key


@dataclass(frozen=True)
class ReportLine:
    """One line of the forecast table; money in cents. `scope` is whom a target here is about
    (None: no target fits, e.g. a line narrowed by product)."""

    period: str  # key; "" on the total line
    first_day: date
    last_day: date
    label: str
    group_id: int | None
    row: ForecastRow
    band: Band
    scope: TargetScope | None = None
    target: Target | None = None
    target_amount: int | None = None
    others: int = 0  # on a line that folds the smaller groups of a period: how many

    @property
    def attainment(self) -> Decimal | None:
        """Won so far as a share of the target, in percent with one decimal; None without one."""
        if not self.target_amount:
            return None
        return (Decimal(self.row.won * 100) / Decimal(self.target_amount)).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_UP
        )


@dataclass(frozen=True)
class PeriodBlock:
    line: ReportLine  # the whole period (what the filters let through)
    groups: list[ReportLine] = field(default_factory=list)  # its breakdown, if any


@dataclass(frozen=True)
class ForecastReport:
    period: Period
    start: date
    end: date
    by: ForecastBy | None
    filters: ForecastFilters
    blocks: list[PeriodBlock]
    total: ReportLine
    undated: UndatedOpen
    scope: TargetScope | None  # whom the period lines' targets are about
    folded: bool = False  # some periods had more groups than `max_groups`


def _empty_row(period: str, group_id: int | None = None, label: str = "") -> ForecastRow:
    return ForecastRow(period, group_id, label, 0, 0, 0, 0, 0, 0, 0, 0)


def _sum_rows(rows: list[ForecastRow]) -> ForecastRow:
    counters = {
        name: sum(getattr(row, name) for row in rows)
        for name in ForecastRow.__dataclass_fields__
        if name not in ("period", "group_id", "group_label")
    }
    return ForecastRow(period="", group_id=None, group_label="", **counters)


def _lines_scope(*, user: User, filters: ForecastFilters, visibility: str) -> TargetScope | None:
    """Whom the whole-period lines are about, so which target they are compared with."""
    if filters.beyond_people:
        return None
    if filters.owner is not None:
        return TargetScope("user", filters.owner)
    if filters.team is not None:
        return TargetScope("team", filters.team)
    if user.is_admin:
        return COMPANY
    if not user.is_manager and (visibility == VisibilityPolicy.OWN or user.team_id is None):
        return TargetScope("user", user.pk)  # a salesperson who sees only their own
    return None


def _group_scope(
    by: ForecastBy | None, group_id: int | None, filters: ForecastFilters
) -> TargetScope | None:
    if filters.beyond_people or group_id is None or by not in ("owner", "team"):
        return None
    return TargetScope("user" if by == "owner" else "team", group_id)


def _target_groups(
    by: ForecastBy | None,
    key: str,
    targets: dict[tuple[str, TargetScope], Target],
    filters: ForecastFilters,
) -> dict[int, tuple[str, Target]]:
    """Owners or teams with a target in this period, whom the filters let through."""
    if by not in ("owner", "team") or filters.beyond_people:
        return {}
    found = {}
    for (period, scope), target in targets.items():
        if period != key or scope.id is None:
            continue
        person, team = target.user, target.team
        if by == "owner" and person is not None:
            wanted = filters.owner in (None, person.pk) and filters.team in (None, person.team_id)
            label = str(person)
        elif by == "team" and team is not None:
            wanted = filters.owner is None and filters.team in (None, team.pk)
            label = str(team)
        else:
            continue
        if wanted:
            found[scope.id] = (label, target)
    return found


def _report_line(
    key: str,
    first: date,
    last: date,
    label: str,
    group_id: int | None,
    cell: ForecastCell | None,
    scope: TargetScope | None,
    *,
    targets: dict[tuple[str, TargetScope], Target],
) -> ReportLine:
    target = targets.get((key, scope)) if scope else None
    return ReportLine(
        period=key,
        first_day=first,
        last_day=last,
        label=label,
        group_id=group_id,
        row=cell.row if cell else _empty_row(key, group_id, label),
        band=band(cell.range if cell else RangeInputs()),
        scope=scope,
        target=target,
        target_amount=target.amount if target else None,
    )


def forecast_report(
    *,
    user: User,
    period: Period,
    start: date,
    end: date,
    by: ForecastBy | None = None,
    filters: ForecastFilters | None = None,
    visibility: str = VisibilityPolicy.OWN,
    max_groups: int | None = None,
) -> ForecastReport:
    """Every period of start..end (empty ones too), its breakdown, bands, targets and the
    undated open ones: 4 queries, plus 2 with a breakdown. `visibility` is the account's
    policy (the caller has the account loaded already). With `max_groups`, a period's
    smaller groups beyond that many are folded into one "others" line."""
    filters = filters or ForecastFilters()
    _check_range(period, start, end, by)
    periods = periods_between(start, end, period)
    cells = forecast_cells(user=user, period=period, start=start, end=end, filters=filters)
    by_period = {cell.row.period: cell for cell in cells}
    grouped: dict[str, list[ForecastCell]] = {}
    if by is not None:
        for cell in forecast_cells(
            user=user, period=period, start=start, end=end, by=by, filters=filters
        ):
            grouped.setdefault(cell.row.period, []).append(cell)
    targets = forecast_targets(user=user, keys=[key for key, _first in periods])
    undated = forecast_undated_filtered(user=user, filters=filters)
    scope = _lines_scope(user=user, filters=filters, visibility=visibility)

    blocks = []
    for key, first in periods:
        last = add_months(first, _MONTHS[period]) - timedelta(days=1)
        line = partial(_report_line, key, first, last, targets=targets)
        shown, folded = _largest(grouped.get(key, []), max_groups)
        groups = [
            line(c.row.group_label, c.row.group_id, c, _group_scope(by, c.row.group_id, filters))
            for c in shown
        ]
        seen = {group.group_id for group in groups}
        # An owner or team with a target but nothing in the period still gets its line.
        groups += [
            line(label, group_id, None, _group_scope(by, group_id, filters))
            for group_id, (label, _target) in _target_groups(by, key, targets, filters).items()
            if group_id not in seen
        ]
        groups.sort(key=lambda g: (g.label, g.group_id or 0))
        if folded:
            count = len(folded)
            others = ngettext("%(count)d other", "%(count)d others", count) % {"count": count}
            rest = ForecastCell(
                row=_sum_rows([c.row for c in folded]), range=combine(c.range for c in folded)
            )
            groups.append(replace(line(others, None, rest, None), others=len(folded)))
        whole = line(period_label(key), None, by_period.get(key), scope)
        blocks.append(PeriodBlock(line=whole, groups=groups))

    period_targets = [block.line.target_amount for block in blocks]
    total = ReportLine(
        period="",
        first_day=periods[0][1],
        last_day=blocks[-1].line.last_day,
        label=gettext("Total"),
        group_id=None,
        row=_sum_rows([block.line.row for block in blocks]),
        band=band(combine(cell.range for cell in cells)),
        scope=scope,
        # The range's target only when every period has one: a partial sum would mislead.
        target_amount=(
            sum(t for t in period_targets if t is not None)
            if all(t is not None for t in period_targets)
            else None
        ),
    )
    return ForecastReport(
        period=period,
        start=periods[0][1],
        end=total.last_day,
        by=by,
        filters=filters,
        blocks=blocks,
        total=total,
        undated=undated,
        scope=scope,
        folded=any(group.others for block in blocks for group in block.groups),
    )


def _largest(
    cells: list[ForecastCell], limit: int | None
) -> tuple[list[ForecastCell], list[ForecastCell]]:
    """The `limit` largest groups by expected amount (then open, then lost), and the rest."""
    if limit is None or len(cells) <= limit:
        return cells, []
    ranked = sorted(
        cells,
        key=lambda c: (-c.row.expected, -c.row.amount_open, -c.row.lost_amount, c.row.group_label),
    )
    return ranked[:limit], ranked[limit:]


__all__ += [  # noqa: PLE0605
    "BREAKDOWNS",
    "COMPANY",
    "ForecastBy",
    "ForecastCell",
    "ForecastFilters",
    "ForecastReport",
    "PeriodBlock",
    "ReportLine",
    "TargetScope",
    "forecast_cells",
    "forecast_report",
    "forecast_targets",
    "forecast_undated_filtered",
    "period_label",
    "visible_targets",
]
