"""Default-field values: validation to a canonical stored form, and the noCRM-style text form.

The text form of an opportunity is one "Label: value" line per non-empty default field (in
definition order), a line `---`, then the free description, kept verbatim:

    Contact name: Anna Rossi
    Budget: 1234.5
    ---
    Met at the trade fair; call back in May.

A line break is CR LF, CR or LF; nothing else splits a line here. The description's own line
breaks are not normalised: that is the caller's choice. A label must not contain ":", or its
line cannot be read back (the admin form for default fields should refuse one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.utils.translation import gettext_lazy as _

from opportuna.sales.models import FieldDefinition, FieldKind

SEPARATOR = "---"
MAX_LENGTH = 1000

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PHONE = re.compile(r"[0-9 +\-().\/]+")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_ITALIAN_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
# "1234", "1234.5", "1234,5": a lone separator is the decimal separator.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")
# "1.234.567", "1.234,56": dots group thousands, a comma marks the decimals.
_DOT_GROUPED = re.compile(r"[+-]?[1-9][0-9]{0,2}(?:\.[0-9]{3})+(?:,[0-9]+)?")
# "1,234,567", "1,234.56": commas group thousands, a dot marks the decimals.
_COMMA_GROUPED = re.compile(r"[+-]?[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?")

_validate_email = EmailValidator()
_validate_url = URLValidator()

MESSAGES = {
    "required": _("This field is required."),
    "unknown": _("Unknown field."),
    "too_long": _("Enter at most %(limit)d characters (it has %(length)d)."),
    "invalid_email": _("Enter a valid email address."),
    "invalid_phone": _(
        "Enter a phone number: digits, spaces and + - ( ) . / only, at least 5 digits."
    ),
    "invalid_url": _("Enter a valid web address."),
    "invalid_number": _("Enter a number, such as 1234.56, 1.234,56 or 1,234.56."),
    "ambiguous_number": _(
        "%(value)s is ambiguous: leave out the thousands separator, or use a dot for decimals."
    ),
    "invalid_date": _("Enter a date as YYYY-MM-DD or DD/MM/YYYY."),
    "invalid_choice": _("Choose one of: %(choices)s."),
}


@dataclass(frozen=True)
class ParsedText:
    """The text form of an opportunity, split into raw field values and description."""

    fields: dict[str, str]
    description: str
    unknown: list[tuple[str, str]]


def clean_field_values(
    values: Mapping[str, object], definitions: Sequence[FieldDefinition]
) -> dict[str, str]:
    """Validate values by definition key and return their canonical strings, empties dropped.

    Raises ValidationError({key: [error, ...]}) naming every bad field at once. Keys of
    inactive definitions are accepted as text; keys of no definition are an error.
    """
    by_key = {definition.key: definition for definition in definitions}
    cleaned: dict[str, str] = {}
    errors: dict[str, list[ValidationError]] = {}
    for definition in _in_position_order(definitions):
        value = _as_text(values.get(definition.key))
        if not value.strip():
            if definition.required and definition.is_active:
                errors[definition.key] = [_error("required")]
            continue
        kind = definition.kind if definition.is_active else FieldKind.TEXT
        try:
            cleaned[definition.key] = _clean_one(value, kind=kind, choices=definition.choices)
        except ValidationError as error:
            errors[definition.key] = [error]
    for key in values:
        if key not in by_key:
            errors[key] = [_error("unknown")]
    if errors:
        raise ValidationError(errors)
    return cleaned


def render_text(
    *, fields: Mapping[str, str], description: str, definitions: Sequence[FieldDefinition]
) -> str:
    """Write fields as "Label: value" lines in position order, then `---`, then the description.

    Empty values are left out; line breaks inside a value become spaces. A value whose key
    matches no definition is still shown, labelled with its key, so nothing is hidden.
    """
    lines: list[str] = []
    known: set[str] = set()
    for definition in _in_position_order(definitions):
        known.add(definition.key)
        value = _one_line(fields.get(definition.key, ""))
        if value:
            lines.append(f"{_one_line(definition.label)}: {value}")
    for key, raw in fields.items():
        value = _one_line(raw)
        if key not in known and value:
            lines.append(f"{key}: {value}")
    lines.append(SEPARATOR)
    return "\n".join(lines) + "\n" + description


def parse_text(text: str, definitions: Sequence[FieldDefinition]) -> ParsedText:
    """Split the text form into raw field values (not cleaned), description and unknown lines.

    Everything after the first `---` line is the description, verbatim. Before it, a
    "Label: value" line (split on the first colon) whose label matches a definition's label
    or key, ignoring case and surrounding spaces, is a field; a label wins over a key. Blank
    lines are skipped. Other lines go to `unknown`: (label, value) for an unknown or
    repeated label (the first occurrence wins), ("", line) for a line that is not
    "Label: value". Without a `---` line, the text is a field block only if it has field
    lines and every non-blank line is a known label; otherwise it is all description.
    """
    lookup = _label_lookup(definitions)
    head: list[str] = []
    for line, end in _lines(text):
        if line.strip() == SEPARATOR:
            fields, unknown, _all_known = _parse_head(head, lookup)
            return ParsedText(fields=fields, description=text[end:], unknown=unknown)
        head.append(line)
    fields, unknown, all_known = _parse_head(head, lookup)
    if fields and all_known:
        return ParsedText(fields=fields, description="", unknown=unknown)
    return ParsedText(fields={}, description=text, unknown=[])


def _clean_one(value: str, *, kind: str, choices: object) -> str:
    """Return the canonical form of one non-empty value of the given kind."""
    value = _one_line(value) if kind == FieldKind.TEXT else value.strip()
    if len(value) > MAX_LENGTH:
        raise _error("too_long", limit=MAX_LENGTH, length=len(value))
    if kind == FieldKind.EMAIL:
        return _clean_email(value)
    if kind == FieldKind.PHONE:
        return _clean_phone(value)
    if kind == FieldKind.URL:
        return _clean_url(value)
    if kind == FieldKind.NUMBER:
        return _clean_number(value)
    if kind == FieldKind.DATE:
        return _clean_date(value)
    if kind == FieldKind.CHOICE:
        return _clean_choice(value, choices)
    return value


def _clean_email(value: str) -> str:
    """Validate an email address and lower-case its domain; the local part keeps its case."""
    try:
        _validate_email(value)
    except ValidationError:
        raise _error("invalid_email") from None
    local, _at, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def _clean_phone(value: str) -> str:
    """Accept digits and common separators, with at least five digits."""
    if not _PHONE.fullmatch(value) or sum(char.isdigit() for char in value) < 5:
        raise _error("invalid_phone")
    return value


def _clean_url(value: str) -> str:
    """Validate a web address, assuming https when no scheme is given."""
    if not _URL_SCHEME.match(value):
        value = f"https://{value}"
    try:
        _validate_url(value)
    except ValidationError:
        raise _error("invalid_url") from None
    return value


def _clean_number(value: str) -> str:
    """Read Italian, English or plain decimals and return a plain string such as "1234.56".

    A lone dot is a decimal point ("1.234" is 1.234: it is also the stored form). A lone
    comma is a decimal comma, except "1,234"-shaped input, which could be either a
    thousand-something or a decimal, and is refused rather than guessed.
    """
    if _PLAIN_NUMBER.fullmatch(value):
        if "," in value and _COMMA_GROUPED.fullmatch(value):
            raise _error("ambiguous_number", value=value)
        digits = value.replace(",", ".")
    elif _DOT_GROUPED.fullmatch(value):
        digits = value.replace(".", "").replace(",", ".")
    elif _COMMA_GROUPED.fullmatch(value):
        digits = value.replace(",", "")
    else:
        raise _error("invalid_number")
    number = Decimal(digits)
    if number == 0:
        return "0"
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _clean_date(value: str) -> str:
    """Read YYYY-MM-DD or DD/MM/YYYY and return the ISO date."""
    if match := _ISO_DATE.fullmatch(value):
        year, month, day = match.groups()
    elif match := _ITALIAN_DATE.fullmatch(value):
        day, month, year = match.groups()
    else:
        raise _error("invalid_date")
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        raise _error("invalid_date") from None


def _clean_choice(value: str, choices: object) -> str:
    """Match a value to one of the choices ignoring case, returning the choice's spelling."""
    options = [str(choice) for choice in choices] if isinstance(choices, list) else []
    wanted = value.casefold()
    for option in options:
        if option.strip().casefold() == wanted:
            return option
    raise _error("invalid_choice", choices=", ".join(options))


def _as_text(value: object) -> str:
    """Turn an incoming value (from a form, JSON or an importer) into text to validate."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float | Decimal):
        # Never let an exponent ("1E+3") reach the number parser.
        return format(Decimal(str(value)), "f")
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _one_line(value: str) -> str:
    """Replace line breaks with spaces and strip the ends: the field block is one line each."""
    return _LINE_BREAK.sub(" ", value).strip()


def _error(code: str, **params: object) -> ValidationError:
    """Build the ValidationError for a message code, with its parameters."""
    return ValidationError(MESSAGES[code], code=code, params=params or None)


def _in_position_order(definitions: Sequence[FieldDefinition]) -> list[FieldDefinition]:
    """Sort by position, keeping the given order among equal positions."""
    return sorted(definitions, key=lambda definition: definition.position)


def _normal_label(label: str) -> str:
    """The form labels are compared in: no surrounding spaces, case folded."""
    return label.strip().casefold()


def _label_lookup(definitions: Sequence[FieldDefinition]) -> dict[str, FieldDefinition]:
    """Map normalised labels and keys to definitions; labels win, then the lower position."""
    by_key: dict[str, FieldDefinition] = {}
    by_label: dict[str, FieldDefinition] = {}
    for definition in _in_position_order(definitions):
        by_key.setdefault(_normal_label(definition.key), definition)
        by_label.setdefault(_normal_label(definition.label), definition)
    return by_key | by_label


def _lines(text: str) -> Iterator[tuple[str, int]]:
    """Yield each line without its line break, with the offset just after that break."""
    start = 0
    for match in _LINE_BREAK.finditer(text):
        yield text[start : match.start()], match.end()
        start = match.end()
    if start < len(text):
        yield text[start:], len(text)


def _parse_head(
    lines: list[str], lookup: Mapping[str, FieldDefinition]
) -> tuple[dict[str, str], list[tuple[str, str]], bool]:
    """Read the field block: fields, unknown lines, and whether every line was a known label."""
    fields: dict[str, str] = {}
    unknown: list[tuple[str, str]] = []
    all_known = True
    for line in lines:
        if not line.strip():
            continue
        label, colon, value = line.partition(":")
        label, value = label.strip(), value.strip()
        definition = lookup.get(_normal_label(label)) if colon and label else None
        if definition is None:
            all_known = False
            unknown.append((label, value) if colon and label else ("", line.strip()))
        elif definition.key in fields:
            unknown.append((label, value))
        else:
            fields[definition.key] = value
    return fields, unknown, all_known
