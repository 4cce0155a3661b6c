"""The sales API: opportunities and pipelines. Reads go through the visibility door, writes
through the services; this module only turns ids into objects and objects into schemas."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, TypeVar

from django.db import models
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from ninja import Field, Header, Query, Router, Schema, Status
from ninja.errors import HttpError, ValidationError

from opportuna.accounts.models import User
from opportuna.core.money import to_cents
from opportuna.sales import services
from opportuna.sales.models import (
    LostReason,
    Opportunity,
    OpportunityQuerySet,
    Pipeline,
    Product,
    Step,
)
from opportuna.sales.models import Status as OpportunityStatus
from opportuna.sales.schemas import (
    CancelIn,
    CloseLostIn,
    CloseWonIn,
    ConflictOut,
    DuplicateIn,
    ErrorOut,
    MoveIn,
    OpportunityIn,
    OpportunityOut,
    OpportunityPage,
    OpportunityPatch,
    PipelineOut,
    ReopenIn,
    RuleErrorOut,
    ValidationErrorOut,
)
from opportuna.sales.selectors import opportunity_get, visible_clients, visible_opportunities

router = Router(tags=["opportunities"])

M = TypeVar("M", bound=models.Model)

# Every status code an operation can answer, so the OpenAPI document is true.
UNAUTHENTICATED = {401: ErrorOut}
MALFORMED = {422: ValidationErrorOut}
NOT_FOUND = {404: ErrorOut}
WRITE_ERRORS = {
    400: ErrorOut,  # a body that is not JSON
    **UNAUTHENTICATED,
    403: ErrorOut,  # not allowed, read-only token, or missing CSRF token on a session
    409: RuleErrorOut,
    **MALFORMED,
}
ACTION_ERRORS = {**WRITE_ERRORS, **NOT_FOUND, 412: ConflictOut}

ETAG_HEADER = {
    "headers": {
        "ETag": {
            "description": 'W/"<version>": send it back in If-Match to change the opportunity.',
            "schema": {"type": "string"},
        }
    }
}
CREATED_HEADERS = {
    "headers": {
        **ETAG_HEADER["headers"],
        "Location": {"description": "The new opportunity's URL.", "schema": {"type": "string"}},
    }
}
IF_MATCH_OPTIONAL = (
    'Optional: the ETag of your last read (W/"<version>"). When given and stale, the answer '
    "is 412 and nothing changes."
)
IF_MATCH_REQUIRED = (
    'Required: the ETag of your last read (W/"<version>"). Without it the answer is 428; '
    "when stale, 412 and nothing changes."
)
IfMatch = Header(None, alias="If-Match", description=IF_MATCH_OPTIONAL)
IfMatchRequired = Header(None, alias="If-Match", description=IF_MATCH_REQUIRED)
_ETAG = re.compile(r'\s*(?:W/)?"(\d+)"\s*')


# Helpers: ids in, objects out ------------------------------------------------------------


def _actor(request: HttpRequest) -> User:
    return request.auth  # type: ignore[attr-defined,no-any-return]


def _ref(queryset: models.QuerySet[M], pk: int, field: str) -> M:
    """The object `pk` names in the body, or a 422 naming the field."""
    try:
        return queryset.get(pk=pk)
    except queryset.model.DoesNotExist as exc:
        raise ValidationError(
            [
                {
                    "type": "not_found",
                    "loc": ["body", "payload", field],
                    "msg": _("No %(model)s with id %(id)s.")
                    % {"model": queryset.model._meta.verbose_name, "id": pk},
                }
            ]
        ) from exc


def _maybe_ref(queryset: models.QuerySet[M], pk: int | None, field: str) -> M | None:
    return None if pk is None else _ref(queryset, pk, field)


def _optional_version(if_match: str | None) -> int | None:
    """The version an If-Match names; None without one; 412 when it is not one ETag."""
    if if_match is None or not if_match.strip():
        return None
    match = _ETAG.fullmatch(if_match)
    if match is None:
        raise HttpError(412, _('If-Match must be one ETag from a read, like W/"3".'))
    return int(match.group(1))


def _required_version(if_match: str | None) -> int:
    version = _optional_version(if_match)
    if version is None:
        raise HttpError(428, _("Send If-Match with the ETag of your last read."))
    return version


def _with_etag(response: HttpResponse, opportunity: Opportunity) -> Opportunity:
    response["ETag"] = f'W/"{opportunity.version}"'
    return opportunity


def _created(response: HttpResponse, opportunity: Opportunity) -> Status[Opportunity]:
    response["Location"] = reverse("api:opportunity_get", kwargs={"opportunity_id": opportunity.pk})
    return Status(201, _with_etag(response, opportunity))


# Reads ----------------------------------------------------------------------------------


class OpportunityFilters(Schema):
    status: OpportunityStatus | None = None
    owner: int | None = None
    pipeline: int | None = None
    step: int | None = None
    client: int | None = None
    tag: str | None = Field(None, description="A tag name (any case).")
    q: str | None = Field(None, max_length=200, description="Words in the title.")


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": last_id}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        last_id = data["id"]
        if not isinstance(last_id, int) or isinstance(last_id, bool):
            raise TypeError
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise ValidationError(
            [{"type": "value_error", "loc": ["query", "cursor"], "msg": _("Invalid cursor.")}]
        ) from exc
    return last_id


def opportunities_page(
    *, user: User, filters: OpportunityFilters, cursor: str | None, limit: int
) -> tuple[list[Opportunity], str | None]:
    """One page of visible opportunities, newest first, keyset on id: stable at any depth.

    Three queries whatever the page size: the rows with their ids, tags, contacts.
    """
    queryset: OpportunityQuerySet = visible_opportunities(user)
    for name in ("status", "owner", "pipeline", "step", "client"):
        value = getattr(filters, name)
        if value is not None:
            queryset = queryset.filter(**{name: value})
    if filters.tag:
        tagged = Opportunity.tags.through.objects.filter(
            opportunity_id=OuterRef("pk"), tag__name__iexact=filters.tag.strip()
        )
        queryset = queryset.filter(Exists(tagged))
    if filters.q and filters.q.strip():
        queryset = queryset.filter(title__icontains=filters.q.strip())
    if cursor:
        queryset = queryset.filter(pk__lt=_decode_cursor(cursor))
    rows = list(queryset.prefetch_related("tags", "contacts").order_by("-pk")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return rows, _encode_cursor(rows[-1].pk) if has_more else None


@router.get(
    "/opportunities",
    response={200: OpportunityPage, **UNAUTHENTICATED, **MALFORMED},
    url_name="opportunity_list",
    summary="List visible opportunities, newest first",
)
def opportunity_list(
    request: HttpRequest,
    filters: Query[OpportunityFilters],
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=200),  # noqa: B008 (ninja declares parameters this way)
) -> dict[str, Any]:
    items, next_cursor = opportunities_page(
        user=_actor(request), filters=filters, cursor=cursor, limit=limit
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get(
    "/opportunities/{opportunity_id}",
    response={200: OpportunityOut, **UNAUTHENTICATED, **NOT_FOUND, **MALFORMED},
    url_name="opportunity_get",
    summary="One opportunity, with its ETag",
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def opportunity_detail(
    request: HttpRequest, response: HttpResponse, opportunity_id: int
) -> Opportunity:
    return _with_etag(response, opportunity_get(user=_actor(request), pk=opportunity_id))


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
    actor = _actor(request)
    opportunity = services.opportunity_create(
        actor=actor,
        title=payload.title,
        pipeline=_ref(Pipeline.objects.all(), payload.pipeline, "pipeline"),
        step=_maybe_ref(Step.objects.all(), payload.step, "step"),
        owner=_maybe_ref(User.objects.all(), payload.owner, "owner"),
        client=_maybe_ref(visible_clients(actor), payload.client, "client"),
        amount=to_cents(payload.amount),
        probability=payload.probability,
        product=_maybe_ref(Product.objects.all(), payload.product, "product"),
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
    response={200: OpportunityOut, **ACTION_ERRORS, 428: ErrorOut},
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
    actor = _actor(request)
    version = _required_version(if_match)
    given = payload.model_dump(exclude_unset=True)
    values: dict[str, Any] = {
        key: value for key, value in given.items() if key not in {"client", "owner", "product"}
    }
    if "amount" in values:
        values["amount"] = to_cents(values["amount"])
    if "client" in given:
        values["client"] = _maybe_ref(visible_clients(actor), given["client"], "client")
    if "owner" in given:
        values["owner"] = _ref(User.objects.all(), given["owner"], "owner")
    if "product" in given:
        values["product"] = _maybe_ref(Product.objects.all(), given["product"], "product")
    opportunity = services.opportunity_update(
        opportunity=opportunity_id, actor=actor, version=version, **values
    )
    return _with_etag(response, opportunity)


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
        step=_ref(Step.objects.all(), payload.step, "step"),
        actor=_actor(request),
        version=_optional_version(if_match),
    )
    return _with_etag(response, opportunity)


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
        actor=_actor(request),
        won_amount=None if won_amount is None else to_cents(won_amount),
        version=_optional_version(if_match),
    )
    return _with_etag(response, opportunity)


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
        actor=_actor(request),
        reason=_ref(LostReason.objects.all(), payload.reason, "reason"),
        note=payload.note,
        version=_optional_version(if_match),
    )
    return _with_etag(response, opportunity)


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
        actor=_actor(request),
        note=payload.note if payload else "",
        version=_optional_version(if_match),
    )
    return _with_etag(response, opportunity)


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
        actor=_actor(request),
        next_action_at=payload.next_action_at if payload else None,
        version=_optional_version(if_match),
    )
    return _with_etag(response, opportunity)


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
        actor=_actor(request),
        title=payload.title,
        expected_close_date=payload.expected_close_date,
        next_action_at=payload.next_action_at,
        amount=None if payload.amount is None else to_cents(payload.amount),
        owner=_maybe_ref(User.objects.all(), payload.owner, "owner"),
    )
    return _created(response, opportunity)
