"""Reads for client folders: the list with open figures, one folder's totals and contacts.

Folders are shared by the whole account (`visible_clients`); what is counted or shown
inside them is only what the user may see (`visible_opportunities`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core import signing
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    ExpressionWrapper,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Lower

from opportuna.accounts.models import User
from opportuna.sales.models import (
    OPEN_STATUSES,
    Client,
    Contact,
    Opportunity,
    Status,
    weighted_expression,
)
from opportuna.sales.selectors import visible_clients, visible_opportunities

PAGE_SIZE = 50
GROUP_LIMIT = 50
CONTACT_LIMIT = 100
MERGE_CANDIDATES = 20
_CURSOR_SALT = "opportuna.sales.client_list"


@dataclass
class ClientPage:
    rows: list[Client]
    next_cursor: str | None


@dataclass(frozen=True)
class ClientTotals:
    """Figures over the visible opportunities of one folder, in cents."""

    open_count: int
    open_amount: int
    weighted: int
    won_count: int
    won_amount: int
    lost_count: int
    cancelled_count: int


def _open_figures(user: User) -> dict[str, Any]:
    """Annotations: open opportunities and their amount per client, counting visible ones only."""
    per_client = (
        visible_opportunities(user)
        .filter(client=OuterRef("pk"), status__in=OPEN_STATUSES)
        .order_by()
        .values("client")
    )
    return {
        "open_count": Coalesce(Subquery(per_client.annotate(n=Count("pk")).values("n")), Value(0)),
        "open_amount": Coalesce(
            Subquery(per_client.annotate(total=Sum("amount")).values("total")), Value(0)
        ),
    }


def client_list_page(*, user: User, text: str = "", cursor: str | None = None) -> ClientPage:
    """One keyset page of folders by name (matching `text`), with open figures: one query."""
    queryset = visible_clients(user)
    text = text.strip()
    if text:
        queryset = queryset.filter(name__icontains=text)
    position = _read_cursor(cursor)
    if position is not None:
        name, pk = position
        queryset = queryset.filter(Q(name__gt=name) | Q(name=name, pk__gt=pk))
    rows = list(queryset.annotate(**_open_figures(user)).order_by("name", "pk")[: PAGE_SIZE + 1])
    next_cursor = None
    if len(rows) > PAGE_SIZE:
        last = rows[PAGE_SIZE - 1]
        next_cursor = signing.dumps([last.name, last.pk], salt=_CURSOR_SALT)
    return ClientPage(rows=rows[:PAGE_SIZE], next_cursor=next_cursor)


def _read_cursor(cursor: str | None) -> tuple[str, int] | None:
    if not cursor:
        return None
    try:
        name, pk = signing.loads(cursor, salt=_CURSOR_SALT)
        return str(name), int(pk)
    except (signing.BadSignature, ValueError, TypeError):
        return None


def client_get(*, user: User, pk: int) -> Client:
    """One client folder any active user may open; DoesNotExist (404) otherwise."""
    return visible_clients(user).get(pk=pk)


def client_totals(*, user: User, client: Client) -> ClientTotals:
    """Open pipeline, weighted and won to date over the visible opportunities: one query."""
    is_open = Q(status__in=OPEN_STATUSES)
    weighted = ExpressionWrapper(weighted_expression(), output_field=BigIntegerField())
    figures = (
        visible_opportunities(user)
        .filter(client=client)
        .aggregate(
            open_count=Count("pk", filter=is_open),
            open_amount=Sum("amount", filter=is_open),
            weighted=Sum(weighted, filter=is_open),
            won_count=Count("pk", filter=Q(status=Status.WON)),
            won_amount=Sum("won_amount", filter=Q(status=Status.WON)),
            lost_count=Count("pk", filter=Q(status=Status.LOST)),
            cancelled_count=Count("pk", filter=Q(status=Status.CANCELLED)),
        )
    )
    return ClientTotals(**{key: value or 0 for key, value in figures.items()})


def client_opportunities(
    *, user: User, client: Client, status: tuple[str, ...]
) -> list[Opportunity]:
    """Up to GROUP_LIMIT visible opportunities of the folder in these statuses, newest first."""
    return list(
        visible_opportunities(user)
        .filter(client=client, status__in=status)
        .select_related("owner", "step", "pipeline")
        .with_weighted_amount()
        .order_by("-created_at", "-pk")[:GROUP_LIMIT]
    )


def client_contacts(*, user: User, client: Client) -> list[Contact]:
    """The people met across the folder's visible opportunities, once each: one query.

    Two rows are the same person when their email matches (ignoring case), or, without an
    email, their name does; the most recent row speaks for them.
    """
    person = Case(
        When(email="", then=Lower("name")),
        default=Lower("email"),
        output_field=CharField(),
    )
    latest = (
        Contact.objects.filter(opportunity__in=visible_opportunities(user).filter(client=client))
        .annotate(person=person)
        .order_by()
        .values("person")
        .annotate(latest=Max("pk"))
        .values("latest")
    )
    return list(
        Contact.objects.filter(pk__in=latest)
        .select_related("opportunity")
        .order_by(Lower("name"), "pk")[:CONTACT_LIMIT]
    )


def merge_candidates(*, user: User, client: Client, text: str) -> QuerySet[Client]:
    """Folders `client` could be merged into, found by name."""
    text = text.strip()
    if not text:
        return visible_clients(user).none()
    return (
        visible_clients(user)
        .exclude(pk=client.pk)
        .filter(name__icontains=text)
        .order_by("name", "pk")[:MERGE_CANDIDATES]
    )


def opportunity_count(*, user: User, client: Client) -> int:
    """How many opportunities of the folder the user sees (for the merge confirmation)."""
    return visible_opportunities(user).filter(client=client).count()
