"""What every sales service shares: access checks, locking, events and announcements."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.core.announce import Announcement, announce, announce_many
from opportuna.sales.errors import ConflictError
from opportuna.sales.models import EventKind, Opportunity, OpportunityEvent
from opportuna.sales.selectors import can_edit_opportunity, visible_opportunities

# Event kinds announced under another name than "opportunity.<kind>".
ANNOUNCED_AS = {
    EventKind.COMMENT_ADDED: "comment.added",
    EventKind.ACTIVITY_LOGGED: "activity.logged",
}


def to_json(value: Any) -> Any:
    """A value as the event log stores it: ids for objects, ISO text for dates, str for Decimal."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise PermissionDenied(_("Only an admin can change the account's configuration."))


def require_active(actor: User) -> None:
    if not actor.is_active:
        raise PermissionDenied(_("This user is deactivated."))


def locked_visible(opportunity: Opportunity | int, actor: User) -> Opportunity:
    """Re-read the opportunity under a row lock; outside the actor's view it does not exist."""
    require_active(actor)
    pk = opportunity if isinstance(opportunity, int) else opportunity.pk
    return visible_opportunities(actor).select_for_update(of=("self",)).get(pk=pk)


def locked_editable(
    opportunity: Opportunity | int, actor: User, *, version: int | None = None
) -> Opportunity:
    """Like `locked_visible`, and the actor may edit it, and `version` (if given) is current."""
    opp = locked_visible(opportunity, actor)
    if not can_edit_opportunity(actor, opp):
        raise PermissionDenied(
            _("Only the owner, a manager of the owner's team or an admin can change this.")
        )
    if version is not None and version != opp.version:
        raise ConflictError(
            _("Someone else changed this opportunity since you opened it."),
            current_version=opp.version,
        )
    return opp


def save_changes(opportunity: Opportunity, changed: list[str]) -> None:
    """Write only the changed columns and bump the version (optimistic concurrency)."""
    opportunity.version += 1
    opportunity.save(update_fields=[*changed, "version", "updated_at"])


def set_fields(opportunity: Opportunity, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Assign the values that differ; return {field: [before, after]} in event form."""
    changes: dict[str, list[Any]] = {}
    for name, new in values.items():
        field = Opportunity._meta.get_field(name)
        attname = field.attname  # type: ignore[union-attr]
        old = getattr(opportunity, attname)
        new_raw = new.pk if isinstance(new, models.Model) else new
        if old == new_raw:
            continue
        changes[name] = [to_json(old), to_json(new_raw)]
        setattr(opportunity, attname, new_raw)
    return changes


def record(
    opportunity: Opportunity,
    actor: User | None,
    kind: str,
    *,
    changes: dict[str, list[Any]] | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> OpportunityEvent:
    """Append one event to the opportunity's log and announce it after commit."""
    event = OpportunityEvent.objects.create(
        opportunity=opportunity,
        actor=actor,
        at=at or timezone.now(),
        kind=kind,
        changes=changes or {},
        data=data or {},
    )
    _announce(event)
    return event


def record_many(events: Iterable[OpportunityEvent]) -> list[OpportunityEvent]:
    """Append many events in one statement (merges, step defaults) and announce each."""
    created = OpportunityEvent.objects.bulk_create(events, batch_size=1000)
    announce_events(created)
    return created


def event_announcement(
    event_id: int,
    opportunity_id: int,
    actor_id: int | None,
    kind: str,
    changes: dict[str, list[Any]],
    data: dict[str, Any],
) -> Announcement:
    """What an event of the log announces (for events written without a model instance)."""
    return (
        ANNOUNCED_AS.get(kind, f"opportunity.{kind}"),
        actor_id,
        opportunity_id,
        {"event_id": event_id, "changes": changes, **data},
    )


def _announcement(event: OpportunityEvent) -> Announcement:
    return event_announcement(
        event.pk, event.opportunity_id, event.actor_id, event.kind, event.changes, event.data
    )


def _announce(event: OpportunityEvent) -> None:
    kind, actor_id, object_id, data = _announcement(event)
    announce(kind, actor_id=actor_id, object_id=object_id, data=data)


def announce_events(events: Iterable[OpportunityEvent]) -> None:
    """Announce events written together in bulk (see `core.announce.announce_many`)."""
    announce_many(_announcement(event) for event in events)
