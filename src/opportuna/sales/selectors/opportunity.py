"""Reads for the opportunity page, its forms and its proposals; each starts at the door.

The page runs a constant number of queries whatever the number of contacts, comments,
activities and events: the timeline merges three keyset-paged queries, and the names an
event refers to (steps, users, client folders, products, lost reasons, opportunities) are
resolved with at most one `in` query per referenced model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from opportuna.accounts.models import User
from opportuna.accounts.selectors import users_managed_by
from opportuna.sales.models import (
    Activity,
    ActivityType,
    Client,
    Comment,
    Contact,
    EventKind,
    FieldDefinition,
    LostReason,
    Opportunity,
    OpportunityEvent,
    Pipeline,
    Product,
    Proposal,
    Step,
    Tag,
)
from opportuna.sales.selectors import can_edit_opportunity, visible_clients, visible_opportunities

TIMELINE_PAGE = 50
# Enough for any real opportunity; the page stays bounded even for a runaway import.
SIDE_LIST_LIMIT = 100
CLIENT_MATCHES = 15

# Kinds whose comment or activity is itself on the timeline: the event would say it twice.
SHOWN_AS_OBJECTS = (
    EventKind.COMMENT_ADDED,
    EventKind.COMMENT_EDITED,  # the comment says "edited"
    EventKind.ACTIVITY_LOGGED,
    EventKind.ACTIVITY_PLANNED,
    EventKind.ACTIVITY_COMPLETED,
)


@dataclass
class TimelineItem:
    """One line of the timeline: exactly one of comment, activity or event is set."""

    at: datetime
    comment: Comment | None = None
    activity: Activity | None = None
    event: OpportunityEvent | None = None

    @property
    def kind(self) -> str:
        if self.comment is not None:
            return "comment"
        return "activity" if self.activity is not None else "event"

    @property
    def sort_key(self) -> tuple[datetime, int, int]:
        obj: Any = self.comment or self.activity or self.event
        rank = {"event": 0, "activity": 1, "comment": 2}[self.kind]
        return (self.at, rank, obj.pk)


@dataclass
class References:
    """Objects the events name by id, resolved in bulk."""

    steps: dict[int, Step] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    clients: dict[int, Client] = field(default_factory=dict)
    products: dict[int, Product] = field(default_factory=dict)
    lost_reasons: dict[int, LostReason] = field(default_factory=dict)
    opportunities: dict[int, str] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    field_labels: dict[str, str] = field(default_factory=dict)


@dataclass
class OpportunityPage:
    opportunity: Opportunity
    can_edit: bool
    tags: list[Tag]
    field_definitions: list[FieldDefinition]
    contacts: list[Contact]
    pinned: list[Comment]
    planned: list[Activity]
    timeline: list[TimelineItem]
    older: datetime | None
    steps: list[Step]
    lost_reasons: list[LostReason]
    activity_types: list[ActivityType]
    proposals: list[Proposal]
    refs: References


def opportunity_for_page(*, user: User, pk: int) -> Opportunity:
    """One visible opportunity with its header relations and tags; DoesNotExist otherwise."""
    return (
        visible_opportunities(user)
        .select_related("client", "owner", "pipeline", "step", "product", "lost_reason")
        .prefetch_related("tags")
        .get(pk=pk)
    )


def opportunity_page(
    *, user: User, pk: int, until: datetime | None = None, page_size: int = TIMELINE_PAGE
) -> OpportunityPage:
    """Everything the opportunity page shows, in a fixed number of queries.

    `until` is the keyset cursor of the timeline (inclusive): entries at or before it.
    """
    opp = opportunity_for_page(user=user, pk=pk)  # 2 queries: the row, its tags
    definitions = list(FieldDefinition.objects.all())
    contacts = list(opp.contacts.all()[:SIDE_LIST_LIMIT])
    pinned = list(
        opp.comments.filter(pinned=True)
        .select_related("author")
        .order_by("-created_at", "-pk")[:SIDE_LIST_LIMIT]
    )
    planned = list(
        opp.activities.planned()
        .select_related("type", "user")
        .order_by("due_at", "pk")[:SIDE_LIST_LIMIT]
    )
    timeline, older = _timeline(opp, until=until, page_size=page_size)
    steps = list(opp.pipeline.steps.order_by("position", "pk"))
    lost_reasons = list(LostReason.objects.all())
    activity_types = list(ActivityType.objects.all())
    proposals = list(opp.proposals.select_related("created_by").order_by("-number"))
    events = [item.event for item in timeline if item.event is not None]
    refs = _references(
        user=user,
        opportunity=opp,
        events=events,
        steps=steps,
        lost_reasons=lost_reasons,
        contacts=contacts,
        definitions=definitions,
    )
    return OpportunityPage(
        opportunity=opp,
        can_edit=can_edit_opportunity(user, opp),
        tags=list(opp.tags.all()),
        field_definitions=definitions,
        contacts=contacts,
        pinned=pinned,
        planned=planned,
        timeline=timeline,
        older=older,
        steps=steps,
        lost_reasons=[r for r in lost_reasons if r.is_active or r.pk == opp.lost_reason_id],
        activity_types=[t for t in activity_types if t.is_active],
        proposals=proposals,
        refs=refs,
    )


def _timeline(
    opp: Opportunity, *, until: datetime | None, page_size: int
) -> tuple[list[TimelineItem], datetime | None]:
    """Comments, done activities and events, newest first, one keyset page of them.

    Each source is read with the same bound and `page_size + 1` rows; a page never ends in
    the middle of entries sharing one timestamp, so the inclusive cursor loses nothing.
    """
    comments = opp.comments.filter(pinned=False).select_related("author")
    activities = opp.activities.done().select_related("type", "user")
    events = opp.events.exclude(kind__in=SHOWN_AS_OBJECTS).select_related("actor")
    if until is not None:
        comments = comments.filter(created_at__lte=until)
        activities = activities.filter(done_at__lte=until)
        events = events.filter(at__lte=until)
    limit = page_size + 1
    items = [
        TimelineItem(at=c.created_at, comment=c)
        for c in comments.order_by("-created_at", "-pk")[:limit]
    ]
    items += [
        TimelineItem(at=a.done_at, activity=a)
        for a in activities.order_by("-done_at", "-pk")[:limit]
        if a.done_at is not None  # always, by `done()`; says so to the type checker
    ]
    items += [TimelineItem(at=e.at, event=e) for e in events.order_by("-at", "-pk")[:limit]]
    items.sort(key=lambda item: item.sort_key, reverse=True)
    if len(items) <= page_size:
        return items, None
    shown = items[:page_size]
    cutoff = shown[-1].at
    if items[page_size].at == cutoff:
        # The next entry shares the last timestamp: leave that whole group for the next page.
        whole = [item for item in shown if item.at != cutoff]
        if whole:
            return whole, cutoff
        # One timestamp fills a whole page: show it, and go on strictly before it.
        return shown, cutoff - timedelta(microseconds=1)
    return shown, items[page_size].at


def _ids(values: Iterable[Any]) -> set[int]:
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool)}


def _references(
    *,
    user: User,
    opportunity: Opportunity,
    events: list[OpportunityEvent],
    steps: list[Step],
    lost_reasons: list[LostReason],
    contacts: list[Contact],
    definitions: list[FieldDefinition],
) -> References:
    """Resolve the ids the events mention: at most one query per model, none if not needed."""
    refs = References(
        steps={s.pk: s for s in steps},
        lost_reasons={r.pk: r for r in lost_reasons},
        contacts={c.pk: c for c in contacts},
        field_labels={d.key: d.label for d in definitions},
    )
    step_ids: set[int] = set()
    user_ids: set[int] = set()
    client_ids: set[int] = set()
    product_ids: set[int] = set()
    opportunity_ids: set[int] = set()
    for event in events:
        changes, data = event.changes or {}, event.data or {}
        step_ids |= _ids(changes.get("step", ()))
        user_ids |= _ids(changes.get("owner", ()))
        client_ids |= _ids(changes.get("client", ()))
        product_ids |= _ids(changes.get("product", ()))
        if event.kind == EventKind.CREATED:
            step_ids |= _ids([data.get("step")])
        if event.kind == EventKind.DUPLICATED:
            opportunity_ids |= _ids([data.get("from"), data.get("to")])
    # Steps of another pipeline only appear in hand-edited data; the pipeline's are loaded.
    step_ids -= set(refs.steps)
    if step_ids:
        refs.steps.update(Step.objects.in_bulk(step_ids))
    known_users = {opportunity.owner_id: opportunity.owner}
    user_ids -= set(known_users)
    refs.users = dict(known_users)
    if user_ids:
        refs.users.update(User.objects.in_bulk(user_ids))
    if opportunity.client_id:
        refs.clients[opportunity.client_id] = opportunity.client  # type: ignore[assignment]
        client_ids.discard(opportunity.client_id)
    if client_ids:
        refs.clients.update(Client.objects.in_bulk(client_ids))
    if opportunity.product_id:
        refs.products[opportunity.product_id] = opportunity.product  # type: ignore[assignment]
        product_ids.discard(opportunity.product_id)
    if product_ids:
        refs.products.update(Product.objects.in_bulk(product_ids))
    if opportunity_ids:
        refs.opportunities = dict(
            visible_opportunities(user).filter(pk__in=opportunity_ids).values_list("pk", "title")
        )
    return refs


# Forms ------------------------------------------------------------------------------------


def client_matches(*, user: User, query: str, limit: int = CLIENT_MATCHES) -> list[Client]:
    """Client folders whose name contains `query`, names starting with it first."""
    query = query.strip()
    if not query:
        return []
    clients = visible_clients(user)
    starts = list(clients.filter(name__istartswith=query).order_by("name", "pk")[:limit])
    if len(starts) >= limit:
        return starts
    more = (
        clients.filter(name__icontains=query)
        .exclude(pk__in=[c.pk for c in starts])
        .order_by("name", "pk")[: limit - len(starts)]
    )
    return [*starts, *more]


def client_by_name(*, user: User, name: str) -> list[Client]:
    """Client folders called exactly `name` (ignoring case); two at most, to spot ambiguity."""
    return list(visible_clients(user).filter(name__iexact=name.strip()).order_by("pk")[:2])


def client_get(*, user: User, pk: int) -> Client | None:
    return visible_clients(user).filter(pk=pk).first()


def form_products(*, current: Product | None = None) -> QuerySet[Product]:
    """Active products, plus the one already chosen even if retired."""
    condition = Q(is_active=True)
    if current is not None:
        condition |= Q(pk=current.pk)
    return Product.objects.filter(condition).order_by("name")


def form_owners(*, user: User, current: User | None = None) -> QuerySet[User] | None:
    """Whom `user` may give an opportunity to; None when they can only keep it themselves."""
    if not (user.is_admin or user.is_manager):
        return None
    condition = Q(is_active=True)
    people = users_managed_by(user).filter(condition)
    if current is not None:
        people = people | User.objects.filter(pk=current.pk)
    return people.order_by("first_name", "last_name", "username")


def form_pipelines() -> list[tuple[Pipeline, list[Step]]]:
    """Active pipelines with their steps in order, for the new-opportunity selects."""
    pipelines = list(Pipeline.objects.filter(is_active=True).prefetch_related("steps"))
    return [(p, sorted(p.steps.all(), key=lambda s: (s.position, s.pk))) for p in pipelines]


def field_definitions() -> list[FieldDefinition]:
    return list(FieldDefinition.objects.all())


def lost_reasons_active() -> list[LostReason]:
    return list(LostReason.objects.filter(is_active=True))


def activity_types_active() -> list[ActivityType]:
    return list(ActivityType.objects.filter(is_active=True))


def opportunity_steps(*, opportunity: Opportunity) -> list[Step]:
    return list(Step.objects.filter(pipeline_id=opportunity.pipeline_id).order_by("position"))


# Proposals --------------------------------------------------------------------------------


def proposal_for_opportunity(*, user: User, opportunity_pk: int, pk: int) -> Proposal:
    """A proposal of a visible opportunity, with its lines and the client; DoesNotExist else."""
    return (
        Proposal.objects.filter(opportunity__in=visible_opportunities(user))
        .select_related("opportunity", "opportunity__client", "opportunity__owner", "created_by")
        .prefetch_related("lines__product")
        .get(pk=pk, opportunity_id=opportunity_pk)
    )
