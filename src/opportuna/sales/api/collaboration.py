"""What lives in an opportunity: comments, activities, contacts, tags and the event log.

Everything is reached through the opportunity it belongs to: outside the caller's view it
answers 404. Who may write what is the services' business (teammates may comment and log
activities; only editors change contacts and tags).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from ninja import Query, Router, Status

from opportuna.accounts.models import User
from opportuna.sales import services
from opportuna.sales.api._common import (
    COMMAND_ERRORS,
    CREATED_HEADERS,
    ETAG_HEADER,
    GET_ERRORS,
    TARGET_ERRORS,
    UPDATE_ERRORS,
    IfMatch,
    IfMatchRequired,
    actor,
    check_content_etag,
    cursor_error,
    ref,
    with_etag,
)
from opportuna.sales.models import (
    Activity,
    ActivityType,
    Comment,
    Contact,
    EventKind,
    Tag,
)
from opportuna.sales.schemas import (
    ActivityCompleteIn,
    ActivityIn,
    ActivityOut,
    ActivityPage,
    CommentEditIn,
    CommentIn,
    CommentOut,
    CommentPage,
    ConflictOut,
    ContactDetailOut,
    ContactIn,
    ContactOrderIn,
    ContactPatch,
    EventPage,
    TagIn,
    TagOut,
)
from opportuna.sales.selectors.api import (
    InvalidCursor,
    Page,
    activity_api_page,
    comment_api_page,
    contact_for_update,
    event_api_page,
    opportunity_contacts,
    visible_activity,
    visible_comment,
    visible_contact,
)

router = Router()

Cursor = Query(None, max_length=500)
Limit = Query(50, ge=1, le=200)


def _page(read: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        page: Page = read(**kwargs)
    except InvalidCursor as exc:
        raise cursor_error() from exc
    return {"items": page.rows, "next_cursor": page.next_cursor}


# Comments --------------------------------------------------------------------------------


@router.get(
    "/opportunities/{opportunity_id}/comments",
    response={200: CommentPage, **GET_ERRORS},
    url_name="comment_list",
    summary="Comments of an opportunity, newest first",
    tags=["comments"],
)
def comment_list(
    request: HttpRequest,
    opportunity_id: int,
    pinned: bool | None = None,
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> dict[str, Any]:
    return _page(
        comment_api_page,
        user=actor(request),
        opportunity=opportunity_id,
        pinned=pinned,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/opportunities/{opportunity_id}/comments",
    response={201: CommentOut, **TARGET_ERRORS},
    url_name="comment_add",
    summary="Comment on an opportunity",
    tags=["comments"],
)
def comment_add(request: HttpRequest, opportunity_id: int, payload: CommentIn) -> Status[Comment]:
    comment = services.comment_add(
        opportunity=opportunity_id, actor=actor(request), body=payload.body, pinned=payload.pinned
    )
    return Status(201, comment)


@router.patch(
    "/comments/{comment_id}",
    response={200: CommentOut, **TARGET_ERRORS},
    url_name="comment_edit",
    summary="Reword a comment (its author only)",
    tags=["comments"],
)
def comment_edit(request: HttpRequest, comment_id: int, payload: CommentEditIn) -> Comment:
    caller = actor(request)
    return services.comment_edit(
        comment=visible_comment(user=caller, pk=comment_id), actor=caller, body=payload.body
    )


@router.delete(
    "/comments/{comment_id}",
    response={204: None, **COMMAND_ERRORS},
    url_name="comment_delete",
    summary="Delete a comment (its author, or whoever may edit the opportunity)",
    tags=["comments"],
)
def comment_delete(request: HttpRequest, comment_id: int) -> Status[None]:
    caller = actor(request)
    services.comment_delete(comment=visible_comment(user=caller, pk=comment_id), actor=caller)
    return Status(204, None)


@router.post(
    "/comments/{comment_id}/pin",
    response={200: CommentOut, **COMMAND_ERRORS},
    url_name="comment_pin",
    summary="Keep a comment on top of its opportunity",
    tags=["comments"],
)
def comment_pin(request: HttpRequest, comment_id: int) -> Comment:
    caller = actor(request)
    return services.comment_pin(comment=visible_comment(user=caller, pk=comment_id), actor=caller)


@router.post(
    "/comments/{comment_id}/unpin",
    response={200: CommentOut, **COMMAND_ERRORS},
    url_name="comment_unpin",
    summary="Let a pinned comment go back to the timeline",
    tags=["comments"],
)
def comment_unpin(request: HttpRequest, comment_id: int) -> Comment:
    caller = actor(request)
    return services.comment_unpin(comment=visible_comment(user=caller, pk=comment_id), actor=caller)


# Activities ------------------------------------------------------------------------------


@router.get(
    "/opportunities/{opportunity_id}/activities",
    response={200: ActivityPage, **GET_ERRORS},
    url_name="activity_list",
    summary="Activities of an opportunity, newest first",
    tags=["activities"],
)
def activity_list(
    request: HttpRequest,
    opportunity_id: int,
    planned: bool | None = None,
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> dict[str, Any]:
    return _page(
        activity_api_page,
        user=actor(request),
        opportunity=opportunity_id,
        planned=planned,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/opportunities/{opportunity_id}/activities",
    response={201: ActivityOut, **TARGET_ERRORS},
    url_name="activity_add",
    summary="Log an activity done (done_at), or plan one (due_at)",
    tags=["activities"],
)
def activity_add(
    request: HttpRequest, opportunity_id: int, payload: ActivityIn
) -> Status[Activity]:
    caller = actor(request)
    activity_type = ref(ActivityType.objects.all(), payload.type, "type")
    if payload.due_at is not None:
        activity = services.activity_plan(
            opportunity=opportunity_id,
            actor=caller,
            type=activity_type,
            due_at=payload.due_at,
            note=payload.note,
            user=None if payload.user is None else ref(User.objects.all(), payload.user, "user"),
        )
    else:
        activity = services.activity_log(
            opportunity=opportunity_id,
            actor=caller,
            type=activity_type,
            note=payload.note,
            done_at=payload.done_at,
        )
    return Status(201, activity)


@router.post(
    "/activities/{activity_id}/complete",
    response={200: ActivityOut, **TARGET_ERRORS},
    url_name="activity_complete",
    summary="Mark a planned activity as done",
    tags=["activities"],
)
def activity_complete(
    request: HttpRequest, activity_id: int, payload: ActivityCompleteIn | None = None
) -> Activity:
    caller = actor(request)
    return services.activity_complete(
        activity=visible_activity(user=caller, pk=activity_id),
        actor=caller,
        done_at=payload.done_at if payload else None,
        note=payload.note if payload else None,
    )


# Contacts --------------------------------------------------------------------------------


@router.get(
    "/opportunities/{opportunity_id}/contacts",
    response={200: list[ContactDetailOut], **GET_ERRORS},
    url_name="contact_list",
    summary="The people involved in this sale, main contact first",
    tags=["contacts"],
)
def contact_list(request: HttpRequest, opportunity_id: int) -> list[Contact]:
    return opportunity_contacts(user=actor(request), opportunity=opportunity_id)


@router.post(
    "/opportunities/{opportunity_id}/contacts",
    response={201: ContactDetailOut, **TARGET_ERRORS},
    url_name="contact_add",
    summary="Add a contact after the existing ones",
    tags=["contacts"],
    openapi_extra={"responses": {201: CREATED_HEADERS}},
)
def contact_add(
    request: HttpRequest, response: HttpResponse, opportunity_id: int, payload: ContactIn
) -> Status[Contact]:
    contact = services.contact_add(
        opportunity=opportunity_id, actor=actor(request), **payload.model_dump()
    )
    response["Location"] = reverse("api:contact_get", kwargs={"contact_id": contact.pk})
    return Status(201, with_etag(response, contact))


@router.post(
    "/opportunities/{opportunity_id}/contacts/reorder",
    response={200: list[ContactDetailOut], **TARGET_ERRORS},
    url_name="contact_reorder",
    summary="Put the contacts in a new order; the first becomes the main contact",
    tags=["contacts"],
)
def contact_reorder(
    request: HttpRequest, opportunity_id: int, payload: ContactOrderIn
) -> list[Contact]:
    caller = actor(request)
    return services.contact_reorder(
        opportunity=opportunity_id, actor=caller, contact_ids=payload.contacts
    )


@router.get(
    "/contacts/{contact_id}",
    response={200: ContactDetailOut, **GET_ERRORS},
    url_name="contact_get",
    summary="One contact, with its ETag",
    tags=["contacts"],
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def contact_detail(request: HttpRequest, response: HttpResponse, contact_id: int) -> Contact:
    return with_etag(response, visible_contact(user=actor(request), pk=contact_id))


@router.patch(
    "/contacts/{contact_id}",
    response={200: ContactDetailOut, **UPDATE_ERRORS},
    url_name="contact_update",
    summary="Change a contact (needs If-Match)",
    tags=["contacts"],
    openapi_extra={"responses": {200: ETAG_HEADER}},
)
def contact_update(
    request: HttpRequest,
    response: HttpResponse,
    contact_id: int,
    payload: ContactPatch,
    if_match: str | None = IfMatchRequired,
) -> Contact:
    caller = actor(request)
    with transaction.atomic():
        contact = contact_for_update(user=caller, pk=contact_id)
        check_content_etag(contact, if_match, required=True)
        contact = services.contact_update(
            contact=contact, actor=caller, **payload.model_dump(exclude_unset=True)
        )
    return with_etag(response, contact)


@router.delete(
    "/contacts/{contact_id}",
    response={204: None, **COMMAND_ERRORS, 412: ConflictOut},
    url_name="contact_remove",
    summary="Remove a contact from its opportunity",
    tags=["contacts"],
)
def contact_remove(
    request: HttpRequest, contact_id: int, if_match: str | None = IfMatch
) -> Status[None]:
    caller = actor(request)
    with transaction.atomic():
        contact = contact_for_update(user=caller, pk=contact_id)
        check_content_etag(contact, if_match, required=False)
        services.contact_remove(contact=contact, actor=caller)
    return Status(204, None)


# Tags ------------------------------------------------------------------------------------


@router.post(
    "/opportunities/{opportunity_id}/tags",
    response={200: TagOut, **TARGET_ERRORS},
    url_name="opportunity_tag_add",
    summary="Label an opportunity (a new name creates the tag)",
    tags=["tags"],
)
def opportunity_tag_add(request: HttpRequest, opportunity_id: int, payload: TagIn) -> Tag:
    return services.tag_add(opportunity=opportunity_id, actor=actor(request), tag=payload.name)


@router.delete(
    "/opportunities/{opportunity_id}/tags/{tag_id}",
    response={204: None, **COMMAND_ERRORS},
    url_name="opportunity_tag_remove",
    summary="Take a label off an opportunity (the tag stays)",
    tags=["tags"],
)
def opportunity_tag_remove(request: HttpRequest, opportunity_id: int, tag_id: int) -> Status[None]:
    tag = Tag.objects.get(pk=tag_id)
    services.tag_remove(opportunity=opportunity_id, actor=actor(request), tag=tag)
    return Status(204, None)


# Events ----------------------------------------------------------------------------------


@router.get(
    "/opportunities/{opportunity_id}/events",
    response={200: EventPage, **GET_ERRORS},
    url_name="event_list",
    summary="The opportunity's event log (its timeline), newest first",
    tags=["opportunities"],
)
def event_list(
    request: HttpRequest,
    opportunity_id: int,
    kind: EventKind | None = None,
    cursor: str | None = Cursor,
    limit: int = Limit,
) -> dict[str, Any]:
    return _page(
        event_api_page,
        user=actor(request),
        opportunity=opportunity_id,
        kind=kind,
        cursor=cursor,
        limit=limit,
    )
