"""Tables in files: read CSV and XLSX row by row, write them streamed and formula-safe.

Reading gives the header and then the rows as lists of cells: text from a CSV, the cell's own
value (text, number, date) from a spreadsheet. A CSV may be UTF-8 (with or without a byte
order mark) or Windows-1252, separated by commas or semicolons; `auto` finds out which.

Writing neutralises formulas: a text cell starting with = + - @, a tab or a carriage return
gets a leading apostrophe, so a spreadsheet shows it as text instead of running it. Numbers
stay numbers. Reading undoes exactly that apostrophe (`restore`), so what is exported reads
back the same.
"""

from __future__ import annotations

import codecs
import csv
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

FORMATS = ("csv", "xlsx")
ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp1252")
DELIMITERS = (",", ";")
# What a spreadsheet would read as the start of a formula (or of a hidden one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_XLSX_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 16

Cell = str | int | float | Decimal | date | datetime | bool | None


class TableError(ValueError):
    """The file cannot be read as a table; the message is for the person who sent it."""


@dataclass
class Sheet:
    """A table being read: its header, then its rows (each a list as long as it was)."""

    headers: list[str]
    rows: Iterator[list[Cell]]
    format: str
    encoding: str = ""
    delimiter: str = ""


# Neutralising formulas ----------------------------------------------------------------------


def neutralise(value: Cell) -> Cell:
    """A text that a spreadsheet would run as a formula gets a leading apostrophe.

    Text that already starts with apostrophes before such a character gets one more, so
    `restore` can tell them apart. Numbers, dates and other text are returned unchanged.
    """
    if isinstance(value, str) and value.lstrip(QUOTE)[:1] in FORMULA_STARTS:
        return QUOTE + value
    return value


def restore(value: Cell) -> Cell:
    """Undo `neutralise`: drop the apostrophe it added, and only that one."""
    if isinstance(value, str) and value[:1] == QUOTE and value.lstrip(QUOTE)[:1] in FORMULA_STARTS:
        return value[1:]
    return value


# Reading ------------------------------------------------------------------------------------


def guess_format(name: str, head: bytes) -> str:
    """ "xlsx" for a zip (what an .xlsx is) or an .xlsx name, else "csv"."""
    if head.startswith(_XLSX_MAGIC) or name.lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


def read_sheet(
    path: Path,
    *,
    format: str | None = None,  # noqa: A002 - the word the command line uses
    encoding: str = "auto",
    delimiter: str | None = None,
) -> Sheet:
    """Open a CSV or XLSX file for reading; rows are read lazily, as the caller iterates."""
    if format is None:
        with path.open("rb") as file:
            format = guess_format(path.name, file.read(4))  # noqa: A001
    if format == "xlsx":
        return _read_xlsx(path)
    if format != "csv":
        raise TableError(f"unknown format {format!r}")
    return _read_csv(path, encoding=encoding, delimiter=delimiter)


def detect_encoding(path: Path) -> str:
    """utf-8-sig for UTF-8 text (a byte order mark or not), else cp1252 (Windows' Western)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as file:
        try:
            while chunk := file.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8-sig"


def detect_delimiter(first_line: str) -> str:
    """The separator giving the header the most columns: a comma unless semicolons win."""
    counts = {d: len(next(csv.reader([first_line], delimiter=d), [])) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: (counts[d], d == ","))


def _read_csv(path: Path, *, encoding: str, delimiter: str | None) -> Sheet:
    if encoding not in ENCODINGS:
        raise TableError(f"unknown encoding {encoding!r}")
    if encoding == "auto":
        encoding = detect_encoding(path)
    elif encoding == "utf-8":
        encoding = "utf-8-sig"  # a byte order mark is never part of the first header
    file = path.open(encoding=encoding, newline="")
    try:
        first = file.readline()
    except UnicodeDecodeError as exc:
        file.close()
        raise TableError(f"the file is not {encoding} text") from exc
    if delimiter is None:
        delimiter = detect_delimiter(first)
    elif delimiter not in DELIMITERS:
        file.close()
        raise TableError(f"unknown delimiter {delimiter!r}")
    header = next(csv.reader([first], delimiter=delimiter), [])
    if not any(cell.strip() for cell in header):
        file.close()
        raise TableError("the first line (the header) is empty")
    return Sheet(
        headers=[str(restore(cell.strip())) for cell in header],
        rows=_csv_rows(file, delimiter),
        format="csv",
        encoding=encoding,
        delimiter=delimiter,
    )


def _csv_rows(file: IO[str], delimiter: str) -> Iterator[list[Cell]]:
    with file:
        try:
            yield from csv.reader(file, delimiter=delimiter)  # type: ignore[misc]
        except UnicodeDecodeError as exc:
            raise TableError(f"the file is not {file.encoding} text") from exc


def _read_xlsx(path: Path) -> Sheet:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise TableError("the file is not a readable XLSX workbook") from exc
    sheet = workbook.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    try:
        header = next(rows)
    except StopIteration:
        workbook.close()
        raise TableError("the first sheet is empty") from None
    headers = ["" if cell is None else str(restore(str(cell).strip())) for cell in header]
    if not any(headers):
        workbook.close()
        raise TableError("the first row (the header) is empty")
    return Sheet(headers=headers, rows=_xlsx_rows(workbook, rows), format="xlsx")


def _xlsx_rows(workbook: Any, rows: Iterator[tuple[Any, ...]]) -> Iterator[list[Cell]]:
    try:
        for row in rows:
            yield list(row)
    finally:
        workbook.close()


# Writing ------------------------------------------------------------------------------------


class _Line:
    """A file-like that hands back what csv.writer wrote, one line at a time."""

    def write(self, text: str) -> str:
        return text


def csv_text(value: Cell) -> str:
    """A cell as CSV text: numbers plain ("1234.56"), dates ISO, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(neutralise(value))


def csv_lines(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Iterator[str]:
    """The CSV file as text pieces: a byte order mark (for spreadsheets), header, rows."""
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow([csv_text(h) for h in headers])
    for row in rows:
        yield writer.writerow([csv_text(cell) for cell in row])


def xlsx_file(headers: Sequence[str], rows: Iterable[Sequence[Cell]], title: str) -> IO[bytes]:
    """An XLSX workbook in a temporary file (rewound): one sheet, header in bold, frozen.

    Written in openpyxl's write-only mode, so memory stays flat however many rows.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "Sheet")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header_cells = []
    for header in headers:
        cell = WriteOnlyCell(sheet, value=neutralise(header))
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_value(cell) for cell in row])
    output = tempfile.TemporaryFile()  # noqa: SIM115 - the caller streams and closes it
    workbook.save(output)
    output.seek(0)
    return output


def _xlsx_value(value: Cell) -> Cell:
    if isinstance(value, str):
        # openpyxl would store a text starting with "=" as a formula: neutralise first; the
        # format cannot hold most control characters at all.
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        return neutralise(ILLEGAL_CHARACTERS_RE.sub("", value))
    return value
