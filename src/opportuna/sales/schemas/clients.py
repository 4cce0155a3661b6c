"""Client folders: what the API shows and takes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from opportuna.accounts.schemas import (
    InSchema,
)
from opportuna.core.money import from_cents
from opportuna.sales.models import (
    Client,
)
from opportuna.sales.schemas._types import (
    Email,
    ExternalId,
    Id,
    LongText,
    NotBlank,
    Url,
)

# Out: client folders -------------------------------------------------------------------


class ClientOut(Schema):
    id: int
    name: str
    vat_number: str
    email: str
    phone: str
    website: str
    address: str
    city: str
    country: str
    notes: str
    external_id: str
    created_at: datetime

    @staticmethod
    def resolve_id(obj: Client) -> int:
        return obj.pk


class ClientPage(Schema):
    items: list[ClientOut]
    next_cursor: str | None


class ClientTotalsOut(Schema):
    """Over the opportunities of the folder that the caller may see."""

    open_count: int
    open_amount: Decimal
    weighted: Decimal = Field(description="Weighted amount of the open ones.")
    won_count: int
    won_amount: Decimal
    lost_count: int
    cancelled_count: int

    @staticmethod
    def resolve_open_amount(obj: Any) -> Decimal:
        return from_cents(obj.open_amount)

    @staticmethod
    def resolve_weighted(obj: Any) -> Decimal:
        return from_cents(obj.weighted)

    @staticmethod
    def resolve_won_amount(obj: Any) -> Decimal:
        return from_cents(obj.won_amount)


class ClientDetailOut(ClientOut):
    totals: ClientTotalsOut


# In: client folders ------------------------------------------------------------------------


class ClientIn(InSchema):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NotBlank)]
    vat_number: Annotated[str, Field(max_length=40)] = ""
    email: Email = ""
    phone: Annotated[str, Field(max_length=40)] = ""
    website: Url = ""
    address: Annotated[str, Field(max_length=250)] = ""
    city: Annotated[str, Field(max_length=100)] = ""
    country: Annotated[str, Field(max_length=100)] = ""
    notes: LongText = ""
    external_id: ExternalId = ""


class ClientPatch(InSchema):
    name: (
        Annotated[str, Field(min_length=1, max_length=200, pattern=NotBlank)] | SkipJsonSchema[None]
    ) = None
    vat_number: Annotated[str, Field(max_length=40)] | SkipJsonSchema[None] = None
    email: Email | SkipJsonSchema[None] = None
    phone: Annotated[str, Field(max_length=40)] | SkipJsonSchema[None] = None
    website: Url | SkipJsonSchema[None] = None
    address: Annotated[str, Field(max_length=250)] | SkipJsonSchema[None] = None
    city: Annotated[str, Field(max_length=100)] | SkipJsonSchema[None] = None
    country: Annotated[str, Field(max_length=100)] | SkipJsonSchema[None] = None
    notes: LongText | SkipJsonSchema[None] = None
    external_id: ExternalId | SkipJsonSchema[None] = None

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class ClientMergeIn(InSchema):
    into: Id = Field(description="The client folder that receives the opportunities and stays.")
