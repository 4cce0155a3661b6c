"""Client folders: list and search, one folder with its totals, create, PATCH, merge.

Folders are shared by the whole account; the totals count only the opportunities the caller
may see. A folder has no version number, so its ETag is a digest of its fields.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Query, Router, Status

from opportuna.sales import services
from opportuna.sales.api._common import (
    CREATED_HEADERS,
    ETAG_HEADER,
    GET_ERRORS,
    READ_ERRORS,
    TARGET_ERRORS,
    UPDATE_ERRORS,
    WRITE_ERRORS,
    IfMatchRequired,
    actor,
    check_content_etag,
    cursor_error,
    ref,
    with_etag,
)
from opportuna.sales.models import Client
from opportuna.sales.schemas import (
    ClientDetailOut,
    ClientIn,
    ClientMergeIn,
    ClientOut,
    ClientPage,
    ClientPatch,
)
from opportuna.sales.selectors import visible_clients
from opportuna.sales.selectors.api import InvalidCursor, client_api_page, client_for_update
from opportuna.sales.selectors.clients import client_get, client_totals

router = Router(tags=["clients"])

NoNul = r"^[^\x00]*$"


@router.get(
    "/clients",
    response={200: ClientPage, **READ_ERRORS},
    url_name="client_list",
    summary="Client folders by name",
)
def client_list(
    request: HttpRequest,
    q: str | None = Query(None, max_length=200, pattern=NoNul, description="Part of the name."),  # noqa: B008 (ninja declares parameters this way)
    external_id: str | None = Query(None, max_length=100, pattern=NoNul),  # noqa: B008
    cursor: str | None = Query(None, max_length=500),  # noqa: B008
    limit: int = Query(50, ge=1, le=200),  # noqa: B008
) -> dict[str, Any]:
    try:
        page = client_api_page(
            user=actor(request), q=q, external_id=external_id, cursor=cursor, limit=limit
        )
    except InvalidCursor as exc:
        raise cursor_error() from exc
    return {"items": page.rows, "next_cursor": page.next_cursor}


@router.get(
    "/clients/{client_id}",
    response={200: ClientDetailOut, **GET_ERRORS},
    url_name="client_get",
    summary="One client folder with the totals of its opportunities, and its ETag",
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def client_detail(request: HttpRequest, response: HttpResponse, client_id: int) -> Client:
    caller = actor(request)
    client = with_etag(response, client_get(user=caller, pk=client_id))
    client.totals = client_totals(user=caller, client=client)  # type: ignore[attr-defined]
    return client


@router.post(
    "/clients",
    response={201: ClientOut, **WRITE_ERRORS},
    url_name="client_create",
    summary="Open a client folder",
    openapi_extra={"responses": {201: CREATED_HEADERS}},
)
def client_create(
    request: HttpRequest, response: HttpResponse, payload: ClientIn
) -> Status[Client]:
    client = services.client_create(actor=actor(request), **payload.model_dump())
    response["Location"] = reverse("api:client_get", kwargs={"client_id": client.pk})
    return Status(201, with_etag(response, client))


@router.patch(
    "/clients/{client_id}",
    response={200: ClientOut, **UPDATE_ERRORS},
    url_name="client_update",
    summary="Change a client folder's details (needs If-Match)",
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def client_update(
    request: HttpRequest,
    response: HttpResponse,
    client_id: int,
    payload: ClientPatch,
    if_match: str | None = IfMatchRequired,
) -> Client:
    caller = actor(request)
    with transaction.atomic():
        client = client_for_update(user=caller, pk=client_id)
        check_content_etag(client, if_match, required=True)
        client = services.client_update(
            client=client, actor=caller, **payload.model_dump(exclude_unset=True)
        )
    return with_etag(response, client)


@router.post(
    "/clients/{client_id}/merge",
    response={200: ClientOut, **TARGET_ERRORS},
    url_name="client_merge",
    summary="Move every opportunity of this folder into another, then delete it (managers)",
)
def client_merge(request: HttpRequest, client_id: int, payload: ClientMergeIn) -> Client:
    caller = actor(request)
    return services.client_merge(
        source=client_get(user=caller, pk=client_id),
        target=ref(visible_clients(caller), payload.into, "into"),
        actor=caller,
    )
