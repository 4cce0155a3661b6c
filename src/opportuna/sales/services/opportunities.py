"""Writes on an opportunity's life: create, edit, move, plan, close, reopen, duplicate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.accounts.selectors import users_managed_by
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.fieldtext import clean_field_values
from opportuna.sales.models import (
    Activity,
    Client,
    Contact,
    EventKind,
    FieldDefinition,
    LostReason,
    Opportunity,
    Pipeline,
    Product,
    Status,
    Step,
    Tag,
)
from opportuna.sales.services._common import (
    locked_editable,
    locked_visible,
    record,
    require_active,
    save_changes,
    set_fields,
    to_json,
)

# Fields `opportunity_update` may change; step, status and probability have their own services.
EDITABLE_FIELDS = frozenset(
    {
        "title",
        "client",
        "owner",
        "amount",
        "product",
        "expected_close_date",
        "next_action_note",
        "description",
        "fields",
        "external_id",
    }
)


def _check_owner(actor: User, owner: User) -> None:
    if not owner.is_active:
        raise SalesRuleError(_("The owner must be an active user."), field="owner")
    if owner.pk != actor.pk and not users_managed_by(actor).filter(pk=owner.pk).exists():
        raise PermissionDenied(_("You can only give opportunities to people you manage."))


def _check_amount(value: int, field: str = "amount") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SalesRuleError(_("An amount must be zero or more."), field=field)


def _check_title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise SalesRuleError(_("An opportunity needs a title."), field="title")
    if len(title) > 200:
        raise SalesRuleError(_("The title is too long (200 characters at most)."), field="title")
    return title


def _check_length(value: str, field: str, model: type[models.Model] = Opportunity) -> str:
    """Refuse what the column cannot hold (PostgreSQL would fail, SQLite would keep it all)."""
    column = model._meta.get_field(field)
    limit = column.max_length
    if limit is not None and len(value) > limit:
        raise SalesRuleError(
            _("%(field)s is too long (%(limit)d characters at most).")
            % {"field": capfirst(column.verbose_name), "limit": limit},
            field=field,
        )
    return value


def _clean_fields(values: Mapping[str, object]) -> dict[str, str]:
    definitions = list(FieldDefinition.objects.all())
    try:
        return clean_field_values(values, definitions)
    except ValidationError as exc:
        messages = "; ".join(
            f"{key}: {' '.join(str(m) for m in msgs)}" for key, msgs in exc.message_dict.items()
        )
        raise SalesRuleError(messages, field="fields") from exc


def _standby_datetime(until: date) -> datetime:
    """A standby date comes back at 9:00 that morning, in the account's time zone."""
    return timezone.make_aware(datetime.combine(until, time(9, 0)))


@transaction.atomic
def opportunity_create(
    *,
    actor: User,
    title: str,
    pipeline: Pipeline,
    step: Step | None = None,
    owner: User | None = None,
    client: Client | None = None,
    amount: int = 0,
    probability: int | None = None,
    product: Product | None = None,
    expected_close_date: date | None = None,
    next_action_at: datetime | None = None,
    next_action_note: str = "",
    description: str = "",
    fields: Mapping[str, object] | None = None,
    tags: Iterable[Tag | str] = (),
    contacts: Iterable[Mapping[str, str]] = (),
    external_id: str = "",
    duplicated_from: Opportunity | None = None,
) -> Opportunity:
    """Create an open opportunity on a step of `pipeline`, with its contacts, tags and fields."""
    require_active(actor)
    owner = owner or actor
    _check_owner(actor, owner)
    title = _check_title(title)
    _check_amount(amount)
    _check_length(next_action_note, "next_action_note")
    _check_length(external_id, "external_id")
    step = step or pipeline.steps.order_by("position", "pk").first()
    if step is None:
        raise SalesRuleError(_("This pipeline has no steps yet."), field="step")
    if step.pipeline_id != pipeline.pk:
        raise SalesRuleError(_("The step does not belong to this pipeline."), field="step")
    if probability is not None and not 0 <= probability <= 100:
        raise SalesRuleError(_("The probability must be between 0 and 100."), field="probability")
    opportunity = Opportunity.objects.create(
        title=title,
        pipeline=pipeline,
        step=step,
        owner=owner,
        client=client,
        amount=amount,
        probability=step.probability if probability is None else probability,
        probability_is_manual=probability is not None,
        product=product,
        expected_close_date=expected_close_date,
        next_action_at=next_action_at or timezone.now(),
        next_action_note=next_action_note,
        description=description,
        fields=_clean_fields(fields or {}),
        external_id=external_id,
        duplicated_from=duplicated_from,
    )
    tag_objects = [_tag(t) for t in tags]
    if tag_objects:
        opportunity.tags.add(*tag_objects)
    for position, contact in enumerate(contacts):
        Contact.objects.create(opportunity=opportunity, position=position, **_contact(contact))
    record(
        opportunity,
        actor,
        EventKind.CREATED,
        data={
            "title": title,
            "pipeline": pipeline.pk,
            "step": step.pk,
            "owner": owner.pk,
            "amount": amount,
            "probability": opportunity.probability,
            "expected_close_date": to_json(expected_close_date),
            "tags": [t.pk for t in tag_objects],
        },
    )
    return opportunity


def _tag(tag: Tag | str) -> Tag:
    if isinstance(tag, Tag):
        return tag
    # Cut to the column's length before looking it up, or a long name would miss its tag.
    name = tag.strip()[: Tag._meta.get_field("name").max_length].strip()
    if not name:
        raise SalesRuleError(_("A tag needs a name."), field="tags")
    existing = Tag.objects.filter(name__iexact=name).first()
    return existing or Tag.objects.create(name=name)


def _contact(values: Mapping[str, str]) -> dict[str, str]:
    allowed = {"name", "role", "email", "phone"}
    unknown = set(values) - allowed
    if unknown:
        raise SalesRuleError(_("Unknown contact fields: %s") % ", ".join(sorted(unknown)))
    cleaned = {k: (values.get(k) or "").strip() for k in allowed}
    if not cleaned["name"]:
        raise SalesRuleError(_("A contact needs a name."), field="contacts")
    for key, value in cleaned.items():
        _check_length(value, key, Contact)
    if cleaned["email"]:
        from django.core.validators import validate_email

        try:
            validate_email(cleaned["email"])
        except ValidationError as exc:
            raise SalesRuleError(
                _("%s is not a valid email address.") % cleaned["email"], field="contacts"
            ) from exc
    return cleaned


@transaction.atomic
def opportunity_update(
    *, opportunity: Opportunity | int, actor: User, version: int, **values: Any
) -> Opportunity:
    """Change header fields; a stale `version` raises ConflictError and writes nothing."""
    unknown = set(values) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"opportunity_update cannot change {sorted(unknown)}")
    opp = locked_editable(opportunity, actor, version=version)
    if "title" in values:
        values["title"] = _check_title(values["title"])
    if "amount" in values:
        _check_amount(values["amount"])
    if "owner" in values and values["owner"].pk != opp.owner_id:
        _check_owner(actor, values["owner"])
    if "fields" in values:
        values["fields"] = _clean_fields(values["fields"])
    for key in ("next_action_note", "external_id"):
        if key in values:
            _check_length(values[key], key)
    changes = set_fields(opp, values)
    if not changes:
        return opp
    save_changes(opp, list(changes))
    if "owner" in changes:  # the activities repeat their opportunity's owner
        Activity.objects.filter(opportunity=opp).update(opportunity_owner_id=opp.owner_id)
    record(opp, actor, EventKind.UPDATED, changes=changes)
    return opp


@transaction.atomic
def opportunity_move(
    *, opportunity: Opportunity | int, step: Step, actor: User, version: int | None = None
) -> Opportunity:
    """Move an open opportunity to another step of its pipeline; probability follows the step."""
    opp = locked_editable(opportunity, actor, version=version)
    if opp.is_closed:
        raise SalesRuleError(_("Reopen a closed opportunity before moving it."), field="step")
    if step.pipeline_id != opp.pipeline_id:
        raise SalesRuleError(_("The step does not belong to this pipeline."), field="step")
    values: dict[str, Any] = {"step": step}
    if not opp.probability_is_manual:
        values["probability"] = step.probability
    changes = set_fields(opp, values)
    if not changes:
        return opp
    save_changes(opp, list(changes))
    record(opp, actor, EventKind.MOVED, changes=changes)
    return opp


@transaction.atomic
def opportunity_set_probability(
    *,
    opportunity: Opportunity | int,
    probability: int | None,
    actor: User,
    version: int | None = None,
) -> Opportunity:
    """Set the probability by hand (it then stays); None makes it follow the step again."""
    opp = locked_editable(opportunity, actor, version=version)
    if opp.is_closed:
        raise SalesRuleError(_("Reopen a closed opportunity before changing it."))
    if probability is None:
        values: dict[str, Any] = {
            "probability": opp.step.probability,
            "probability_is_manual": False,
        }
    else:
        if not isinstance(probability, int) or not 0 <= probability <= 100:
            raise SalesRuleError(
                _("The probability must be between 0 and 100."), field="probability"
            )
        values = {"probability": probability, "probability_is_manual": True}
    changes = set_fields(opp, values)
    if not changes:
        return opp
    save_changes(opp, list(changes))
    record(opp, actor, EventKind.PROBABILITY, changes=changes)
    return opp


@transaction.atomic
def opportunity_plan_next_action(
    *,
    opportunity: Opportunity | int,
    at: datetime,
    actor: User,
    note: str = "",
    version: int | None = None,
) -> Opportunity:
    """Set when the next action is due (back to to-do if it was on standby)."""
    opp = locked_editable(opportunity, actor, version=version)
    if opp.is_closed:
        raise SalesRuleError(_("Reopen a closed opportunity before planning on it."))
    if at is None:
        raise SalesRuleError(_("Say when the next action is due."), field="at")
    _check_length(note, "next_action_note")
    changes = set_fields(
        opp, {"status": Status.TODO, "next_action_at": at, "next_action_note": note}
    )
    if not changes:
        return opp
    save_changes(opp, list(changes))
    record(opp, actor, EventKind.NEXT_ACTION, changes=changes)
    return opp


@transaction.atomic
def opportunity_standby(
    *,
    opportunity: Opportunity | int,
    until: date,
    actor: User,
    note: str = "",
    version: int | None = None,
) -> Opportunity:
    """Park an open opportunity until a date; it reappears in the to-do list that morning."""
    opp = locked_editable(opportunity, actor, version=version)
    if opp.is_closed:
        raise SalesRuleError(_("Reopen a closed opportunity before parking it."))
    if until <= timezone.localdate():
        raise SalesRuleError(_("A standby date must be in the future."), field="until")
    _check_length(note, "next_action_note")
    changes = set_fields(
        opp,
        {
            "status": Status.STANDBY,
            "next_action_at": _standby_datetime(until),
            "next_action_note": note,
        },
    )
    if not changes:
        return opp
    save_changes(opp, list(changes))
    record(opp, actor, EventKind.STANDBY, changes=changes)
    return opp


def _close(
    opp: Opportunity, actor: User, kind: str, values: dict[str, Any], at: datetime | None
) -> Opportunity:
    if opp.is_closed:
        raise SalesRuleError(_("This opportunity is already closed; reopen it first."))
    closed_at = at or timezone.now()
    if closed_at > timezone.now() + timedelta(minutes=5):
        raise SalesRuleError(_("A closing date cannot be in the future."), field="closed_at")
    changes = set_fields(opp, {**values, "closed_at": closed_at, "next_action_at": None})
    save_changes(opp, list(changes))
    record(opp, actor, kind, changes=changes)
    return opp


@transaction.atomic
def opportunity_close_won(
    *,
    opportunity: Opportunity | int,
    actor: User,
    won_amount: int | None = None,
    closed_at: datetime | None = None,
    version: int | None = None,
) -> Opportunity:
    """Close as won; the won amount defaults to the expected amount."""
    opp = locked_editable(opportunity, actor, version=version)
    won = opp.amount if won_amount is None else won_amount
    _check_amount(won, "won_amount")
    return _close(opp, actor, EventKind.WON, {"status": Status.WON, "won_amount": won}, closed_at)


@transaction.atomic
def opportunity_close_lost(
    *,
    opportunity: Opportunity | int,
    actor: User,
    reason: LostReason | None,
    note: str = "",
    closed_at: datetime | None = None,
    version: int | None = None,
) -> Opportunity:
    """Close as lost; a lost reason is required, the note is optional."""
    opp = locked_editable(opportunity, actor, version=version)
    if reason is None:
        raise SalesRuleError(_("Say why it was lost: choose a reason."), field="reason")
    if not reason.is_active:
        raise SalesRuleError(_("This lost reason is no longer in use."), field="reason")
    values = {"status": Status.LOST, "lost_reason": reason, "lost_note": note.strip()}
    return _close(opp, actor, EventKind.LOST, values, closed_at)


@transaction.atomic
def opportunity_cancel(
    *,
    opportunity: Opportunity | int,
    actor: User,
    note: str = "",
    closed_at: datetime | None = None,
    version: int | None = None,
) -> Opportunity:
    """Close as cancelled: the client dropped the project, nobody won it."""
    opp = locked_editable(opportunity, actor, version=version)
    values = {"status": Status.CANCELLED, "lost_note": note.strip()}
    return _close(opp, actor, EventKind.CANCELLED, values, closed_at)


@transaction.atomic
def opportunity_reopen(
    *,
    opportunity: Opportunity | int,
    actor: User,
    next_action_at: datetime | None = None,
    version: int | None = None,
) -> Opportunity:
    """Reopen a closed opportunity into the to-do list; won amount and lost reason are cleared."""
    opp = locked_editable(opportunity, actor, version=version)
    if opp.is_open:
        raise SalesRuleError(_("This opportunity is already open."))
    changes = set_fields(
        opp,
        {
            "status": Status.TODO,
            "closed_at": None,
            "won_amount": None,
            "lost_reason": None,
            "lost_note": "",
            "next_action_at": next_action_at or timezone.now(),
        },
    )
    save_changes(opp, list(changes))
    record(opp, actor, EventKind.REOPENED, changes=changes)
    return opp


@transaction.atomic
def opportunity_duplicate(
    *,
    opportunity: Opportunity | int,
    actor: User,
    title: str,
    expected_close_date: date | None = None,
    next_action_at: datetime | None = None,
    amount: int | None = None,
    owner: User | None = None,
) -> Opportunity:
    """A new opportunity (upsell, renewal) keeping client, contacts, fields, tags and product."""
    source = locked_visible(opportunity, actor)
    new = opportunity_create(
        actor=actor,
        title=title,
        pipeline=source.pipeline,
        owner=owner or actor,
        client=source.client,
        amount=source.amount if amount is None else amount,
        product=source.product,
        expected_close_date=expected_close_date,
        next_action_at=next_action_at,
        description=source.description,
        fields=source.fields,
        tags=list(source.tags.all()),
        contacts=list(source.contacts.values("name", "role", "email", "phone")),
        duplicated_from=source,
    )
    record(new, actor, EventKind.DUPLICATED, data={"from": source.pk, "direction": "to"})
    record(source, actor, EventKind.DUPLICATED, data={"to": new.pk, "direction": "from"})
    return new
