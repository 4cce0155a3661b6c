"""Opportunities, their contacts and pipelines: what the API shows and takes."""

from __future__ import annotations

from datetime import date, datetime
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
    Contact,
    Opportunity,
    Pipeline,
    Status,
    Step,
)
from opportuna.sales.schemas._types import (
    Day,
    Email,
    ExternalId,
    Id,
    LongText,
    Moment,
    Money,
    NotBlank,
    Probability,
    ShortText,
    Title,
    money_or_none,
)

# Out: opportunities --------------------------------------------------------------------


class ContactOut(Schema):
    id: int
    name: str
    role: str
    email: str
    phone: str

    @staticmethod
    def resolve_id(obj: Contact) -> int:
        return obj.pk


class ContactDetailOut(ContactOut):
    opportunity: int
    position: int = Field(description="0 is the main contact.")

    @staticmethod
    def resolve_opportunity(obj: Contact) -> int:
        return obj.opportunity_id


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
    weighted_amount: Decimal = Field(
        examples=["864.20"],
        description="Open: amount x probability / 100; won: the won amount; else 0.",
    )
    won_amount: Decimal | None = Field(examples=["1200.00"])
    probability: int
    probability_is_manual: bool = Field(
        description="Set by hand; when false it follows the step's default."
    )
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
    def resolve_weighted_amount(obj: Opportunity) -> Decimal:
        return from_cents(obj.weighted_amount)

    @staticmethod
    def resolve_won_amount(obj: Opportunity) -> Decimal | None:
        return money_or_none(obj.won_amount)

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


class ConflictOut(Schema):
    detail: str
    current_version: int | None = Field(
        None, description="The opportunity's version now (absent for a malformed If-Match)."
    )


# In: opportunities -----------------------------------------------------------------------


class ContactIn(InSchema):
    name: Annotated[str, Field(min_length=1, max_length=150, pattern=NotBlank)]
    role: Annotated[str, Field(max_length=100)] = ""
    email: Email = ""
    phone: Annotated[str, Field(max_length=40)] = ""


class ContactPatch(InSchema):
    name: (
        Annotated[str, Field(min_length=1, max_length=150, pattern=NotBlank)] | SkipJsonSchema[None]
    ) = None
    role: Annotated[str, Field(max_length=100)] | SkipJsonSchema[None] = None
    email: Email | SkipJsonSchema[None] = None
    phone: Annotated[str, Field(max_length=40)] | SkipJsonSchema[None] = None

    @field_validator("name", "role", "email", "phone")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class ContactOrderIn(InSchema):
    contacts: list[Id] = Field(
        max_length=1000, description="Every contact id of the opportunity, main one first."
    )


class OpportunityIn(InSchema):
    title: Title
    pipeline: Id
    step: Id | None = Field(None, description="Defaults to the pipeline's first step.")
    owner: Id | None = Field(None, description="Defaults to the caller.")
    client: Id | None = None
    amount: Money = Decimal(0)
    probability: Probability | None = Field(
        None, description="Set by hand; by default it follows the step."
    )
    product: Id | None = None
    expected_close_date: Day | None = None
    next_action_at: Moment | None = Field(None, description="Defaults to now.")
    next_action_note: ShortText = ""
    description: LongText = ""
    fields: dict[str, str] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(min_length=1, max_length=60, pattern=NotBlank)]] = Field(
        default_factory=list, max_length=100, description="Tag names; unknown ones are created."
    )
    contacts: list[ContactIn] = Field(default_factory=list, max_length=100)
    external_id: ExternalId = ""


# PATCH fields may be left out; those that cannot be empty in the model must not be null.
NOT_NULL = ("title", "owner", "amount", "next_action_note", "description", "fields", "external_id")


class OpportunityPatch(InSchema):
    title: Title | SkipJsonSchema[None] = None
    client: Id | None = None
    owner: Id | SkipJsonSchema[None] = None
    amount: Money | SkipJsonSchema[None] = None
    product: Id | None = None
    expected_close_date: Day | None = None
    next_action_note: ShortText | SkipJsonSchema[None] = None
    description: LongText | SkipJsonSchema[None] = None
    fields: dict[str, str] | SkipJsonSchema[None] = None
    external_id: ExternalId | SkipJsonSchema[None] = None

    @field_validator(*NOT_NULL)
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class MoveIn(InSchema):
    step: Id


class CloseWonIn(InSchema):
    won_amount: Money | None = Field(None, description="Defaults to the amount.")


class CloseLostIn(InSchema):
    reason: Id = Field(description="A lost reason id: required.")
    note: LongText = ""


class CancelIn(InSchema):
    note: LongText = ""


class ReopenIn(InSchema):
    next_action_at: Moment | None = Field(None, description="Defaults to now.")


class DuplicateIn(InSchema):
    title: Title
    expected_close_date: Day | None = None
    next_action_at: Moment | None = Field(None, description="Defaults to now.")
    amount: Money | None = Field(None, description="Defaults to the source's amount.")
    owner: Id | None = Field(None, description="Defaults to the caller.")


class ProbabilityIn(InSchema):
    probability: Probability | None = Field(
        description="0 to 100, kept until changed again; null follows the step's default again."
    )


class NextActionIn(InSchema):
    at: Moment = Field(description="When the next action is due.")
    note: ShortText = ""


class StandbyIn(InSchema):
    until: Day = Field(description="A future date: it comes back to the to-do list that morning.")
    note: ShortText = ""


class TagIn(InSchema):
    name: Annotated[str, Field(min_length=1, max_length=60, pattern=NotBlank)]
