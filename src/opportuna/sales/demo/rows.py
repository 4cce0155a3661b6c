"""How the bulk writes: plain rows, explicit ids, one prepared INSERT per table per batch.

A million opportunities is about 17 million rows. Rows are plain tuples with explicit primary
keys taken after the current maximum, so related rows and events point at each other without
a round trip; each batch is written with one prepared INSERT per table (`executemany`) on
SQLite and with `COPY` on PostgreSQL (where Django's cursor would send an `executemany` row
by row), values adapted by the backend's own `connection.ops.adapt_*`, as the ORM would.
That skips `bulk_create`'s per-value compilation, which made a million take about an hour
instead of minutes. `Table` checks that every column of its model is written, so a new model
field fails here loudly. Nothing else may write to these tables meanwhile.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.db.models import Max

from opportuna.sales.models import (
    Activity,
    Client,
    Comment,
    Contact,
    Opportunity,
    OpportunityEvent,
)

DAY = 1440  # the bulk counts time in whole minutes of local wall-clock time since date.min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MINUTE = date(1970, 1, 1).toordinal() * DAY
EXPLICIT_IDS: list[type[models.Model]] = [Client, Opportunity, Activity, Comment]


class Table:
    """One table's pending rows and its INSERT; the columns must cover the whole model."""

    def __init__(self, model: type[models.Model], names: str) -> None:
        fields = [model._meta.get_field(name) for name in names.split()]
        written = {f.name for f in fields}
        missing = {f.name for f in model._meta.concrete_fields if not f.primary_key} - written
        if missing:
            raise RuntimeError(f"The demo does not write {model.__name__}.{sorted(missing)}")
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)  # type: ignore[union-attr]
        marks = ", ".join(["%s"] * len(fields))
        table = quote(model._meta.db_table)
        self.sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - model names
        self.copy = f"COPY {table} ({columns}) FROM STDIN"
        self.rows: list[tuple[Any, ...]] = []

    def write(self, cursor: Any) -> None:
        if not self.rows:
            return
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(self.copy) as copy:  # psycopg's own cursor
                for row in self.rows:
                    copy.write_row(row)
        else:
            cursor.executemany(self.sql, self.rows)
        self.rows.clear()


class Rows:
    """The tables the bulk fills, the next free id of each, and values as the database wants."""

    def __init__(self, zone: tzinfo) -> None:
        self.clients = Table(
            Client,
            "id name vat_number email phone website address city country notes external_id "
            "created_at",
        )
        self.opportunities = Table(
            Opportunity,
            "id title client owner pipeline step status amount won_amount probability "
            "probability_is_manual product expected_close_date next_action_at "
            "next_action_note fields description lost_reason lost_note duplicated_from "
            "external_id created_at updated_at closed_at version",
        )
        self.contacts = Table(Contact, "opportunity position name role email phone")
        self.tags = Table(Opportunity.tags.through, "opportunity tag")
        self.activities = Table(
            Activity, "id opportunity type user opportunity_owner due_at done_at note created_at"
        )
        self.comments = Table(Comment, "id opportunity author body pinned created_at edited_at")
        self.events = Table(OpportunityEvent, "opportunity actor at kind changes data")
        self.next_id = {
            model: (model.objects.aggregate(m=Max("pk"))["m"] or 0) + 1 for model in EXPLICIT_IDS
        }
        self.zone = zone
        self.offsets: dict[int, int] = {}
        ops = connection.ops  # resolved once: the connection proxy costs a lookup per use
        self.adapt_time = ops.adapt_datetimefield_value
        self.date = ops.adapt_datefield_value
        self.adapt_json = ops.adapt_json_value
        self.empty_json = ops.adapt_json_value({}, None)

    def take(self, model: type[models.Model]) -> int:
        """The next free primary key of `model`."""
        pk = self.next_id[model]
        self.next_id[model] = pk + 1
        return pk

    def write(self) -> None:
        """Insert every pending row, parents first, in one transaction."""
        tables = [
            self.clients,
            self.opportunities,
            self.contacts,
            self.tags,
            self.activities,
            self.comments,
            self.events,
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            for table in tables:
                table.write(cursor)

    def utc(self, minute: int) -> datetime:
        """A local wall-clock minute as an aware UTC datetime (as `timezone.now()` gives)."""
        day = minute // DAY
        offset = self.offsets.get(day)
        if offset is None:
            noon = datetime.combine(date.fromordinal(day), time(12))
            delta = self.zone.utcoffset(noon) or timedelta(0)
            offset = self.offsets[day] = int(delta.total_seconds()) // 60
        return _EPOCH + timedelta(minutes=minute - _EPOCH_MINUTE - offset)

    def stamp(self, minute: int) -> Any:
        """A minute as the database stores a datetime."""
        return self.adapt_time(self.utc(minute))

    def iso(self, minute: int) -> str:
        """A minute as the event log stores a datetime (`to_json`)."""
        return self.utc(minute).isoformat()

    def json(self, value: Any) -> Any:
        """A value as the database stores JSON; most events have an empty dict somewhere."""
        return self.adapt_json(value, None) if value else self.empty_json


def reset_sequences() -> None:
    """After explicit ids, PostgreSQL's sequences must move past them (SQLite needs nothing)."""
    statements = connection.ops.sequence_reset_sql(no_style(), EXPLICIT_IDS)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
