"""Writes on proposals: the scope and priced offer, in numbered versions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    Activity,
    ActivityType,
    EventKind,
    Opportunity,
    Product,
    Proposal,
    ProposalLine,
    ProposalStatus,
)
from opportuna.sales.services._common import (
    locked_editable,
    record,
    save_changes,
    set_fields,
    to_json,
)


def line_total(*, quantity: Decimal, unit_price: int, discount: Decimal) -> int:
    """quantity x unit price x (1 - discount %), in cents, rounded half-up: exact decimals."""
    gross = Decimal(quantity) * Decimal(unit_price) * (Decimal(100) - Decimal(discount)) / 100
    return int(gross.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _decimal(value: Any, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise SalesRuleError(_("%s must be a number.") % field, field=field) from exc
    if not number.is_finite():
        raise SalesRuleError(_("%s must be a number.") % field, field=field)
    # The column's size: a value it would round (differently on SQLite and PostgreSQL) or
    # refuse must be refused here, or the line total would not match the stored figures.
    column = ProposalLine._meta.get_field(field)
    places = column.decimal_places  # type: ignore[union-attr]
    if abs(number) >= Decimal(10) ** (column.max_digits - places):  # type: ignore[union-attr]
        raise SalesRuleError(_("%s is too large.") % field, field=field)
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise SalesRuleError(
            _("%(field)s takes at most %(places)d decimal places.")
            % {"field": field, "places": places},
            field=field,
        )
    return number


def _build_lines(proposal: Proposal, lines: Iterable[Mapping[str, Any]]) -> int:
    objects = []
    for position, line in enumerate(lines):
        product: Product | None = line.get("product")
        quantity = _decimal(line.get("quantity", 1), "quantity")
        discount = _decimal(line.get("discount", 0), "discount")
        unit_price = line.get("unit_price")
        if unit_price is None:
            unit_price = product.unit_price if product else 0
        if quantity < 0:
            raise SalesRuleError(_("A quantity cannot be negative."), field="quantity")
        if not 0 <= discount <= 100:
            raise SalesRuleError(_("A discount is between 0 and 100%."), field="discount")
        if not isinstance(unit_price, int) or unit_price < 0:
            raise SalesRuleError(_("A unit price must be zero or more."), field="unit_price")
        description = (line.get("description") or (product.name if product else "")).strip()
        if not description:
            raise SalesRuleError(_("Each line needs a product or a description."))
        objects.append(
            ProposalLine(
                proposal=proposal,
                position=position,
                product=product,
                description=description[:300],
                quantity=quantity,
                unit_price=unit_price,
                discount=discount,
                total=line_total(quantity=quantity, unit_price=unit_price, discount=discount),
            )
        )
    ProposalLine.objects.bulk_create(objects)
    return sum(o.total for o in objects)


def _new_version(
    opp: Opportunity,
    actor: User,
    *,
    scope: str,
    lines: Iterable[Mapping[str, Any]],
    valid_until: date | None,
    revises: Proposal | None = None,
) -> Proposal:
    last = opp.proposals.aggregate(last=Max("number"))["last"] or 0
    proposal = Proposal.objects.create(
        opportunity=opp,
        number=last + 1,
        scope=scope.strip(),
        valid_until=valid_until,
        created_by=actor,
    )
    proposal.total = _build_lines(proposal, lines)
    proposal.save(update_fields=["total"])
    record(
        opp,
        actor,
        EventKind.PROPOSAL_CREATED,
        data={
            "proposal": proposal.pk,
            "number": proposal.number,
            "total": proposal.total,
            "revises": revises.pk if revises else None,
        },
    )
    return proposal


@transaction.atomic
def proposal_create(
    *,
    opportunity: Opportunity | int,
    actor: User,
    scope: str = "",
    lines: Iterable[Mapping[str, Any]] = (),
    valid_until: date | None = None,
) -> Proposal:
    """A new draft proposal, numbered after the opportunity's previous ones."""
    opp = locked_editable(opportunity, actor)
    return _new_version(opp, actor, scope=scope, lines=lines, valid_until=valid_until)


@transaction.atomic
def proposal_revise(
    *,
    proposal: Proposal,
    actor: User,
    scope: str | None = None,
    lines: Iterable[Mapping[str, Any]] | None = None,
    valid_until: date | None = None,
) -> Proposal:
    """A new version from an existing one; what is not given is copied from it."""
    opp = locked_editable(proposal.opportunity_id, actor)
    if lines is None:
        lines = [
            {
                "product": line.product,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "discount": line.discount,
            }
            for line in proposal.lines.select_related("product")
        ]
    return _new_version(
        opp,
        actor,
        scope=proposal.scope if scope is None else scope,
        lines=lines,
        valid_until=valid_until or proposal.valid_until,
        revises=proposal,
    )


def _locked_proposal(proposal: Proposal, actor: User) -> tuple[Opportunity, Proposal]:
    opp = locked_editable(proposal.opportunity_id, actor)
    return opp, Proposal.objects.select_for_update().get(pk=proposal.pk, opportunity=opp)


@transaction.atomic
def proposal_send(*, proposal: Proposal, actor: User, sent_at: datetime | None = None) -> Proposal:
    """Mark a draft as sent to the client; logs a "proposal sent" activity."""
    opp, proposal = _locked_proposal(proposal, actor)
    if proposal.status != ProposalStatus.DRAFT:
        raise SalesRuleError(_("Only a draft can be sent; revise it to make a new version."))
    if not proposal.lines.exists():
        raise SalesRuleError(_("Add at least one line before sending the proposal."))
    proposal.status = ProposalStatus.SENT
    proposal.sent_at = sent_at or timezone.now()
    proposal.save(update_fields=["status", "sent_at"])
    activity_type = ActivityType.objects.filter(key=ActivityType.PROPOSAL_SENT).first()
    if activity_type is not None:
        activity = Activity.objects.create(
            opportunity=opp,
            type=activity_type,
            user=actor,
            done_at=proposal.sent_at,
            note=_("Proposal v%(number)s sent") % {"number": proposal.number},
        )
        record(
            opp,
            actor,
            EventKind.ACTIVITY_LOGGED,
            data={
                "activity": activity.pk,
                "type": activity_type.key,
                "done_at": to_json(activity.done_at),
            },
        )
    record(
        opp,
        actor,
        EventKind.PROPOSAL_SENT,
        data={"proposal": proposal.pk, "number": proposal.number, "total": proposal.total},
    )
    return proposal


@transaction.atomic
def proposal_accept(*, proposal: Proposal, actor: User, set_amount: bool = True) -> Proposal:
    """The client accepted it; by default the opportunity's amount becomes its total."""
    opp, proposal = _locked_proposal(proposal, actor)
    if proposal.status != ProposalStatus.SENT:
        raise SalesRuleError(_("Only a sent proposal can be accepted."))
    proposal.status = ProposalStatus.ACCEPTED
    proposal.decided_at = timezone.now()
    proposal.save(update_fields=["status", "decided_at"])
    record(
        opp,
        actor,
        EventKind.PROPOSAL_ACCEPTED,
        data={"proposal": proposal.pk, "number": proposal.number, "total": proposal.total},
    )
    if set_amount and opp.is_open:
        changes = set_fields(opp, {"amount": proposal.total})
        if changes:
            save_changes(opp, list(changes))
            record(opp, actor, EventKind.UPDATED, changes=changes, data={"proposal": proposal.pk})
    return proposal


@transaction.atomic
def proposal_decline(*, proposal: Proposal, actor: User) -> Proposal:
    """The client declined this version."""
    opp, proposal = _locked_proposal(proposal, actor)
    if proposal.status != ProposalStatus.SENT:
        raise SalesRuleError(_("Only a sent proposal can be declined."))
    proposal.status = ProposalStatus.DECLINED
    proposal.decided_at = timezone.now()
    proposal.save(update_fields=["status", "decided_at"])
    record(
        opp,
        actor,
        EventKind.PROPOSAL_DECLINED,
        data={"proposal": proposal.pk, "number": proposal.number},
    )
    return proposal
