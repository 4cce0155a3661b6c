"""Opportunities: the list, one opportunity with its ETag, create, PATCH, and the actions."""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status

from opportuna.accounts.models import User
from opportuna.core.money import to_cents
from opportuna.sales import services
from opportuna.sales.api._common import (
    ACTION_ERRORS,
    CREATED_HEADERS,
    ETAG_HEADER,
    GET_ERRORS,
    NOT_FOUND,
    READ_ERRORS,
    UNAUTHENTICATED,
    UPDATE_ERRORS,
    WRITE_ERRORS,
    IfMatch,
    IfMatchRequired,
    actor,
    cursor_error,
    maybe_ref,
    optional_version,
    ref,
    required_version,
    with_etag,
)
from opportuna.sales.models import LostReason, Opportunity, Pipeline, Product, Step
from opportuna.sales.schemas import (
    CancelIn,
    CloseLostIn,
    CloseWonIn,
    DuplicateIn,
    Id,
    Moment,
    MoveIn,
    NextActionIn,
    OpportunityIn,
    OpportunityOut,
    OpportunityPage,
    OpportunityPatch,
    PipelineOut,
    ProbabilityIn,
    ReopenIn,
    StandbyIn,
)
from opportuna.sales.selectors import visible_clients
from opportuna.sales.selectors.api import (
    OPPORTUNITY_SORTS,
    InvalidCursor,
    OpportunityFilters,
    opportunity_api_get,
    opportunity_api_page,
)

router = Router(tags=["opportunities"])

NoNul = r"^[^\x00]*$"
StatusFilter = Literal["todo", "standby", "won", "lost", "cancelled", "open", "closed"]
Sort = Literal[tuple(f"{sign}{key}" for key in OPPORTUNITY_SORTS for sign in ("", "-"))]  # type: ignore[valid-type]


def _created(response: HttpResponse, opportunity: Opportunity) -> Status[Opportunity]:
    response["Location"] = reverse("api:opportunity_get", kwargs={"opportunity_id": opportunity.pk})
    return Status(201, with_etag(response, opportunity))


# Reads ----------------------------------------------------------------------------------


class OpportunityQuery(Schema):
    status: StatusFilter | None = Field(None, description="A status, or open / closed.")
    owner: Id | None = None
    team: Id | None = Field(None, description="The owner's team.")
    mine: bool = Field(False, description="Only the caller's own.")
    pipeline: Id | None = None
    step: Id | None = None
    client: Id | None = None
    product: Id | None = None
    tag: str | None = Field(
        None, max_length=60, pattern=NoNul, description="A tag name (any case)."
    )
    q: str | None = Field(
        None, max_length=200, pattern=NoNul, description="Words in the title or client's name."
    )
    updated_after: Moment | None = Field(
        None, description="Only those changed after this moment: for syncing."
    )


@router.get(
    "/opportunities",
    response={200: OpportunityPage, **READ_ERRORS},
    url_name="opportunity_list",
    summary="List visible opportunities (newest first unless sorted)",
)
def opportunity_list(
    request: HttpRequest,
    filters: Query[OpportunityQuery],
    sort: Sort = Query("-id", description="A key, or -key for descending."),  # noqa: B008 (ninja declares parameters this way)
    cursor: str | None = Query(None, max_length=500),  # noqa: B008
    limit: int = Query(50, ge=1, le=200),  # noqa: B008
) -> dict[str, Any]:
    try:
        page = opportunity_api_page(
            user=actor(request),
            filters=OpportunityFilters(**filters.model_dump()),
            sort=sort,
            cursor=cursor,
            limit=limit,
        )
    except InvalidCursor as exc:
        raise cursor_error() from exc
    return {"items": page.rows, "next_cursor": page.next_cursor}


@router.get(
    "/opportunities/{opportunity_id}",
    response={200: OpportunityOut, **GET_ERRORS},
    url_name="opportunity_get",
    summary="One opportunity, with its ETag",
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def opportunity_detail(
    request: HttpRequest, response: HttpResponse, opportunity_id: int
) -> Opportunity:
    return with_etag(response, opportunity_api_get(user=actor(request), pk=opportunity_id))


@router.get(
    "/pipelines",
    response={200: list[PipelineOut], **UNAUTHENTICATED},
    url_name="pipeline_list",
    summary="Pipelines with their steps",
    tags=["pipelines"],
)
def pipeline_list(request: HttpRequest) -> list[Pipeline]:
    # Pipelines are account configuration: every active user sees them all.
    return list(Pipeline.objects.prefetch_related("steps"))


# Writes ---------------------------------------------------------------------------------


@router.post(
    "/opportunities",
    response={201: OpportunityOut, **WRITE_ERRORS},
    url_name="opportunity_create",
    summary="Create an opportunity",
    openapi_extra={"responses": {201: CREATED_HEADERS}},
)
def opportunity_create(
    request: HttpRequest, response: HttpResponse, payload: OpportunityIn
) -> Status[Opportunity]:
    caller = actor(request)
    opportunity = services.opportunity_create(
        actor=caller,
        title=payload.title,
        pipeline=ref(Pipeline.objects.all(), payload.pipeline, "pipeline"),
        step=maybe_ref(Step.objects.all(), payload.step, "step"),
        owner=maybe_ref(User.objects.all(), payload.owner, "owner"),
        client=maybe_ref(visible_clients(caller), payload.client, "client"),
        amount=to_cents(payload.amount),
        probability=payload.probability,
        product=maybe_ref(Product.objects.all(), payload.product, "product"),
        expected_close_date=payload.expected_close_date,
        next_action_at=payload.next_action_at,
        next_action_note=payload.next_action_note,
        description=payload.description,
        fields=payload.fields,
        tags=payload.tags,
        contacts=[contact.model_dump() for contact in payload.contacts],
        external_id=payload.external_id,
    )
    return _created(response, opportunity)


@router.patch(
    "/opportunities/{opportunity_id}",
    response={200: OpportunityOut, **UPDATE_ERRORS},
    url_name="opportunity_update",
    summary="Change header fields (needs If-Match)",
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def opportunity_update(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: OpportunityPatch,
    if_match: str | None = IfMatchRequired,
) -> Opportunity:
    caller = actor(request)
    version = required_version(if_match)
    given = payload.model_dump(exclude_unset=True)
    values: dict[str, Any] = {
        key: value for key, value in given.items() if key not in {"client", "owner", "product"}
    }
    if "amount" in values:
        values["amount"] = to_cents(values["amount"])
    if "client" in given:
        values["client"] = maybe_ref(visible_clients(caller), given["client"], "client")
    if "owner" in given:
        values["owner"] = ref(User.objects.all(), given["owner"], "owner")
    if "product" in given:
        values["product"] = maybe_ref(Product.objects.all(), given["product"], "product")
    opportunity = services.opportunity_update(
        opportunity=opportunity_id, actor=caller, version=version, **values
    )
    return with_etag(response, opportunity)


def _action(path: str, name: str, summary: str) -> Any:
    """Declare a POST action that answers the changed opportunity and its new ETag."""
    return router.post(
        f"/opportunities/{{opportunity_id}}/{path}",
        response={200: OpportunityOut, **ACTION_ERRORS},
        url_name=f"opportunity_{name}",
        summary=summary,
        openapi_extra={"responses": {200: ETAG_HEADER}},
    )


@_action("move", "move", "Move to another step of its pipeline")
def opportunity_move(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: MoveIn,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_move(
        opportunity=opportunity_id,
        step=ref(Step.objects.all(), payload.step, "step"),
        actor=actor(request),
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("set-probability", "set_probability", "Set the probability by hand, or follow the step")
def opportunity_set_probability(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: ProbabilityIn,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_set_probability(
        opportunity=opportunity_id,
        probability=payload.probability,
        actor=actor(request),
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("plan-next-action", "plan_next_action", "Plan the next action (back to to-do)")
def opportunity_plan_next_action(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: NextActionIn,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_plan_next_action(
        opportunity=opportunity_id,
        at=payload.at,
        note=payload.note,
        actor=actor(request),
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("standby", "standby", "Park until a date")
def opportunity_standby(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: StandbyIn,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_standby(
        opportunity=opportunity_id,
        until=payload.until,
        note=payload.note,
        actor=actor(request),
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("close-won", "close_won", "Close as won")
def opportunity_close_won(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: CloseWonIn | None = None,
    if_match: str | None = IfMatch,
) -> Opportunity:
    won_amount = payload.won_amount if payload else None
    opportunity = services.opportunity_close_won(
        opportunity=opportunity_id,
        actor=actor(request),
        won_amount=None if won_amount is None else to_cents(won_amount),
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("close-lost", "close_lost", "Close as lost (a reason is required)")
def opportunity_close_lost(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: CloseLostIn,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_close_lost(
        opportunity=opportunity_id,
        actor=actor(request),
        reason=ref(LostReason.objects.all(), payload.reason, "reason"),
        note=payload.note,
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("cancel", "cancel", "Close as cancelled")
def opportunity_cancel(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: CancelIn | None = None,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_cancel(
        opportunity=opportunity_id,
        actor=actor(request),
        note=payload.note if payload else "",
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@_action("reopen", "reopen", "Reopen a closed opportunity")
def opportunity_reopen(
    request: HttpRequest,
    response: HttpResponse,
    opportunity_id: int,
    payload: ReopenIn | None = None,
    if_match: str | None = IfMatch,
) -> Opportunity:
    opportunity = services.opportunity_reopen(
        opportunity=opportunity_id,
        actor=actor(request),
        next_action_at=payload.next_action_at if payload else None,
        version=optional_version(if_match),
    )
    return with_etag(response, opportunity)


@router.post(
    "/opportunities/{opportunity_id}/duplicate",
    response={201: OpportunityOut, **WRITE_ERRORS, **NOT_FOUND},
    url_name="opportunity_duplicate",
    summary="A new opportunity from this one (upsell, renewal)",
    openapi_extra={"responses": {201: CREATED_HEADERS}},
)
def opportunity_duplicate(
    request: HttpRequest, response: HttpResponse, opportunity_id: int, payload: DuplicateIn
) -> Status[Opportunity]:
    opportunity = services.opportunity_duplicate(
        opportunity=opportunity_id,
        actor=actor(request),
        title=payload.title,
        expected_close_date=payload.expected_close_date,
        next_action_at=payload.next_action_at,
        amount=None if payload.amount is None else to_cents(payload.amount),
        owner=maybe_ref(User.objects.all(), payload.owner, "owner"),
    )
    return _created(response, opportunity)
