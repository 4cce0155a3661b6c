"""Step visits: each stay of an opportunity on a step, derived from the event log.

A "created" event enters its `data.step`, a "moved" event enters `changes.step[1]`, and each
stay lasts until the opportunity's next move or close (won, lost, cancelled), found with LEAD
over those events in time order (ties by event id). A reopened opportunity re-enters no step
until it moves again. `StepVisit` keeps one row per stay, so the step funnel and the time in
step (`insights.statistics.step_funnel`) read one narrow row per stay instead of sorting the
whole log on every request. Each row also carries what the funnel would otherwise read from
the opportunity: its creation (which never changes), its owner, whether it is open and on that
step now, and whether it entered that step more than once.

The rows follow the log: a `changes_recorded` receiver (connected by `connect()`) notes the
opportunities that a transaction creates, moves, closes, reopens, deletes or gives another
owner, and once it commits `step_visits_update` recomputes their visits from the log, with two
set-based statements per 2,000 opportunities, whatever they were before (idempotent). Data written
around the services (the demo's bulk load, a restore, a hand-made SQL change of status or
step) is put right by `rebuild_step_visits()`, which `opportuna rebuild_insights` runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Case, F, Max, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from opportuna.core.announce import Announcement, CommitBatch, changes_recorded
from opportuna.insights.analysis import carries_probability, event_probability
from opportuna.insights.facts import owner_changed
from opportuna.insights.models import StepVisit
from opportuna.insights.statistics import DAYS_FROM, DaysBetween
from opportuna.sales.models import OPEN_STATUSES, EventKind, Opportunity, OpportunityEvent

# Announced kinds that change an opportunity's visits: those that add an event they are
# made of (see `_entries`), a reopen (which makes the last step current again) and a
# deletion. Nothing else moves an opportunity, opens or closes it, or changes its creation.
FOLLOWED_KINDS = frozenset(
    f"opportunity.{kind}"
    for kind in (
        EventKind.CREATED,
        EventKind.MOVED,
        EventKind.WON,
        EventKind.LOST,
        EventKind.CANCELLED,
        EventKind.REOPENED,
        # A probability change does not move the opportunity, but one at the very instant
        # it entered a step is part of the probability it carried in (see `_entries`).
        EventKind.PROBABILITY,
        "deleted",
    )
)
CLOSING_KINDS = (EventKind.WON, EventKind.LOST, EventKind.CANCELLED)
# How finely `StepVisit.bin` cuts the days: the funnel ranks only the times in the bins that
# hold its quartiles, so finer bins mean fewer of them (and more bins to count).
BINS_PER_DAY = 4
# Opportunities per statement: well under SQLite's limit of parameters.
UPDATE_CHUNK = 2000
# Opportunity ids per statement of a rebuild (a range: no parameters per id).
REBUILD_CHUNK = 50_000


# Stands for "the log tells no probability" in `_carried`, so that only a missing one falls
# back to the opportunity's current probability (no probability is negative).
UNTOLD = -1


def _carried() -> Coalesce:
    """The probability the outer event's opportunity carried at the event's time, as the
    calibration reads it from the log (`analysis.carried_probability_sql`): the new value of
    the last probability-carrying event at or before that time (later ids at the same
    instant included), else the value the earliest such event started from; UNTOLD where the
    chosen event tells none or there is no such event (the opportunity's current one then)."""
    carrying = OpportunityEvent.objects.filter(
        carries_probability(), opportunity=OuterRef("opportunity_id")
    )
    last = (
        carrying.filter(at__lte=OuterRef("at"))
        .order_by("-at", "-pk")
        .annotate(value=Coalesce(event_probability(1), Value(UNTOLD)))
        .values("value")[:1]
    )
    first = (
        carrying.order_by("at", "pk")
        .annotate(value=Coalesce(event_probability(0), Value(UNTOLD)))
        .values("value")[:1]
    )
    return Coalesce(
        Subquery(last, output_field=models.IntegerField()),
        Subquery(first, output_field=models.IntegerField()),
        output_field=models.IntegerField(),
    )


def _entries(opportunities: Q, *, few: bool = False) -> QuerySet[Any]:
    """The events of the chosen opportunities that enter a step or close one: per event its
    opportunity, id, time (also in days since DAYS_FROM), kind, the step it enters (NULL
    for a close) and the probability carried then (see `_carried`; NULL for a close).

    `few`: the opportunities are a short list, whose events are best found through the log's
    opportunity index; the condition on the kind is then written so that no database can
    serve it from the kind index (SQLite would otherwise scan every creation in the log,
    making each refresh slower as the log grows)."""
    relevant = (
        Q(kind=EventKind.CREATED)
        | Q(kind=EventKind.MOVED, changes__has_key="step")
        | Q(kind__in=CLOSING_KINDS)
    )
    events = OpportunityEvent.objects.filter(opportunities)
    if few:
        relevant_now = Case(
            When(relevant, then=Value(1)), default=Value(0), output_field=models.IntegerField()
        )
        events = events.alias(relevant_now=relevant_now).filter(relevant_now=1)
    else:
        events = events.filter(relevant)
    entered = Case(
        When(kind=EventKind.CREATED, then=Cast(KT("data__step"), models.BigIntegerField())),
        When(kind=EventKind.MOVED, then=Cast(KT("changes__step__1"), models.BigIntegerField())),
        default=Value(None),
        output_field=models.BigIntegerField(),
    )
    return (
        events.annotate(
            opp=F("opportunity_id"),
            event_id=F("pk"),
            event_at=F("at"),
            event_kind=F("kind"),
            step_in=entered,
            day=DaysBetween(F("at"), Value(DAYS_FROM, models.DateTimeField())),
            carried=Case(
                When(kind__in=(EventKind.CREATED, EventKind.MOVED), then=_carried()),
                default=Value(None),
                output_field=models.IntegerField(),
            ),
        )
        .values("opp", "event_id", "event_at", "event_kind", "step_in", "day", "carried")
        .order_by()
    )


def _insert_visits_sql(opportunities: Q, *, few: bool = False) -> tuple[str, list[Any]]:
    """The statement writing the visits of the chosen opportunities (which have none yet),
    with its parameters. `few` as for `_entries`."""
    source, params = _entries(opportunities, few=few).query.sql_with_params()
    quote = connection.ops.quote_name
    names = (
        "opportunity",
        "opened_at",
        "owner",
        "step",
        "entered_at",
        "left_at",
        "left_by",
        "days",
        "next_step",
        "current",
        "again",
        "bin",
        "probability",
    )
    columns = ", ".join(quote(StepVisit._meta.get_field(name).column) for name in names)
    opportunity = Opportunity._meta
    open_statuses = ", ".join(f"'{status}'" for status in OPEN_STATUSES)
    sql = (
        f"INSERT INTO {quote(StepVisit._meta.db_table)} ({columns}) "  # noqa: S608 - names from the models
        "SELECT s.opp, o.created_at, o.owner_id, s.step_in, s.event_at, s.next_at, "
        "COALESCE(s.next_kind, ''), s.days, s.next_step, "
        f"CASE WHEN o.status IN ({open_statuses}) AND o.step_id = s.step_in "
        "THEN 1 ELSE 0 END = 1, s.visits > 1, "
        f"CAST({BINS_PER_DAY} * CASE WHEN s.next_kind IS NULL THEN s.day ELSE s.days END "
        "AS BIGINT), "
        f"COALESCE(NULLIF(s.carried, {UNTOLD}), o.probability) "
        "FROM (SELECT x.*, COUNT(*) OVER (PARTITION BY x.opp, x.step_in) AS visits FROM ("
        "SELECT e.opp, e.step_in, e.event_at, e.day, e.carried, "
        "LEAD(e.event_at) OVER w AS next_at, LEAD(e.event_kind) OVER w AS next_kind, "
        "LEAD(e.step_in) OVER w AS next_step, LEAD(e.day) OVER w - e.day AS days "
        f"FROM ({source}) e WINDOW w AS (PARTITION BY e.opp ORDER BY e.event_at, e.event_id)"
        ") x WHERE x.step_in IS NOT NULL) s "
        f"JOIN {quote(opportunity.db_table)} o ON o.{quote(opportunity.pk.column)} = s.opp"
    )
    return sql, list(params)


def _insert_visits(opportunities: Q) -> int:
    """Write the visits of the chosen opportunities (which have none yet); how many."""
    sql, params = _insert_visits_sql(opportunities)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


# The statement for a short list of ids takes the list as one parameter (a JSON array on
# SQLite, an array on PostgreSQL), so it is compiled once per database instead of once per
# refresh (compiling it cost about a third of running it).
_IDS_MARK = "\x00ids"
_listed_statements: dict[str, tuple[str, list[Any], int]] = {}


def _insert_listed_visits(ids: list[int]) -> int:
    """`_insert_visits` for a short list of opportunity ids."""
    vendor = connection.vendor
    if vendor not in _listed_statements:
        if vendor == "postgresql":
            listed = RawSQL("SELECT unnest(%s::bigint[])", [_IDS_MARK])  # noqa: S611
        else:
            listed = RawSQL("SELECT value FROM json_each(%s)", [_IDS_MARK])  # noqa: S611
        sql, params = _insert_visits_sql(Q(opportunity_id__in=listed), few=True)
        _listed_statements[vendor] = (sql, params, params.index(_IDS_MARK))
    sql, params, at = _listed_statements[vendor]
    params = list(params)
    params[at] = ids if vendor == "postgresql" else json.dumps(ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


def step_visits_update(opportunity_ids: Iterable[Any], *, new: Iterable[Any] = ()) -> None:
    """Recompute the visits of these opportunities from the log (deleted ones keep none).
    `new`: those of them that have no visits yet (created in the transaction just committed),
    whose old rows need not be looked for."""
    ids = sorted({int(pk) for pk in opportunity_ids})
    fresh = {int(pk) for pk in new}
    with transaction.atomic():
        for first in range(0, len(ids), UPDATE_CHUNK):
            chunk = ids[first : first + UPDATE_CHUNK]
            stale = [pk for pk in chunk if pk not in fresh]
            if stale:
                StepVisit.objects.filter(opportunity_id__in=stale).delete()
            _insert_listed_visits(chunk)


def rebuild_step_visits(*, progress: Callable[[int, int], object] | None = None) -> int:
    """Write every opportunity's visits again from the log, in one transaction; how many.

    `progress(done, total)` is called after each range of opportunity ids, if given.
    """
    # TRUNCATE is quicker than DELETE on PostgreSQL, but refused inside a transaction that
    # still has foreign keys to check (the caller's own), where DELETE does.
    truncate = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        last = OpportunityEvent.objects.aggregate(last=Max("opportunity_id"))["last"] or 0
        table = connection.ops.quote_name(StepVisit._meta.db_table)
        with connection.cursor() as cursor:
            if truncate:
                cursor.execute(f"TRUNCATE {table}")
            else:
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - name from the model
        written = 0
        for first in range(0, last + 1, REBUILD_CHUNK):
            after = first + REBUILD_CHUNK
            written += _insert_visits(Q(opportunity_id__gte=first, opportunity_id__lt=after))
            if progress is not None:
                progress(min(after, last + 1), last + 1)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")  # the planner's idea of the table's size
    return written


# Keeping in step ----------------------------------------------------------------------------

CREATED_KIND = f"opportunity.{EventKind.CREATED}"


def _flush(keys: list[Any]) -> None:
    """Keys are (opportunity id, created in this transaction)."""
    step_visits_update((pk for pk, _created in keys), new=(pk for pk, created in keys if created))


_pending = CommitBatch(_flush)


def step_visits_follow(sender: Any, *, changes: list[Announcement], **_: Any) -> None:
    """Note the opportunities whose visits changes may alter (those given another owner
    too, which the visits repeat); they are recomputed once their transaction commits (once
    per transaction, however many changes it made). One created in the same transaction has
    no visits to replace: no one wrote any before it committed.
    """
    _pending.add(
        *(
            (object_id, kind == CREATED_KIND)
            for kind, _actor, object_id, data in changes
            if kind in FOLLOWED_KINDS or owner_changed(kind, data)
        )
    )


def connect() -> None:
    """Keep the visits in step with the log from now on (called once, from `ready()`)."""
    changes_recorded.connect(step_visits_follow, dispatch_uid="opportuna.insights.steps")


__all__ = [
    "FOLLOWED_KINDS",
    "connect",
    "rebuild_step_visits",
    "step_visits_follow",
    "step_visits_update",
]
