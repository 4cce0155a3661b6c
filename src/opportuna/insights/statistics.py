"""Reads for the statistics pages, computed by the database.

Every function starts from `visible_opportunities(user)` narrowed by `StatisticsFilters`, and
runs a fixed number of queries whatever the data size. Money is integer cents.

Dates follow the account's time zone (settings.TIME_ZONE) as the forecast does: a day range
becomes [first instant, first instant after) there, and datetimes are bucketed into periods and
weeks by comparing with each bucket's first instant, computed here with zoneinfo (see
`insights.periods`), so the SQL is the same on SQLite and PostgreSQL and exact across daylight
saving changes.

- Win rates look at opportunities *closed* in the range: win rate = won / (won + lost), by count
  and by value (won amount against the expected amount of the lost ones). Cancelled ones (the
  client dropped the project, nobody won it) count in neither and are shown apart. The sales
  cycle is closed_at - created_at in days; its median and quartiles are computed by the
  database (`percentile_cont` on PostgreSQL; ranks from window functions on SQLite, with the
  same linear interpolation).
- The step funnel follows the opportunities *created* in the range through their stays on
  each step, as the event log tells them: a "created" event enters its `data.step`, a "moved"
  event enters `changes.step[1]`, and each entry lasts until the opportunity's next move or
  close. A reopened opportunity re-enters no step until it moves again. The stays are stored
  (`StepVisit`, kept in step by `insights.steps`); `step_funnel_from_log` computes the same
  from the log, as the reference. Its quartiles are exactly `_quantiles`' numbers, found
  without sorting every stay (see `_visit_quantiles`).
- Lost reasons look at opportunities lost in the range; the activity report at activities done
  in the range (by whoever did them, on the opportunities the filters keep); activities per
  won and lost deal at what `insights.facts` stores of each closed deal; "rotting" at open
  opportunities now, whatever the range.

At a million opportunities a request must not read them all: rows that hang off an
opportunity (activities, stays) skip the semi-join with `visible_opportunities(user)` when that
is every opportunity (`every_opportunity`), and groups are formed on stored columns, or
behind `_FENCE`, so that the database hashes a few thousand groups instead of sorting every
row. SQLite has no hash aggregation: it groups and ranks by sorting, a second or more per
million rows, so where that is what a page waits for it is asked otherwise: to count each
cell of a report from its own range of an index (activities per person, week and type;
activities per won and lost deal), to group rows read from an index already in the order
grouped (the funnel's visits), or to rank only the values in the few bins that hold the
quartiles (the sales cycle).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast, get_args

from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections, models
from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, RowNumber
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone
from django.utils.translation import gettext

from opportuna.accounts.models import Team, User
from opportuna.accounts.selectors import team_members, users_managed_by, visible_owner_ids
from opportuna.insights.models import DealActivityCount, StepVisit
from opportuna.insights.periods import (
    Period,
    add_months,
    datetime_period_key,
    local_day_range,
    local_midnight,
    period_start,
    periods_between,
)
from opportuna.sales.models import (
    OPEN_STATUSES,
    Activity,
    ActivityType,
    EventKind,
    Opportunity,
    OpportunityEvent,
    OpportunityQuerySet,
    Pipeline,
    Product,
    Status,
    Step,
)
from opportuna.sales.selectors import visible_opportunities

# An open opportunity on a step without its own limit rots after this many days idle.
DEFAULT_ROT_DAYS = 30
# How many rotting opportunities each owner's list shows (the count covers them all).
ROTTING_LISTED = 10
# A longer range is cut to this many months, ending on the chosen end date.
MAX_RANGE_MONTHS = 120
# Dates outside these are taken for typing mistakes.
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
# Times in step are differences of days counted from this instant, in plain SQL.
DAYS_FROM = datetime(2000, 1, 1, tzinfo=UTC)

StatisticsBy = Literal["owner", "team", "product", "pipeline", "month", "quarter", "year"]
BY_CHOICES: tuple[StatisticsBy, ...] = get_args(StatisticsBy)
LostBy = Literal["month", "quarter", "owner", "product"]
LOST_BY_CHOICES: tuple[LostBy, ...] = get_args(LostBy)

_WON = Q(status=Status.WON)
_LOST = Q(status=Status.LOST)
_CANCELLED = Q(status=Status.CANCELLED)


# Filters --------------------------------------------------------------------------------


def default_range(today: date) -> tuple[date, date]:
    """The last 12 months: the current month and the 11 before it, up to today."""
    return period_start(add_months(today, -11), "month"), today


@dataclass(frozen=True)
class StatisticsFilters:
    """What narrows every statistics page; every field travels in the URL."""

    start: date
    end: date
    pipeline: int | None = None
    owner: int | None = None
    team: int | None = None
    product: int | None = None

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError("start must not be after end")

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, today: date) -> StatisticsFilters:
        """Read the filters from a query string; a malformed value falls back to its default.

        Dates given the wrong way round are swapped, dates outside EARLIEST..LATEST ignored,
        and a range longer than MAX_RANGE_MONTHS is cut to end at the chosen end date.
        """

        def number(name: str) -> int | None:
            raw = (query.get(name) or "").strip()
            return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None

        def day(name: str, default: date) -> date:
            try:
                chosen = date.fromisoformat((query.get(name) or "").strip())
            except ValueError:
                return default
            return chosen if EARLIEST <= chosen <= LATEST else default

        default_start, default_end = default_range(today)
        start, end = day("start", default_start), day("end", default_end)
        start, end = min(start, end), max(start, end)
        start = max(start, add_months(end, -MAX_RANGE_MONTHS))
        return cls(
            start=start,
            end=end,
            pipeline=number("pipeline"),
            owner=number("owner"),
            team=number("team"),
            product=number("product"),
        )

    def as_query(self) -> dict[str, str]:
        """The filters as query-string values (the dates always, the rest when set)."""
        return {
            name: value.isoformat() if isinstance(value, date) else str(value)
            for name, value in asdict(self).items()
            if value is not None
        }

    def apply(self, queryset: OpportunityQuerySet) -> OpportunityQuerySet:
        """Narrow by pipeline, owner, team and product (not by date: each page picks its own)."""
        if self.pipeline is not None:
            queryset = queryset.filter(pipeline_id=self.pipeline)
        if self.owner is not None:
            queryset = queryset.filter(owner_id=self.owner)
        if self.team is not None:
            queryset = queryset.filter(owner__in=team_members(self.team))
        if self.product is not None:
            queryset = queryset.filter(product_id=self.product)
        return queryset

    def day_range(self) -> tuple[datetime, datetime]:
        """[first instant of start, first instant after end) in the account's time zone."""
        return local_day_range(self.start, self.end)

    def chosen_owners(self, user: User) -> QuerySet[User] | None:
        """The ids of the users whose opportunities `apply(visible_opportunities(user))`
        keeps, when nothing but owners narrows them: who `user` may see, the owner and team
        filters. None when a pipeline or a product narrows them too.

        Rows that repeat their opportunity's owner (`models.repeated_owner`, the activities'
        `opportunity_owner`) are then chosen by it, `owner_id IN` these few ids, instead of
        being matched one by one with the chosen opportunities."""
        if self.pipeline is not None or self.product is not None:
            return None
        return visible_owner_ids(user, owner=self.owner, team=self.team)


@dataclass(frozen=True)
class FilterChoices:
    pipelines: list[Pipeline]
    owners: list[User]
    teams: list[Team]
    products: list[Product]


def statistics_filter_choices(*, user: User) -> FilterChoices:
    """What the filter selects offer `user`: pipelines, products, and the people and teams they
    may look at. Four small queries (three for a salesperson, who picks no team)."""
    if user.is_admin or user.is_manager:
        owners = users_managed_by(user)
    elif user.team_id:
        owners = User.objects.filter(Q(pk=user.pk) | Q(team_id=user.team_id))
    else:
        owners = User.objects.filter(pk=user.pk)
    teams: list[Team] = []
    if user.is_admin:
        teams = list(Team.objects.order_by("name"))
    elif user.is_manager:
        teams = list(Team.objects.filter(managers=user).order_by("name"))
    return FilterChoices(
        pipelines=list(Pipeline.objects.order_by("-is_active", "position", "name", "pk")),
        owners=list(owners.order_by("-is_active", "first_name", "last_name", "username")),
        teams=teams,
        products=list(Product.objects.order_by("-is_active", "name")),
    )


# SQL helpers ----------------------------------------------------------------------------


class DaysBetween(Func):
    """(end - start) in days, with the fraction, computed by the database."""

    arity = 2
    output_field = FloatField()

    def as_sql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(
            f"statistics are written for SQLite and PostgreSQL, not {connection.vendor}"
        )

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        end, end_params = compiler.compile(self.source_expressions[0])
        start, start_params = compiler.compile(self.source_expressions[1])
        return f"(julianday({end}) - julianday({start}))", (*end_params, *start_params)

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        end, end_params = compiler.compile(self.source_expressions[0])
        start, start_params = compiler.compile(self.source_expressions[1])
        seconds = f"CAST(EXTRACT(EPOCH FROM (({end}) - ({start}))) AS double precision)"
        return f"({seconds} / 86400.0)", (*end_params, *start_params)


class Unindexed(Func):
    """A column as it is, which SQLite does not read through an index on it (a unary +):
    so that a query reads another index, which it could not be told otherwise."""

    arity = 1
    template = "%(expressions)s"

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"+{sql}", params


def week_key(field_name: str, *, start: date, end: date) -> Any:
    """The Monday (ISO date) of the week a datetime column falls in, in the account's time zone.

    Only meaningful on rows whose `field_name` lies within `local_day_range(start, end)`. The
    weeks are found by halving (nested CASEs), so a row costs about log2(weeks) comparisons.
    """
    mondays = weeks_between(start, end)
    zone = timezone.get_default_timezone()

    def pick(first: int, last: int) -> Any:
        if first == last:
            return Value(str(mondays[first]), output_field=CharField())
        middle = (first + last + 1) // 2
        before = Q(**{f"{field_name}__lt": local_midnight(mondays[middle], zone)})
        return Case(
            When(before, then=pick(first, middle - 1)),
            default=pick(middle, last),
            output_field=CharField(),
        )

    return pick(0, len(mondays) - 1)


def weeks_between(start: date, end: date) -> list[date]:
    """The Monday of every week that overlaps the days start..end, in order."""
    monday = start - timedelta(days=start.weekday())
    mondays = []
    while monday <= end:
        mondays.append(monday)
        monday += timedelta(days=7)
    return mondays


# Closes a subquery whose rows are grouped by a computed column (a week, a period). Grouped
# in the same query level, PostgreSQL takes such a column for as many values as the datetime
# it is computed from and sorts every row; behind OFFSET 0 it plans the subquery on its own,
# guesses a few hundred values and hashes the groups.
_FENCE = {"postgresql": " OFFSET 0"}


def _run(template: str, source: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """Run `template` with `{source}` replaced by the compiled `source` query (and its
    parameters); the template itself takes no parameters."""
    if template.count("{source}") != 1 or "%" in template:
        raise ValueError("a template holds {source} once and no parameters")
    sql, params = source.query.sql_with_params()
    with connections[source.db].cursor() as cursor:
        cursor.execute(template.replace("{source}", sql), params)
        return list(cursor.fetchall())


def _run_sources(
    template: str,
    sources: Mapping[str, QuerySet[Any]],
    params: Sequence[Any] = (),
    using: str = DEFAULT_DB_ALIAS,
) -> list[tuple[Any, ...]]:
    """Run `template` with each `{name}` replaced by the compiled query of `sources[name]`
    (each name once) and its parameters, then `params` for the template's own `%s`, which
    must all come after the last source; on the sources' database, else on `using`."""
    pieces = re.split(r"\{(\w+)\}", template)
    names = pieces[1::2]
    if sorted(names) != sorted(sources) or len(set(names)) != len(names):
        raise ValueError("a template holds each source once")
    if any("%" in piece for piece in pieces[0:-1:2]):
        raise ValueError("a template's own parameters come after its sources")
    sql: list[str] = []
    values: list[Any] = []
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            sql.append(piece)
            continue
        compiled, compiled_params = sources[piece].query.sql_with_params()
        sql.append(compiled)
        values.extend(compiled_params)
    db = next(iter(sources.values())).db if sources else using
    with connections[db].cursor() as cursor:
        cursor.execute("".join(sql), [*values, *params])
        return list(cursor.fetchall())


def _values(count: int, width: int = 1) -> str:
    """A `(VALUES ...)` table of `count` rows of `width` parameters each."""
    row = f"({', '.join(['%s'] * width)})"
    return f"(VALUES {', '.join([row] * count)})"


def _kept(column: str, opportunities: QuerySet[Any]) -> tuple[str, dict[str, QuerySet[Any]]]:
    """For a template of `_run_sources`: a condition (with a trailing AND) keeping the rows
    whose `column` is one of `opportunities`, and its source; nothing when they are every
    opportunity. The unary + keeps the database from reading the rows through an index on
    `column` (once per opportunity, for every cell of a report) instead of the index the
    template means."""
    if every_opportunity(opportunities):
        return "", {}
    return f"+{column} IN ({{kept}}) AND ", {"kept": opportunities.order_by().values("pk")}


def _narrowed(
    rows: QuerySet[Any],
    *,
    user: User,
    filters: StatisticsFilters,
    owner: str,
    opportunities: QuerySet[Any] | None = None,
) -> QuerySet[Any]:
    """`rows`, which point at an opportunity and repeat its owner in `owner`, of the
    opportunities `filters` keep of those `user` sees: all of them for every opportunity;
    narrowed by owners only, chosen by the owner (`filters.chosen_owners`: a few ids); else
    matched with `opportunities` (those chosen opportunities, unless given)."""
    chosen = filters.apply(visible_opportunities(user))
    if every_opportunity(chosen):
        return rows
    owners = filters.chosen_owners(user)
    if owners is not None:
        return rows.filter(**{f"{owner}__in": owners})
    kept = chosen if opportunities is None else opportunities
    return rows.filter(opportunity__in=kept.order_by().values("pk"))


def _kept_by_owner(
    *,
    user: User,
    filters: StatisticsFilters,
    opportunity: str,
    owner: str,
    opportunities: QuerySet[Any] | None = None,
) -> tuple[str, dict[str, QuerySet[Any]]]:
    """`_kept` for rows that repeat their opportunity's `owner` as well as the `opportunity`:
    narrowed by owners only, the rows are kept by the owner (`filters.chosen_owners`: a few
    ids); else matched with `opportunities` (the ones `filters` keep of those `user` sees,
    unless given)."""
    chosen = filters.apply(visible_opportunities(user))
    if every_opportunity(chosen):
        return "", {}
    owners = filters.chosen_owners(user)
    if owners is not None:
        return f"+{owner} IN ({{kept}}) AND ", {"kept": owners}
    return _kept(opportunity, chosen if opportunities is None else opportunities)


@dataclass(frozen=True)
class Quantiles:
    """How many values, and their quartiles (continuous: interpolated between ranks)."""

    count: int
    p25: float
    median: float
    p75: float


_PROBABILITIES = (0.25, 0.5, 0.75)


def _quantile_select(level: int, keys: Sequence[str], group: Sequence[str], vendor: str) -> str:
    """One SELECT of `_quantiles`: quartiles of `val` in `t` per `group` (all rows if empty)."""
    columns = ", ".join(name if name in group else "NULL" for name in keys)
    group_by = f" GROUP BY {', '.join(group)}" if group else ""
    if vendor == "postgresql":
        quartiles = ", ".join(
            f"percentile_cont({p}) WITHIN GROUP (ORDER BY val)" for p in _PROBABILITIES
        )
        return f"SELECT {level}, {columns}, COUNT(*), {quartiles} FROM t{group_by}"  # noqa: S608 - see _quantiles
    over = f"PARTITION BY {', '.join(group)}" if group else ""
    quartiles = ", ".join(
        f"SUM(val * MAX(0.0, 1.0 - ABS(i - (n - 1) * {p})))" for p in _PROBABILITIES
    )
    # i: the rank of val from 0, n: how many values, both within the group.
    ranks = f"ROW_NUMBER() OVER ({over} ORDER BY val) - 1 AS i, COUNT(*) OVER ({over}) AS n"
    ranked = f"SELECT *, {ranks} FROM t"  # noqa: S608 - see _quantiles
    return f"SELECT {level}, {columns}, COUNT(*), {quartiles} FROM ({ranked}) r{group_by}"  # noqa: S608 - see _quantiles


def _quantiles(
    source: QuerySet[Any],
    *,
    keys: Sequence[str],
    total_by: Sequence[str] | None = None,
    rows: str = "SELECT * FROM ({source}) s",
) -> tuple[dict[tuple[Any, ...], Quantiles], dict[tuple[Any, ...], Quantiles]]:
    """Quartiles of the column `val` of `source` (a `.values()` query, or what the SQL `rows`
    makes of it) per `keys`, and, when `total_by` (a part of `keys`) is given, per `total_by`
    over all rows; one query.

    Rows whose `val` is NULL are left out. PostgreSQL has `percentile_cont`; SQLite gets the
    same number from ranks: with n values sorted and indexed from 0, the quantile p is the sum
    of value_i * max(0, 1 - |i - (n - 1) * p|), i.e. the two neighbours of rank (n - 1) * p
    weighted by how close they are to it. The SQL is built from `keys` (column names of
    `source`, checked to be plain identifiers) and constants only, never from user input.
    """
    vendor = connections[source.db].vendor
    if vendor not in ("postgresql", "sqlite"):
        raise NotSupportedError("statistics are written for SQLite and PostgreSQL")
    if not all(name.isidentifier() for name in keys):
        raise ValueError("keys are column names")
    kept = f"SELECT {', '.join(keys)}, val FROM ({rows}) r WHERE val IS NOT NULL"  # noqa: S608
    if vendor == "postgresql" and total_by is not None and set(total_by) != set(keys):
        # Both levels from one sort of one scan: GROUPING(keys) is 0 on the rows per `keys`.
        quartiles = ", ".join(
            f"percentile_cont({p}) WITHIN GROUP (ORDER BY val)" for p in _PROBABILITIES
        )
        columns = ", ".join(keys)
        sets = f"({columns}), ({', '.join(total_by)})"
        template = (
            f"SELECT CASE WHEN GROUPING({columns}) = 0 THEN 0 ELSE 1 END, {columns}, "  # noqa: S608
            f"COUNT(*), {quartiles} FROM ({kept}) t GROUP BY GROUPING SETS ({sets})"
        )
    else:
        selects = [_quantile_select(0, keys, keys, vendor)]
        if total_by is not None:
            selects.append(_quantile_select(1, keys, total_by, vendor))
        template = f"WITH t AS ({kept}) " + " UNION ALL ".join(selects)
    by_keys: dict[tuple[Any, ...], Quantiles] = {}
    by_total: dict[tuple[Any, ...], Quantiles] = {}
    for level, *values, count, p25, median, p75 in _run(template, source):
        if not count:
            continue  # the total of no rows at all
        if level == 0:
            by_keys[tuple(values)] = Quantiles(int(count), p25, median, p75)
        else:
            chosen = tuple(v for name, v in zip(keys, values, strict=True) if name in total_by)
            by_total[chosen] = Quantiles(int(count), p25, median, p75)
    return by_keys, by_total


# The bin of a value `val` in `_binned_quantiles`: its whole number (SQLite).
_BIN = "CAST(val AS INTEGER)"


def _binned_quantiles(
    source: QuerySet[Any],
    *,
    keys: Sequence[str],
    total_by: Sequence[str],
    tally: Sequence[tuple[Any, ...]] | None = None,
) -> tuple[dict[tuple[Any, ...], Quantiles], dict[tuple[Any, ...], Quantiles]]:
    """`_quantiles(source, keys=keys, total_by=total_by)`, the same numbers, for SQLite, which
    ranks by sorting every value (seconds for a year of closed deals at a million, as many
    sorts as levels and window functions). Two queries instead, each sorting only a little:
    how many values fall in each whole number (`bin`) per `keys`, which tells the few bins
    holding the ranks the quartiles need at both levels; then only the values in those bins,
    ranked within them (`_visit_quantiles` does the same with the step visits' stored bins).
    If the values changed between the two queries, every value is sorted after all.
    `tally`: the first query's rows (keys..., bin, count) when the caller counted them."""
    if not all(name.isidentifier() for name in keys) or not set(total_by) <= set(keys):
        raise ValueError("keys are column names, total_by some of them")
    columns = ", ".join(keys)
    binned = (
        f"SELECT {columns}, val, {_BIN} AS bin "  # noqa: S608 - see _quantiles
        "FROM ({source}) s WHERE val IS NOT NULL"
    )
    # Grouped by the bin first: SQLite sorts what it groups, and the bin, which tells most
    # rows apart, settles most comparisons at once (a tenth faster than by it last).
    counting = f"SELECT {columns}, bin, COUNT(*) FROM ({binned}) k GROUP BY bin, {columns}"  # noqa: S608
    levels = {0: tuple(keys), 1: tuple(total_by)}
    bins: dict[tuple[int, tuple[Any, ...]], dict[int, int]] = {}
    if tally is None:
        tally = _run(counting, source)
    for *values, bin_, n in tally:
        for level, names in levels.items():
            key = tuple(v for name, v in zip(keys, values, strict=True) if name in names)
            per_bin = bins.setdefault((level, key), {})
            per_bin[bin_] = per_bin.get(bin_, 0) + n
    starts: dict[tuple[int, tuple[Any, ...], int], int] = {}  # values before each bin
    picks: list[tuple[int, tuple[Any, ...], int, int]] = []  # level, key, bin, rank in it
    for (level, key), per_bin in bins.items():
        ranks, before = _quartile_ranks(sum(per_bin.values())), 0
        for bin_ in sorted(per_bin):
            after = before + per_bin[bin_]
            starts[(level, key, bin_)] = before
            picks += [
                (level, key, bin_, r - before + 1) for r in sorted(ranks) if before <= r < after
            ]
            before = after
    if not picks:
        return {}, {}
    selects, params = [], []
    for level, names in levels.items():
        chosen = [pick for pick in picks if pick[0] == level]
        if not chosen:
            continue
        # Only the partitions holding a pick are ranked: a few hundred values each, where
        # the wanted bins hold tens of thousands at a million.
        partitions = list(dict.fromkeys((*key, bin_) for _level, key, bin_, _rank in chosen))
        group = ", ".join([*names, "bin"])
        inside = " AND ".join(
            f"p.column{i} IS c.{name}" for i, name in enumerate([*names, "bin"], 1)
        )
        same = " AND ".join(
            f"w.column{i} IS r.{name}" for i, name in enumerate([*names, "bin", "rn"], 1)
        )
        keyed = ", ".join(name if name in names else "NULL" for name in keys)
        selects.append(
            f"SELECT {level}, {keyed}, r.bin, r.rn, r.val, r.size FROM ("  # noqa: S608 - constants only
            f"SELECT c.*, ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY c.val) AS rn, "
            f"COUNT(*) OVER (PARTITION BY {group}) AS size "
            f"FROM c JOIN {_values(len(partitions), len(names) + 1)} p ON {inside}) r "
            f"JOIN {_values(len(chosen), len(names) + 2)} w ON {same}"
        )
        params += [value for partition in partitions for value in partition]
        params += [value for _level, key, bin_, rank in chosen for value in (*key, bin_, rank)]
    wanted_bins = sorted({bin_ for _level, _key, bin_, _rank in picks})
    template = (
        f"WITH c AS (SELECT * FROM ({binned}) k WHERE k.bin IN "  # noqa: S608 - constants only
        f"({', '.join(str(int(b)) for b in wanted_bins)})) " + " UNION ALL ".join(selects)
    )
    found: dict[tuple[int, tuple[Any, ...]], dict[int, float]] = {}
    for level, *values, bin_, rn, val, size in _run_sources(template, {"source": source}, params):
        key = tuple(v for name, v in zip(keys, values, strict=True) if name in levels[level])
        if (level, key) not in bins or int(size) != bins[(level, key)].get(bin_):
            break  # the values changed between the two queries
        found.setdefault((level, key), {})[starts[(level, key, bin_)] + int(rn) - 1] = val
    else:
        if sum(map(len, found.values())) == len(picks):
            result: tuple[dict[tuple[Any, ...], Quantiles], ...] = ({}, {})
            for (level, key), per_bin in bins.items():
                count = sum(per_bin.values())
                values_at = found[(level, key)]
                result[level][key] = Quantiles(
                    count, *(_interpolate(values_at, count, p, "sqlite") for p in _PROBABILITIES)
                )
            return result[0], result[1]
    return _quantiles(source, keys=keys, total_by=total_by)


def person(first_name: str, last_name: str, username: str) -> str:
    """A user's name as `User.__str__` shows it, from values()."""
    return f"{first_name} {last_name}".strip() or username


def _percent(part: int, whole: int) -> float | None:
    """part / whole in percent; None when there is no whole."""
    return 100 * part / whole if whole else None


def _average_cents(total: int, count: int) -> int | None:
    """total / count in whole cents, rounded half-up (cents are never negative here)."""
    return (2 * total + count) // (2 * count) if count else None


# Win rate, deal size and sales cycle ----------------------------------------------------

_BY_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "owner": ("owner_id", ("owner__first_name", "owner__last_name", "owner__username")),
    "team": ("owner__team_id", ("owner__team__name",)),
    "product": ("product_id", ("product__name",)),
    "pipeline": ("pipeline_id", ("pipeline__name",)),
}


@dataclass(frozen=True)
class WinRateRow:
    """One group (or the total) of closed opportunities; money in cents, cycle in days."""

    key: Any  # owner/team/product/pipeline id, period key, or None (no team/product, total)
    label: str
    won: int
    lost: int
    cancelled: int
    won_value: int  # won amounts
    lost_value: int  # expected amounts of the lost ones
    cancelled_value: int
    cycle_won: Quantiles | None
    cycle_lost: Quantiles | None

    @property
    def decided(self) -> int:
        return self.won + self.lost

    @property
    def win_rate(self) -> float | None:
        """Won / (won + lost) by count, in percent; None when nothing was decided."""
        return _percent(self.won, self.won + self.lost)

    @property
    def value_win_rate(self) -> float | None:
        """Won value / (won value + lost value), in percent; None when both are zero."""
        return _percent(self.won_value, self.won_value + self.lost_value)

    @property
    def average_won(self) -> int | None:
        """Average won deal size in cents, rounded half-up."""
        return _average_cents(self.won_value, self.won)


@dataclass(frozen=True)
class WinRates:
    by: StatisticsBy
    rows: list[WinRateRow]
    total: WinRateRow


def _closed_in_range(*, user: User, filters: StatisticsFilters) -> OpportunityQuerySet:
    first_instant, after_end = filters.day_range()
    return (
        filters.apply(visible_opportunities(user))
        .filter(
            status__in=(Status.WON, Status.LOST, Status.CANCELLED),
            closed_at__gte=first_instant,
            closed_at__lt=after_end,
        )
        .order_by()
    )


def _group_expression(by: str, filters: StatisticsFilters, field_name: str) -> Any:
    """What rows are grouped on: a column, or the period key of `field_name`."""
    if by in _BY_COLUMNS:
        return F(_BY_COLUMNS[by][0])
    period = cast(Period, by)
    return datetime_period_key(field_name, period=period, start=filters.start, end=filters.end)


def _by_label(by: str, values: Mapping[str, Any]) -> str:
    if by == "owner":
        return person(
            values["owner__first_name"], values["owner__last_name"], values["owner__username"]
        )
    if by == "team":
        return values["owner__team__name"] or gettext("(no team)")
    if by == "product":
        return values["product__name"] or gettext("(no product)")
    if by == "pipeline":
        return values["pipeline__name"]
    return str(values["grp"])


def win_rates(*, user: User, filters: StatisticsFilters, by: StatisticsBy) -> WinRates:
    """Win rate, deal size and sales cycle of the opportunities closed in the range, per
    owner, team, product, pipeline or period, with the total; two queries (three on SQLite:
    see `_sqlite_win_counts`)."""
    if by not in BY_CHOICES:
        raise ValueError(f"by must be one of {', '.join(BY_CHOICES)}; got {by!r}")
    closed = _closed_in_range(user=user, filters=filters)
    labels = _BY_COLUMNS[by][1] if by in _BY_COLUMNS else ()
    cycles = (
        closed.filter(status__in=(Status.WON, Status.LOST))
        .annotate(
            grp=_group_expression(by, filters, "closed_at"),
            outcome=F("status"),
            val=DaysBetween(F("closed_at"), F("created_at")),
        )
        .values("grp", "outcome", "val")
    )
    if connections[closed.db].vendor == "sqlite":
        counts, tally = _sqlite_win_counts(closed, by, filters)
        by_group, by_outcome = _binned_quantiles(
            cycles, keys=("grp", "outcome"), total_by=("outcome",), tally=tally
        )
    else:
        counts = list(
            closed.annotate(grp=_group_expression(by, filters, "closed_at"))
            .values("grp", *labels)
            .annotate(
                # Counting the status (never NULL) rather than the id, which no closed-deal
                # index holds, lets PostgreSQL answer from opp_closed_idx alone.
                n_won=Count("status", filter=_WON),
                n_lost=Count("status", filter=_LOST),
                n_cancelled=Count("status", filter=_CANCELLED),
                won_sum=Sum("won_amount", filter=_WON, default=0),
                lost_sum=Sum("amount", filter=_LOST, default=0),
                cancelled_sum=Sum("amount", filter=_CANCELLED, default=0),
            )
        )
        by_group, by_outcome = _quantiles(cycles, keys=("grp", "outcome"), total_by=("outcome",))

    rows = [
        WinRateRow(
            key=values["grp"],
            label=_by_label(by, values),
            won=values["n_won"],
            lost=values["n_lost"],
            cancelled=values["n_cancelled"],
            won_value=int(values["won_sum"]),
            lost_value=int(values["lost_sum"]),
            cancelled_value=int(values["cancelled_sum"]),
            cycle_won=by_group.get((values["grp"], Status.WON.value)),
            cycle_lost=by_group.get((values["grp"], Status.LOST.value)),
        )
        for values in counts
    ]
    if by in _BY_COLUMNS:
        rows.sort(key=lambda row: (row.key is None, row.label.casefold(), row.key or 0))
    else:
        # Every period of the range, the empty ones too, so a trend has no holes.
        found = {row.key: row for row in rows}
        rows = [
            found.get(key) or _empty_win_row(key)
            for key, _first in periods_between(filters.start, filters.end, cast(Period, by))
        ]
    total = WinRateRow(
        key=None,
        label=gettext("Total"),
        won=sum(row.won for row in rows),
        lost=sum(row.lost for row in rows),
        cancelled=sum(row.cancelled for row in rows),
        won_value=sum(row.won_value for row in rows),
        lost_value=sum(row.lost_value for row in rows),
        cancelled_value=sum(row.cancelled_value for row in rows),
        cycle_won=by_outcome.get((Status.WON.value,)),
        cycle_lost=by_outcome.get((Status.LOST.value,)),
    )
    return WinRates(by=by, rows=rows, total=total)


_LABELLED = {"owner": User, "team": Team, "product": Product, "pipeline": Pipeline}


def _sqlite_win_counts(
    closed: OpportunityQuerySet, by: StatisticsBy, filters: StatisticsFilters
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The counts and sums per group that PostgreSQL groups with their labels in one query,
    for SQLite, which sorts what it groups: grouped by the group, outcome and whole days of
    the sales cycle, which also tells `_binned_quantiles` how many cycles fall in each bin
    (returned as its `tally`), without joining the labels row by row (SQLite then scanned
    the range once per person); the labels are then read by id. Two queries (one by period).
    """
    source = closed.annotate(
        grp=_group_expression(by, filters, "closed_at"),
        outcome=F("status"),
        val=DaysBetween(F("closed_at"), F("created_at")),
        won_value=F("won_amount"),
        value=F("amount"),
    ).values("grp", "outcome", "val", "won_value", "value")
    template = (
        f"SELECT grp, outcome, {_BIN}, COUNT(*), SUM(won_value), SUM(value) "  # noqa: S608 - a constant
        "FROM ({source}) s GROUP BY 3, 1, 2"  # the bin first: see _binned_quantiles
    )
    counts: dict[Any, dict[str, Any]] = {}
    tally: list[tuple[Any, ...]] = []
    for grp, outcome, bin_, n, won_sum, value_sum in _run(template, source):
        row = counts.setdefault(
            grp,
            {"grp": grp, "n_won": 0, "n_lost": 0, "n_cancelled": 0}
            | {"won_sum": 0, "lost_sum": 0, "cancelled_sum": 0},
        )
        if outcome == Status.WON:
            row["n_won"] += n
            row["won_sum"] += won_sum or 0
        elif outcome == Status.LOST:
            row["n_lost"] += n
            row["lost_sum"] += value_sum or 0
        else:
            row["n_cancelled"] += n
            row["cancelled_sum"] += value_sum or 0
        if outcome in (Status.WON, Status.LOST) and bin_ is not None:
            tally.append((grp, outcome, bin_, n))
    if by in _LABELLED:
        labels = _BY_COLUMNS[by][1]
        fields = [label.rsplit("__", 1)[1] for label in labels]
        known = _LABELLED[by].objects.filter(pk__in=[k for k in counts if k is not None])
        for pk, *names in known.values_list("pk", *fields):
            counts[pk].update(zip(labels, names, strict=True))
        for row in counts.values():
            row.update({label: None for label in labels if label not in row})
    return list(counts.values()), tally


def _empty_win_row(key: str) -> WinRateRow:
    return WinRateRow(key, key, 0, 0, 0, 0, 0, 0, None, None)


# Step funnel and time in step -----------------------------------------------------------

_CLOSING_KINDS = (EventKind.WON, EventKind.LOST, EventKind.CANCELLED)


@dataclass(frozen=True)
class FunnelStep:
    """What became of the opportunities that entered one step; times in days."""

    step: Step
    entered: int  # opportunities that entered it at least once
    forward: int  # ... left it for a later step of the pipeline
    back: int  # ... left it for an earlier step
    won: int  # ... were won while on it
    lost: int
    cancelled: int
    current: int  # open and on it now
    stay: Quantiles | None  # completed stays: from entering to the next move or close
    waiting: Quantiles | None  # stays still going on: from entering to now
    longest_stay: bool = False  # the longest median stay of its pipeline
    most_lost: bool = False  # the most losses of its pipeline

    @property
    def advanced(self) -> int:
        return self.forward + self.won

    @property
    def advance_rate(self) -> float | None:
        """Percent of the entered opportunities that moved on to a later step or were won."""
        return _percent(self.advanced, self.entered)


@dataclass(frozen=True)
class FunnelPipeline:
    pipeline: Pipeline
    steps: list[FunnelStep]

    @property
    def cohort(self) -> int:
        """The most opportunities any step had: what the funnel's bars are drawn against."""
        return max((step.entered for step in self.steps), default=0)


def every_opportunity(opportunities: QuerySet[Any]) -> bool:
    """Whether `opportunities` (a `visible_opportunities` query, narrowed or not) is every
    opportunity: an admin's, without filters. Rows that point at an opportunity then need no
    semi-join with it, which the database would otherwise check against every one of them
    (PostgreSQL does not drop it for a foreign key)."""
    query = opportunities.query
    return not query.where and not query.is_sliced and query.combinator is None


def _step_visits(
    *, user: User, filters: StatisticsFilters, now: datetime, in_group_order: bool = False
) -> QuerySet[Any]:
    """The step visits (`StepVisit`) of the opportunities created in the range, as the
    funnel's SQL reads them: per visit its opportunity, the step it entered, how it left it
    (`kind`: an EventKind, or "" while it lasts) and for which step, whether the opportunity
    is open and on that step now (`current`, and as 0/1 `cur`) and entered it more than once
    (`again`), the time it counts in days (`val`: the stay, or for a stay still going on
    the wait so far; NULL for a stay that lasts on a closed or moved opportunity) and that
    time's `bin`. Narrowed by owners only, the visits are chosen by the owner each one
    repeats (`filters.chosen_owners`); by a pipeline or a product, matched with the
    opportunities.

    `in_group_order`: for grouping them as `_visit_tally` does. SQLite, which groups by
    sorting, then reads every visit from `step_visit_tally_idx`, already in that order,
    rather than the range from `step_visit_opened_idx` (sorting a year's visits takes
    seconds at a million; reading them all in order, a fraction of it)."""
    first_instant, after_end = filters.day_range()
    if in_group_order:
        visits = StepVisit.objects.alias(opened=Unindexed("opened_at")).filter(
            opened__gte=first_instant, opened__lt=after_end
        )
    else:
        visits = StepVisit.objects.filter(opened_at__gte=first_instant, opened_at__lt=after_end)
    cohort = filters.apply(visible_opportunities(user)).filter(
        created_at__gte=first_instant, created_at__lt=after_end
    )
    visits = _narrowed(visits, user=user, filters=filters, owner="owner", opportunities=cohort)
    value = Case(
        When(~Q(left_by=""), then=F("days")),
        When(current=True, then=DaysBetween(Value(now, models.DateTimeField()), F("entered_at"))),
        output_field=FloatField(),
    )
    return (
        visits.annotate(
            opp=F("opportunity_id"),
            step_in=F("step_id"),
            kind=F("left_by"),
            next_in=F("next_step_id"),
            cur=Case(When(current=True, then=Value(1)), default=Value(0)),
            val=value,
        )
        .values(
            "opp",
            "step_in",
            "kind",
            "next_in",
            "cur",
            "val",
            "bin",
            "again",
            "current",
        )
        .order_by()
    )


# Left for a later step of the pipeline than `here` (position, then id, as steps are shown).
_FORWARD = "(nxt.position > here.position OR (nxt.position = here.position AND nxt.id > here.id))"


def _leaving_flags(kind: str, current: str) -> list[str]:
    """0/1 per way of leaving a step (forward, back, won, lost, cancelled) and being on it
    now, for a row `s` (whose `kind` column says how it left) joined with its step `here`
    and the next one `nxt`."""

    def left_by(value: str, condition: str = "") -> str:
        assert value.isidentifier()  # an EventKind value, written into the SQL
        return f"CASE WHEN s.{kind} = '{value}'{condition} THEN 1 ELSE 0 END"

    return [
        left_by(EventKind.MOVED, f" AND {_FORWARD}"),
        left_by(EventKind.MOVED, f" AND NOT {_FORWARD}"),
        left_by(EventKind.WON),
        left_by(EventKind.LOST),
        left_by(EventKind.CANCELLED),
        f"CASE WHEN {current} THEN 1 ELSE 0 END",
    ]


@dataclass(frozen=True)
class _Tally:
    counts: dict[int, tuple[int, ...]]  # per step: entered, forward, ..., current
    bins: dict[tuple[int, str], dict[int, int]]  # per (step, part): times per bin


def _visit_tally(
    visits: QuerySet[Any], steps: Sequence[Step], grouped: QuerySet[Any] | None = None
) -> _Tally:
    """The funnel's counts per step, and how many times in step fall in each bin per step
    and part ("stay", "waiting"); one query, one pass over the visits.

    Counts are of opportunities, not visits. The visits of a step its opportunity entered
    only once are counted as they are, grouped by their stored columns (step, how and for
    which step they left, bin, on it now, entered more than once): some thousands of groups,
    which PostgreSQL hashes in parallel, knowing how few they are from the statistics that
    migration `insights.0003` declares on those columns. Whether a move went forward or
    back is then read from the steps' positions. Steps entered more than once (rare) are
    grouped per opportunity and step, with a flag per way of leaving any of its visits took.
    `grouped`: the same visits to count in the first part, read in group order (see
    `_step_visits`).
    """
    step_table = connections[visits.db].ops.quote_name(Step._meta.db_table)
    forward, back, won, lost, cancelled, current = _leaving_flags("kind", "s.cur = 1")
    template = (
        "SELECT s.step_in, s.kind, s.bin, s.again, s.next_in, s.current, COUNT(*), "  # noqa: S608 - constants only
        "0, 0, 0, 0, 0, 0 "
        "FROM ({visits}) s "
        "GROUP BY s.step_in, s.kind, s.bin, s.again, s.next_in, s.current "
        "UNION ALL "
        "SELECT s.step_in, NULL, NULL, NULL, NULL, NULL, -1, "
        f"MAX({forward}), MAX({back}), MAX({won}), MAX({lost}), MAX({cancelled}), "
        # CROSS JOIN: SQLite then reads the few visits first and each one's step by its key,
        # rather than every visit of each step (the same inner join to PostgreSQL).
        f"MAX({current}) FROM ({{again}}) s CROSS JOIN {step_table} here "
        f"LEFT JOIN {step_table} nxt ON nxt.id = s.next_in WHERE here.id = s.step_in "
        "GROUP BY s.step_in, s.opp"
    )
    sources = {"visits": visits if grouped is None else grouped, "again": visits.filter(again=True)}
    place = {step.pk: (step.position, step.pk) for step in steps}
    counts: dict[int, list[int]] = {}
    bins: dict[tuple[int, str], dict[int, int]] = {}
    for step, kind, bin_, again, next_in, on_it, n, *flags in _run_sources(template, sources):
        if step not in place:
            continue  # a deleted step's (as the log's entries, dropped by the join)
        totals = counts.setdefault(step, [0] * 7)
        if n == -1:  # one opportunity that entered this step more than once
            # entered, forward, back, won, lost, cancelled, current
            found = (1, *(int(flag) for flag in flags[:5]), int(flags[5]))
        elif again:  # counted per opportunity by the part above
            found = (0,) * 7
        else:
            moved = kind == EventKind.MOVED and next_in in place
            ahead = moved and place[next_in] > place[step]
            ended = [n if kind == end else 0 for end in _CLOSING_KINDS]
            found = (n, n if ahead else 0, n if moved and not ahead else 0, *ended, n * bool(on_it))
        for index, number in enumerate(found):
            totals[index] += number
        if n > 0 and (kind != "" or on_it):
            per_bin = bins.setdefault((step, "waiting" if kind == "" else "stay"), {})
            per_bin[int(bin_)] = per_bin.get(int(bin_), 0) + n
    return _Tally({step: tuple(n) for step, n in counts.items()}, bins)


def _bins_in_order(part: str, per_bin: Mapping[int, int]) -> list[int]:
    """A part's bins from the shortest times up: stays by their days, waits by their start,
    the latest first."""
    return sorted(per_bin, reverse=part == "waiting")


# The ranks that carry a quartile: with n values sorted and indexed from 0, the quantile p
# lies between ranks floor((n - 1) p) and ceil((n - 1) p), as `_quantiles` computes it.
def _quartile_ranks(count: int) -> set[int]:
    ranks = set()
    for p in _PROBABILITIES:
        place = (count - 1) * p
        ranks.update({math.floor(place), math.ceil(place)})
    return ranks


def _interpolate(values: Mapping[int, float], count: int, p: float, vendor: str) -> float:
    """The quantile p of `count` values from the values at its two ranks, with the very
    arithmetic `_quantiles` asks of each database (so the result is the same number)."""
    place = (count - 1) * p
    low, high = math.floor(place), math.ceil(place)
    if vendor == "postgresql":  # percentile_cont: low + (high - low) * fraction
        if high == low:
            return values[low]
        return values[low] + (values[high] - values[low]) * (place - low)
    # SQLite: the sum over ranks of value * max(0, 1 - |rank - place|)
    total = values[low] * max(0.0, 1.0 - abs(low - place))
    if high != low:
        total = total + values[high] * max(0.0, 1.0 - abs(high - place))
    return total


def _visit_quantiles(
    visits: QuerySet[Any], bins: Mapping[tuple[int, str], Mapping[int, int]]
) -> dict[tuple[int, str], Quantiles]:
    """Quartiles of the time in step per step and part, the same numbers `_quantiles` gives,
    without sorting every time: the counts per bin say which few bins hold the ranks the
    quartiles need, and one query ranks only the times in those bins (found by an index on
    step and bin) and returns those at the wanted ranks."""
    starts: dict[tuple[int, str, int], int] = {}  # ranks before each bin
    wanted: dict[tuple[int, str, int], list[int]] = {}  # ranks within a bin, from 1
    totals: dict[tuple[int, str], int] = {}
    for (step, part), per_bin in bins.items():
        count = totals[(step, part)] = sum(per_bin.values())
        ranks = _quartile_ranks(count)
        before = 0
        for bin_ in _bins_in_order(part, per_bin):
            after = before + per_bin[bin_]
            starts[(step, part, bin_)] = before
            inside = sorted(rank - before + 1 for rank in ranks if before <= rank < after)
            if inside:
                wanted[(step, part, bin_)] = inside
            before = after
    if not wanted:
        return {}
    # The times in the wanted bins (a stay's bin and a wait's never share a partition, and
    # a lasting stay of a closed or moved opportunity has no time).
    per_step: dict[int, set[int]] = {}
    for step, _part, bin_ in wanted:
        per_step.setdefault(step, set()).add(bin_)
    chosen = Q()
    for step, step_bins in per_step.items():
        chosen |= Q(step_id=step, bin__in=sorted(step_bins))
    candidates = visits.filter(chosen).exclude(left_by="", current=False)
    picks = [(*key, rank) for key, ranks in wanted.items() for rank in ranks]
    template = (
        "SELECT r.step_in, r.part, r.bin, r.rn, r.val, r.size FROM ("  # noqa: S608 - constants only
        "SELECT c.*, ROW_NUMBER() OVER (PARTITION BY c.step_in, c.part, c.bin ORDER BY c.val) "
        "AS rn, COUNT(*) OVER (PARTITION BY c.step_in, c.part, c.bin) AS size "
        "FROM (SELECT s.step_in, CASE WHEN s.kind = '' THEN 'waiting' ELSE 'stay' END "
        "AS part, s.bin, s.val FROM ({candidates}) s) c) r "
        f"JOIN {_values(len(picks), 4)} w "
        "ON w.column1 = r.step_in AND w.column2 = r.part AND w.column3 = r.bin "
        "AND w.column4 = r.rn"
    )
    params = [value for pick in picks for value in pick]
    found: dict[tuple[int, str], dict[int, float]] = {}
    rows = _run_sources(template, {"candidates": candidates}, params)
    for step, part, bin_, rn, val, size in rows:
        if int(size) != bins[(step, part)][bin_]:
            break  # the visits changed between the two queries
        found.setdefault((step, part), {})[starts[(step, part, bin_)] + int(rn) - 1] = val
    if sum(map(len, found.values())) != len(picks):
        # Changed between the queries (each sees the data as it then is): sort them all.
        return _quantiles(visits, keys=("step_in", "part"), rows=_VISIT_TIMES_SQL)[0]
    vendor = connections[visits.db].vendor
    return {
        key: Quantiles(count, *(_interpolate(found[key], count, p, vendor) for p in _PROBABILITIES))
        for key, count in totals.items()
    }


# The times in step of `_step_visits`, as `_quantiles` reads them.
_VISIT_TIMES_SQL = (
    "SELECT s.step_in, CASE WHEN s.kind = '' THEN 'waiting' ELSE 'stay' END AS part, s.val "
    "FROM ({source}) s"
)


def step_funnel(
    *, user: User, filters: StatisticsFilters, now: datetime | None = None
) -> list[FunnelPipeline]:
    """Per pipeline and step, what became of the opportunities created in the range that
    entered it, and how long they stayed; three queries (steps, counts and bins of the
    times in step, the times at the quartiles' ranks)."""
    now = now or timezone.now()
    steps = _all_steps()
    visits = _step_visits(user=user, filters=filters, now=now)
    grouped = _step_visits(user=user, filters=filters, now=now, in_group_order=True)
    tally = _visit_tally(visits, steps, grouped)
    times = _visit_quantiles(visits, tally.bins)
    return _funnels(filters, steps, tally.counts, times)


def _all_steps() -> list[Step]:
    """Every step with its pipeline, in the order the funnels show them; one query."""
    return list(
        Step.objects.select_related("pipeline").order_by(
            "pipeline__position", "pipeline__name", "pipeline_id", "position", "pk"
        )
    )


def _funnels(
    filters: StatisticsFilters,
    steps: Sequence[Step],
    counts: Mapping[int, tuple[int, ...]],
    times: Mapping[tuple[Any, ...], Quantiles],
) -> list[FunnelPipeline]:
    """The funnel of every pipeline the filters keep, from the counts and times per step."""
    pipelines: dict[int, FunnelPipeline] = {}
    for step in steps:
        if filters.pipeline is not None and step.pipeline_id != filters.pipeline:
            continue
        entered, forward, back, won, lost, cancelled, current = counts.get(step.pk, (0,) * 7)
        funnel = pipelines.setdefault(step.pipeline_id, FunnelPipeline(step.pipeline, []))
        funnel.steps.append(
            FunnelStep(
                step=step,
                entered=entered,
                forward=forward,
                back=back,
                won=won,
                lost=lost,
                cancelled=cancelled,
                current=current,
                stay=times.get((step.pk, "stay")),
                waiting=times.get((step.pk, "waiting")),
            )
        )
    found = [_mark_stalls(funnel) for funnel in pipelines.values()]
    # An inactive pipeline nobody entered in the range says nothing.
    return [f for f in found if f.pipeline.is_active or any(s.entered for s in f.steps)]


# The reference the visits are held to (tests only): the same funnel, walking the event log
# of the cohort on every call, as `insights.steps` walks it to write the visits.


def _log_step_events(*, user: User, filters: StatisticsFilters, now: datetime) -> QuerySet[Any]:
    """The step entries and closes of the opportunities created in the range: per event its
    opportunity (with its step and whether it is open now), the step it enters (NULL for a
    close), and its time, also in days, as `_LOG_STEPS_SQL` reads them."""
    first_instant, after_end = filters.day_range()
    cohort = filters.apply(visible_opportunities(user)).filter(
        created_at__gte=first_instant, created_at__lt=after_end
    )
    entered = Case(
        When(kind=EventKind.CREATED, then=Cast(KT("data__step"), models.BigIntegerField())),
        When(kind=EventKind.MOVED, then=Cast(KT("changes__step__1"), models.BigIntegerField())),
        default=Value(None),
        output_field=models.BigIntegerField(),
    )
    epoch = Value(DAYS_FROM, models.DateTimeField())
    return (
        OpportunityEvent.objects.filter(opportunity__in=cohort.order_by().values("pk"))
        .filter(
            Q(kind=EventKind.CREATED)
            | Q(kind=EventKind.MOVED, changes__has_key="step")
            | Q(kind__in=_CLOSING_KINDS)
        )
        .annotate(
            opp=F("opportunity_id"),
            event_id=F("pk"),
            event_at=F("at"),
            event_kind=F("kind"),
            step_in=entered,
            day=DaysBetween(F("at"), epoch),
            age=DaysBetween(Value(now, models.DateTimeField()), F("at")),
            cur_step=F("opportunity__step_id"),
            cur_open=Case(
                When(opportunity__status__in=OPEN_STATUSES, then=Value(1)), default=Value(0)
            ),
        )
        .values(
            "opp",
            "event_id",
            "event_at",
            "event_kind",
            "step_in",
            "day",
            "age",
            "cur_step",
            "cur_open",
        )
        .order_by()
    )


# Each event with what came next on its opportunity: LEAD over its events in time order.
_LOG_STEPS_SQL = (
    "SELECT e.*, LEAD(e.event_kind) OVER w AS next_kind, LEAD(e.step_in) OVER w AS next_step, "
    "LEAD(e.day) OVER w - e.day AS stay "
    "FROM ({source}) e WINDOW w AS (PARTITION BY e.opp ORDER BY e.event_at, e.event_id)"
)


def _log_funnel_counts(events: QuerySet[Any]) -> dict[int, tuple[int, ...]]:
    """The funnel's counts from the log's events: the inner GROUP BY makes one row per step and
    opportunity with a 0/1 flag per way of leaving, which the outer one sums."""
    step_table = connections[events.db].ops.quote_name(Step._meta.db_table)
    current = "s.cur_open = 1 AND s.cur_step = s.step_in"
    flags = [f"MAX({flag})" for flag in _leaving_flags("next_kind", current)]
    per_opportunity = (
        f"SELECT s.step_in, {', '.join(f'{f} AS f{i}' for i, f in enumerate(flags))} "  # noqa: S608 - constants only
        f"FROM ({_LOG_STEPS_SQL}) s "
        f"JOIN {step_table} here ON here.id = s.step_in "
        f"LEFT JOIN {step_table} nxt ON nxt.id = s.next_step "
        "GROUP BY s.step_in, s.opp"
    )
    sums = ", ".join(f"SUM(f{i})" for i in range(len(flags)))
    template = f"SELECT step_in, COUNT(*), {sums} FROM ({per_opportunity}) g GROUP BY step_in"  # noqa: S608
    return {row[0]: tuple(int(n) for n in row[1:]) for row in _run(template, events)}


# Per step entry: a finished stay, or, while the opportunity is open and still on that step,
# the wait so far ("waiting").
_LOG_STAYS_SQL = (
    "SELECT s.step_in, "  # noqa: S608 - constants only
    "CASE WHEN s.next_kind IS NULL THEN 'waiting' ELSE 'stay' END AS part, "
    "CASE WHEN s.next_kind IS NOT NULL THEN s.stay "
    "WHEN s.cur_open = 1 AND s.cur_step = s.step_in THEN s.age END AS val "
    f"FROM ({_LOG_STEPS_SQL}) s WHERE s.step_in IS NOT NULL"
)


def step_funnel_from_log(
    *, user: User, filters: StatisticsFilters, now: datetime | None = None
) -> list[FunnelPipeline]:
    """`step_funnel` computed from the event log instead of the step visits: the reference
    the tests hold it to (slow on a big log); three queries."""
    now = now or timezone.now()
    steps = _all_steps()
    events = _log_step_events(user=user, filters=filters, now=now)
    counts = _log_funnel_counts(events)
    times, _none = _quantiles(events, keys=("step_in", "part"), rows=_LOG_STAYS_SQL)
    return _funnels(filters, steps, counts, times)


def _mark_stalls(funnel: FunnelPipeline) -> FunnelPipeline:
    """Flag the step with the longest median stay and the one that loses the most deals."""
    stays = [s.stay.median for s in funnel.steps if s.stay is not None]
    longest = max(stays, default=None)
    most_lost = max((s.lost for s in funnel.steps), default=0)
    steps = [
        replace(
            step,
            longest_stay=step.stay is not None and step.stay.median == longest,
            most_lost=most_lost > 0 and step.lost == most_lost,
        )
        for step in funnel.steps
    ]
    return FunnelPipeline(funnel.pipeline, steps)


# Lost reasons ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LostReasonRow:
    reason_id: int | None
    name: str
    count: int
    value: int  # expected amounts, cents
    count_share: float | None = None  # percent
    value_share: float | None = None  # percent


@dataclass(frozen=True)
class LostReasons:
    rows: list[LostReasonRow]
    count: int
    value: int


def _lost_in_range(*, user: User, filters: StatisticsFilters) -> OpportunityQuerySet:
    return _closed_in_range(user=user, filters=filters).filter(status=Status.LOST)


def lost_reasons(*, user: User, filters: StatisticsFilters) -> LostReasons:
    """Why the opportunities lost in the range were lost: count and value per reason, with
    their shares, most frequent first; one query."""
    grouped = (
        _lost_in_range(user=user, filters=filters)
        .values("lost_reason_id", "lost_reason__name")
        .annotate(n=Count("pk"), value_sum=Sum("amount", default=0))
    )
    found = [
        (row["lost_reason_id"], row["lost_reason__name"] or "", row["n"], int(row["value_sum"]))
        for row in grouped
    ]
    return _lost_reasons(found)


def lost_reasons_of(matrix: LostMatrix) -> LostReasons:
    """`lost_reasons` added up from a breakdown of the same opportunities (every one of them
    is in one of its columns), so a page that shows both reads them once."""
    names = dict(matrix.reasons)
    totals: dict[int | None, tuple[int, int]] = {}
    for (reason, _column), cell in matrix.cells.items():
        count, value = totals.get(reason, (0, 0))
        totals[reason] = (count + cell.count, value + cell.value)
    return _lost_reasons([(pk, names[pk], n, v) for pk, (n, v) in totals.items()])


def _lost_reasons(found: Sequence[tuple[int | None, str, int, int]]) -> LostReasons:
    count = sum(row[2] for row in found)
    value = sum(row[3] for row in found)
    rows = [
        LostReasonRow(pk, name, n, v, _percent(n, count), _percent(v, value))
        for pk, name, n, v in sorted(found, key=lambda r: (-r[2], -r[3], r[1].casefold()))
    ]
    return LostReasons(rows=rows, count=count, value=value)


@dataclass(frozen=True)
class LostColumn:
    key: Any
    label: str
    count: int = 0
    value: int = 0


@dataclass(frozen=True)
class LostCell:
    count: int
    value: int
    share: float | None  # percent of the column's count


@dataclass(frozen=True)
class LostMatrix:
    """Lost reasons (rows) against periods, owners or products (columns)."""

    by: LostBy
    columns: list[LostColumn]
    reasons: list[tuple[int | None, str]]
    cells: dict[tuple[int | None, Any], LostCell] = field(default_factory=dict)

    def row(self, reason_id: int | None) -> list[LostCell | None]:
        return [self.cells.get((reason_id, column.key)) for column in self.columns]

    @property
    def table(self) -> list[tuple[str, list[LostCell | None]]]:
        """(reason name, one cell or None per column), for templates."""
        return [(name, self.row(pk)) for pk, name in self.reasons]


def lost_reason_matrix(*, user: User, filters: StatisticsFilters, by: LostBy) -> LostMatrix:
    """Lost reasons per period (the trend), owner or product, counts and values; one query."""
    if by not in LOST_BY_CHOICES:
        raise ValueError(f"by must be one of {', '.join(LOST_BY_CHOICES)}; got {by!r}")
    labels = _BY_COLUMNS[by][1] if by in _BY_COLUMNS else ()
    grouped = (
        _lost_in_range(user=user, filters=filters)
        .annotate(grp=_group_expression(by, filters, "closed_at"))
        .values("grp", *labels, "lost_reason_id", "lost_reason__name")
        .annotate(n=Count("pk"), value_sum=Sum("amount", default=0))
    )
    columns: dict[Any, LostColumn] = {}
    if by in ("month", "quarter"):
        for key, _first in periods_between(filters.start, filters.end, cast(Period, by)):
            columns[key] = LostColumn(key, key)
    reasons: dict[int | None, tuple[str, int]] = {}
    counts: dict[tuple[int | None, Any], tuple[int, int]] = {}
    for row in grouped:
        key, reason = row["grp"], row["lost_reason_id"]
        column = columns.get(key) or LostColumn(key, _by_label(by, row))
        n, value = row["n"], int(row["value_sum"])
        columns[key] = LostColumn(key, column.label, column.count + n, column.value + value)
        name, seen = reasons.get(reason, (row["lost_reason__name"] or "", 0))
        reasons[reason] = (name, seen + n)
        counts[(reason, key)] = (n, value)
    ordered = list(columns.values())
    if by not in ("month", "quarter"):
        ordered.sort(key=lambda c: (c.key is None, c.label.casefold(), c.key or 0))
    cells = {
        (reason, key): LostCell(n, value, _percent(n, columns[key].count))
        for (reason, key), (n, value) in counts.items()
    }
    by_count = sorted(reasons.items(), key=lambda item: (-item[1][1], item[1][0].casefold()))
    return LostMatrix(
        by=by,
        columns=ordered,
        reasons=[(pk, name) for pk, (name, _n) in by_count],
        cells=cells,
    )


# Activity report ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityWeek:
    monday: date
    counts: list[int]  # per activity type, in the report's type order
    total: int


@dataclass(frozen=True)
class ActivityPerson:
    user_id: int
    name: str
    counts: list[int]  # per activity type over the range
    total: int
    weeks: list[ActivityWeek]  # every week of the range, the empty ones too

    @property
    def per_week(self) -> float:
        return self.total / len(self.weeks) if self.weeks else 0.0

    @property
    def busiest_week(self) -> int:
        return max((week.total for week in self.weeks), default=0)


@dataclass(frozen=True)
class ActivityReport:
    types: list[ActivityType]
    people: list[ActivityPerson]
    counts: list[int]  # per type, everybody
    total: int
    weeks: int


def activity_types() -> list[ActivityType]:
    """The report's columns: every activity type, in its order (inactive ones last)."""
    return list(ActivityType.objects.order_by("-is_active", "position", "name", "pk"))


def _activities_of(*, user: User, filters: StatisticsFilters) -> QuerySet[Activity]:
    """The activities of the opportunities `user` sees that the filters keep: narrowed by
    owners only, chosen by the owner each activity repeats (`StatisticsFilters.chosen_owners`)."""
    activities = Activity.objects.order_by()
    return _narrowed(activities, user=user, filters=filters, owner="opportunity_owner")


def activity_report(
    *, user: User, filters: StatisticsFilters, types: Sequence[ActivityType]
) -> ActivityReport:
    """Activities done in the range per salesperson (who did them), week and type, on the
    opportunities `user` sees that the filters keep; one query."""
    mondays = weeks_between(filters.start, filters.end)
    if connections[Activity.objects.db].vendor == "sqlite":
        found = _weekly_counts_sqlite(user, filters, mondays, types)
    else:
        found = _weekly_counts(_activities_of(user=user, filters=filters), filters)
    column = {activity_type.pk: index for index, activity_type in enumerate(types)}
    names: dict[int, str] = {}
    cells: dict[tuple[int, str], list[int]] = {}
    for user_id, first_name, last_name, username, week, type_id, n in found:
        if not n:
            continue
        names[user_id] = person(first_name, last_name, username)
        counts = cells.setdefault((user_id, week), [0] * len(types))
        if type_id in column:  # a type created since `types` was read waits a reload
            counts[column[type_id]] += int(n)
    people = []
    for user_id, name in sorted(names.items(), key=lambda item: (item[1].casefold(), item[0])):
        weeks = [
            ActivityWeek(monday, counts, sum(counts))
            for monday in mondays
            for counts in [cells.get((user_id, str(monday)), [0] * len(types))]
        ]
        totals = [sum(week.counts[i] for week in weeks) for i in range(len(types))]
        people.append(ActivityPerson(user_id, name, totals, sum(totals), weeks))
    counts = [sum(p.counts[i] for p in people) for i in range(len(types))]
    return ActivityReport(
        types=list(types), people=people, counts=counts, total=sum(counts), weeks=len(mondays)
    )


def _weekly_counts(
    activities: QuerySet[Activity], filters: StatisticsFilters
) -> list[tuple[Any, ...]]:
    """(user id, first name, last name, username, week's Monday, type id, count) per
    salesperson, week and type of the `activities` done in the range, grouped by ids and the
    week alone (a few thousand groups, which PostgreSQL hashes: see `_FENCE`), then joined
    with the names."""
    first_instant, after_end = filters.day_range()
    weekly = activities.filter(done_at__gte=first_instant, done_at__lt=after_end).annotate(
        week=week_key("done_at", start=filters.start, end=filters.end)
    )
    connection = connections[activities.db]
    users = connection.ops.quote_name(User._meta.db_table)
    template = (
        "SELECT g.user_id, u.first_name, u.last_name, u.username, g.week, g.type_id, g.n "  # noqa: S608 - a model's table
        "FROM (SELECT a.user_id, a.week, a.type_id, COUNT(*) AS n "
        f"FROM ({{source}}{_FENCE.get(connection.vendor, '')}) a "
        "GROUP BY a.user_id, a.week, a.type_id) g "
        f"JOIN {users} u ON u.id = g.user_id"
    )
    return _run(template, weekly.values("user_id", "week", "type_id"))


def _weekly_counts_sqlite(
    user: User,
    filters: StatisticsFilters,
    mondays: Sequence[date],
    types: Sequence[ActivityType],
) -> list[tuple[Any, ...]]:
    """`_weekly_counts` for SQLite, which has no hash aggregation: grouping a year's
    activities sorts them all (seconds at a million). Every person, week and type of the
    report instead counts its own range of `activity_user_type_idx` (person, type, done), so
    the activities are only read, in index order; the rows with nothing done are left for
    the caller to skip. The weeks at the ends are cut to the range here, not by a filter on
    `activities`, which SQLite would take for the range to read in every week."""
    connection = connections[Activity.objects.db]
    users = connection.ops.quote_name(User._meta.db_table)
    activities = connection.ops.quote_name(Activity._meta.db_table)
    zone = timezone.get_default_timezone()
    first_instant, after_end = filters.day_range()
    bounds = [local_midnight(monday, zone) for monday in mondays[1:]]
    bounds = [first_instant, *bounds, after_end]
    weeks = [
        (str(monday), *(connection.ops.adapt_datetimefield_value(b) for b in bounds[i : i + 2]))
        for i, monday in enumerate(mondays)
    ]
    chosen_types = [activity_type.pk for activity_type in types] or [None]
    kept, sources = _kept_by_owner(
        user=user, filters=filters, opportunity="a.opportunity_id", owner="a.opportunity_owner_id"
    )
    template = (
        "SELECT u.id, u.first_name, u.last_name, u.username, w.column1, t.column1, "  # noqa: S608 - models' tables
        f"(SELECT COUNT(*) FROM {activities} a WHERE {kept}a.user_id = u.id "
        "AND a.type_id = t.column1 AND a.done_at >= w.column2 AND a.done_at < w.column3) "
        f"FROM {users} u, {_values(len(weeks), 3)} w, {_values(len(chosen_types))} t"
    )
    params = [*(value for week in weeks for value in week), *chosen_types]
    return _run_sources(template, sources, params, using=Activity.objects.db)


@dataclass(frozen=True)
class ActivitiesPerOutcome:
    """Done activities per won deal and per lost deal (closed in the range), by type."""

    types: list[ActivityType]
    won_deals: int
    lost_deals: int
    won_counts: list[int]  # activities on won deals, per type
    lost_counts: list[int]

    @staticmethod
    def _per(counts: list[int], deals: int) -> list[float | None]:
        return [n / deals if deals else None for n in counts]

    @property
    def per_won(self) -> list[float | None]:
        return self._per(self.won_counts, self.won_deals)

    @property
    def per_lost(self) -> list[float | None]:
        return self._per(self.lost_counts, self.lost_deals)

    @property
    def total_per_won(self) -> float | None:
        return sum(self.won_counts) / self.won_deals if self.won_deals else None

    @property
    def total_per_lost(self) -> float | None:
        return sum(self.lost_counts) / self.lost_deals if self.lost_deals else None

    @property
    def rows(self) -> list[tuple[ActivityType, float | None, float | None]]:
        return list(zip(self.types, self.per_won, self.per_lost, strict=True))


def activities_per_outcome(
    *, user: User, filters: StatisticsFilters, types: Sequence[ActivityType]
) -> ActivitiesPerOutcome:
    """How many activities, by type, were done before closing on each deal won or lost in the
    range; two queries (the deals, their activities).

    The deals are counted from the opportunities, as the reference counts them; their
    activities are summed from what `insights.facts` stores per closed deal
    (`DealActivityCount`: its activities of each type done by the close, with the deal's
    outcome and close time), not from the activities themselves;
    `activities_per_outcome_from_activities` counts those, as the reference. Each outcome and
    type sums its own range of `deal_activity_outcome_idx` (outcome, type, close), so neither
    database groups (SQLite would sort) the year's counts; deals narrowed by owners only are
    chosen by the owner each count repeats (`StatisticsFilters.chosen_owners`), from the same index.
    """
    first_instant, after_end = filters.day_range()
    closed = _closed_in_range(user=user, filters=filters).filter(
        status__in=(Status.WON, Status.LOST)
    )
    deals = closed.aggregate(
        won_deals=Count("pk", filter=_WON), lost_deals=Count("pk", filter=_LOST)
    )
    connection = connections[closed.db]
    counts = connection.ops.quote_name(DealActivityCount._meta.db_table)
    kept, sources = _kept_by_owner(
        user=user,
        filters=filters,
        opportunity="c.opportunity_id",
        owner="c.owner_id",
        opportunities=closed,
    )
    chosen_types = [activity_type.pk for activity_type in types] or [None]
    template = (
        "SELECT o.column1, t.column1, "  # noqa: S608 - a model's table
        f"(SELECT SUM(c.count) FROM {counts} c WHERE {kept}c.won = o.column1 "
        "AND c.type_id = t.column1 AND c.closed_at >= %s AND c.closed_at < %s) "
        f"FROM {_values(2)} o, {_values(len(chosen_types))} t"
    )
    bounds = [connection.ops.adapt_datetimefield_value(b) for b in (first_instant, after_end)]
    params = [*bounds, True, False, *chosen_types]
    rows = [
        (Status.WON if won else Status.LOST, type_id, n or 0)
        for won, type_id, n in _run_sources(template, sources, params, using=closed.db)
    ]
    return _per_outcome(types, deals, rows)


def activities_per_outcome_from_activities(
    *, user: User, filters: StatisticsFilters, types: Sequence[ActivityType]
) -> ActivitiesPerOutcome:
    """`activities_per_outcome` counted from the activities themselves: the reference the
    stored counts are tested against; two queries."""
    closed = _closed_in_range(user=user, filters=filters).filter(
        status__in=(Status.WON, Status.LOST)
    )
    deals = closed.aggregate(
        won_deals=Count("pk", filter=_WON), lost_deals=Count("pk", filter=_LOST)
    )
    grouped = (
        Activity.objects.filter(
            opportunity__in=closed.values("pk"),
            done_at__isnull=False,
            done_at__lte=F("opportunity__closed_at"),
        )
        .order_by()
        .values_list("opportunity__status", "type_id")
        .annotate(n=Count("pk"))
    )
    return _per_outcome(types, deals, list(grouped))


def _per_outcome(
    types: Sequence[ActivityType], deals: Mapping[str, int], rows: Sequence[Sequence[Any]]
) -> ActivitiesPerOutcome:
    column = {activity_type.pk: index for index, activity_type in enumerate(types)}
    won, lost = [0] * len(types), [0] * len(types)
    for status, type_id, n in rows:
        if type_id in column:
            target = won if status == Status.WON else lost
            target[column[type_id]] += int(n)
    return ActivitiesPerOutcome(
        types=list(types),
        won_deals=deals["won_deals"],
        lost_deals=deals["lost_deals"],
        won_counts=won,
        lost_counts=lost,
    )


# Rotting deals --------------------------------------------------------------------------


@dataclass(frozen=True)
class RottingOwner:
    owner_id: int
    name: str
    count: int
    amount: int  # cents
    listed: list[Opportunity]  # the longest idle first (annotated idle_days, last_activity)


def _rotting(*, user: User, filters: StatisticsFilters, now: datetime) -> OpportunityQuerySet:
    last_done = (
        Activity.objects.filter(opportunity=OuterRef("pk"), done_at__isnull=False)
        .order_by("-done_at")
        .values("done_at")[:1]
    )
    return (
        filters.apply(visible_opportunities(user))
        # Said by `open()` so that SQLite reads the open ones from the to-do list's partial
        # index instead of every opportunity.
        .open()
        .annotate(last_activity=Subquery(last_done))
        .annotate(
            idle_days=DaysBetween(
                Value(now, models.DateTimeField()), Coalesce("last_activity", "created_at")
            ),
            rot_limit=Coalesce("step__rot_days", Value(DEFAULT_ROT_DAYS)),
        )
        .filter(idle_days__gt=F("rot_limit"))
        .order_by()
    )


def rotting_deals(
    *,
    user: User,
    filters: StatisticsFilters,
    now: datetime | None = None,
    listed: int | None = ROTTING_LISTED,
) -> list[RottingOwner]:
    """Open opportunities with no activity done for longer than their step allows
    (`Step.rot_days`, else DEFAULT_ROT_DAYS; counted from creation if none was ever done),
    per owner: how many, their amount, and the `listed` longest idle (None: all of them);
    two queries, or one for all of them."""
    now = now or timezone.now()
    rotting = _rotting(user=user, filters=filters, now=now)
    wide = rotting.select_related("client", "step", "pipeline", "owner")
    found: dict[int, list[Opportunity]] = {}
    totals: dict[int, tuple[int, int]] = {}
    if listed is None:
        for opportunity in wide.order_by("owner_id", F("idle_days").desc(), "pk"):
            found.setdefault(opportunity.owner_id, []).append(opportunity)
        for owner_id, opportunities in found.items():
            totals[owner_id] = (len(opportunities), sum(o.amount for o in opportunities))
    else:
        # One pass over narrow rows ranks them per owner and counts each owner's; only the
        # listed ones are then read whole, by id.
        by_owner = [F("owner_id")]
        ranked = rotting.annotate(
            rank=Window(
                RowNumber(), partition_by=by_owner, order_by=[F("idle_days").desc(), F("pk")]
            ),
            owner_count=Window(Count("pk"), partition_by=by_owner),
            owner_amount=Window(Sum("amount"), partition_by=by_owner),
        ).values("pk", "owner_id", "rank", "owner_count", "owner_amount")
        template = (
            "SELECT r.pk, r.owner_id, r.rank, r.owner_count, r.owner_amount FROM ({source}) r"
        )
        ranks: dict[int, int] = {}
        for pk, owner_id, rank, count, amount in _run(template, ranked.filter(rank__lte=listed)):
            ranks[pk] = rank
            totals[owner_id] = (int(count), int(amount or 0))
        for opportunity in sorted(wide.filter(pk__in=ranks), key=lambda o: ranks[o.pk]):
            found.setdefault(opportunity.owner_id, []).append(opportunity)
    owners = []
    for owner_id, (count, amount) in totals.items():
        owner = found[owner_id][0].owner
        name = person(owner.first_name, owner.last_name, owner.username)
        owners.append(RottingOwner(owner_id, name, count, amount, found[owner_id]))
    return sorted(owners, key=lambda o: (-o.count, o.name.casefold(), o.owner_id))


__all__ = [
    "BY_CHOICES",
    "DAYS_FROM",
    "DEFAULT_ROT_DAYS",
    "LOST_BY_CHOICES",
    "MAX_RANGE_MONTHS",
    "ROTTING_LISTED",
    "ActivitiesPerOutcome",
    "ActivityPerson",
    "ActivityReport",
    "ActivityWeek",
    "DaysBetween",
    "FilterChoices",
    "FunnelPipeline",
    "FunnelStep",
    "LostBy",
    "LostCell",
    "LostColumn",
    "LostMatrix",
    "LostReasonRow",
    "LostReasons",
    "Period",
    "Quantiles",
    "RottingOwner",
    "StatisticsBy",
    "StatisticsFilters",
    "WinRateRow",
    "WinRates",
    "activities_per_outcome",
    "activities_per_outcome_from_activities",
    "activity_report",
    "activity_types",
    "default_range",
    "every_opportunity",
    "lost_reason_matrix",
    "lost_reasons",
    "lost_reasons_of",
    "person",
    "rotting_deals",
    "statistics_filter_choices",
    "step_funnel",
    "step_funnel_from_log",
    "week_key",
    "weeks_between",
    "win_rates",
]
