"""Writes inside an opportunity: comments, activities, contacts and tags."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    Activity,
    ActivityType,
    Comment,
    Contact,
    EventKind,
    Opportunity,
    Tag,
)
from opportuna.sales.selectors import can_edit_opportunity
from opportuna.sales.services._common import locked_editable, locked_visible, record, to_json
from opportuna.sales.services.opportunities import _contact, _tag

# Comments -------------------------------------------------------------------------------


@transaction.atomic
def comment_add(
    *, opportunity: Opportunity | int, actor: User, body: str, pinned: bool = False
) -> Comment:
    """Anyone who sees the opportunity may comment on it."""
    opp = locked_visible(opportunity, actor)
    body = (body or "").strip()
    if not body:
        raise SalesRuleError(_("A comment cannot be empty."), field="body")
    comment = Comment.objects.create(opportunity=opp, author=actor, body=body, pinned=pinned)
    record(opp, actor, EventKind.COMMENT_ADDED, data={"comment": comment.pk, "pinned": pinned})
    return comment


def _locked_comment(comment: Comment | int, actor: User) -> tuple[Opportunity, Comment]:
    """Lock the comment's opportunity (it must be one the actor sees), then the comment."""
    pk = comment.pk if isinstance(comment, Comment) else comment
    opportunity_id = Comment.objects.filter(pk=pk).values_list("opportunity_id", flat=True)
    opp = locked_visible(opportunity_id.first() or 0, actor)
    return opp, Comment.objects.select_for_update().get(pk=pk, opportunity=opp)


def _comment_set_pinned(comment: Comment, actor: User, pinned: bool) -> Comment:
    opp, comment = _locked_comment(comment, actor)
    if comment.author_id != actor.pk and not can_edit_opportunity(actor, opp):
        raise PermissionDenied(_("Only the author or the opportunity's editors can pin this."))
    if comment.pinned == pinned:
        return comment
    comment.pinned = pinned
    comment.save(update_fields=["pinned"])
    kind = EventKind.COMMENT_PINNED if pinned else EventKind.COMMENT_UNPINNED
    record(opp, actor, kind, data={"comment": comment.pk})
    return comment


@transaction.atomic
def comment_pin(*, comment: Comment, actor: User) -> Comment:
    """Keep a comment on top of the opportunity page."""
    return _comment_set_pinned(comment, actor, True)


@transaction.atomic
def comment_unpin(*, comment: Comment, actor: User) -> Comment:
    """Let a pinned comment go back to the timeline."""
    return _comment_set_pinned(comment, actor, False)


@transaction.atomic
def comment_edit(*, comment: Comment | int, actor: User, body: str) -> Comment:
    """Only its author may reword a comment; the log keeps what it said before."""
    opp, found = _locked_comment(comment, actor)
    if found.author_id != actor.pk:
        raise PermissionDenied(_("Only the author can edit a comment."))
    body = (body or "").strip()
    if not body:
        raise SalesRuleError(_("A comment cannot be empty."), field="body")
    if body == found.body:
        return found
    record(
        opp,
        actor,
        EventKind.COMMENT_EDITED,
        changes={"body": [found.body, body]},
        data={"comment": found.pk},
    )
    found.body = body
    found.edited_at = timezone.now()
    found.save(update_fields=["body", "edited_at"])
    return found


@transaction.atomic
def comment_delete(*, comment: Comment | int, actor: User) -> None:
    """Its author, or whoever may edit the opportunity, may delete a comment. The log keeps
    that it existed and who deleted it, not its words."""
    opp, found = _locked_comment(comment, actor)
    if found.author_id != actor.pk and not can_edit_opportunity(actor, opp):
        raise PermissionDenied(_("Only the author or the opportunity's editors can delete this."))
    record(
        opp,
        actor,
        EventKind.COMMENT_DELETED,
        data={"comment": found.pk, "author": found.author_id, "pinned": found.pinned},
    )
    found.delete()


# Activities -----------------------------------------------------------------------------


def _active_type(activity_type: ActivityType) -> ActivityType:
    if not activity_type.is_active:
        raise SalesRuleError(_("This activity type is no longer in use."), field="type")
    return activity_type


def _done_at(done_at: datetime | None) -> datetime:
    """When it was done: now by default, never in the future (a future one is planned)."""
    done_at = done_at or timezone.now()
    if done_at > timezone.now() + timedelta(minutes=5):
        raise SalesRuleError(
            _("A logged activity cannot be in the future; plan it."), field="done_at"
        )
    return done_at


@transaction.atomic
def activity_log(
    *,
    opportunity: Opportunity | int,
    actor: User,
    type: ActivityType,  # noqa: A002 - the domain's word
    note: str = "",
    done_at: datetime | None = None,
) -> Activity:
    """Record something done on the opportunity (a call, a visit, a demo, ...)."""
    opp = locked_visible(opportunity, actor)
    done_at = _done_at(done_at)
    activity = Activity.objects.create(
        opportunity=opp, type=_active_type(type), user=actor, done_at=done_at, note=note.strip()
    )
    record(
        opp,
        actor,
        EventKind.ACTIVITY_LOGGED,
        data={"activity": activity.pk, "type": type.key, "done_at": to_json(done_at)},
    )
    return activity


@transaction.atomic
def activity_plan(
    *,
    opportunity: Opportunity | int,
    actor: User,
    type: ActivityType,  # noqa: A002 - the domain's word
    due_at: datetime,
    note: str = "",
    user: User | None = None,
) -> Activity:
    """Plan an activity (a task) for `user` (default: the actor) on an open opportunity."""
    opp = locked_visible(opportunity, actor)
    if opp.is_closed:
        raise SalesRuleError(_("Reopen a closed opportunity before planning on it."))
    if due_at is None:
        raise SalesRuleError(_("Say when the activity is due."), field="due_at")
    assignee = user or actor
    if assignee.pk != actor.pk and not can_edit_opportunity(actor, opp):
        raise PermissionDenied(_("You cannot plan activities for others on this opportunity."))
    activity = Activity.objects.create(
        opportunity=opp, type=_active_type(type), user=assignee, due_at=due_at, note=note.strip()
    )
    record(
        opp,
        actor,
        EventKind.ACTIVITY_PLANNED,
        data={"activity": activity.pk, "type": type.key, "due_at": to_json(due_at)},
    )
    return activity


@transaction.atomic
def activity_complete(
    *, activity: Activity, actor: User, done_at: datetime | None = None, note: str | None = None
) -> Activity:
    """Mark a planned activity as done (now, unless told when)."""
    opp = locked_visible(activity.opportunity_id, actor)
    activity = Activity.objects.select_for_update().select_related("type").get(pk=activity.pk)
    if activity.done_at is not None:
        raise SalesRuleError(_("This activity is already done."))
    if activity.user_id != actor.pk and not can_edit_opportunity(actor, opp):
        raise PermissionDenied(_("Only the assignee or the opportunity's editors can do this."))
    activity.done_at = _done_at(done_at)
    fields = ["done_at"]
    if note is not None:
        activity.note = note.strip()
        fields.append("note")
    activity.save(update_fields=fields)
    record(
        opp,
        actor,
        EventKind.ACTIVITY_COMPLETED,
        data={
            "activity": activity.pk,
            "type": activity.type.key,
            "done_at": to_json(activity.done_at),
        },
    )
    return activity


# Contacts -------------------------------------------------------------------------------


@transaction.atomic
def contact_add(
    *,
    opportunity: Opportunity | int,
    actor: User,
    name: str,
    role: str = "",
    email: str = "",
    phone: str = "",
) -> Contact:
    """Add a person to the opportunity, after the existing ones (the first is the main one)."""
    opp = locked_editable(opportunity, actor)
    values = _contact({"name": name, "role": role, "email": email, "phone": phone})
    last = opp.contacts.aggregate(last=Max("position"))["last"]
    contact = Contact.objects.create(
        opportunity=opp, position=0 if last is None else last + 1, **values
    )
    record(opp, actor, EventKind.CONTACT_ADDED, data={"contact": contact.pk, "name": contact.name})
    return contact


@transaction.atomic
def contact_update(*, contact: Contact, actor: User, **values: Any) -> Contact:
    """Change a contact's name, role, email or phone."""
    opp = locked_editable(contact.opportunity_id, actor)
    contact = Contact.objects.select_for_update().get(pk=contact.pk, opportunity=opp)
    current = {k: getattr(contact, k) for k in ("name", "role", "email", "phone")}
    cleaned = _contact({**current, **values})
    changes = {k: [current[k], v] for k, v in cleaned.items() if current[k] != v}
    if not changes:
        return contact
    for k, v in cleaned.items():
        setattr(contact, k, v)
    contact.save(update_fields=list(changes))
    record(opp, actor, EventKind.CONTACT_UPDATED, changes=changes, data={"contact": contact.pk})
    return contact


@transaction.atomic
def contact_remove(*, contact: Contact, actor: User) -> None:
    """Remove a contact from the opportunity."""
    opp = locked_editable(contact.opportunity_id, actor)
    contact = Contact.objects.get(pk=contact.pk, opportunity=opp)
    record(
        opp, actor, EventKind.CONTACT_REMOVED, data={"contact": contact.pk, "name": contact.name}
    )
    contact.delete()


@transaction.atomic
def contact_reorder(
    *, opportunity: Opportunity | int, actor: User, contact_ids: Sequence[int]
) -> list[Contact]:
    """Put the contacts in the given order; the first becomes the main contact."""
    opp = locked_editable(opportunity, actor)
    contacts = {c.pk: c for c in opp.contacts.all()}
    if sorted(contact_ids) != sorted(contacts):
        raise SalesRuleError(_("The new order must list every contact of this opportunity once."))
    before = [c.pk for c in sorted(contacts.values(), key=lambda c: (c.position, c.pk))]
    ordered = [contacts[pk] for pk in contact_ids]
    for position, contact in enumerate(ordered):
        contact.position = position
    Contact.objects.bulk_update(ordered, ["position"])
    if before != list(contact_ids):
        record(
            opp,
            actor,
            EventKind.CONTACTS_REORDERED,
            changes={"contacts": [before, list(contact_ids)]},
        )
    return ordered


# Tags -----------------------------------------------------------------------------------


@transaction.atomic
def tag_add(*, opportunity: Opportunity | int, actor: User, tag: Tag | str) -> Tag:
    """Label the opportunity; a new name creates the tag."""
    opp = locked_editable(opportunity, actor)
    tag_object = _tag(tag)
    if not opp.tags.filter(pk=tag_object.pk).exists():
        opp.tags.add(tag_object)
        record(
            opp, actor, EventKind.TAG_ADDED, data={"tag": tag_object.pk, "name": tag_object.name}
        )
    return tag_object


@transaction.atomic
def tag_remove(*, opportunity: Opportunity | int, actor: User, tag: Tag) -> None:
    """Take a label off the opportunity (the tag itself stays)."""
    opp = locked_editable(opportunity, actor)
    if opp.tags.filter(pk=tag.pk).exists():
        opp.tags.remove(tag)
        record(opp, actor, EventKind.TAG_REMOVED, data={"tag": tag.pk, "name": tag.name})
