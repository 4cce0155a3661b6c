"""Exports: opportunities (the list, with any of its filters) and client folders, as rows.

The columns are the ones the importer reads (same headers, amounts in currency units, dates
in the account's time zone, owners by username, steps and catalogues by name), so an
exported file imports back as it was. Rows come from `visible_opportunities(user)` through
the opportunity list's own filters, and are read in chunks: a constant number of queries per
chunk of rows, whatever the total.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.db.models import Max, Prefetch
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.core.money import from_cents
from opportuna.integrations.importing import (
    CLIENT_TARGETS,
    CONTACT_LABELS,
    CONTACT_PARTS,
    MAX_CONTACTS,
    OPPORTUNITY_TARGETS,
)
from opportuna.integrations.tabular import Cell
from opportuna.sales.models import Contact, FieldDefinition, FieldKind
from opportuna.sales.selectors import visible_clients
from opportuna.sales.selectors.opportunity_list import (
    DEFAULT_SORT,
    ListFilters,
    _filtered,
    list_ordering,
    parse_sort,
)

CHUNK = 2000

Table = tuple[list[str], Iterator[list[Cell]]]


def _local(moment: datetime | None) -> datetime | None:
    """A moment as the account's wall-clock time to the second (spreadsheets know no zones)."""
    if moment is None:
        return None
    return timezone.localtime(moment).replace(tzinfo=None, microsecond=0)


def _field_cell(value: str, kind: str) -> Cell:
    """A default field's stored text; numbers and dates as such, so they stay numbers."""
    if not value:
        return ""
    try:
        if kind == FieldKind.NUMBER:
            return Decimal(value)
        if kind == FieldKind.DATE:
            return date.fromisoformat(value)
    except (InvalidOperation, ValueError):
        pass
    return value


def opportunity_export(
    *, user: User, filters: ListFilters | None = None, sort: str = DEFAULT_SORT
) -> Table:
    """Headers and rows of the visible opportunities matching `filters`, in the list's order.

    Queries: default fields, the most contacts any row has, then per chunk of rows the rows
    (with their client, owner, pipeline, step, product and lost reason), tags and contacts.
    """
    definitions = list(FieldDefinition.objects.all())
    queryset = _filtered(user, filters or ListFilters())
    most = Contact.objects.filter(opportunity__in=queryset).aggregate(last=Max("position"))
    labels = {definition.label.casefold() for definition in definitions}
    contact_columns = []  # (position, part): those not shadowed by a default field's label
    for number in range(1, min((most["last"] or -1) + 1, MAX_CONTACTS) + 1):
        for part in CONTACT_PARTS:
            if str(CONTACT_LABELS[part] % {"n": number}).casefold() not in labels:
                contact_columns.append((number - 1, part))
    headers = [
        *(str(label) for label in OPPORTUNITY_TARGETS.values() if label),
        *(definition.label for definition in definitions),
        *(str(CONTACT_LABELS[part] % {"n": position + 1}) for position, part in contact_columns),
    ]
    # The description reads best last, after the short columns.
    description = headers.index(str(OPPORTUNITY_TARGETS["description"]))
    headers.append(headers.pop(description))
    rows = (
        queryset.select_related("client", "owner", "pipeline", "step", "product", "lost_reason")
        .prefetch_related(
            "tags", Prefetch("contacts", queryset=Contact.objects.order_by("position", "pk"))
        )
        .order_by(*list_ordering(parse_sort(sort)))
    )

    def lines() -> Iterator[list[Cell]]:
        for opp in rows.iterator(chunk_size=CHUNK):
            contacts = list(opp.contacts.all())
            line: list[Cell] = [
                opp.external_id,
                opp.title,
                opp.client.name if opp.client else "",
                opp.client.external_id if opp.client else "",
                opp.owner.username,
                opp.pipeline.name,
                opp.step.name,
                str(opp.get_status_display()),
                from_cents(opp.amount),
                opp.probability,
                None if opp.won_amount is None else from_cents(opp.won_amount),
                opp.product.name if opp.product else "",
                opp.expected_close_date,
                _local(opp.next_action_at),
                opp.next_action_note,
                _local(opp.created_at),
                _local(opp.closed_at),
                opp.lost_reason.name if opp.lost_reason else "",
                opp.lost_note,
                ", ".join(sorted(tag.name for tag in opp.tags.all())),
            ]
            line += [_field_cell(opp.fields.get(d.key, ""), d.kind) for d in definitions]
            for position, part in contact_columns:
                contact = contacts[position] if position < len(contacts) else None
                line.append(getattr(contact, part) if contact else "")
            line.append(opp.description)
            yield line

    return headers, lines()


def client_export(*, user: User) -> Table:
    """Headers and rows of the client folders `user` sees, by name."""
    headers = [str(label) for label in CLIENT_TARGETS.values()]
    fields = list(CLIENT_TARGETS)
    clients = visible_clients(user).order_by("name", "pk").values_list(*fields)

    def lines() -> Iterator[list[Cell]]:
        for values in clients.iterator(chunk_size=CHUNK):
            yield list(values)

    return headers, lines()


def export_table(*, user: User, what: str, filters: ListFilters | None, sort: str) -> Table:
    """The table to export: "clients", or the opportunities matching the list's filters."""
    if what == "clients":
        return client_export(user=user)
    return opportunity_export(user=user, filters=filters, sort=sort)


def export_filename(what: str, extension: str) -> str:
    return f"{what}-{timezone.localdate():%Y-%m-%d}.{extension}"


__all__ = ["client_export", "export_filename", "export_table", "opportunity_export"]
