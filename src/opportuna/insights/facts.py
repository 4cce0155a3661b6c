"""The facts of each closed deal, stored so the behaviour analysis and the calibration read one
narrow row per deal instead of walking every activity and event on each request.

Per won or lost opportunity, a `DealFacts` row: won or not, when it closed, its owner, the
visits done before its first demo, the whole days from its creation to its first activity,
the probability it carried `analysis.DAYS_BEFORE` days before closing, and its activity profile
(the activity types it had by then with their counts, 3 standing for 3 or more, in one short
text the analysis groups by); and a `DealActivityCount` row per activity type it had, with
the exact count. Open and cancelled opportunities have none. They are computed by the SQL
the analysis ran on each request before (`analysis.activity_walk` and
`analysis.carried_probability_sql`), so they mean exactly what it meant: only activities done
by the close count, in the order (done_at, id).

Kept in step: `deal_facts_follow` (connected to `changes_recorded` in `InsightsConfig.ready`)
notes the opportunity of every change that can alter its facts in a `CommitBatch`, and once
the transaction commits `deal_facts_update` recomputes those opportunities in a few set-based
statements: one flush per transaction, however many changes (an import, a bulk action).
Anything written without the services (the demo's bulk rows, a restore of an older backup, a
hand-made SQL load) needs `rebuild_deal_facts`, which `opportuna rebuild_insights` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, Case, Count, F, Max, Min, Q, Value, When
from django.utils import timezone

from opportuna.core.announce import Announcement, CommitBatch
from opportuna.insights.analysis import (
    OUTCOMES,
    activity_walk,
    carried_probability_sql,
    done_by_close,
)
from opportuna.insights.models import DealActivityCount, DealFacts
from opportuna.sales.models import ActivityType, Opportunity, Status

UPDATE_CHUNK = 500  # opportunity ids per statement when following changes
REBUILD_CHUNK = 50_000  # a range of opportunity ids per statement when rebuilding

# Announced kinds that can change what a closed deal's facts say: closing it (won, lost; and
# cancelled, which leaves none), reopening it, deleting it, and its activities (logged, done,
# and any later kind about activities: a late activity dated before the close counts); and
# an edit that changes its owner (`owner_changed`). The rest cannot: a closed deal cannot be
# moved or have its probability changed, step defaults only carry to open deals, and edits
# reach neither the creation nor the closing date.
FACT_KINDS = frozenset(
    {
        "opportunity.won",
        "opportunity.lost",
        "opportunity.reopened",
        "opportunity.cancelled",
        "opportunity.deleted",
    }
)
FACT_KIND_PREFIXES = ("activity.", "opportunity.activity_")
EDITED_KIND = "opportunity.updated"


def owner_changed(kind: str, data: dict[str, Any]) -> bool:
    """Whether an announced change gave the opportunity another owner."""
    return kind == EDITED_KIND and "owner" in (data.get("changes") or {})


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _marker_types() -> tuple[int | None, ActivityType | None]:
    """The "visit" type's id and the "demo" type, those the demo position is told by."""
    found = {t.key: t for t in ActivityType.objects.filter(key__in=("visit", "demo"))}
    visit = found.get("visit")
    return (visit.pk if visit else None), found.get("demo")


def profile_aggregate(vendor: str) -> str:
    """The SQL aggregate that spells a deal's activity profile from its `DealActivityCount`
    rows `c`: "type id:count" (3 standing for 3 or more), comma-separated, by type id."""
    number = "CAST(CASE WHEN c.count > 3 THEN 3 ELSE c.count END AS TEXT)"
    item = f"CAST(c.type_id AS TEXT) || ':' || {number}"
    if vendor == "postgresql":
        return f"string_agg({item}, ',' ORDER BY c.type_id)"
    # SQLite has no ORDER BY in an aggregate before 3.44; the counts' unique index gives the
    # order in practice, and the analysis reads a profile in any order the same.
    return f"group_concat({item}, ',')"


def _insert(
    cursor: Any,
    ids: dict[str, Any],
    *,
    visit_id: int | None,
    demo: ActivityType | None,
    now: datetime,
) -> int:
    """Write the activity counts and facts of the won and lost opportunities whose ids match
    `ids` (lookups: {"in": [...]} or {"gte": low, "lt": high}), which have none yet; two
    statements. Returns the number of facts rows written.

    The same lookups narrow the activities and counts read, not only the opportunities, so
    the database reads the chunk's rows by index instead of scanning whole tables."""
    own = Q(**{f"pk__{lookup}": value for lookup, value in ids.items()})
    theirs = Q(**{f"opportunity_id__{lookup}": value for lookup, value in ids.items()})
    closed = Opportunity.objects.filter(own, status__in=OUTCOMES).order_by()
    activities = done_by_close(closed).filter(theirs)
    # Each count repeats its deal's outcome, close time and owner, as the facts below do.
    counts_sql, counts_params = (
        activities.annotate(
            deal_won=Case(
                When(opportunity__status=Status.WON, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            deal_closed_at=F("opportunity__closed_at"),
            deal_owner=F("opportunity__owner_id"),
        )
        .values("opportunity_id", "type_id", "deal_won", "deal_closed_at", "deal_owner")
        .annotate(number=Count("pk"))
        .values_list(
            "opportunity_id", "type_id", "number", "deal_won", "deal_closed_at", "deal_owner"
        )
        .order_by()
        .query.sql_with_params()
    )
    counts = _table(DealActivityCount)
    cursor.execute(
        f"INSERT INTO {counts} (opportunity_id, type_id, count, won, closed_at, owner_id) "  # noqa: S608
        f"{counts_sql}",
        counts_params,
    )

    base_sql, base_params = (
        closed.annotate(
            opp=F("pk"),
            outcome=F("status"),
            closing=F("closed_at"),
            seller=F("owner_id"),
            current=F("probability"),
        )
        .values("opp", "outcome", "closing", "seller", "current")
        .query.sql_with_params()
    )
    profile_sql, profile_params = (
        DealActivityCount.objects.filter(theirs)  # just written: only the closed ones'
        .values("opportunity_id", "type_id", "count")
        .order_by("opportunity_id", "type_id")
        .query.sql_with_params()
    )
    # Only the demo's own running count is needed: the first demo is the row where it is 1.
    walk = activity_walk(
        closed, [demo] if demo else [], visit_id=visit_id, days_cap=None, activities=activities
    )
    walk_sql, walk_params = walk.query.sql_with_params()
    first_demo = "1 = 0"
    if demo is not None:
        first_demo = f"walk.kind = {int(demo.pk)} AND walk.of_type_{int(demo.pk)} = 1"
    picked_sql, picked_params = carried_probability_sql(closed, step_id=None)
    facts = f"""
        INSERT INTO {_table(DealFacts)} (opportunity_id, won, closed_at, owner_id,
                                         visits_before_demo, days_to_first_activity,
                                         probability_before, activity_profile, computed_at)
        SELECT base.opp, base.outcome = %s, base.closing, base.seller, walked.visits,
               walked.days, COALESCE(picked.carried, base.current),
               COALESCE(profiled.profile, ''), %s
        FROM ({base_sql}) AS base
        LEFT JOIN (
            SELECT walk.opp,
                   MAX(CASE WHEN {first_demo} THEN walk.visits_so_far END) AS visits,
                   MAX(CASE WHEN walk.nth = 1 THEN walk.days_in END) AS days
            FROM ({walk_sql}) AS walk
            GROUP BY walk.opp
        ) AS walked ON walked.opp = base.opp
        LEFT JOIN ({picked_sql}) AS picked ON picked.opp = base.opp
        LEFT JOIN (
            SELECT c.opportunity_id AS opp, {profile_aggregate(connection.vendor)} AS profile
            FROM ({profile_sql}) AS c
            GROUP BY c.opportunity_id
        ) AS profiled ON profiled.opp = base.opp
    """  # noqa: S608 - the ORM's SQL, table names and integer ids; values stay parameters
    stamp = connection.ops.adapt_datetimefield_value(now)
    cursor.execute(
        facts,
        [Status.WON, stamp, *base_params, *walk_params, *picked_params, *profile_params],
    )
    return max(cursor.rowcount, 0)


def _chunks(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for pk in sorted({int(pk) for pk in ids}):
        batch.append(pk)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def deal_facts_update(opportunity_ids: Iterable[Any]) -> None:
    """Compute again the facts of these opportunities: the won and lost ones get theirs, the
    others (open, cancelled, gone) none. Idempotent; one query for the activity types, then
    five statements per `UPDATE_CHUNK` ids (a lock, two deletes, two INSERT ... SELECT).

    The opportunities' rows are locked first (in id order), so two transactions that commit
    changes to the same deal at once compute its facts one after the other, the second from
    what the first committed, instead of both inserting them."""
    batches = list(_chunks(opportunity_ids, UPDATE_CHUNK))
    if not batches:
        return
    visit_id, demo = _marker_types()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        for batch in batches:
            locked = Opportunity.objects.filter(pk__in=batch).order_by("pk").select_for_update()
            list(locked.values_list("pk", flat=True))
            marks = ", ".join(["%s"] * len(batch))
            for model in (DealActivityCount, DealFacts):
                cursor.execute(
                    f"DELETE FROM {_table(model)} WHERE opportunity_id IN ({marks})",  # noqa: S608
                    batch,
                )
            _insert(cursor, {"in": batch}, visit_id=visit_id, demo=demo, now=now)


def rebuild_deal_facts(progress: Callable[[int, int], object] = lambda done, total: None) -> int:
    """Compute the facts of every closed deal again, in one transaction (readers see the old
    ones until it commits); returns the number of deals. Set-based, `REBUILD_CHUNK` ids at a
    time; `progress(written, total)` after each chunk. Called outside a transaction on
    PostgreSQL, it then compacts the two tables (VACUUM FULL: readers wait for it)."""
    closed_all = Opportunity.objects.filter(status__in=OUTCOMES).order_by()
    visit_id, demo = _marker_types()
    now = timezone.now()
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        # DELETE, not TRUNCATE: TRUNCATE would lock the pages' readers out until the commit.
        for model in (DealActivityCount, DealFacts):
            cursor.execute(f"DELETE FROM {_table(model)}")  # noqa: S608 - a model's table
        bounds = closed_all.aggregate(low=Min("pk"), high=Max("pk"), total=Count("pk"))
        if bounds["low"] is not None:
            for start in range(bounds["low"], bounds["high"] + 1, REBUILD_CHUNK):
                chunk = {"gte": start, "lt": start + REBUILD_CHUNK}
                written += _insert(cursor, chunk, visit_id=visit_id, demo=demo, now=now)
                progress(written, bounds["total"])
    # The planner's statistics for the new rows. On PostgreSQL (outside a transaction) the
    # tables are also written anew without the rows just replaced, which would otherwise
    # stay in the files the pages scan: a few seconds during which their readers wait.
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    with connection.cursor() as cursor:
        for model in (DealFacts, DealActivityCount):
            command = "VACUUM (FULL, ANALYZE)" if vacuum else "ANALYZE"
            cursor.execute(f"{command} {_table(model)}")
    return written


# Keeping in step ----------------------------------------------------------------------------

_pending = CommitBatch(deal_facts_update)


def deal_facts_follow(sender: Any, *, changes: list[Announcement], **_: Any) -> None:
    """`changes_recorded` receiver: note the opportunities of changes that can alter their
    facts; they are computed again once the transaction commits."""
    _pending.add(
        *(
            object_id
            for kind, _actor, object_id, data in changes
            if kind in FACT_KINDS
            or kind.startswith(FACT_KIND_PREFIXES)
            or owner_changed(kind, data)
        )
    )


# Rebuilding everything ----------------------------------------------------------------------


def rebuild_insights(say: Callable[[str], object] = lambda line: None) -> dict[str, int | None]:
    """Rebuild every derived insights table from the activities and the event log: the
    closed-deal facts, the step visits, then the monthly forecast openings. What
    `opportuna rebuild_insights` and the demo loader run.
    `say` gets a line of progress at a time. Returns the rows written per table (None:
    skipped)."""
    counts: dict[str, int | None] = {}
    started = time.monotonic()
    say("Closed-deal facts (behaviour analysis, calibration)...")
    counts["deal_facts"] = rebuild_deal_facts(
        lambda done, total: say(f"  {done} of {total} closed deals")
    )
    counts["deal_activity_counts"] = DealActivityCount.objects.count()
    say(
        f"  {counts['deal_facts']} closed deals, {counts['deal_activity_counts']} activity "
        f"counts in {time.monotonic() - started:.1f} s."
    )
    from opportuna.insights.openings import rebuild_forecast_openings
    from opportuna.insights.steps import rebuild_step_visits

    started = time.monotonic()
    say("Step visits (step funnel, time in step)...")
    counts["step_visits"] = rebuild_step_visits(
        progress=lambda done, total: say(f"  {done} of {total} opportunities")
    )
    say(f"  {counts['step_visits']} step visits in {time.monotonic() - started:.1f} s.")
    started = time.monotonic()
    say("Forecast openings (forecast versus actual)...")
    counts["forecast_openings"] = rebuild_forecast_openings()
    say(f"  {counts['forecast_openings']} opening rows in {time.monotonic() - started:.1f} s.")
    return counts
