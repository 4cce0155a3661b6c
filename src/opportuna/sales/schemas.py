"""What the sales API reads and writes, field by field (never `fields="__all__"`).

Amounts travel as decimal strings in account-currency units ("1234.56") and are exact integer
cents inside; references to other objects are integer ids; tags are names.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from opportuna.core.money import from_cents
from opportuna.sales.models import Contact, Opportunity, Pipeline, Status, Step

# Input money: a decimal number (JSON string or number) with at most two decimals.
Money = Annotated[Decimal, Field(ge=0, max_digits=17, decimal_places=2, examples=["1234.56"])]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Probability = Annotated[int, Field(ge=0, le=100)]
ShortText = Annotated[str, Field(max_length=200)]
ExternalId = Annotated[str, Field(max_length=100)]


class InSchema(Schema):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")


# Out -------------------------------------------------------------------------------------


class ContactOut(Schema):
    id: int
    name: str
    role: str
    email: str
    phone: str

    @staticmethod
    def resolve_id(obj: Contact) -> int:
        return obj.pk


class OpportunityOut(Schema):
    id: int
    version: int = Field(description='The ETag is W/"<version>"; send it back in If-Match.')
    title: str
    client: int | None
    owner: int
    pipeline: int
    step: int
    status: Status
    amount: Decimal = Field(examples=["1234.56"])
    won_amount: Decimal | None = Field(examples=["1200.00"])
    probability: int
    product: int | None
    expected_close_date: date | None
    next_action_at: datetime | None
    next_action_note: str
    tags: list[str]
    fields: dict[str, str]
    description: str
    contacts: list[ContactOut]
    lost_reason: int | None
    lost_note: str
    duplicated_from: int | None
    external_id: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @staticmethod
    def resolve_id(obj: Opportunity) -> int:
        return obj.pk

    @staticmethod
    def resolve_client(obj: Opportunity) -> int | None:
        return obj.client_id

    @staticmethod
    def resolve_owner(obj: Opportunity) -> int:
        return obj.owner_id

    @staticmethod
    def resolve_pipeline(obj: Opportunity) -> int:
        return obj.pipeline_id

    @staticmethod
    def resolve_step(obj: Opportunity) -> int:
        return obj.step_id

    @staticmethod
    def resolve_product(obj: Opportunity) -> int | None:
        return obj.product_id

    @staticmethod
    def resolve_lost_reason(obj: Opportunity) -> int | None:
        return obj.lost_reason_id

    @staticmethod
    def resolve_duplicated_from(obj: Opportunity) -> int | None:
        return obj.duplicated_from_id

    @staticmethod
    def resolve_amount(obj: Opportunity) -> Decimal:
        return from_cents(obj.amount)

    @staticmethod
    def resolve_won_amount(obj: Opportunity) -> Decimal | None:
        return None if obj.won_amount is None else from_cents(obj.won_amount)

    @staticmethod
    def resolve_tags(obj: Opportunity) -> list[str]:
        # Sorted in Python so the prefetched rows are used as they are.
        return sorted(tag.name for tag in obj.tags.all())

    @staticmethod
    def resolve_contacts(obj: Opportunity) -> list[Contact]:
        return list(obj.contacts.all())


class OpportunityPage(Schema):
    items: list[OpportunityOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class StepOut(Schema):
    id: int
    name: str
    position: int
    probability: int
    rot_days: int | None

    @staticmethod
    def resolve_id(obj: Step) -> int:
        return obj.pk


class PipelineOut(Schema):
    id: int
    name: str
    position: int
    is_active: bool
    steps: list[StepOut]

    @staticmethod
    def resolve_id(obj: Pipeline) -> int:
        return obj.pk

    @staticmethod
    def resolve_steps(obj: Pipeline) -> list[Step]:
        return list(obj.steps.all())


class ErrorOut(Schema):
    detail: str


class RuleErrorOut(Schema):
    detail: str
    field: str | None = Field(None, description="The input field the rule is about, if any.")


class ConflictOut(Schema):
    detail: str
    current_version: int | None = Field(
        None, description="The opportunity's version now (absent for a malformed If-Match)."
    )


class ValidationErrorItem(Schema):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorOut(Schema):
    detail: list[ValidationErrorItem]


# In --------------------------------------------------------------------------------------


class ContactIn(InSchema):
    name: Annotated[str, Field(min_length=1, max_length=150)]
    role: Annotated[str, Field(max_length=100)] = ""
    email: Annotated[str, Field(max_length=254)] = ""
    phone: Annotated[str, Field(max_length=40)] = ""


class OpportunityIn(InSchema):
    title: Title
    pipeline: int
    step: int | None = Field(None, description="Defaults to the pipeline's first step.")
    owner: int | None = Field(None, description="Defaults to the caller.")
    client: int | None = None
    amount: Money = Decimal(0)
    probability: Probability | None = Field(
        None, description="Set by hand; by default it follows the step."
    )
    product: int | None = None
    expected_close_date: date | None = None
    next_action_at: datetime | None = Field(None, description="Defaults to now.")
    next_action_note: ShortText = ""
    description: str = ""
    fields: dict[str, str] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list, description="Tag names; unknown ones are created."
    )
    contacts: list[ContactIn] = Field(default_factory=list)
    external_id: ExternalId = ""


# PATCH fields may be left out; those that cannot be empty in the model must not be null.
NOT_NULL = ("title", "owner", "amount", "next_action_note", "description", "fields", "external_id")


class OpportunityPatch(InSchema):
    title: Title | SkipJsonSchema[None] = None
    client: int | None = None
    owner: int | SkipJsonSchema[None] = None
    amount: Money | SkipJsonSchema[None] = None
    product: int | None = None
    expected_close_date: date | None = None
    next_action_note: ShortText | SkipJsonSchema[None] = None
    description: str | SkipJsonSchema[None] = None
    fields: dict[str, str] | SkipJsonSchema[None] = None
    external_id: ExternalId | SkipJsonSchema[None] = None

    @field_validator(*NOT_NULL)
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class MoveIn(InSchema):
    step: int


class CloseWonIn(InSchema):
    won_amount: Money | None = Field(None, description="Defaults to the amount.")


class CloseLostIn(InSchema):
    reason: int = Field(description="A lost reason id: required.")
    note: str = ""


class CancelIn(InSchema):
    note: str = ""


class ReopenIn(InSchema):
    next_action_at: datetime | None = Field(None, description="Defaults to now.")


class DuplicateIn(InSchema):
    title: Title
    expected_close_date: date | None = None
    next_action_at: datetime | None = Field(None, description="Defaults to now.")
    amount: Money | None = Field(None, description="Defaults to the source's amount.")
    owner: int | None = Field(None, description="Defaults to the caller.")
