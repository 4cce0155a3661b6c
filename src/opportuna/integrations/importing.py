"""Importing a file: columns mapped to fields, cells read into values, rows sent in batches.

This is the adapter between a table (`tabular`) and the import services
(`sales.services.imports`): it knows the column names people use, how amounts, dates and
statuses are written in files, and the noCRM text form ("Label: value" lines, `---`, then the
description); the services know the rules. The web page, its background task and the
`import_opportunities` command all go through `import_file`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time as time_module
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_tasks import task

from opportuna.accounts.models import User
from opportuna.core.database import bulk_writes
from opportuna.core.money import to_cents
from opportuna.integrations.tabular import Cell, Sheet, TableError, read_sheet, restore
from opportuna.sales.fieldtext import _clean_number, parse_text
from opportuna.sales.models import FieldDefinition, Status
from opportuna.sales.services.imports import (
    ACTIONS,
    REJECTED,
    ClientRow,
    ImportContext,
    ImportReport,
    ImportRow,
    RowResult,
    client_import_batch,
    opportunity_import_batch,
    rows_in_batches,
)

OPPORTUNITIES = "opportunities"
CLIENTS = "clients"
KINDS = (OPPORTUNITIES, CLIENTS)
BATCH_SIZE = 2000
MAX_CONTACTS = 10
CONTACT_PARTS = ("name", "role", "email", "phone")
IGNORE = ""
TEXT = "text"  # the noCRM text column: default fields, "---", description
FIELD_PREFIX = "field:"
CONTACT_PREFIX = "contact:"

# Opportunity columns: target -> label (also the export's header). Order = the export's.
OPPORTUNITY_TARGETS: dict[str, Any] = {
    "external_id": gettext_lazy("External id"),
    "title": gettext_lazy("Title"),
    "client": gettext_lazy("Client"),
    "client_external_id": gettext_lazy("Client external id"),
    "owner": gettext_lazy("Owner"),
    "pipeline": gettext_lazy("Pipeline"),
    "step": gettext_lazy("Step"),
    "status": gettext_lazy("Status"),
    "amount": gettext_lazy("Amount"),
    "probability": gettext_lazy("Probability"),
    "won_amount": gettext_lazy("Won amount"),
    "product": gettext_lazy("Product"),
    "expected_close_date": gettext_lazy("Expected close date"),
    "next_action_at": gettext_lazy("Next action"),
    "next_action_note": gettext_lazy("Next action note"),
    "created_at": gettext_lazy("Created"),
    "closed_at": gettext_lazy("Closed"),
    "lost_reason": gettext_lazy("Lost reason"),
    "lost_note": gettext_lazy("Lost note"),
    "tags": gettext_lazy("Tags"),
    "description": gettext_lazy("Description"),
}
CLIENT_TARGETS: dict[str, Any] = {
    "external_id": gettext_lazy("External id"),
    "name": gettext_lazy("Name"),
    "vat_number": gettext_lazy("VAT number"),
    "email": gettext_lazy("Email"),
    "phone": gettext_lazy("Phone"),
    "website": gettext_lazy("Website"),
    "address": gettext_lazy("Address"),
    "city": gettext_lazy("City"),
    "country": gettext_lazy("Country"),
    "notes": gettext_lazy("Notes"),
}
CONTACT_LABELS = {
    "name": gettext_lazy("Contact %(n)d name"),
    "role": gettext_lazy("Contact %(n)d role"),
    "email": gettext_lazy("Contact %(n)d email"),
    "phone": gettext_lazy("Contact %(n)d phone"),
}
# Other names files use for a column (folded: lower case, single spaces), by target.
SYNONYMS = {
    OPPORTUNITIES: {
        "external id": "external_id",
        "id": "external_id",
        "opportunity": "title",
        "opportunity title": "title",
        "name": "title",
        "client folder": "client",
        "company": "client",
        "customer": "client",
        "user": "owner",
        "assigned to": "owner",
        "stage": "step",
        "value": "amount",
        "expected amount": "amount",
        "probability %": "probability",
        "expected close": "expected_close_date",
        "expected closing date": "expected_close_date",
        "next action at": "next_action_at",
        "reminder": "next_action_at",
        "created at": "created_at",
        "creation date": "created_at",
        "closed at": "closed_at",
        "closing date": "closed_at",
        "tag": "tags",
        "text": TEXT,
    },
    CLIENTS: {
        "client": "name",
        "client folder": "name",
        "company": "name",
        "vat": "vat_number",
        "e-mail": "email",
        "web site": "website",
    },
}
_CONTACT_HEADER = re.compile(r"contact\s*(\d+)\s*(name|role|email|phone)", re.IGNORECASE)
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_CURRENCY = re.compile(r"^(?:€|\$|£|EUR|USD|GBP|CHF)|(?:€|\$|£|EUR|USD|GBP|CHF)$", re.IGNORECASE)
_PERCENT = re.compile(r"^(\d{1,3})(?:[.,]0+)?\s*%?$")


def _fold(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _in_every_language(label: Any) -> set[str]:
    """A translatable label as it reads in each of the site's languages, folded."""
    names = {_fold(str(label))}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            names.add(_fold(str(label)))
    return names


# Targets and mapping ------------------------------------------------------------------------


def target_choices(kind: str, definitions: Sequence[FieldDefinition]) -> list[tuple[str, str]]:
    """What a column can be mapped to, as (target, label), "don't import" first."""
    choices = [(IGNORE, _("— don't import —"))]
    if kind == CLIENTS:
        return choices + [(k, str(v)) for k, v in CLIENT_TARGETS.items()]
    choices += [(k, str(v)) for k, v in OPPORTUNITY_TARGETS.items()]
    choices.append((TEXT, _("Text: default fields, then --- and the description (noCRM)")))
    choices += [(f"{FIELD_PREFIX}{d.key}", _("Field: %s") % d.label) for d in definitions]
    for number in range(1, MAX_CONTACTS + 1):
        for part in CONTACT_PARTS:
            label = CONTACT_LABELS[part] % {"n": number}
            choices.append((f"{CONTACT_PREFIX}{number}:{part}", str(label)))
    return choices


def guess_target(header: str, kind: str, definitions: Sequence[FieldDefinition]) -> str:
    """The target a column header most likely means, or IGNORE.

    A default field's label or key wins over a contact column ("Contact 1 name" may be a
    field the admin defined); the built-in names, in every language, win over both.
    """
    name = _fold(restore(header) or "")
    if not name:
        return IGNORE
    targets = OPPORTUNITY_TARGETS if kind == OPPORTUNITIES else CLIENT_TARGETS
    for target, label in targets.items():
        if name == target.replace("_", " ") or name in _in_every_language(label):
            return target
    synonym = SYNONYMS[kind].get(name)
    if synonym:
        return synonym
    if kind == CLIENTS:
        return IGNORE
    for definition in definitions:
        if name in {_fold(definition.label), _fold(definition.key)}:
            return f"{FIELD_PREFIX}{definition.key}"
    match = _CONTACT_HEADER.fullmatch(name)
    if match and 1 <= int(match.group(1)) <= MAX_CONTACTS:
        return f"{CONTACT_PREFIX}{int(match.group(1))}:{match.group(2).lower()}"
    for part in CONTACT_PARTS:
        for number in range(1, MAX_CONTACTS + 1):
            if name in _in_every_language(CONTACT_LABELS[part] % {"n": number}):
                return f"{CONTACT_PREFIX}{number}:{part}"
    return IGNORE


def guess_mapping(
    headers: Sequence[str], kind: str, definitions: Sequence[FieldDefinition]
) -> list[str]:
    """A target per column; a target met again maps only its first column."""
    seen: set[str] = set()
    mapping = []
    for header in headers:
        target = guess_target(header, kind, definitions)
        if target in seen:
            target = IGNORE
        seen.add(target)
        mapping.append(target)
    return mapping


def apply_overrides(
    headers: Sequence[str],
    mapping: list[str],
    overrides: Sequence[tuple[str, str]],
    valid: set[str],
) -> list[str]:
    """Set columns (by header, ignoring case) to targets; ValueError names a bad one."""
    folded = [_fold(h) for h in headers]
    result = list(mapping)
    for column, target in overrides:
        if _fold(column) not in folded:
            raise ValueError(_("The file has no column %(name)s.") % {"name": column})
        if target not in valid:
            raise ValueError(_("%(target)s is not a field to import into.") % {"target": target})
        index = folded.index(_fold(column))
        if target != IGNORE:
            result = [IGNORE if t == target else t for t in result]
        result[index] = target
    return result


def check_mapping(kind: str, mapping: Sequence[str]) -> list[str]:
    """What a mapping lacks to be imported at all (empty if nothing)."""
    problems = []
    targets = set(mapping)
    if kind == CLIENTS and not targets & {"name", "external_id"}:
        problems.append(_("Map a column to the client's name or external id."))
    if kind == OPPORTUNITIES and "title" not in targets:
        problems.append(_("Map a column to the title."))
    return problems


# Reading cells ------------------------------------------------------------------------------


class CellError(ValueError):
    """A cell cannot be read as what its column holds."""


def as_text(value: Cell) -> str:
    """A cell as text, the formula-neutralising apostrophe taken off; numbers plainly."""
    if value is None:
        return ""
    if isinstance(value, str):
        return str(restore(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# The plainest amounts ("1234", "1234.5", "1234.56"), most of a big file: read without Decimal.
_PLAIN_AMOUNT = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,2}))?")


def as_cents(value: Cell) -> int | None:
    """An amount in currency units ("1234.56", "1.234,56", "1,234.56", a number) in cents."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and (plain := _PLAIN_AMOUNT.fullmatch(value)):
        units, decimals = plain.groups()
        return int(units) * 100 + int((decimals or "0").ljust(2, "0"))
    if isinstance(value, bool):
        raise CellError(_("Enter an amount, such as 1234.56."))
    if isinstance(value, int | float | Decimal):
        number = Decimal(str(value))
    else:
        text = _SPACES.sub("", as_text(value))
        text = _CURRENCY.sub("", text)
        if not text:
            return None
        try:
            number = Decimal(_clean_number(text))
        except ValidationError as exc:
            raise CellError(" ".join(exc.messages)) from None
    if not number.is_finite():
        raise CellError(_("Enter an amount, such as 1234.56."))
    if number != number.quantize(Decimal("0.01")):
        raise CellError(_("An amount has at most two decimals."))
    return to_cents(number)


def as_probability(value: Cell) -> int | None:
    """A whole percentage, 0 to 100 ("40", "40%"; a spreadsheet's 0.4 in percent format)."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and 0 < value < 1:
        value = round(value * 100, 6)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if value != int(value):
            raise CellError(_("Enter a whole percentage from 0 to 100."))
        return int(value)
    match = _PERCENT.fullmatch(as_text(value).strip())
    if not match:
        raise CellError(_("Enter a whole percentage from 0 to 100."))
    return int(match.group(1))


_DATE_FORMATS = ("%d/%m/%Y", "%d.%m.%Y")
_DATETIME_FORMATS = ("%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M")


def as_date(value: Cell) -> date | None:
    """A date: a spreadsheet date, YYYY-MM-DD, DD/MM/YYYY or DD.MM.YYYY (a time is dropped)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = as_text(value).strip()
    return _text_date(text) if text else None


@lru_cache(maxsize=4096)
def _text_date(text: str) -> date:
    """Files repeat their dates: each text is read once (the answer cannot change)."""
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    moment = _parse_datetime(text)
    if moment is None:
        raise CellError(_("Enter a date as YYYY-MM-DD or DD/MM/YYYY."))
    return moment.date()


def as_datetime(value: Cell, *, date_at: time = time(0)) -> datetime | None:
    """A moment, in the account's time zone unless the text gives its offset.

    A date alone means `date_at` that day.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, date_at)
    else:
        text = as_text(value).strip()
        if not text:
            return None
        return _text_datetime(text, date_at, timezone.get_current_timezone_name())
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


@lru_cache(maxsize=4096)
def _text_datetime(text: str, date_at: time, zone: str) -> datetime:
    """A moment's text read once per time zone (files repeat their dates)."""
    moment = _parse_datetime(text)
    if moment is None:
        moment = datetime.combine(_text_date(text), date_at)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, zoneinfo.ZoneInfo(zone))
    return moment


def _parse_datetime(text: str) -> datetime | None:
    if len(text) > 10:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
        for pattern in _DATETIME_FORMATS:
            try:
                return datetime.strptime(text, pattern)
            except ValueError:
                continue
    return None


def status_names() -> dict[str, str]:
    """Every way a status may be written (code, label in each language) -> its code."""
    names = {"open": Status.TODO}
    for status in Status:
        names[status.value] = status.value
        for name in _in_every_language(status.label):
            names[name] = status.value
    return names


def as_status(value: Cell, names: dict[str, str]) -> str:
    text = _fold(as_text(value))
    if not text:
        return ""
    if text not in names:
        choices = ", ".join(str(s.label) for s in Status)
        raise CellError(_("Unknown status; use one of: %(choices)s.") % {"choices": choices})
    return names[text]


def _stripped(value: Cell) -> str:
    return as_text(value).strip()


def as_tags(value: Cell) -> list[str]:
    """Tag names separated by commas."""
    return [name.strip() for name in as_text(value).split(",") if name.strip()]


# Rows ---------------------------------------------------------------------------------------


@dataclass
class Columns:
    """A mapping made ready to read rows: which column index feeds which target."""

    kind: str
    headers: list[str]
    mapping: list[str]
    definitions: list[FieldDefinition]
    plain: dict[str, int] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)
    contacts: dict[int, dict[str, int]] = field(default_factory=dict)
    text: int | None = None
    _readers: list[tuple[str, int, Callable[[Cell], Any]]] | None = None

    def __post_init__(self) -> None:
        for index, target in enumerate(self.mapping):
            if not target:
                continue
            if target == TEXT:
                self.text = index
            elif target.startswith(FIELD_PREFIX):
                self.fields[target.removeprefix(FIELD_PREFIX)] = index
            elif target.startswith(CONTACT_PREFIX):
                number, part = target.removeprefix(CONTACT_PREFIX).split(":")
                self.contacts.setdefault(int(number), {})[part] = index
            else:
                self.plain[target] = index
        given = set(self.plain)
        if self.fields or self.text is not None:
            given.add("fields")
        if self.text is not None:
            given.add("description")
        if self.contacts:
            given.add("contacts")
        self.given = frozenset(given)

    def readers(self, statuses: dict[str, str]) -> list[tuple[str, int, Callable[[Cell], Any]]]:
        """(target, column, how to read its cells) for each plain column."""
        if self._readers is None:
            special: dict[str, Callable[[Cell], Any]] = {
                "amount": as_cents,
                "won_amount": as_cents,
                "probability": as_probability,
                "expected_close_date": as_date,
                "next_action_at": lambda cell: as_datetime(cell, date_at=time(9)),
                "created_at": as_datetime,
                "closed_at": as_datetime,
                "status": lambda cell: as_status(cell, statuses),
                "tags": as_tags,
                "description": as_text,
            }
            self._readers = [
                (target, index, special.get(target, _stripped))
                for target, index in self.plain.items()
            ]
        return self._readers

    def column(self, error_field: str) -> str:
        """The header of the column a service error names (its own name if none)."""
        if error_field.startswith(FIELD_PREFIX):
            key = error_field.removeprefix(FIELD_PREFIX)
            index = self.fields.get(key, self.text)
            if index is None:
                label = next((d.label for d in self.definitions if d.key == key), key)
                return label
            return self.headers[index]
        if error_field == "contacts" and self.contacts:
            first = min(self.contacts)
            return self.headers[min(self.contacts[first].values())]
        if error_field == "client" and "client" not in self.plain:
            error_field = "client_external_id"
        if error_field in ("", "row"):
            return ""
        index = self.plain.get(error_field)
        if index is None and error_field == "description" and self.text is not None:
            index = self.text
        if index is not None:
            return self.headers[index]
        labels = {**OPPORTUNITY_TARGETS, **CLIENT_TARGETS}
        return str(labels.get(error_field, error_field))


def _cell(row: list[Cell], index: int | None) -> Cell:
    if index is None or index >= len(row):
        return None
    return row[index]


def read_opportunity(
    number: int, row: list[Cell], columns: Columns, statuses: dict[str, str]
) -> ImportRow | RowResult:
    """One file row as an ImportRow, or a rejected RowResult naming the unreadable cells."""
    errors: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    width = len(row)
    for target, index, read in columns.readers(statuses):
        try:
            values[target] = read(row[index] if index < width else None)
        except CellError as error:
            errors.append((columns.headers[index], str(error)))
    title = values.get("title", "")
    if errors:
        return RowResult(number, REJECTED, title, None, errors)
    fields: dict[str, Any] = {}
    complete = False
    if columns.text is not None:
        text = as_text(_cell(row, columns.text))
        parsed = parse_text(text, columns.definitions)
        fields.update(parsed.fields)
        kept = [f"{label}: {value}" if label else value for label, value in parsed.unknown]
        description = parsed.description
        if kept:  # lines of no known field stay, on top of the description
            description = "\n".join(kept) + ("\n" + description if description else "")
        values.setdefault("description", description)
        complete = True
    for key, index in columns.fields.items():
        fields[key] = _field_value(_cell(row, index))
    contacts = []
    for number_ in sorted(columns.contacts):
        parts = {
            part: as_text(_cell(row, i)).strip() for part, i in columns.contacts[number_].items()
        }
        if any(parts.values()):
            contacts.append(parts)
    return ImportRow(
        number=number,
        given=columns.given,
        fields=fields,
        fields_complete=complete,
        contacts=contacts,
        **values,
    )


def _field_value(value: Cell) -> Any:
    """A default field's cell for `clean_field_values`: text, or a spreadsheet's number or date."""
    if isinstance(value, datetime) and value.time() == time(0):
        return value.date()
    if isinstance(value, str):
        return restore(value)
    return "" if value is None else value


def read_client(number: int, row: list[Cell], columns: Columns) -> ClientRow:
    return ClientRow(
        number=number,
        values={target: as_text(_cell(row, index)) for target, index in columns.plain.items()},
    )


# The whole file -----------------------------------------------------------------------------


@dataclass
class ImportOptions:
    """How to read a file and where its columns go."""

    kind: str = OPPORTUNITIES
    format: str | None = None
    encoding: str = "auto"
    delimiter: str | None = None
    mapping: list[str] | None = None  # a target per column; None: guessed from the headers


def open_sheet(path: Path, options: ImportOptions) -> Sheet:
    return read_sheet(
        path, format=options.format, encoding=options.encoding, delimiter=options.delimiter
    )


def count_rows(path: Path, options: ImportOptions) -> int:
    """How many non-empty rows follow the header (a quick first pass, for progress bars)."""
    sheet = open_sheet(path, options)
    return sum(1 for row in sheet.rows if _has_values(row))


def _has_values(row: list[Cell]) -> bool:
    return any(cell not in (None, "") and str(cell).strip() for cell in row)


def import_file(
    *,
    actor: User,
    path: Path,
    options: ImportOptions,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
    batch_size: int = BATCH_SIZE,
) -> tuple[ImportReport, Columns]:
    """Import every row of the file in batches; `progress` gets the rows done after each."""
    context = ImportContext(actor)
    sheet = open_sheet(path, options)
    mapping = options.mapping or guess_mapping(sheet.headers, options.kind, context.definitions)
    if len(mapping) != len(sheet.headers):
        raise TableError(_("The mapping does not match the file's columns."))
    columns = Columns(options.kind, sheet.headers, list(mapping), context.definitions)
    report = ImportReport()
    statuses = status_names()
    numbered = (
        (number, row)
        for number, row in enumerate(sheet.rows, start=2)  # row 1 is the header
        if _has_values(row)
    )
    with bulk_writes():
        for batch in rows_in_batches(numbered, batch_size):
            if options.kind == CLIENTS:
                clients = [read_client(number, row, columns) for number, row in batch]
                done = client_import_batch(
                    actor=actor, rows=clients, dry_run=dry_run, context=context
                )
                for result in done.rows:
                    result.errors = [(columns.column(name), text) for name, text in result.errors]
                report.extend(done)
            else:
                report.extend(_opportunity_batch(batch, columns, statuses, context, dry_run))
            if progress is not None:
                progress(len(batch))
    return report, columns


def _opportunity_batch(
    batch: list[tuple[int, list[Cell]]],
    columns: Columns,
    statuses: dict[str, str],
    context: ImportContext,
    dry_run: bool,
) -> ImportReport:
    read = [read_opportunity(number, row, columns, statuses) for number, row in batch]
    rows = [r for r in read if isinstance(r, ImportRow)]
    unreadable = [r for r in read if isinstance(r, RowResult)]
    report = opportunity_import_batch(
        actor=context.actor, rows=rows, dry_run=dry_run, context=context
    )
    for result in report.rows:
        result.errors = [(columns.column(name), message) for name, message in result.errors]
    if unreadable:
        report.rows = sorted(report.rows + unreadable, key=lambda r: r.number)
    return report


# Reports as data (for task results and pages) -----------------------------------------------

SHOWN_REJECTED = 1000
SHOWN_OTHERS = 200


def report_data(report: ImportReport, *, dry_run: bool, seconds: float = 0.0) -> dict[str, Any]:
    """The report as JSON-ready data: counts, and rows (every rejected one up to a limit)."""
    counts = report.counts()
    rejected = [r for r in report.rows if r.action == REJECTED][:SHOWN_REJECTED]
    others = [r for r in report.rows if r.action != REJECTED][:SHOWN_OTHERS]
    shown = sorted(rejected + others, key=lambda r: r.number)
    return {
        "dry_run": dry_run,
        "counts": counts,
        "total": len(report.rows),
        "seconds": round(seconds, 2),
        "rows": [
            {
                "number": r.number,
                "action": r.action,
                "title": r.title,
                "id": r.object_id,
                "errors": [list(e) for e in r.errors],
            }
            for r in shown
        ],
        "hidden": {
            "rejected": counts[REJECTED] - len(rejected),
            "others": sum(counts[a] for a in ACTIONS if a != REJECTED) - len(others),
        },
        "new_clients": report.new_clients[:50],
        "new_clients_count": len(report.new_clients),
        "new_tags": report.new_tags[:50],
        "new_tags_count": len(report.new_tags),
    }


# Uploads: the file between the mapping, the dry run and the import --------------------------

_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
UPLOAD_MAX_AGE = timedelta(days=1)


def uploads_dir() -> Path:
    """Where uploaded files wait between the mapping, the dry run and the import."""
    folder = Path(settings.DATA_DIR) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Upload:
    """An uploaded file in the data folder, with what its owner chose so far (a JSON beside it).

    No database row: the file, its settings and the import's progress live in the data
    folder; the outcome of a background run is the task's result.
    """

    token: str
    user_id: int
    name: str
    kind: str
    format: str
    encoding: str
    delimiter: str | None
    headers: list[str]
    mapping: list[str]
    samples: list[list[str]] = field(default_factory=list)
    task_id: str = ""
    task_dry_run: bool = True
    created: str = ""

    @property
    def path(self) -> Path:
        return uploads_dir() / f"{self.token}.upload"

    @property
    def _meta(self) -> Path:
        return uploads_dir() / f"{self.token}.json"

    @property
    def _progress(self) -> Path:
        return uploads_dir() / f"{self.token}.progress"

    def options(self) -> ImportOptions:
        return ImportOptions(
            kind=self.kind,
            format=self.format,
            encoding=self.encoding,
            delimiter=self.delimiter,
            mapping=self.mapping,
        )

    def save(self) -> None:
        _write_json(self._meta, asdict(self))

    def write_progress(self, done: int, total: int) -> None:
        _write_json(self._progress, {"done": done, "total": total})

    def progress(self) -> tuple[int, int]:
        try:
            data = json.loads(self._progress.read_text())
            return int(data["done"]), int(data["total"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0

    def delete(self) -> None:
        for path in (self.path, self._meta, self._progress):
            path.unlink(missing_ok=True)

    @classmethod
    def load(cls, token: str, user: User) -> Upload | None:
        """The upload with this token if `user` made it; None otherwise (or if it is gone).

        The file itself may be gone already (imported); its settings stay until shown.
        """
        if not _TOKEN.fullmatch(token or ""):
            return None
        try:
            data = json.loads((uploads_dir() / f"{token}.json").read_text())
            upload = cls(**data)
        except (OSError, ValueError, TypeError):
            return None
        if upload.user_id != user.pk:
            return None
        return upload


def _write_json(path: Path, data: Any) -> None:
    """Write then rename, so a reader never sees half a file."""
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(json.dumps(data))
    os.replace(partial, path)


def upload_save(
    *,
    user: User,
    chunks: Iterable[bytes],
    name: str,
    kind: str,
    format: str | None,  # noqa: A002 - the form's word
    encoding: str,
    delimiter: str | None,
) -> Upload:
    """Keep an uploaded file, read its header, guess the mapping; TableError if unreadable."""
    from opportuna.sales.services.imports import require_importer

    require_importer(user)
    uploads_cleanup()
    token = secrets.token_urlsafe(24)
    path = uploads_dir() / f"{token}.upload"
    with path.open("wb") as file:
        for chunk in chunks:
            file.write(chunk)
    options = ImportOptions(kind=kind, format=format, encoding=encoding, delimiter=delimiter)
    try:
        sheet = open_sheet(path, options)
        samples = _samples(sheet)
    except TableError:
        path.unlink(missing_ok=True)
        raise
    definitions = list(FieldDefinition.objects.all())
    upload = Upload(
        token=token,
        user_id=user.pk,
        name=name[:200],
        kind=kind,
        format=sheet.format,
        encoding=sheet.encoding,
        delimiter=sheet.delimiter or None,
        headers=sheet.headers,
        mapping=guess_mapping(sheet.headers, kind, definitions),
        samples=samples,
        created=timezone.now().isoformat(),
    )
    upload.save()
    return upload


def _samples(sheet: Sheet, count: int = 3) -> list[list[str]]:
    """The first rows with values, as short texts; the file is closed after them."""
    samples: list[list[str]] = []
    rows = sheet.rows
    try:
        for row in rows:
            if _has_values(row):
                samples.append([as_text(cell)[:80] for cell in row])
                if len(samples) == count:
                    break
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return samples


def uploads_cleanup(max_age: timedelta = UPLOAD_MAX_AGE) -> int:
    """Delete uploads left over for longer than `max_age`; how many files went."""
    limit = time_module.time() - max_age.total_seconds()
    removed = 0
    for path in uploads_dir().iterdir():
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def run_upload(*, user_id: int, token: str, dry_run: bool) -> dict[str, Any]:
    """Import (or check) an upload, noting progress beside it; the report as data.

    After a real import the uploaded file is deleted; after a dry run it stays for the import.
    """
    user = User.objects.get(pk=user_id)
    upload = Upload.load(token, user)
    if upload is None:
        raise TableError(_("This upload is gone; send the file again."))
    options = upload.options()
    total = count_rows(upload.path, options)
    done = 0
    upload.write_progress(0, total)

    def progress(count: int) -> None:
        nonlocal done
        done += count
        upload.write_progress(done, total)

    started = time_module.perf_counter()
    report, _columns = import_file(
        actor=user, path=upload.path, options=options, dry_run=dry_run, progress=progress
    )
    data = report_data(report, dry_run=dry_run, seconds=time_module.perf_counter() - started)
    if not dry_run:
        upload.path.unlink(missing_ok=True)
    return data


@task()
def import_upload(user_id: int, token: str, dry_run: bool) -> dict[str, Any]:
    """Background import (or dry run) of an uploaded file: `run_upload` in a worker."""
    return run_upload(user_id=user_id, token=token, dry_run=dry_run)
