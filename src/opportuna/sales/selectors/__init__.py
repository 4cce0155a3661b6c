"""Reads that depend on who asks. `visible_opportunities(user)` is the only door (and
`visible_activities(user)`, the same condition on the owner activities repeat)."""

from __future__ import annotations

from django.db.models import QuerySet

from opportuna.accounts.models import User
from opportuna.accounts.selectors import users_managed_by, visible_owner_filter
from opportuna.sales.models import (
    Activity,
    ActivityQuerySet,
    Client,
    Opportunity,
    OpportunityQuerySet,
)


def visible_opportunities(user: User) -> OpportunityQuerySet:
    """Every opportunity `user` may see: admin all, manager their teams, salesperson per policy."""
    owners = visible_owner_filter(user, prefix="owner")
    queryset = Opportunity.objects.all()
    return queryset if owners is None else queryset.filter(owners)


def visible_activities(user: User) -> ActivityQuerySet:
    """The activities on opportunities `user` may see: the door's condition put on the owner
    each activity repeats (`Activity.opportunity_owner`), so that a list of a few activities
    (my planned ones) is not matched with every visible opportunity."""
    owners = visible_owner_filter(user, prefix="opportunity_owner")
    queryset = Activity.objects.all()
    return queryset if owners is None else queryset.filter(owners)


def can_edit_opportunity(user: User, opportunity: Opportunity) -> bool:
    """Owner, a manager of the owner's team, or an admin may change an opportunity.

    Teammates who see it under the team policy may comment and log activities, not edit.
    """
    if not user.is_active:
        return False
    if user.is_admin or opportunity.owner_id == user.pk:
        return True
    return user.is_manager and users_managed_by(user).filter(pk=opportunity.owner_id).exists()


def visible_clients(user: User) -> QuerySet[Client]:
    """Client folders are shared by the whole account: any active user may see them."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Client.objects.none()
    return Client.objects.all()


def opportunity_get(*, user: User, pk: int) -> Opportunity:
    """One visible opportunity with its header relations; DoesNotExist (404) otherwise."""
    return (
        visible_opportunities(user)
        .select_related("client", "owner", "pipeline", "step", "product", "lost_reason")
        .get(pk=pk)
    )


def opportunities_of_client(*, user: User, client: Client) -> OpportunityQuerySet:
    """The visible opportunities of one client folder, open first."""
    return visible_opportunities(user).filter(client=client).with_card_relations()


__all__ = [
    "can_edit_opportunity",
    "opportunities_of_client",
    "opportunity_get",
    "visible_clients",
    "visible_opportunities",
]
