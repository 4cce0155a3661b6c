"""Writes on client folders."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.core.announce import announce
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Client, EventKind, Opportunity, OpportunityEvent
from opportuna.sales.services._common import record_many, require_active

CLIENT_FIELDS = frozenset(
    {
        "name",
        "vat_number",
        "email",
        "phone",
        "website",
        "address",
        "city",
        "country",
        "notes",
        "external_id",
    }
)


def _clean(client: Client) -> None:
    client.name = (client.name or "").strip()
    if not client.name:
        raise SalesRuleError(_("A client folder needs a name."), field="name")
    try:
        client.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise SalesRuleError(" ".join(messages), field=field) from exc


@transaction.atomic
def client_create(*, actor: User, name: str, **values: Any) -> Client:
    """Open a client folder; any active user may."""
    require_active(actor)
    unknown = set(values) - CLIENT_FIELDS
    if unknown:
        raise TypeError(f"client_create does not take {sorted(unknown)}")
    client = Client(name=name, **values)
    _clean(client)
    client.save()
    announce("client.created", actor_id=actor.pk, object_id=client.pk, data={"name": client.name})
    return client


@transaction.atomic
def client_update(*, client: Client, actor: User, **values: Any) -> Client:
    """Change a client folder's details."""
    require_active(actor)
    unknown = set(values) - CLIENT_FIELDS
    if unknown:
        raise TypeError(f"client_update does not take {sorted(unknown)}")
    client = Client.objects.select_for_update().get(pk=client.pk)
    changes = {k: [getattr(client, k), v] for k, v in values.items() if getattr(client, k) != v}
    if not changes:
        return client
    for key, value in values.items():
        setattr(client, key, value)
    _clean(client)
    client.save(update_fields=list(changes))
    announce("client.updated", actor_id=actor.pk, object_id=client.pk, data={"changes": changes})
    return client


@transaction.atomic
def client_merge(*, source: Client, target: Client, actor: User) -> Client:
    """Move every opportunity of `source` into `target`, then delete `source` (managers, admins)."""
    if not (actor.is_admin or actor.is_manager):
        raise PermissionDenied(_("Only a manager or an admin can merge client folders."))
    if source.pk == target.pk:
        raise SalesRuleError(_("A client folder cannot be merged into itself."))
    source = Client.objects.select_for_update().get(pk=source.pk)
    target = Client.objects.select_for_update().get(pk=target.pk)
    moved = Opportunity.objects.filter(client=source)
    now = timezone.now()
    # One event per moved opportunity, written in bulk (merges can move hundreds).
    record_many(
        OpportunityEvent(
            opportunity_id=pk,
            actor=actor,
            at=now,
            kind=EventKind.CLIENT_CHANGED,
            changes={"client": [source.pk, target.pk]},
            data={"merge": True},
        )
        for pk in moved.values_list("pk", flat=True).iterator()
    )
    for field in ("vat_number", "email", "phone", "website", "address", "city", "country"):
        if not getattr(target, field) and getattr(source, field):
            setattr(target, field, getattr(source, field))
    if source.notes:
        target.notes = f"{target.notes}\n\n{source.notes}".strip()
    target.save()
    count = moved.update(client=target, version=F("version") + 1, updated_at=now)
    announce(
        "client.merged",
        actor_id=actor.pk,
        object_id=target.pk,
        data={"merged": source.pk, "opportunities": count},
    )
    source.delete()
    return target
