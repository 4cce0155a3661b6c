"""The value types request schemas share: money, ids, dates and times, checked text."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator, validate_email
from django.utils import timezone
from pydantic import AfterValidator, BeforeValidator, Field

from opportuna.core.money import from_cents

# Years a date or time may fall in: wide for any real sale, narrow enough that time zone
# arithmetic never leaves the calendar.
FIRST_YEAR, LAST_YEAR = 1900, 2999


def _in_calendar(value: date) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must fall between the years {FIRST_YEAR} and {LAST_YEAR}")


def _text_or(kind: type) -> Any:
    """Refuse numbers where a date or time is expected (lax parsing would read a timestamp)."""

    def check(value: Any) -> Any:
        if not isinstance(value, str | kind):
            raise ValueError(f"expected an ISO 8601 {kind.__name__} string")
        return value

    return BeforeValidator(check)


def _day(value: date) -> date:
    _in_calendar(value)
    return value


def _moment(value: datetime) -> datetime:
    _in_calendar(value)
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _email(value: str) -> str:
    value = value.strip()
    if value:
        try:
            validate_email(value)
        except DjangoValidationError as exc:
            raise ValueError("not a valid email address") from exc
    return value


_validate_url = URLValidator()


def _url(value: str) -> str:
    value = value.strip()
    if value:
        try:
            _validate_url(value)
        except DjangoValidationError as exc:
            raise ValueError("not a valid web address (http or https)") from exc
    return value


# Input money: a decimal number (JSON string or number) with at most two decimals.
Money = Annotated[Decimal, Field(ge=0, max_digits=17, decimal_places=2, examples=["1234.56"])]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Probability = Annotated[int, Field(ge=0, le=100)]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=20_000)]
ExternalId = Annotated[str, Field(max_length=100)]
# An id in a request: positive, and within what any database can compare.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
Day = Annotated[date, _text_or(date), AfterValidator(_day)]
Moment = Annotated[
    datetime,
    _text_or(datetime),
    AfterValidator(_moment),
    Field(description="ISO 8601; without an offset, in the account's time zone."),
]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
Url = Annotated[str, Field(max_length=200), AfterValidator(_url)]
NotBlank = r"\S"  # a pattern: at least one character that is not white space


def money_or_none(cents: int | None) -> Decimal | None:
    return None if cents is None else from_cents(cents)
