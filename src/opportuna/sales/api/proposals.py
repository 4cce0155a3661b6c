"""Proposals: the scope and priced offer of an opportunity, in numbered versions with lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Router, Status

from opportuna.core.money import to_cents
from opportuna.sales import services
from opportuna.sales.api._common import (
    CREATED_HEADERS,
    GET_ERRORS,
    RULED_COMMAND_ERRORS,
    TARGET_ERRORS,
    actor,
    ref,
)
from opportuna.sales.models import Product, Proposal
from opportuna.sales.schemas import (
    ProposalAcceptIn,
    ProposalIn,
    ProposalLineIn,
    ProposalOut,
    ProposalReviseIn,
)
from opportuna.sales.selectors.api import (
    opportunity_proposals,
    proposal_with_lines,
    visible_proposal,
)

router = Router(tags=["proposals"])


def _lines(lines: Sequence[ProposalLineIn]) -> list[dict[str, Any]]:
    """Lines as the services take them: products as objects, prices in cents."""
    products = Product.objects.in_bulk({line.product for line in lines if line.product})
    taken = []
    for index, line in enumerate(lines):
        product = None
        if line.product is not None:
            product = products.get(line.product) or ref(
                Product.objects.all(), line.product, "lines", index, "product"
            )
        values: dict[str, Any] = {
            "product": product,
            "description": line.description,
            "quantity": line.quantity,
            "discount": line.discount,
        }
        if line.unit_price is not None:
            values["unit_price"] = to_cents(line.unit_price)
        taken.append(values)
    return taken


def _created(response: HttpResponse, proposal: Proposal) -> Status[Proposal]:
    response["Location"] = reverse("api:proposal_get", kwargs={"proposal_id": proposal.pk})
    return Status(201, proposal_with_lines(proposal=proposal))


@router.get(
    "/opportunities/{opportunity_id}/proposals",
    response={200: list[ProposalOut], **GET_ERRORS},
    url_name="proposal_list",
    summary="Proposals of an opportunity, latest version first",
)
def proposal_list(request: HttpRequest, opportunity_id: int) -> list[Proposal]:
    return opportunity_proposals(user=actor(request), opportunity=opportunity_id)


@router.post(
    "/opportunities/{opportunity_id}/proposals",
    response={201: ProposalOut, **TARGET_ERRORS},
    url_name="proposal_create",
    summary="A new draft proposal, numbered after the previous ones",
    openapi_extra={"responses": {201: CREATED_HEADERS}},
)
def proposal_create(
    request: HttpRequest, response: HttpResponse, opportunity_id: int, payload: ProposalIn
) -> Status[Proposal]:
    proposal = services.proposal_create(
        opportunity=opportunity_id,
        actor=actor(request),
        scope=payload.scope,
        lines=_lines(payload.lines),
        valid_until=payload.valid_until,
    )
    return _created(response, proposal)


@router.get(
    "/proposals/{proposal_id}",
    response={200: ProposalOut, **GET_ERRORS},
    url_name="proposal_get",
    summary="One proposal with its lines",
)
def proposal_detail(request: HttpRequest, proposal_id: int) -> Proposal:
    return visible_proposal(user=actor(request), pk=proposal_id)


@router.post(
    "/proposals/{proposal_id}/revise",
    response={201: ProposalOut, **TARGET_ERRORS},
    url_name="proposal_revise",
    summary="A new version from this one; what is not given is copied",
    openapi_extra={"responses": {201: CREATED_HEADERS}},
)
def proposal_revise(
    request: HttpRequest,
    response: HttpResponse,
    proposal_id: int,
    payload: ProposalReviseIn | None = None,
) -> Status[Proposal]:
    caller = actor(request)
    payload = payload or ProposalReviseIn()
    proposal = services.proposal_revise(
        proposal=visible_proposal(user=caller, pk=proposal_id),
        actor=caller,
        scope=payload.scope,
        lines=None if payload.lines is None else _lines(payload.lines),
        valid_until=payload.valid_until,
    )
    return _created(response, proposal)


@router.post(
    "/proposals/{proposal_id}/send",
    response={200: ProposalOut, **RULED_COMMAND_ERRORS},
    url_name="proposal_send",
    summary="Mark a draft as sent (logs a proposal-sent activity)",
)
def proposal_send(request: HttpRequest, proposal_id: int) -> Proposal:
    caller = actor(request)
    proposal = services.proposal_send(
        proposal=visible_proposal(user=caller, pk=proposal_id), actor=caller
    )
    return proposal_with_lines(proposal=proposal)


@router.post(
    "/proposals/{proposal_id}/accept",
    response={200: ProposalOut, **TARGET_ERRORS},
    url_name="proposal_accept",
    summary="The client accepted it (by default its total becomes the amount)",
)
def proposal_accept(
    request: HttpRequest, proposal_id: int, payload: ProposalAcceptIn | None = None
) -> Proposal:
    caller = actor(request)
    proposal = services.proposal_accept(
        proposal=visible_proposal(user=caller, pk=proposal_id),
        actor=caller,
        set_amount=payload.set_amount if payload else True,
    )
    return proposal_with_lines(proposal=proposal)


@router.post(
    "/proposals/{proposal_id}/decline",
    response={200: ProposalOut, **RULED_COMMAND_ERRORS},
    url_name="proposal_decline",
    summary="The client declined this version",
)
def proposal_decline(request: HttpRequest, proposal_id: int) -> Proposal:
    caller = actor(request)
    proposal = services.proposal_decline(
        proposal=visible_proposal(user=caller, pk=proposal_id), actor=caller
    )
    return proposal_with_lines(proposal=proposal)
