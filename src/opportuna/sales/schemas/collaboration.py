"""What lives in an opportunity: comments, activities, events, proposals, tags."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import Field, model_validator

from opportuna.accounts.schemas import (
    InSchema,
)
from opportuna.core.money import from_cents
from opportuna.sales.models import (
    Activity,
    Comment,
    EventKind,
    OpportunityEvent,
    Proposal,
    ProposalLine,
    ProposalStatus,
    Tag,
)
from opportuna.sales.schemas._types import (
    Day,
    Id,
    LongText,
    Moment,
    Money,
    NotBlank,
)

# Out: what lives in an opportunity -------------------------------------------------------


class CommentOut(Schema):
    id: int
    opportunity: int
    author: int
    body: str
    pinned: bool
    created_at: datetime
    edited_at: datetime | None = Field(None, description="When its author last reworded it.")

    @staticmethod
    def resolve_id(obj: Comment) -> int:
        return obj.pk

    @staticmethod
    def resolve_opportunity(obj: Comment) -> int:
        return obj.opportunity_id

    @staticmethod
    def resolve_author(obj: Comment) -> int:
        return obj.author_id


class CommentPage(Schema):
    items: list[CommentOut]
    next_cursor: str | None


class ActivityOut(Schema):
    id: int
    opportunity: int
    type: int
    user: int = Field(description="Who did it, or who is to do it when planned.")
    planned: bool = Field(description="Planned (a task): due_at set, done_at null.")
    due_at: datetime | None
    done_at: datetime | None
    note: str
    created_at: datetime

    @staticmethod
    def resolve_id(obj: Activity) -> int:
        return obj.pk

    @staticmethod
    def resolve_opportunity(obj: Activity) -> int:
        return obj.opportunity_id

    @staticmethod
    def resolve_type(obj: Activity) -> int:
        return obj.type_id

    @staticmethod
    def resolve_user(obj: Activity) -> int:
        return obj.user_id

    @staticmethod
    def resolve_planned(obj: Activity) -> bool:
        return obj.is_planned


class ActivityPage(Schema):
    items: list[ActivityOut]
    next_cursor: str | None


class EventOut(Schema):
    id: int
    at: datetime
    kind: EventKind
    actor: int | None
    changes: dict[str, Any] = Field(description="{field: [before, after]}: ids, cents, ISO dates.")
    data: dict[str, Any] = Field(description="What the kind needs besides (comment id, ...).")

    @staticmethod
    def resolve_id(obj: OpportunityEvent) -> int:
        return obj.pk

    @staticmethod
    def resolve_actor(obj: OpportunityEvent) -> int | None:
        return obj.actor_id


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: str | None


class ProposalLineOut(Schema):
    id: int
    position: int
    product: int | None
    description: str
    quantity: Decimal = Field(examples=["1.000"])
    unit_price: Decimal = Field(examples=["100.00"])
    discount: Decimal = Field(examples=["10.00"], description="Percent.")
    total: Decimal = Field(examples=["90.00"])

    @staticmethod
    def resolve_id(obj: ProposalLine) -> int:
        return obj.pk

    @staticmethod
    def resolve_product(obj: ProposalLine) -> int | None:
        return obj.product_id

    @staticmethod
    def resolve_unit_price(obj: ProposalLine) -> Decimal:
        return from_cents(obj.unit_price)

    @staticmethod
    def resolve_total(obj: ProposalLine) -> Decimal:
        return from_cents(obj.total)


class ProposalOut(Schema):
    id: int
    opportunity: int
    number: int = Field(description="The version: 1, 2, ... per opportunity.")
    scope: str
    status: ProposalStatus
    total: Decimal = Field(examples=["1234.56"])
    valid_until: date | None
    sent_at: datetime | None
    decided_at: datetime | None
    created_by: int
    created_at: datetime
    lines: list[ProposalLineOut]

    @staticmethod
    def resolve_id(obj: Proposal) -> int:
        return obj.pk

    @staticmethod
    def resolve_opportunity(obj: Proposal) -> int:
        return obj.opportunity_id

    @staticmethod
    def resolve_created_by(obj: Proposal) -> int:
        return obj.created_by_id

    @staticmethod
    def resolve_total(obj: Proposal) -> Decimal:
        return from_cents(obj.total)

    @staticmethod
    def resolve_lines(obj: Proposal) -> list[ProposalLine]:
        return list(obj.lines.all())


class TagOut(Schema):
    id: int
    name: str
    colour: str

    @staticmethod
    def resolve_id(obj: Tag) -> int:
        return obj.pk


# In: what lives in an opportunity --------------------------------------------------------


class CommentIn(InSchema):
    body: Annotated[str, Field(min_length=1, max_length=20_000, pattern=NotBlank)]
    pinned: bool = False


class CommentEditIn(InSchema):
    body: Annotated[str, Field(min_length=1, max_length=20_000, pattern=NotBlank)]


class ActivityIn(InSchema):
    """Log what was done (`done_at`, default now) or plan a task (`due_at`); not both."""

    type: Id = Field(description="An activity type id.")
    note: LongText = ""
    done_at: Moment | None = Field(None, description="Logged: when it was done; not future.")
    due_at: Moment | None = Field(None, description="Planned: when it is due.")
    user: Id | None = Field(None, description="Planned: whose task (default: the caller).")

    @model_validator(mode="after")
    def _log_or_plan(self) -> ActivityIn:
        if self.due_at is not None and self.done_at is not None:
            raise ValueError("give done_at (logged) or due_at (planned), not both")
        if self.user is not None and self.due_at is None:
            raise ValueError("user is only for a planned activity (with due_at)")
        return self


class ActivityCompleteIn(InSchema):
    done_at: Moment | None = Field(None, description="Defaults to now; not in the future.")
    note: LongText | None = Field(None, description="Replaces the note when given.")


Quantity = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3, examples=["1.5"])]
Discount = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]


class ProposalLineIn(InSchema):
    product: Id | None = None
    description: Annotated[str, Field(max_length=300)] = Field(
        "", description="Defaults to the product's name; needed without a product."
    )
    quantity: Quantity = Decimal(1)
    unit_price: Money | None = Field(None, description="Defaults to the product's list price.")
    discount: Discount = Field(Decimal(0), description="Percent, 0 to 100.")

    @model_validator(mode="after")
    def _named(self) -> ProposalLineIn:
        if self.product is None and not self.description.strip():
            raise ValueError("a line needs a product or a description")
        return self


class ProposalIn(InSchema):
    scope: LongText = ""
    valid_until: Day | None = None
    lines: list[ProposalLineIn] = Field(default_factory=list, max_length=200)


class ProposalReviseIn(InSchema):
    scope: LongText | None = Field(None, description="Defaults to the revised version's.")
    valid_until: Day | None = Field(None, description="Defaults to the revised version's.")
    lines: list[ProposalLineIn] | None = Field(
        None, max_length=200, description="Replace the lines; by default they are copied."
    )


class ProposalAcceptIn(InSchema):
    set_amount: bool = Field(True, description="The opportunity's amount becomes the total.")
