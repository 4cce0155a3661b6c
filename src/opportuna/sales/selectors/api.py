"""Reads for the REST API: filtered lists in keyset pages, and single objects through the door.

Every list is keyset-paginated on (sort key, id): a page starts strictly after the last row of
the previous one, so pages neither repeat nor skip rows whatever is added meanwhile, and a
deep page costs what the first one does. A cursor names its sort; it is opaque to clients.
Everything inside an opportunity is reached through `visible_opportunities(user)`: an object
of an opportunity the user may not see does not exist (DoesNotExist, a 404).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from django.db import models
from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.db.models.expressions import OrderBy
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.accounts.selectors import team_members
from opportuna.sales.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Activity,
    Client,
    Comment,
    Contact,
    Opportunity,
    OpportunityEvent,
    OpportunityQuerySet,
    Proposal,
    ProposalLine,
    Status,
)
from opportuna.sales.selectors import visible_activities, visible_clients, visible_opportunities

M = TypeVar("M", bound=models.Model)
Kind = Literal["int", "str", "date", "datetime"]

# Opportunity sorts: the allow-list, with the type of each key (for cursors); nullable ones
# sort last in both directions.
OPPORTUNITY_SORTS: dict[str, Kind] = {
    "id": "int",
    "created_at": "datetime",
    "updated_at": "datetime",
    "title": "str",
    "amount": "int",
    "probability": "int",
    "expected_close_date": "date",
    "next_action_at": "datetime",
}
NULLABLE = frozenset({"expected_close_date", "next_action_at"})
DEFAULT_OPPORTUNITY_SORT = "-id"


class InvalidCursor(ValueError):
    """A cursor that this list did not hand out (or for another sort)."""


# Keyset pages ------------------------------------------------------------------------------


def _encode(sort: str, value: Any, pk: int) -> str:
    if isinstance(value, datetime | date):
        value = value.isoformat()
    raw = json.dumps([sort, value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str, kind: Kind, nullable: bool) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, pk = json.loads(raw)
        if cursor_sort != sort or not _is_int(pk):
            raise InvalidCursor
        if value is None and nullable:
            return None, pk
        if kind == "int" and _is_int(value):
            return value, pk
        if kind == "str" and isinstance(value, str):
            return value, pk
        if kind == "date" and isinstance(value, str):
            return date.fromisoformat(value), pk
        if kind == "datetime" and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            if timezone.is_aware(moment):
                return moment, pk
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor from exc
    raise InvalidCursor


def _is_int(value: Any) -> bool:
    # 64-bit at most: a database cannot compare with anything larger.
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _after(key: str, descending: bool, nullable: bool, value: Any, pk: int) -> Q:
    """Rows after (value, pk) in the order (key, pk), NULL keys last in both directions."""
    beyond = "lt" if descending else "gt"
    if key == "id":
        return Q(**{f"pk__{beyond}": pk})
    if value is None:
        return Q(**{f"{key}__isnull": True, f"pk__{beyond}": pk})
    after = Q(**{f"{key}__{beyond}": value}) | Q(**{key: value, f"pk__{beyond}": pk})
    return after | Q(**{f"{key}__isnull": True}) if nullable else after


def keyset_order(field: F, descending: bool, nullable: bool = False) -> OrderBy:
    """`field` in the page's direction, NULLs last. Said only of a nullable key: on a NOT
    NULL one, PostgreSQL would not read `NULLS LAST` from an index in that order (it does not
    know no NULL is there) and would sort every row to give one page."""
    if descending:
        return field.desc(nulls_last=True) if nullable else field.desc()
    return field.asc(nulls_last=True) if nullable else field.asc()


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def keyset_page(
    queryset: QuerySet[M],
    *,
    sort: str,
    kinds: Mapping[str, Kind],
    cursor: str | None,
    limit: int,
    nullable: frozenset[str] = frozenset(),
) -> Page:
    """One page of `queryset` in `sort` order ("key" or "-key", key in `kinds`): one query."""
    key = sort.removeprefix("-")
    descending = sort.startswith("-")
    if key not in kinds:
        raise ValueError(f"unknown sort {sort!r}")
    if cursor:
        value, pk = _decode(cursor, sort, kinds[key], key in nullable)
        queryset = queryset.filter(_after(key, descending, key in nullable, value, pk))
    field = F("pk") if key == "id" else F(key)
    ordering = [keyset_order(field, descending, key in nullable), keyset_order(F("pk"), descending)]
    rows = list(queryset.order_by(*ordering)[: limit + 1])
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    value = last.pk if key == "id" else getattr(last, key)
    return Page(rows[:limit], _encode(sort, value, last.pk))


# Opportunities -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OpportunityFilters:
    """The board's filters, plus the list's status and pipeline/step, plus a sync cursor."""

    status: str | None = None  # a Status value, "open" or "closed"
    owner: int | None = None
    team: int | None = None
    mine: bool = False
    pipeline: int | None = None
    step: int | None = None
    client: int | None = None
    product: int | None = None
    tag: str | None = None  # a tag name, any case
    q: str | None = None  # words in the title or the client folder's name
    updated_after: datetime | None = None


def api_opportunities(*, user: User, filters: OpportunityFilters) -> OpportunityQuerySet:
    """The visible opportunities matching `filters`, with what the API shows of each."""
    queryset = visible_opportunities(user)
    exact = {
        "owner_id": user.pk if filters.mine else filters.owner,
        "owner__in": None if filters.team is None else team_members(filters.team),
        "pipeline_id": filters.pipeline,
        "step_id": filters.step,
        "client_id": filters.client,
        "product_id": filters.product,
    }
    queryset = queryset.filter(**{k: v for k, v in exact.items() if v is not None})
    if filters.mine and filters.owner is not None and filters.owner != user.pk:
        queryset = queryset.none()
    if filters.status == "open":
        queryset = queryset.filter(status__in=OPEN_STATUSES)
    elif filters.status == "closed":
        queryset = queryset.filter(status__in=CLOSED_STATUSES)
    elif filters.status in Status.values:
        queryset = queryset.filter(status=filters.status)
    if filters.tag and filters.tag.strip():
        tagged = Opportunity.tags.through.objects.filter(
            opportunity_id=OuterRef("pk"), tag__name__iexact=filters.tag.strip()
        )
        queryset = queryset.filter(Exists(tagged))
    text = (filters.q or "").strip()
    if text:
        queryset = queryset.filter(Q(title__icontains=text) | Q(client__name__icontains=text))
    if filters.updated_after is not None:
        queryset = queryset.filter(updated_at__gt=filters.updated_after)
    return queryset.prefetch_related("tags", "contacts")


def opportunity_api_page(
    *,
    user: User,
    filters: OpportunityFilters,
    sort: str = DEFAULT_OPPORTUNITY_SORT,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of visible opportunities: three queries (rows, their tags, their contacts)."""
    return keyset_page(
        api_opportunities(user=user, filters=filters),
        sort=sort,
        kinds=OPPORTUNITY_SORTS,
        cursor=cursor,
        limit=limit,
        nullable=NULLABLE,
    )


def opportunity_api_get(*, user: User, pk: int) -> Opportunity:
    """One visible opportunity with its tags and contacts (3 queries); DoesNotExist else."""
    return visible_opportunities(user).prefetch_related("tags", "contacts").get(pk=pk)


def _visible_pk(user: User, pk: int) -> int:
    """`pk` if `user` sees that opportunity (one query); DoesNotExist (404) otherwise."""
    if not visible_opportunities(user).filter(pk=pk).exists():
        raise Opportunity.DoesNotExist
    return pk


# Client folders --------------------------------------------------------------------------


def client_api_page(
    *,
    user: User,
    q: str | None = None,
    external_id: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Client folders by name, matching `q` anywhere in the name: one query."""
    queryset = visible_clients(user)
    if q and q.strip():
        queryset = queryset.filter(name__icontains=q.strip())
    if external_id is not None:
        queryset = queryset.filter(external_id=external_id)
    return keyset_page(queryset, sort="name", kinds={"name": "str"}, cursor=cursor, limit=limit)


def client_for_update(*, user: User, pk: int) -> Client:
    """A client folder locked for the rest of the transaction; DoesNotExist otherwise."""
    return visible_clients(user).select_for_update().get(pk=pk)


# Comments, activities, events: newest first ------------------------------------------------


def comment_api_page(
    *, user: User, opportunity: int, pinned: bool | None, cursor: str | None, limit: int
) -> Page:
    """The comments of a visible opportunity, newest first: two queries."""
    comments = Comment.objects.filter(opportunity_id=_visible_pk(user, opportunity))
    if pinned is not None:
        comments = comments.filter(pinned=pinned)
    return keyset_page(
        comments, sort="-created_at", kinds={"created_at": "datetime"}, cursor=cursor, limit=limit
    )


def visible_comment(*, user: User, pk: int) -> Comment:
    return Comment.objects.filter(opportunity__in=visible_opportunities(user)).get(pk=pk)


def activity_api_page(
    *, user: User, opportunity: int, planned: bool | None, cursor: str | None, limit: int
) -> Page:
    """The activities of a visible opportunity, newest first: two queries."""
    activities = Activity.objects.filter(opportunity_id=_visible_pk(user, opportunity))
    if planned is not None:
        activities = activities.filter(done_at__isnull=planned)
    return keyset_page(activities, sort="-id", kinds={"id": "int"}, cursor=cursor, limit=limit)


def visible_activity(*, user: User, pk: int) -> Activity:
    return visible_activities(user).get(pk=pk)


def event_api_page(
    *, user: User, opportunity: int, kind: str | None, cursor: str | None, limit: int
) -> Page:
    """The event log of a visible opportunity, newest first: two queries."""
    events = OpportunityEvent.objects.filter(opportunity_id=_visible_pk(user, opportunity))
    if kind is not None:
        events = events.filter(kind=kind)
    return keyset_page(events, sort="-at", kinds={"at": "datetime"}, cursor=cursor, limit=limit)


# Contacts and proposals: a few per opportunity, listed whole ------------------------------


def opportunity_contacts(*, user: User, opportunity: int) -> list[Contact]:
    """The contacts of a visible opportunity, main one first: two queries."""
    contacts = Contact.objects.filter(opportunity_id=_visible_pk(user, opportunity))
    return list(contacts.order_by("position", "pk"))


def visible_contact(*, user: User, pk: int) -> Contact:
    return Contact.objects.filter(opportunity__in=visible_opportunities(user)).get(pk=pk)


def contact_for_update(*, user: User, pk: int) -> Contact:
    """A visible contact, its opportunity then itself locked (the services' lock order)."""
    contact = visible_contact(user=user, pk=pk)
    visible_opportunities(user).select_for_update(of=("self",)).get(pk=contact.opportunity_id)
    return Contact.objects.select_for_update().get(pk=contact.pk)


def _with_lines(proposals: QuerySet[Proposal]) -> QuerySet[Proposal]:
    lines = ProposalLine.objects.order_by("position", "pk")
    return proposals.prefetch_related(Prefetch("lines", queryset=lines))


def opportunity_proposals(*, user: User, opportunity: int) -> list[Proposal]:
    """The proposals of a visible opportunity, latest version first: three queries."""
    proposals = Proposal.objects.filter(opportunity_id=_visible_pk(user, opportunity))
    return list(_with_lines(proposals).order_by("-number"))


def visible_proposal(*, user: User, pk: int) -> Proposal:
    """A proposal of a visible opportunity, with its lines (2 queries); DoesNotExist else."""
    proposals = Proposal.objects.filter(opportunity__in=visible_opportunities(user))
    return _with_lines(proposals).get(pk=pk)


def proposal_with_lines(*, proposal: Proposal) -> Proposal:
    """A proposal just written, read back with its lines in order."""
    return _with_lines(Proposal.objects.all()).get(pk=proposal.pk)


__all__ = [
    "DEFAULT_OPPORTUNITY_SORT",
    "OPPORTUNITY_SORTS",
    "InvalidCursor",
    "OpportunityFilters",
    "Page",
    "activity_api_page",
    "api_opportunities",
    "client_api_page",
    "client_for_update",
    "comment_api_page",
    "contact_for_update",
    "event_api_page",
    "keyset_page",
    "opportunity_api_get",
    "opportunity_api_page",
    "opportunity_contacts",
    "opportunity_proposals",
    "proposal_with_lines",
    "visible_activity",
    "visible_comment",
    "visible_contact",
    "visible_proposal",
]
