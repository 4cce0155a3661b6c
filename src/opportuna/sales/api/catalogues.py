"""The account's catalogues: products, tags, lost reasons, activity types, default fields.

Everyone reads them (forms and integrations need their ids); admins add to them, and anyone
may create a tag, as on the opportunity page. Pipelines are listed with the opportunities.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Status

from opportuna.core.money import to_cents
from opportuna.sales import services
from opportuna.sales.api._common import UNAUTHENTICATED, WRITE_ERRORS, actor
from opportuna.sales.models import ActivityType, FieldDefinition, LostReason, Product, Tag
from opportuna.sales.schemas import (
    ActivityTypeIn,
    ActivityTypeOut,
    FieldDefinitionIn,
    FieldDefinitionOut,
    LostReasonIn,
    LostReasonOut,
    NewTagIn,
    ProductIn,
    ProductOut,
    TagOut,
)
from opportuna.sales.selectors.settings import (
    settings_activity_types,
    settings_field_definitions,
    settings_lost_reasons,
    settings_products,
    settings_tags,
)

router = Router(tags=["catalogues"])

LIST = {**UNAUTHENTICATED}
CREATE = {**WRITE_ERRORS}


@router.get("/products", response={200: list[ProductOut], **LIST}, url_name="product_list")
def product_list(request: HttpRequest) -> list[Product]:
    """Products and services sold, retired ones included (is_active false)."""
    return list(settings_products(user=actor(request)))


@router.post("/products", response={201: ProductOut, **CREATE}, url_name="product_create")
def product_create(request: HttpRequest, payload: ProductIn) -> Status[Product]:
    """Add a product or service type (admins)."""
    product = Product(
        name=payload.name.strip(),
        unit_price=to_cents(payload.unit_price),
        is_active=payload.is_active,
    )
    return Status(201, services.product_save(actor=actor(request), product=product))


@router.get("/tags", response={200: list[TagOut], **LIST}, url_name="tag_list")
def tag_list(request: HttpRequest) -> list[Tag]:
    """Every tag, by name."""
    return list(settings_tags(user=actor(request)))


@router.post("/tags", response={201: TagOut, **CREATE}, url_name="tag_create")
def tag_create(request: HttpRequest, payload: NewTagIn) -> Status[Tag]:
    """Create a tag (anyone)."""
    tag = Tag(name=payload.name.strip(), colour=payload.colour)
    return Status(201, services.tag_save(actor=actor(request), tag=tag))


@router.get(
    "/lost-reasons", response={200: list[LostReasonOut], **LIST}, url_name="lost_reason_list"
)
def lost_reason_list(request: HttpRequest) -> list[LostReason]:
    """Why opportunities are lost, in their order; retired ones included."""
    return list(settings_lost_reasons(user=actor(request)))


@router.post(
    "/lost-reasons", response={201: LostReasonOut, **CREATE}, url_name="lost_reason_create"
)
def lost_reason_create(request: HttpRequest, payload: LostReasonIn) -> Status[LostReason]:
    """Add a lost reason (admins)."""
    reason = LostReason(
        name=payload.name.strip(), position=payload.position, is_active=payload.is_active
    )
    return Status(201, services.lost_reason_save(actor=actor(request), lost_reason=reason))


@router.get(
    "/activity-types",
    response={200: list[ActivityTypeOut], **LIST},
    url_name="activity_type_list",
)
def activity_type_list(request: HttpRequest) -> list[ActivityType]:
    """Call, visit, demo, ...: in their order; retired ones included."""
    return list(settings_activity_types(user=actor(request)))


@router.post(
    "/activity-types",
    response={201: ActivityTypeOut, **CREATE},
    url_name="activity_type_create",
)
def activity_type_create(request: HttpRequest, payload: ActivityTypeIn) -> Status[ActivityType]:
    """Add an activity type (admins)."""
    activity_type = ActivityType(
        name=payload.name.strip(),
        key=payload.key,
        position=payload.position,
        is_active=payload.is_active,
    )
    saved = services.activity_type_save(actor=actor(request), activity_type=activity_type)
    return Status(201, saved)


@router.get(
    "/fields", response={200: list[FieldDefinitionOut], **LIST}, url_name="field_definition_list"
)
def field_definition_list(request: HttpRequest) -> list[FieldDefinition]:
    """The default fields, in the order an opportunity shows them; values live in `fields`."""
    return settings_field_definitions(user=actor(request))


@router.post(
    "/fields", response={201: FieldDefinitionOut, **CREATE}, url_name="field_definition_create"
)
def field_definition_create(
    request: HttpRequest, payload: FieldDefinitionIn
) -> Status[FieldDefinition]:
    """Define a default field (admins)."""
    definition = services.field_definition_create(actor=actor(request), **payload.model_dump())
    return Status(201, definition)
