"""What the forecast said at the start of each month, stored once instead of rebuilt per request.

For a month, its *opening* is the set of opportunities that, at the month's first instant in
the account's time zone, were open and expected to close in that month, with the amount and
probability they carried then (`history.month_opening`, the event-log replay). Forecast versus
actual compares it with what was won; replaying the log for thirteen months on every request
is what made that page slow, so each month's opening is written to `ForecastOpening` (one
INSERT ... SELECT per month, for all opportunities whoever can see them) and a `ForecastMonth`
row marks the month as computed. Each row repeats its opportunity's owner of today, followed
when an edit gives it another (`openings_follow`), so a view narrowed by owners only chooses the
rows by it; readers join the rows narrowed otherwise (a pipeline) to
`visible_opportunities(user)` and the filters, so visibility and today's owner, team and
pipeline apply as before.

A month's opening cannot change once the month has begun: the services stamp every change
with the moment it is made, and the replay reads a change only as coming after the instants
before it. So past months are computed once, and the current one the first time it is needed
(`ensure_forecast_openings`).

Back-dated writes are the exception. An import that creates opportunities with a creation
(and closing) time in the past writes events in the past, so the pipeline as the log now tells
it differs, for the months after those times, from what was stored before the import. The
importer says so (`core.announce.past_changed`, with the earliest time it wrote) and
`forget_openings_since` drops, in the same transaction, every stored month that began after
it; they are computed again from the log the next time they are needed. Rows loaded without
the services (a bulk SQL load, a restored backup) and a change of the account's time zone
are not noticed: run `opportuna rebuild_insights` (which calls `rebuild_forecast_openings`;
`opportuna demo` does at the end of its load) after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Min, OuterRef, Subquery
from django.utils import timezone

from opportuna.core.announce import Announcement, CommitBatch
from opportuna.insights.facts import owner_changed
from opportuna.insights.models import ForecastMonth, ForecastOpening
from opportuna.insights.periods import add_months, local_midnight
from opportuna.sales.models import Opportunity


def _month_began(first: date) -> bool:
    return local_midnight(first) <= timezone.now()


def _check_months(months: Iterable[date]) -> list[date]:
    firsts = sorted(set(months))
    for first in firsts:
        if first.day != 1:
            raise ValueError(f"a month is given by its first day, not {first.isoformat()}")
        if not _month_began(first):
            raise ValueError(f"{first:%Y-%m} has not begun: its opening is not known yet")
    return firsts


def _claim_month(first: date) -> bool:
    """Mark the month as computed; False if it already was (by a concurrent request, too)."""
    table = connection.ops.quote_name(ForecastMonth._meta.db_table)
    with connection.cursor() as cursor:
        # A second request computing the same month waits here for the first to commit, then
        # finds the row and leaves the month to it (ON CONFLICT is SQLite 3.24+ and PostgreSQL).
        cursor.execute(
            f"INSERT INTO {table} (month, computed_at) VALUES (%s, %s) "  # noqa: S608 - model table
            "ON CONFLICT (month) DO NOTHING",
            [
                connection.ops.adapt_datefield_value(first),
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )
        return cursor.rowcount == 1


def _insert_opening(first: date) -> int:
    """Write the opening of the month starting `first`: one INSERT ... SELECT; its row count."""
    # Imported here: `history` reads these tables for forecast versus actual.
    from opportuna.insights.history import month_opening

    picked = (
        month_opening(Opportunity.objects.all(), first)
        .annotate(opp=F("pk"), seller=F("owner_id"))
        .values("opp", "seller", "amount_then", "probability_then")
    )
    select, params = picked.query.sql_with_params()
    table = connection.ops.quote_name(ForecastOpening._meta.db_table)
    sql = (
        f"INSERT INTO {table} (month, opportunity_id, owner_id, amount, probability) "  # noqa: S608
        "SELECT %s, picked.opp, picked.seller, picked.amount_then, picked.probability_then "
        f"FROM ({select}) AS picked"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datefield_value(first), *params])
        return max(cursor.rowcount, 0)


def ensure_forecast_openings(months: Iterable[date]) -> int:
    """Store the opening of each given month (first days) not stored yet; the months computed.

    Months that have not begun are refused (ValueError): their opening is not known yet.
    One query when all are stored; each missing month costs one transaction of two statements.
    """
    firsts = _check_months(months)
    if not firsts:
        return 0
    stored = set(ForecastMonth.objects.filter(month__in=firsts).values_list("month", flat=True))
    computed = 0
    for first in firsts:
        if first in stored:
            continue
        with transaction.atomic():
            if _claim_month(first):
                _insert_opening(first)
                computed += 1
    return computed


def forget_openings_since(since: datetime) -> int:
    """Drop the stored openings of the months that began at or after `since` (they no longer
    tell what the log says about their first instant); how many months were dropped."""
    first = timezone.localtime(since).date().replace(day=1)
    if local_midnight(first) < since:  # begun before: its opening did not see the change
        first = add_months(first, 1)
    if not _month_began(first):  # nothing stored can be later: the usual case, no query
        return 0
    ForecastOpening.objects.filter(month__gte=first).delete()
    deleted, _by_model = ForecastMonth.objects.filter(month__gte=first).delete()
    return deleted


def past_changed_follow(sender: Any, *, since: datetime, **_: Any) -> None:
    """`past_changed` receiver (connected in `InsightsConfig.ready`)."""
    forget_openings_since(since)


# Following owner changes ---------------------------------------------------------------

OWNER_CHUNK = 2000  # opportunity ids per statement


def forecast_openings_owner_update(opportunity_ids: Iterable[Any]) -> None:
    """Give the stored openings of these opportunities their opportunity's owner of now;
    one statement per `OWNER_CHUNK` ids (idempotent)."""
    ids = sorted({int(pk) for pk in opportunity_ids})
    owner = Opportunity.objects.filter(pk=OuterRef("opportunity_id")).values("owner_id")[:1]
    for first in range(0, len(ids), OWNER_CHUNK):
        chunk = ids[first : first + OWNER_CHUNK]
        ForecastOpening.objects.filter(opportunity_id__in=chunk).update(owner_id=Subquery(owner))


_owners_pending = CommitBatch(forecast_openings_owner_update)


def openings_follow(sender: Any, *, changes: list[Announcement], **_: Any) -> None:
    """`changes_recorded` receiver (connected in `InsightsConfig.ready`): note the
    opportunities given another owner; their openings follow once the transaction commits."""
    _owners_pending.add(
        *(object_id for kind, _actor, object_id, data in changes if owner_changed(kind, data))
    )


def first_month_with_data() -> date | None:
    """The month of the first opportunity's creation (account time zone); None without any."""
    first = Opportunity.objects.aggregate(first=Min("created_at"))["first"]
    if first is None:
        return None
    return timezone.localtime(first).date().replace(day=1)


def rebuild_forecast_openings() -> int:
    """Drop every stored opening and store each month's again, from the first month with data
    to the current one, in one transaction; the number of opening rows written."""
    current = timezone.localdate().replace(day=1)
    with transaction.atomic():
        with connection.cursor() as cursor:
            for model in (ForecastOpening, ForecastMonth):
                table = connection.ops.quote_name(model._meta.db_table)
                cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a model's own table
        first = first_month_with_data()
        if first is None:
            return 0
        written = 0
        while first <= current:
            _claim_month(first)
            written += _insert_opening(first)
            first = add_months(first, 1)
    return written


__all__ = [
    "ensure_forecast_openings",
    "first_month_with_data",
    "forecast_openings_owner_update",
    "forget_openings_since",
    "openings_follow",
    "past_changed_follow",
    "rebuild_forecast_openings",
]
