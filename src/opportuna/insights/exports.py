"""CSV and XLSX downloads of a table, shared by every insights page (and anyone else).

Both take the same arguments: `rows` (an iterable of sequences of cells, consumed once, row by
row), `headers` (the column titles) and `filename`. A cell is text, a number (int, Decimal,
float), a date, a datetime, a bool or None. Numbers stay numbers; money should be passed as a
Decimal in currency units (`core.money.from_cents`). Text that a spreadsheet would run as a
formula (starting with = + - @ tab or CR) gets a leading `'`, in both formats (CSV injection).

CSV is streamed as UTF-8 with a byte order mark, so spreadsheet programs read accents right.
XLSX is written with openpyxl's write-only workbook, which keeps only the current row in
memory, into a temporary file that is then streamed back.
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

Cell = str | int | float | Decimal | date | datetime | bool | None

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MONEY_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
# XML 1.0 forbids these control characters; openpyxl refuses a cell holding one.
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Spooled in memory up to this size, then on disk.
_SPOOL_BYTES = 8 * 1024 * 1024


def safe_text(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote defuses a would-be formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def safe_cell(value: Any) -> Cell:
    """A value ready for either writer: text defused, numbers and dates kept as they are."""
    if value is None or isinstance(value, bool | int | float | Decimal | date):
        if isinstance(value, datetime) and timezone.is_aware(value):
            # Spreadsheets know no time zones: show the account's local time.
            return timezone.make_naive(value)
        return value
    return safe_text(str(value))  # str, lazy translations, anything else printable


def _filename(filename: str, extension: str) -> str:
    name = filename.strip() or "export"
    return name if name.lower().endswith(extension) else f"{name}{extension}"


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def _csv_text(value: Cell) -> Cell:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _csv_lines(rows: Iterable[Sequence[Any]], headers: Sequence[Any]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"
    yield writer.writerow([safe_cell(header) for header in headers])
    for row in rows:
        yield writer.writerow([_csv_text(safe_cell(value)) for value in row])


def csv_response(
    rows: Iterable[Sequence[Any]], headers: Sequence[Any], filename: str
) -> StreamingHttpResponse:
    """A streamed CSV download of `rows` under `headers`, formula-safe."""
    response = StreamingHttpResponse(_csv_lines(rows, headers), content_type=CSV_TYPE)
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=_filename(filename, ".csv")
    )
    return response


def _sheet_title(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\ .
    cleaned = re.sub(r"[\[\]:*?/\\]", " ", title).strip()
    return cleaned[:31] or "Sheet1"


def _xlsx_cell(sheet: Any, value: Any) -> WriteOnlyCell:
    value = safe_cell(value)
    if isinstance(value, str):
        value = _ILLEGAL_XML.sub("", value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, Decimal):
        cell.number_format = MONEY_FORMAT
    elif isinstance(value, datetime):
        cell.number_format = DATETIME_FORMAT
    elif isinstance(value, date):
        cell.number_format = DATE_FORMAT
    return cell


def xlsx_response(
    rows: Iterable[Sequence[Any]],
    headers: Sequence[Any],
    filename: str,
    *,
    sheet_title: str = "",
) -> FileResponse:
    """An XLSX download of `rows` under `headers` (bold, frozen), formula-safe."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(_sheet_title(sheet_title or filename.rsplit(".", 1)[0]))
    sheet.freeze_panes = "A2"
    for index, header in enumerate(headers):
        width = min(max(len(str(header)) + 2, 12), 40)
        sheet.column_dimensions[get_column_letter(index + 1)].width = width
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = _xlsx_cell(sheet, header)
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - FileResponse closes it
    workbook.save(spool)
    spool.seek(0)
    return FileResponse(
        spool,
        as_attachment=True,
        filename=_filename(filename, ".xlsx"),
        content_type=XLSX_TYPE,
    )


__all__ = [
    "CSV_TYPE",
    "FORMULA_STARTS",
    "XLSX_TYPE",
    "Cell",
    "csv_response",
    "safe_cell",
    "safe_text",
    "xlsx_response",
]
