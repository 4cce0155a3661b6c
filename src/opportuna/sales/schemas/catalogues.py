"""Catalogues: products, lost reasons, activity types, default fields, new tags."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from ninja import Schema
from pydantic import Field

from opportuna.accounts.schemas import (
    InSchema,
)
from opportuna.core.money import from_cents
from opportuna.sales.models import (
    ActivityType,
    FieldDefinition,
    FieldKind,
    LostReason,
    Product,
)
from opportuna.sales.schemas._types import (
    Money,
    NotBlank,
)

# Out: catalogues ------------------------------------------------------------------------


class ProductOut(Schema):
    id: int
    name: str
    unit_price: Decimal = Field(examples=["100.00"], description="List price.")
    is_active: bool

    @staticmethod
    def resolve_id(obj: Product) -> int:
        return obj.pk

    @staticmethod
    def resolve_unit_price(obj: Product) -> Decimal:
        return from_cents(obj.unit_price)


class LostReasonOut(Schema):
    id: int
    name: str
    position: int
    is_active: bool

    @staticmethod
    def resolve_id(obj: LostReason) -> int:
        return obj.pk


class ActivityTypeOut(Schema):
    id: int
    name: str
    key: str
    position: int
    is_active: bool

    @staticmethod
    def resolve_id(obj: ActivityType) -> int:
        return obj.pk


class FieldDefinitionOut(Schema):
    id: int
    label: str
    key: str = Field(description="The key of its value in an opportunity's `fields`.")
    kind: FieldKind
    choices: list[str]
    required: bool
    position: int
    is_active: bool

    @staticmethod
    def resolve_id(obj: FieldDefinition) -> int:
        return obj.pk

    @staticmethod
    def resolve_choices(obj: FieldDefinition) -> list[str]:
        return [str(choice) for choice in obj.choices or []]


# In: catalogues (admins, except tags) -----------------------------------------------------

Name60 = Annotated[str, Field(min_length=1, max_length=60, pattern=NotBlank)]
Name100 = Annotated[str, Field(min_length=1, max_length=100, pattern=NotBlank)]
Position = Annotated[int, Field(ge=0, le=1_000_000)]
Key = Annotated[str, Field(max_length=60, pattern=r"^[-a-zA-Z0-9_]*$")]


class ProductIn(InSchema):
    name: Name100
    unit_price: Money = Decimal(0)
    is_active: bool = True


class NewTagIn(InSchema):
    name: Name60
    colour: Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")] = "#6b7280"


class LostReasonIn(InSchema):
    name: Name100
    position: Position = 0
    is_active: bool = True


class ActivityTypeIn(InSchema):
    name: Name60
    key: Key = Field("", description="Derived from the name when empty.")
    position: Position = 0
    is_active: bool = True


class FieldDefinitionIn(InSchema):
    label: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^:]*[^:\s][^:]*$")]
    kind: FieldKind = FieldKind.TEXT
    key: Annotated[str, Field(max_length=100, pattern=r"^[-a-zA-Z0-9_]*$")] = Field(
        "", description="Derived from the label when empty."
    )
    choices: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=100, description="For a choice field: the values."
    )
    required: bool = False
    position: Position | None = Field(None, description="Defaults to the end.")
