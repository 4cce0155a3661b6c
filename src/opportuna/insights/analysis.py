"""Behaviour analysis and probability calibration over closed opportunities, in SQL.

Both look at won and lost opportunities (cancelled ones won nothing and lost to nobody) that
the user may see, closed in the filter's date range. What happened before each of them
closed (visits before the first demo, days to the first activity, activities per type, the
probability carried 30 days before closing) is stored once per deal by `insights.facts`,
kept in step after every committed change, so a request reads one narrow row per deal,
joined with `visible_opportunities` and grouped by a few small bucket numbers (and the short
activity profile): each question comes back as a handful of rows (count, wins), a few
thousand at most. Django builds the inner query; the grouping around it is written by hand.
Python only adds the Wilson interval and the words, over those few rows.

The walk those facts come from stays here: a window over the activities (or the probability
events) of the opportunities, in the order of their timeline. `insights.facts` runs it per
deal when it stores them; the calibration at a chosen step reads the probability stored on
each stay on a step (`insights.steps`, which reads the log as `carried_probability_sql`
does); `behaviour_analysis_from_log` and
`probability_calibration_from_log` run it over everything, as the reference the stored facts
are tested against.

Significance is deliberately plain: a bucket differs from the baseline (all the opportunities
analysed) when it holds at least `MIN_SAMPLE` of them and its 95% Wilson interval does not
overlap the baseline's. Smaller buckets are shown, labelled as small samples, and never make a
sentence. These are patterns on past deals, not rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

from django.db import NotSupportedError, connection, models
from django.db.models import (
    Case,
    Count,
    F,
    FilteredRelation,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.expressions import RowRange
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce, Greatest, Least
from django.db.models.sql.compiler import SQLCompiler
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from opportuna.accounts.models import Team, User
from opportuna.accounts.selectors import (
    team_members,
    users_managed_by,
    visible_owner_filter,
    visible_owner_ids,
)
from opportuna.insights.models import DealFacts, StepVisit
from opportuna.insights.periods import local_day_range
from opportuna.sales.models import (
    Activity,
    ActivityType,
    EventKind,
    OpportunityEvent,
    OpportunityQuerySet,
    Pipeline,
    Status,
    Step,
)
from opportuna.sales.selectors import visible_opportunities

Z = 1.96  # 95% confidence
MIN_SAMPLE = 30  # fewer opportunities than this in a bucket: a small sample, never a finding
MAX_FINDINGS = 5
OUTCOMES = (Status.WON, Status.LOST)
WON = Q(status=Status.WON)


# Filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class InsightFilters:
    """What narrows an analysis; every field travels in the URL so a view can be shared.

    `start`/`end` bound the close date (in the account's time zone), both optional.
    Owner and team are today's (a team is the owner's team now, not when the deal closed).
    """

    start: date | None = None
    end: date | None = None
    pipeline: int | None = None
    owner: int | None = None
    team: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> InsightFilters:
        """Read the filters from a query string; a malformed value is ignored, not an error."""

        def number(name: str) -> int | None:
            raw = (query.get(name) or "").strip()
            return int(raw) if raw.isdigit() and len(raw) < 10 else None

        def day(name: str) -> date | None:
            try:
                return date.fromisoformat((query.get(name) or "").strip())
            except ValueError:
                return None

        start, end = day("start"), day("end")
        if start and end and start > end:
            start, end = end, start
        return cls(
            start=start,
            end=end,
            pipeline=number("pipeline"),
            owner=number("owner"),
            team=number("team"),
        )

    def as_query(self) -> dict[str, str]:
        """The non-empty filters as query-string values."""
        values: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            values[name] = value.isoformat() if isinstance(value, date) else str(value)
        return values

    def narrow(self, queryset: OpportunityQuerySet) -> OpportunityQuerySet:
        """Pipeline, owner and team (not the dates: each analysis knows which date they bound)."""
        if self.pipeline is not None:
            queryset = queryset.filter(pipeline_id=self.pipeline)
        if self.owner is not None:
            queryset = queryset.filter(owner_id=self.owner)
        if self.team is not None:
            queryset = queryset.filter(owner__in=team_members(self.team))
        return queryset

    def chosen_owners(self, user: User) -> models.QuerySet[User] | None:
        """The ids of the users whose opportunities `narrow(visible_opportunities(user))`
        keeps, when nothing but owners narrows them (no pipeline), for rows that repeat their
        opportunity's owner; None otherwise (see `StatisticsFilters.chosen_owners`)."""
        if self.pipeline is not None:
            return None
        return visible_owner_ids(user, owner=self.owner, team=self.team)

    def closed_in_range(self, queryset: OpportunityQuerySet) -> OpportunityQuerySet:
        if self.start is not None:
            queryset = queryset.filter(closed_at__gte=local_day_range(self.start, self.start)[0])
        if self.end is not None:
            queryset = queryset.filter(closed_at__lt=local_day_range(self.end, self.end)[1])
        return queryset


@dataclass(frozen=True)
class InsightChoices:
    owners: list[User]
    teams: list[Team]
    pipelines: list[Pipeline]


def insight_filter_choices(*, user: User) -> InsightChoices:
    """What the filter selects offer `user`: people and teams they may look at, pipelines.

    Three small queries (two for a salesperson, who picks no team).
    """
    if user.is_admin or user.is_manager:
        owners = users_managed_by(user)
    elif user.team_id:
        owners = User.objects.filter(Q(pk=user.pk) | Q(team_id=user.team_id))
    else:
        owners = User.objects.filter(pk=user.pk)
    if user.is_admin:
        teams: list[Team] = list(Team.objects.order_by("name"))
    elif user.is_manager:
        teams = list(Team.objects.filter(managers=user).order_by("name"))
    else:
        teams = []
    return InsightChoices(
        owners=list(owners.order_by("first_name", "last_name", "username")),
        teams=teams,
        pipelines=list(Pipeline.objects.order_by("position", "name")),
    )


def closed_opportunities(*, user: User, filters: InsightFilters) -> OpportunityQuerySet:
    """Won and lost opportunities `user` may see, closed within the filters' dates.

    Closed also said as a close time (set exactly on closed ones, a check constraint): the
    condition of the won and lost ones' partial index (`opp_outcome_idx`), which SQLite uses
    only when a query repeats it literally (the statuses travel as parameters)."""
    queryset = visible_opportunities(user).filter(status__in=OUTCOMES, closed_at__isnull=False)
    return filters.closed_in_range(filters.narrow(queryset)).order_by()


# SQL helpers ----------------------------------------------------------------------------


class WholeDaysBetween(Func):
    """Whole days (of 24 hours) from the first datetime to the second, rounded down.

    Meant for a second datetime after the first: a negative gap rounds towards zero on SQLite
    (some builds lack floor()) and down on PostgreSQL, so callers clamp it at 0.
    """

    arity = 2
    output_field = IntegerField()

    def as_sql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"written for SQLite and PostgreSQL, not {connection.vendor}")

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        (first, first_params), (second, second_params) = (
            compiler.compile(e) for e in self.source_expressions
        )
        sql = f"CAST(julianday({second}) - julianday({first}) AS INTEGER)"
        return sql, (*second_params, *first_params)

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        (first, first_params), (second, second_params) = (
            compiler.compile(e) for e in self.source_expressions
        )
        sql = f"CAST(FLOOR(EXTRACT(EPOCH FROM ({second} - {first})) / 86400) AS integer)"
        return sql, (*second_params, *first_params)


class DaysEarlier(Func):
    """A datetime `days` days earlier, computed by the database (no Python per row on SQLite).

    On SQLite the result is text in the form Django stores datetimes in, so it compares with
    datetime columns; on PostgreSQL it is a timestamp.
    """

    arity = 1
    output_field = models.DateTimeField()

    def __init__(self, expression: Any, *, days: int) -> None:
        if not isinstance(days, int) or days < 0:
            raise ValueError("days must be a whole number of days, 0 or more")
        super().__init__(expression)
        self.days = days

    def as_sql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"written for SQLite and PostgreSQL, not {connection.vendor}")

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {sql}, '-{self.days} days')", params

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(({sql}) - interval '{self.days} days')", params


def _running_count(condition: Q | None = None) -> Window:
    """How many of the opportunity's activities so far (this one included) match, in the
    order of its timeline. Every walk column uses this one window (same order, same frame),
    so the database computes them all in a single pass."""
    one: Any = Value(1)
    if condition is not None:
        one = Case(When(condition, then=1), default=0, output_field=IntegerField())
    return Window(
        Sum(one),
        partition_by=[F("opportunity_id")],
        order_by=[F("done_at").asc(), F("pk").asc()],
        frame=RowRange(start=None, end=0),
    )


def done_by_close(closed: OpportunityQuerySet) -> models.QuerySet[Activity]:
    """The activities of these closed opportunities that were done by the time they closed
    (planned ones and those done later do not count): what the analysis looks at."""
    return Activity.objects.filter(
        opportunity__in=closed.values("pk"),
        done_at__isnull=False,
        done_at__lte=F("opportunity__closed_at"),
    )


def activity_walk(
    closed: OpportunityQuerySet,
    types: list[ActivityType],
    *,
    visit_id: int | None,
    days_cap: int | None = 8,
    activities: models.QuerySet[Activity] | None = None,
) -> models.QuerySet[Activity]:
    """Every activity done by the time its opportunity closed, in the opportunity's order.

    Per row: `opp` (the opportunity), `kind` (type id), `won` (1 if the opportunity was won),
    `nth` (its rank in the opportunity), `visits_so_far`, `of_type_<id>` (running count per
    type: the rank of the row among its own type, when read for its own type) and `days_in`
    (whole days since the opportunity was created, at least 0, at most `days_cap` if given).
    One window over (opportunity, done_at), so the database walks the activities once, in
    the order of the timeline index. `activities` (default `done_by_close(closed)`) may narrow
    them further, for the database's sake (a range of opportunity ids it can read by index).
    """
    running = {f"of_type_{t.pk}": _running_count(Q(type_id=t.pk)) for t in types}
    days_in: Any = Greatest(WholeDaysBetween(F("opportunity__created_at"), F("done_at")), Value(0))
    if days_cap is not None:
        days_in = Least(days_in, Value(days_cap))
    if activities is None:
        activities = done_by_close(closed)
    return (
        activities.annotate(
            opp=F("opportunity_id"),
            kind=F("type_id"),
            won=Case(When(opportunity__status=Status.WON, then=1), default=0),
            nth=_running_count(),
            visits_so_far=_running_count(Q(type_id=visit_id)) if visit_id else Value(0),
            days_in=days_in,
            **running,
        )
        .values("opp", "kind", "won", "nth", "visits_so_far", "days_in", *running)
        .order_by()
    )


def _walk_tally(
    walk: models.QuerySet[Activity], types: list[ActivityType], *, demo_id: int | None
) -> list[tuple[int, int, int, int, int, int]]:
    """Group the walk: (type, rank within its type if 1-3 else 0, visits before the first
    demo on that demo's row else -1, days to the first activity on the first row else -1)
    -> count, wins. A few hundred rows at most, whatever the data size.

    Django cannot group over window results, so the grouping is written here around the
    walk's own SQL; every value in it is a column of the walk or an integer id.
    """
    inner, params = walk.query.sql_with_params()
    own = " ".join(f"WHEN {int(t.pk)} THEN walk.of_type_{int(t.pk)}" for t in types)
    own_rank = f"CASE walk.kind {own} ELSE 0 END" if types else "0"
    first_demo = "1 = 0"
    if demo_id is not None and any(t.pk == demo_id for t in types):
        first_demo = f"walk.kind = {int(demo_id)} AND walk.of_type_{int(demo_id)} = 1"
    sql = f"""
        SELECT walk.kind,
               CASE WHEN {own_rank} > 3 THEN 0 ELSE {own_rank} END,
               CASE WHEN {first_demo}
                    THEN CASE WHEN walk.visits_so_far > 3 THEN 3 ELSE walk.visits_so_far END
                    ELSE -1 END,
               CASE WHEN walk.nth = 1 THEN walk.days_in ELSE -1 END,
               COUNT(*),
               SUM(walk.won)
        FROM ({inner}) AS walk
        GROUP BY 1, 2, 3, 4
    """  # noqa: S608 - built from the walk's SQL and integer ids, values stay parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(int(v or 0) for v in row) for row in cursor.fetchall()]  # type: ignore[misc]


# Win rates ------------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion: (low, high), within 0..1."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


Versus = Literal["above", "below", ""]


@dataclass(frozen=True)
class WinRate:
    """How often the opportunities of one bucket were won, with its 95% Wilson interval.

    `versus` says whether it is significantly above or below the baseline ("" when not, or
    when the sample is small). `subject`/`contrast` are the phrases a sentence uses.
    """

    key: str
    label: str
    n: int
    won: int
    rate: float
    low: float
    high: float
    small: bool
    versus: Versus = ""
    subject: str = ""
    contrast: str = ""
    comparable: bool = True  # may this bucket be contrasted with the others in a sentence?


def win_rate(
    *,
    key: str,
    label: str,
    n: int,
    won: int,
    baseline: WinRate | None = None,
    subject: str = "",
    contrast: str = "",
    comparable: bool = True,
) -> WinRate:
    low, high = wilson(won, n)
    small = n < MIN_SAMPLE
    versus: Versus = ""
    if baseline is not None and not small and not baseline.small:
        if low > baseline.high:
            versus = "above"
        elif high < baseline.low:
            versus = "below"
    return WinRate(
        key=key,
        label=label,
        n=n,
        won=won,
        rate=won / n if n else 0.0,
        low=low,
        high=high,
        small=small,
        versus=versus,
        subject=subject,
        contrast=contrast,
        comparable=comparable,
    )


@dataclass(frozen=True)
class Dimension:
    """One question ("where does the first demo come?") and its buckets, in display order."""

    key: str
    title: str
    rows: list[WinRate]

    @property
    def n(self) -> int:
        return sum(row.n for row in self.rows)


@dataclass(frozen=True)
class Finding:
    dimension: str
    sentence: str
    spread: float  # difference between the two win rates the sentence contrasts


@dataclass(frozen=True)
class BehaviourAnalysis:
    baseline: WinRate
    demo: Dimension
    first_contact: Dimension
    activities: list[Dimension]
    findings: list[Finding] = field(default_factory=list)

    @property
    def dimensions(self) -> list[Dimension]:
        return [self.demo, self.first_contact, *self.activities]


def percent(rate: float) -> str:
    return f"{round(rate * 100)}%"


def _finding(dimension: Dimension, baseline: WinRate) -> Finding | None:
    """The sentence for a dimension with a significant bucket, contrasting its extremes."""
    solid = [row for row in dimension.rows if row.comparable and not row.small and row.n]
    significant = [row for row in solid if row.versus]
    if not significant:
        return None
    best = max(solid, key=lambda row: row.rate)
    worst = min(solid, key=lambda row: row.rate)
    if best is not worst and best.low > worst.high:
        sentence = _(
            "On your deals, %(subject)s wins %(rate)s of the time (n=%(n)s), "
            "against %(other_rate)s %(other)s (n=%(other_n)s)."
        ) % {
            "subject": best.subject,
            "rate": percent(best.rate),
            "n": best.n,
            "other_rate": percent(worst.rate),
            "other": worst.contrast,
            "other_n": worst.n,
        }
        return Finding(dimension.key, sentence, best.rate - worst.rate)
    row = max(significant, key=lambda r: abs(r.rate - baseline.rate))
    sentence = _(
        "On your deals, %(subject)s wins %(rate)s of the time (n=%(n)s), "
        "against %(other_rate)s on average (n=%(other_n)s)."
    ) % {
        "subject": row.subject,
        "rate": percent(row.rate),
        "n": row.n,
        "other_rate": percent(baseline.rate),
        "other_n": baseline.n,
    }
    return Finding(dimension.key, sentence, abs(row.rate - baseline.rate))


def _demo_dimension(counts: Mapping[int, tuple[int, int]], baseline: WinRate) -> Dimension:
    buckets = [
        (
            0,
            "demo_first",
            _("Demo first, before any visit"),
            _("a demo that comes first"),
            _("when the demo comes first"),
        ),
        (
            1,
            "after_1",
            _("Demo after 1 visit"),
            _("a demo after one visit"),
            _("when the demo comes after one visit"),
        ),
        (
            2,
            "after_2",
            _("Demo after 2 visits"),
            _("a demo after two visits"),
            _("when the demo comes after two visits"),
        ),
        (
            3,
            "after_3",
            _("Demo after 3 or more visits"),
            _("a demo after three or more visits"),
            _("when the demo comes after three or more visits"),
        ),
    ]
    rows = [
        win_rate(
            key=key,
            label=label,
            n=counts.get(number, (0, 0))[0],
            won=counts.get(number, (0, 0))[1],
            baseline=baseline,
            subject=subject,
            contrast=contrast,
        )
        for number, key, label, subject, contrast in buckets
    ]
    n, won = counts.get(-1, (0, 0))
    rows.append(
        win_rate(
            key="no_demo",
            label=_("No demo"),
            n=n,
            won=won,
            baseline=baseline,
            # A different population (renewals, early drops): shown, not contrasted.
            comparable=False,
        )
    )
    return Dimension("demo", _("Position of the first demo"), rows)


# Whole days to the first activity -> bucket key.
CONTACT_BUCKETS = {0: "same_day", 1: "1_2", 2: "1_2", **dict.fromkeys(range(3, 8), "3_7"), 8: "8_"}


def _contact_dimension(counts: Mapping[int, tuple[int, int]], baseline: WinRate) -> Dimension:
    merged: dict[str, tuple[int, int]] = {}
    for days, (n, won) in counts.items():
        key = CONTACT_BUCKETS.get(days, "none")
        before = merged.get(key, (0, 0))
        merged[key] = (before[0] + n, before[1] + won)
    buckets = [
        (
            "same_day",
            _("First activity within a day"),
            _("a deal first worked on within a day"),
            _("when the first activity comes within a day"),
        ),
        (
            "1_2",
            _("First activity after 1–2 days"),
            _("a deal first worked on after one or two days"),
            _("when the first activity comes after one or two days"),
        ),
        (
            "3_7",
            _("First activity after 3–7 days"),
            _("a deal first worked on after three to seven days"),
            _("when the first activity comes after three to seven days"),
        ),
        (
            "8_",
            _("First activity after more than a week"),
            _("a deal first worked on after more than a week"),
            _("when the first activity comes after more than a week"),
        ),
    ]
    rows = [
        win_rate(
            key=key,
            label=label,
            n=merged.get(key, (0, 0))[0],
            won=merged.get(key, (0, 0))[1],
            baseline=baseline,
            subject=subject,
            contrast=contrast,
        )
        for key, label, subject, contrast in buckets
    ]
    n, won = merged.get("none", (0, 0))
    rows.append(
        win_rate(
            key="none",
            label=_("No activity before closing"),
            n=n,
            won=won,
            baseline=baseline,
            comparable=False,
        )
    )
    return Dimension("first_contact", _("Time to the first activity"), rows)


def _activity_dimension(
    activity_type: ActivityType, counts: Mapping[int, tuple[int, int]], baseline: WinRate
) -> Dimension:
    name = activity_type.name
    rows = []
    for number in range(4):
        n, won = counts.get(number, (0, 0))
        if number == 3:
            label = _("3 or more")
            subject = _("a deal with three or more “%(type)s” activities") % {"type": name}
            contrast = _("with three or more")
        elif number == 0:
            label = _("None")
            subject = _("a deal with no “%(type)s” activity") % {"type": name}
            contrast = _("with none")
        else:
            label = str(number)
            subject = ngettext(
                "a deal with %(count)d “%(type)s” activity",
                "a deal with %(count)d “%(type)s” activities",
                number,
            ) % {"count": number, "type": name}
            contrast = ngettext("with %(count)d", "with %(count)d", number) % {"count": number}
        rows.append(
            win_rate(
                key=str(number),
                label=label,
                n=n,
                won=won,
                baseline=baseline,
                subject=subject,
                contrast=contrast,
            )
        )
    return Dimension(
        f"activity:{activity_type.key}",
        _("“%(type)s” activities before closing") % {"type": name},
        rows,
    )


def _add(tally: dict[int, tuple[int, int]], key: int, n: int, won: int) -> None:
    before = tally.get(key, (0, 0))
    tally[key] = (before[0] + n, before[1] + won)


Pair = tuple[int, int]  # (opportunities, won among them)


@dataclass(frozen=True)
class _Tally:
    """What the behaviour analysis counts, as (opportunities, won) pairs.

    `demo_position`: visits before the first demo (0 to 3, 3 meaning 3 or more);
    `first_days`: whole days from creation to the first activity (0 to 8, 8 meaning more than
    a week); `per_type`: type id -> exactly 1, 2, or 3 or more activities of it. Whatever is
    not counted (no demo, no activity, none of a type) is the rest of `total`.
    """

    total: Pair
    demo_position: dict[int, Pair]
    first_days: dict[int, Pair]
    per_type: dict[int, dict[int, Pair]]


def _analysis(types: list[ActivityType], tally: _Tally) -> BehaviourAnalysis:
    """The dimensions, their win rates against the baseline, and the sentences."""
    total = tally.total
    baseline = win_rate(key="all", label=_("All closed opportunities"), n=total[0], won=total[1])

    def with_rest(counted: Mapping[int, Pair], rest_key: int) -> dict[int, Pair]:
        rest = (
            total[0] - sum(n for n, _won in counted.values()),
            total[1] - sum(won for _n, won in counted.values()),
        )
        return {**counted, rest_key: rest}

    demo = _demo_dimension(with_rest(tally.demo_position, -1), baseline)
    contact = _contact_dimension(with_rest(tally.first_days, -1), baseline)
    activities = [
        _activity_dimension(t, with_rest(tally.per_type.get(t.pk, {}), 0), baseline) for t in types
    ]
    analysis = BehaviourAnalysis(baseline, demo, contact, activities)
    found = [f for f in (_finding(d, baseline) for d in analysis.dimensions) if f is not None]
    found.sort(key=lambda f: f.spread, reverse=True)
    return BehaviourAnalysis(baseline, demo, contact, activities, found[:MAX_FINDINGS])


def _outcomes_sql(
    closed: OpportunityQuerySet, *, in_id_order: bool = False
) -> tuple[str, tuple[Any, ...]]:
    """The closed opportunities as rows (opp, seller, won 0/1, current probability).

    `in_id_order`, on SQLite: read in id order from `opp_outcome_idx`, so that a join with
    a table keyed by the opportunity (the facts) reads that one in order too, instead of
    jumping about it once per deal (what SQLite chose, reading them in an order that suits
    its grouping: seconds at a million); LIMIT -1 keeps the ORDER BY of the subquery."""
    rows = closed.annotate(
        opp=F("pk"),
        seller=F("owner_id"),
        won=Case(When(status=Status.WON, then=1), default=0),
        current=F("probability"),
    ).values("opp", "seller", "won", "current")
    if not in_id_order or connection.vendor != "sqlite":
        return rows.query.sql_with_params()
    sql, params = rows.order_by("pk").query.sql_with_params()
    return f"{sql} LIMIT -1", params


def _deal_facts(*, user: User, filters: InsightFilters) -> models.QuerySet[DealFacts] | None:
    """The stored facts of the deals `closed_opportunities` holds, chosen by the owner each
    fact repeats, when nothing but owners narrows those deals: who `user` may see (the same
    condition `visible_opportunities` puts on the owner), the owner and team filters; no
    pipeline, no dates. None otherwise: then the deals are joined with their facts."""
    owners = filters.chosen_owners(user)
    if owners is None or filters.start is not None or filters.end is not None:
        return None
    facts = DealFacts.objects.order_by()
    if visible_owner_filter(user) is None and filters.owner is None and filters.team is None:
        return facts  # every deal's
    return facts.filter(owner_id__in=owners)


# The buckets of the analysis from rows grouped by the stored values (see below).
_BUCKETS_SQL = """
    SELECT CASE WHEN g.visits IS NULL THEN -1 WHEN g.visits > 3 THEN 3 ELSE g.visits END,
           CASE WHEN g.days IS NULL THEN -1 WHEN g.days > 8 THEN 8 ELSE g.days END,
           g.profile, SUM(g.n), SUM(g.won)
    FROM ({grouped}) AS g
    GROUP BY 1, 2, 3
"""
# A marker for the row that counts the closed deals themselves, in a query that groups
# their facts alone (`_pattern_rows`, `_facts_calibration_rows`).
_DEALS = -2


def _counted_apart(rows: list[tuple[Any, ...]]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The row counting the deals (first column `_DEALS`), and the others."""
    (counted,) = [row for row in rows if row[0] == _DEALS]
    return counted, [row for row in rows if row[0] != _DEALS]


def _pattern_rows(
    closed: OpportunityQuerySet, *, facts: models.QuerySet[DealFacts] | None = None
) -> list[tuple[Any, ...]]:
    """(visits bucket, days bucket, profile, deals, won) of `closed`, whose facts are read;
    one query. Deals without stored facts (written without the services, before
    `opportuna rebuild_insights`) fall in the buckets of no activity.

    Grouped first by the stored values themselves: the planner knows how many distinct
    values columns hold, so it hashes a few thousand groups; grouped by bucket formulas
    straight away, it would sort every row. The buckets then group those few thousand.
    Given the same deals' `facts` (see `_deal_facts`), those need no join with the deals:
    they are grouped straight from `deal_facts_pattern_idx`, in its order (which holds the
    owner a view is narrowed by), and one more branch counts the closed deals, so those
    without facts are still counted (the difference).
    """
    outcomes, params = _outcomes_sql(closed)
    if facts is None:
        table = connection.ops.quote_name(DealFacts._meta.db_table)
        grouped = f"""
            SELECT f.visits_before_demo AS visits, f.days_to_first_activity AS days,
                   COALESCE(f.activity_profile, '') AS profile, COUNT(*) AS n, SUM(o.won) AS won
            FROM ({outcomes}) AS o
            LEFT JOIN {table} AS f ON f.opportunity_id = o.opp
            GROUP BY f.visits_before_demo, f.days_to_first_activity, f.activity_profile
        """  # noqa: S608 - the ORM's SQL and a model's table name, values stay parameters
        with connection.cursor() as cursor:
            cursor.execute(_BUCKETS_SQL.format(grouped=grouped), params)
            return list(cursor.fetchall())
    chosen, chosen_params = facts.values(
        "visits_before_demo", "days_to_first_activity", "activity_profile", "won"
    ).query.sql_with_params()
    grouped = f"""
        SELECT f.visits_before_demo AS visits, f.days_to_first_activity AS days,
               f.activity_profile AS profile, COUNT(*) AS n,
               SUM(CASE WHEN f.won THEN 1 ELSE 0 END) AS won
        FROM ({chosen}) AS f
        GROUP BY f.visits_before_demo, f.days_to_first_activity, f.activity_profile
    """  # noqa: S608 - the ORM's SQL, values stay parameters
    deals = f"SELECT {_DEALS}, {_DEALS}, '', COUNT(*), SUM(o.won) FROM ({outcomes}) AS o"  # noqa: S608 - the ORM's SQL
    sql = f"{_BUCKETS_SQL.format(grouped=grouped)} UNION ALL {deals}"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*chosen_params, *params])
        counted, rows = _counted_apart(cursor.fetchall())
    missing = int(counted[3] or 0) - sum(int(row[3]) for row in rows)
    missing_won = int(counted[4] or 0) - sum(int(row[4] or 0) for row in rows)
    if missing > 0:
        rows.append((-1, -1, "", missing, missing_won))
    return rows


def behaviour_analysis(*, user: User, filters: InsightFilters) -> BehaviourAnalysis:
    """Win rate of closed opportunities by what was done before closing; two queries.

    Reads the stored facts of each closed deal (`insights.facts`), not the activities:
    (1) the activity types; (2) the closed opportunities with their facts, grouped by the
    visits before the first demo, the days to the first activity and the activity profile
    (some thousands of rows, whatever the number of deals), which also gives the totals and
    the per-type counts (`_pattern_rows`). Opportunities without stored facts (written
    without the services, before `opportuna rebuild_insights`) count as having had no
    activity. `behaviour_analysis_from_log` computes the same from the activities.
    """
    types = list(ActivityType.objects.order_by("position", "name"))
    closed = closed_opportunities(user=user, filters=filters)
    rows = _pattern_rows(closed, facts=_deal_facts(user=user, filters=filters))

    total = (0, 0)
    demo_position: dict[int, Pair] = {}
    first_days: dict[int, Pair] = {}
    per_type: dict[int, dict[int, Pair]] = {}
    for visits, days, profile, n, won in rows:
        n, won = int(n), int(won or 0)
        total = (total[0] + n, total[1] + won)
        if visits >= 0:
            _add(demo_position, int(visits), n, won)
        if days >= 0:
            _add(first_days, int(days), n, won)
        for item in filter(None, profile.split(",")):
            type_id, number = item.split(":")
            _add(per_type.setdefault(int(type_id), {}), int(number), n, won)
    return _analysis(types, _Tally(total, demo_position, first_days, per_type))


def behaviour_analysis_from_log(*, user: User, filters: InsightFilters) -> BehaviourAnalysis:
    """`behaviour_analysis` computed by walking every activity, as it was before the facts
    were stored; three queries, slow on a large account. The reference the stored facts are
    tested against, and the plainest statement of what they mean.

    (1) the activity types; (2) the closed opportunities, won ones among them; (3) one walk
    over their activities, grouped (see `activity_walk`). Buckets with none of something
    (no demo, no call, no activity) are the rest of (2).
    """
    types = list(ActivityType.objects.order_by("position", "name"))
    ids = {t.key: t.pk for t in types}
    closed = closed_opportunities(user=user, filters=filters)
    totals = closed.aggregate(opp_count=Count("pk"), won_count=Count("pk", filter=WON))
    total = (int(totals["opp_count"]), int(totals["won_count"]))

    walk = activity_walk(closed, types, visit_id=ids.get("visit"))
    at_least: dict[int, dict[int, Pair]] = {t.pk: {} for t in types}
    demo_position: dict[int, Pair] = {}
    first_days: dict[int, Pair] = {}
    for kind, rank, visits, days, n, won in _walk_tally(walk, types, demo_id=ids.get("demo")):
        if rank and kind in at_least:
            _add(at_least[kind], rank, n, won)
        if visits >= 0:
            _add(demo_position, visits, n, won)
        if days >= 0:
            _add(first_days, days, n, won)

    per_type: dict[int, dict[int, Pair]] = {}
    for t in types:
        reached = at_least[t.pk]  # how many had at least 1, 2, 3 of this type
        per_type[t.pk] = {
            number: (
                reached.get(number, (0, 0))[0] - reached.get(number + 1, (0, 0))[0],
                reached.get(number, (0, 0))[1] - reached.get(number + 1, (0, 0))[1],
            )
            for number in (1, 2)
        }
        per_type[t.pk][3] = reached.get(3, (0, 0))
    return _analysis(types, _Tally(total, demo_position, first_days, per_type))


# Probability calibration ----------------------------------------------------------------

DAYS_BEFORE = 30
BANDS = 10  # 0-9%, 10-19%, ... 90-100%
# The events that set a probability: creation, moves (unless it was set by hand) and
# probability changes (by hand, or a step's new default). The kind narrows the scan before
# any JSON is read.
PROBABILITY_KINDS = (EventKind.CREATED, EventKind.MOVED, EventKind.PROBABILITY)


def carries_probability(prefix: str = "") -> Q:
    """The events that set a probability (`prefix` reaches them through a relation)."""
    return Q(**{f"{prefix}kind__in": PROBABILITY_KINDS}) & (
        Q(**{f"{prefix}kind": EventKind.CREATED, f"{prefix}data__has_key": "probability"})
        | Q(**{f"{prefix}changes__has_key": "probability"})
    )


def _json_text(column: str, *keys: str) -> KeyTextTransform:
    """column->keys as text. (KT() cannot start from a relation: it takes its first part for
    the JSON column.)"""
    value: Any = column
    for key in keys[:-1]:
        value = KeyTransform(key, value)
    return KeyTextTransform(keys[-1], value)


def event_probability(position: int, relation: str = "") -> Cast:
    """The probability an event carries: the created one's, else changes[...][position]."""
    return Cast(
        Case(
            When(
                **{f"{relation}kind": EventKind.CREATED},
                then=_json_text(f"{relation}data", "probability"),
            ),
            default=_json_text(f"{relation}changes", "probability", str(position)),
        ),
        IntegerField(),
    )


def entered_step_at(
    step_id: int, *, opportunity: str = "pk", closed_at: str = "closed_at"
) -> Subquery:
    """When the outer opportunity first reached a step (created on it or moved to it), by the
    time it closed; NULL if it never did. `opportunity`/`closed_at` name the outer columns."""
    entering = (
        OpportunityEvent.objects.filter(
            opportunity=OuterRef(opportunity), at__lte=OuterRef(closed_at)
        )
        .filter(Q(kind=EventKind.CREATED, data__step=step_id) | Q(changes__step__1=step_id))
        .order_by("at", "pk")
        .values("at")[:1]
    )
    return Subquery(entering, output_field=models.DateTimeField())


def _probability_trail(closed: OpportunityQuerySet, *, step_id: int | None) -> OpportunityQuerySet:
    """Closed opportunities joined to their probability-carrying events, a row per event, with
    the cut-off each is judged against (30 days before closing, or when the opportunity
    reached the step) and the probability it tells on either side of it: `after` (its new
    value) and `before` (what it started from, for a deal younger than the cut-off).

    A LEFT JOIN: an opportunity with no such event (written without the services) keeps one
    row, with no moment, carrying its current probability.
    """
    if step_id is None:
        cutoff: Any = DaysEarlier(F("closed_at"), days=DAYS_BEFORE)
    else:
        cutoff = entered_step_at(step_id)
    return (
        closed.annotate(trail=FilteredRelation("events", condition=carries_probability("events__")))
        .annotate(
            opp=F("pk"),
            seller=F("owner_id"),
            won=Case(When(status=Status.WON, then=1), default=0),
            after=Coalesce(
                event_probability(1, "trail__"), F("probability"), output_field=IntegerField()
            ),
            before=Coalesce(
                event_probability(0, "trail__"), F("probability"), output_field=IntegerField()
            ),
            moment=F("trail__at"),
            seq=F("trail__id"),
            cutoff=cutoff,
        )
        .values("opp", "seller", "won", "after", "before", "moment", "seq", "cutoff")
        .order_by()
    )


def carried_probability_sql(
    closed: OpportunityQuerySet, *, step_id: int | None
) -> tuple[str, list[Any]]:
    """The probability each closed opportunity carried, from the event log: rows (opp,
    seller, won 0/1, carried); one row per opportunity (none, on the step basis, for one that
    never reached the step).

    Per opportunity the database ranks its probability events: the last one at or before the
    cut-off comes first, else the earliest (the deal was younger than the cut-off). Django
    cannot rank inside a derived table, so the ranking is written here around the ORM's own
    SQL. Closed opportunities with no such event at all (written without the services) carry
    their current probability; on the step basis they are left out.
    """
    trail_sql, trail_params = _probability_trail(closed, step_id=step_id).query.sql_with_params()
    known = "trail.moment <= trail.cutoff"
    picked = f"""
        SELECT ranked.opp, ranked.seller, ranked.won, ranked.carried
        FROM (
            SELECT trail.opp, trail.seller, trail.won,
                   CASE WHEN {known} THEN trail.after ELSE trail.before END AS carried,
                   ROW_NUMBER() OVER (
                       PARTITION BY trail.opp
                       ORDER BY CASE WHEN {known} THEN 0 ELSE 1 END,
                                CASE WHEN {known} THEN trail.moment END DESC,
                                CASE WHEN {known} THEN trail.seq END DESC,
                                trail.moment, trail.seq
                   ) AS position
            FROM ({trail_sql}) AS trail
            WHERE trail.cutoff IS NOT NULL
        ) AS ranked
        WHERE ranked.position = 1
    """  # noqa: S608 - the ORM's SQL, values stay parameters
    return picked, list(trail_params)


def _stored_probability_sql(closed: OpportunityQuerySet) -> tuple[str, list[Any]]:
    """Like `carried_probability_sql` 30 days before closing, read from the stored facts: an
    opportunity without them (written without the services, not rebuilt since) carries its
    current probability, as it would with no events in the log."""
    outcomes, params = _outcomes_sql(closed, in_id_order=True)
    facts = connection.ops.quote_name(DealFacts._meta.db_table)
    picked = f"""
        SELECT o.opp, o.seller, o.won, COALESCE(f.probability_before, o.current) AS carried
        FROM ({outcomes}) AS o
        LEFT JOIN {facts} AS f ON f.opportunity_id = o.opp
    """  # noqa: S608 - the ORM's SQL and a model's table name, values stay parameters
    return picked, list(params)


def _visited_probability_sql(closed: OpportunityQuerySet, step_id: int) -> tuple[str, list[Any]]:
    """Like `carried_probability_sql` at a step, read from the stored step visits
    (`insights.steps`): per closed opportunity the probability stored on its first visit of
    the step by the time it closed (ties by visit id; those that never reached it are left
    out). A visit stored before it kept a probability (not rebuilt since) carries the
    opportunity's current one."""
    outcomes, params = (
        closed.annotate(
            opp=F("pk"),
            seller=F("owner_id"),
            won=Case(When(status=Status.WON, then=1), default=0),
            current=F("probability"),
            ended=F("closed_at"),
        )
        .values("opp", "seller", "won", "current", "ended")
        .query.sql_with_params()
    )
    visits = connection.ops.quote_name(StepVisit._meta.db_table)
    # Most deals reach a step once (`again` is false): only the others look for an earlier
    # visit, through the visits' opportunity index, instead of ranking every row. At a
    # million deals PostgreSQL merges the step's visits (`step_visit_calibration_idx`, in
    # opportunity order) with the closed opportunities in id order, both read from an index
    # alone.
    picked = f"""
        SELECT o.opp, o.seller, o.won, COALESCE(v.probability, o.current) AS carried
        FROM ({outcomes}) AS o
        JOIN {visits} AS v ON v.opportunity_id = o.opp
        WHERE v.step_id = %s AND v.entered_at <= o.ended
          AND (NOT v.again OR NOT EXISTS (
              SELECT 1 FROM {visits} AS w
              WHERE w.opportunity_id = v.opportunity_id AND w.step_id = v.step_id
                AND (w.entered_at < v.entered_at
                     OR (w.entered_at = v.entered_at AND w.id < v.id))
          ))
    """  # noqa: S608 - the ORM's SQL and a model's table name, values stay parameters
    return picked, [*params, step_id]


CalibrationRow = tuple[int, int, str, str, str, int, int, int]


def _grouped(picked: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    """The rows of `picked` (opp, seller, won, carried) grouped by the owner and the
    probability themselves: (seller, carried, n, won). A few thousand groups, hashed where
    bands straight away would be sorted."""
    picked_sql, params = picked
    grouped = f"""
        SELECT picked.seller, picked.carried, COUNT(*) AS n, SUM(picked.won) AS won
        FROM ({picked_sql}) AS picked
        GROUP BY picked.seller, picked.carried
    """  # noqa: S608 - the ORM's SQL, values stay parameters
    return grouped, params


def _banded_sql(grouped_sql: str) -> str:
    """(band, owner id, owner's first name, last name, username, count, wins, sum of the
    probabilities carried) per band and owner, from `grouped_sql` rows (seller, carried, n,
    won), the owners' names joined only to those groups."""
    users = connection.ops.quote_name(User._meta.db_table)
    return f"""
        SELECT CASE WHEN g.carried >= {BANDS * 10 - 10} THEN {BANDS - 1}
                    WHEN g.carried < 0 THEN 0
                    ELSE g.carried / 10 END AS band,
               g.seller, person.first_name, person.last_name, person.username,
               SUM(g.n), SUM(g.won), SUM(g.carried * g.n)
        FROM ({grouped_sql}) AS g
        LEFT JOIN {users} AS person ON person.id = g.seller
        GROUP BY 1, 2, 3, 4, 5
    """  # noqa: S608 - table names from the models, values stay parameters


def _calibration_row(row: tuple[Any, ...]) -> CalibrationRow:
    b, o, f, last, u, n, w, c = row
    return (int(b), int(o), f or "", last or "", u or "", int(n), int(w or 0), int(c or 0))


def _calibration_rows(grouped: tuple[str, list[Any]]) -> list[CalibrationRow]:
    """The rows of `_banded_sql` around `grouped` (see `_grouped`); one query."""
    grouped_sql, params = grouped
    with connection.cursor() as cursor:
        cursor.execute(_banded_sql(grouped_sql), params)
        return [_calibration_row(row) for row in cursor.fetchall()]


def _facts_calibration_rows(
    closed: OpportunityQuerySet, facts: models.QuerySet[DealFacts]
) -> list[CalibrationRow] | None:
    """`_calibration_rows` of `closed`, 30 days before closing, grouped from the same deals'
    stored `facts` alone (see `_deal_facts`; `deal_facts_owner_idx`, in its order: no join
    with the deals, no sort), and one more branch counting the deals; one query. None when
    the facts do not hold every deal with its owner and probability (rows written without
    the services, not rebuilt since): then the deals must be joined with them after all."""
    outcomes, params = _outcomes_sql(closed)
    chosen, chosen_params = facts.values(
        "owner_id", "probability_before", "won"
    ).query.sql_with_params()
    grouped = f"""
        SELECT f.owner_id AS seller, f.probability_before AS carried, COUNT(*) AS n,
               SUM(CASE WHEN f.won THEN 1 ELSE 0 END) AS won
        FROM ({chosen}) AS f
        GROUP BY f.owner_id, f.probability_before
    """  # noqa: S608 - the ORM's SQL, values stay parameters
    deals = f"SELECT {_DEALS}, {_DEALS}, '', '', '', COUNT(*), SUM(o.won), 0 FROM ({outcomes}) AS o"  # noqa: S608 - the ORM's SQL
    with connection.cursor() as cursor:
        cursor.execute(f"{_banded_sql(grouped)} UNION ALL {deals}", [*chosen_params, *params])
        counted, rows = _counted_apart(cursor.fetchall())
    if any(row[0] is None or row[1] is None for row in rows):
        return None  # a fact without its probability or owner
    if (int(counted[5]), int(counted[6] or 0)) != (
        sum(int(row[5]) for row in rows),
        sum(int(row[6] or 0) for row in rows),
    ):
        return None  # deals without facts
    return [_calibration_row(row) for row in rows]


@dataclass(frozen=True)
class Calibrated:
    """Predicted (mean probability carried) against actual win rate, for a band or an owner.

    `verdict`: "over" (predicted above the actual rate's interval: over-estimates), "under",
    "fair", or "small" (too few to say).
    """

    key: str
    label: str
    n: int
    won: int
    predicted: float
    actual: float
    low: float
    high: float
    small: bool
    verdict: str

    @property
    def gap(self) -> float:
        """Actual minus predicted, in rate points (positive: under-estimated)."""
        return self.actual - self.predicted

    @property
    def gap_points(self) -> int:
        return round(self.gap * 100)


def calibrated(*, key: str, label: str, n: int, won: int, probability_sum: int) -> Calibrated:
    low, high = wilson(won, n)
    predicted = probability_sum / n / 100 if n else 0.0
    small = n < MIN_SAMPLE
    verdict = "small"
    if not small:
        verdict = "over" if predicted > high else "under" if predicted < low else "fair"
    return Calibrated(
        key=key,
        label=label,
        n=n,
        won=won,
        predicted=predicted,
        actual=won / n if n else 0.0,
        low=low,
        high=high,
        small=small,
        verdict=verdict,
    )


@dataclass(frozen=True)
class Calibration:
    basis: str  # "days" or "step"
    step: Step | None
    overall: Calibrated
    bands: list[Calibrated]
    owners: list[Calibrated]


def _band_label(band: int) -> str:
    high = 100 if band == BANDS - 1 else band * 10 + 9
    return f"{band * 10}–{high}%"


def probability_calibration(
    *, user: User, filters: InsightFilters, step: Step | None = None
) -> Calibration:
    """The probability closed opportunities carried against how often they were won; 1 query.

    The probability is the one carried `DAYS_BEFORE` days before closing, read from the
    stored facts of each closed deal (`insights.facts`), or, given a step, the one carried
    when the opportunity first reached that step, read from its stored step visits
    (`insights.steps`; those that never reached it are left out). Per probability band (a
    reliability table) and per owner. When only owners narrow the deals (see `_deal_facts`)
    the facts are counted alone (`_facts_calibration_rows`); a second query joins them with
    the deals when they turn out not to hold every one.
    """
    closed = closed_opportunities(user=user, filters=filters)
    if step is not None:
        rows = _calibration_rows(_grouped(_visited_probability_sql(closed, step.pk)))
    else:
        facts = _deal_facts(user=user, filters=filters)
        rows = None if facts is None else _facts_calibration_rows(closed, facts)
        if rows is None:
            rows = _calibration_rows(_grouped(_stored_probability_sql(closed)))
    return _calibration(rows, step)


def probability_calibration_from_log(
    *, user: User, filters: InsightFilters, step: Step | None = None
) -> Calibration:
    """`probability_calibration` read from the event log on both bases, as it was before the
    facts and the step visits were stored; the reference they are tested against. One query."""
    closed = closed_opportunities(user=user, filters=filters)
    picked = carried_probability_sql(closed, step_id=step.pk if step else None)
    return _calibration(_calibration_rows(_grouped(picked)), step)


def _calibration(rows: list[CalibrationRow], step: Step | None) -> Calibration:
    by_band: dict[int, list[int]] = {}
    by_owner: dict[int, list[Any]] = {}
    for band, owner, first, last, username, n, won, carried in rows:
        for tally, key in ((by_band, band), (by_owner, owner)):
            sums = tally.setdefault(key, [0, 0, 0])
            sums[0] += n
            sums[1] += won
            sums[2] += carried
        label = f"{first} {last}".strip() or username
        by_owner[owner] = [*by_owner[owner][:3], label]

    def made(key: str, label: str, sums: list[Any] | None) -> Calibrated:
        n, won, carried = (sums or [0, 0, 0])[:3]
        return calibrated(key=key, label=label, n=n, won=won, probability_sum=carried)

    bands = [made(str(b), _band_label(b), by_band.get(b)) for b in range(BANDS)]
    owners = sorted(
        (made(str(owner), sums[3], sums) for owner, sums in by_owner.items()),
        key=lambda c: (c.small, -abs(c.gap), c.label),
    )
    overall = made(
        "all",
        _("All closed opportunities"),
        [sum(s[i] for s in by_band.values()) for i in range(3)],
    )
    return Calibration("step" if step else "days", step, overall, bands, owners)


def calibration_steps() -> list[Step]:
    """The steps a calibration can be read at, by pipeline and position; one query."""
    return list(
        Step.objects.select_related("pipeline").order_by(
            "pipeline__position", "pipeline__name", "position", "pk"
        )
    )


__all__ = [
    "MIN_SAMPLE",
    "BehaviourAnalysis",
    "Calibrated",
    "Calibration",
    "DaysEarlier",
    "Dimension",
    "Finding",
    "InsightChoices",
    "InsightFilters",
    "WholeDaysBetween",
    "WinRate",
    "activity_walk",
    "behaviour_analysis",
    "behaviour_analysis_from_log",
    "calibration_steps",
    "carried_probability_sql",
    "carries_probability",
    "closed_opportunities",
    "done_by_close",
    "event_probability",
    "insight_filter_choices",
    "probability_calibration",
    "probability_calibration_from_log",
    "wilson",
]
