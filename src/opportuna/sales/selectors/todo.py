"""Reads for the to-do list (home): my open opportunities by next action time, my tasks.

Times are cut in the account's time zone (settings.TIME_ZONE): "today" is the local day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.sales.models import Activity, ActivityType, Opportunity, OpportunityQuerySet, Status
from opportuna.sales.selectors import visible_activities, visible_opportunities
from opportuna.sales.selectors.board import ORDER, Cursor, Page, after, first_pages, page_of

TODO_PAGE = 50
ACTIVITY_LIMIT = 50

# In display order. "standby" holds the parked ones whose date has not come yet.
OVERDUE, TODAY, WEEK, LATER, STANDBY = "overdue", "today", "week", "later", "standby"
GROUPS = (OVERDUE, TODAY, WEEK, LATER, STANDBY)


@dataclass(frozen=True)
class Bounds:
    """The instants that cut the groups: now, the start of tomorrow, the start of next week."""

    now: datetime
    tomorrow: datetime
    next_week: datetime

    @classmethod
    def at(cls, now: datetime | None = None) -> Bounds:
        now = now or timezone.now()
        today = timezone.localtime(now).date()
        monday = today + timedelta(days=7 - today.weekday())
        return cls(
            now=now,
            tomorrow=timezone.make_aware(datetime.combine(today + timedelta(days=1), time.min)),
            next_week=timezone.make_aware(datetime.combine(monday, time.min)),
        )

    def conditions(self) -> dict[str, Q]:
        """Non-overlapping filters, one per group, over open opportunities.

        A standby opportunity comes back on its date (its `next_action_at` is 9:00 that
        morning): from the start of that day it sits with the others, before that it waits
        in the standby group.
        """
        todo = Q(status=Status.TODO)
        return {
            OVERDUE: Q(next_action_at__lt=self.now),
            TODAY: Q(next_action_at__gte=self.now, next_action_at__lt=self.tomorrow),
            WEEK: todo & Q(next_action_at__gte=self.tomorrow, next_action_at__lt=self.next_week),
            LATER: todo & Q(next_action_at__gte=self.next_week),
            STANDBY: Q(status=Status.STANDBY, next_action_at__gte=self.tomorrow),
        }

    def group_of(self, opportunity: Opportunity) -> str:
        at = opportunity.next_action_at
        assert at is not None  # open opportunities always have one
        if at < self.now:
            return OVERDUE
        if at < self.tomorrow:
            return TODAY
        if opportunity.status == Status.STANDBY:
            return STANDBY
        return WEEK if at < self.next_week else LATER


def todo_opportunities(*, user: User) -> OpportunityQuerySet:
    """The open opportunities `user` owns (and therefore sees)."""
    return visible_opportunities(user).open().filter(owner=user)


def todo_counts(*, user: User, bounds: Bounds) -> dict[str, int]:
    """How many opportunities each group holds, in ONE aggregate query."""
    conditions = bounds.conditions()
    return todo_opportunities(user=user).aggregate(
        **{group: Count("pk", filter=conditions[group]) for group in GROUPS}
    )


def _shape(queryset: OpportunityQuerySet) -> OpportunityQuerySet:
    return queryset.select_related("client", "step")


def todo_first_pages(*, user: User, bounds: Bounds, limit: int = TODO_PAGE) -> dict[str, Page]:
    """The first rows of every group in ONE query (keyset order: next action, id)."""
    return first_pages(
        todo_opportunities(user=user),
        bounds.conditions(),
        limit=limit,
        key=bounds.group_of,
        shape=_shape,
    )


def todo_group_page(
    *, user: User, group: str, bounds: Bounds, cursor: Cursor | None, limit: int = TODO_PAGE
) -> Page:
    """The next rows of one group after `cursor`."""
    queryset = _shape(
        todo_opportunities(user=user).filter(bounds.conditions()[group]).filter(after(cursor))
    ).order_by(*ORDER)
    return page_of(list(queryset[: limit + 1]), limit)


def todo_due_count(*, user: User, now: datetime | None = None) -> int:
    """My overdue and today's next actions: the number on the navigation's To-do link."""
    bounds = Bounds.at(now)
    return todo_opportunities(user=user).filter(next_action_at__lt=bounds.tomorrow).count()


def todo_planned_activities(*, user: User, limit: int = ACTIVITY_LIMIT) -> list[Activity]:
    """My planned activities (tasks) on opportunities I see, soonest first; `limit` + 1 rows
    are returned so the caller can tell there are more."""
    return list(
        visible_activities(user)
        .planned()
        .filter(user=user)
        .select_related("type", "opportunity", "opportunity__client")
        .order_by("due_at", "pk")[: limit + 1]
    )


def todo_activity(*, user: User, pk: int) -> Activity:
    """One activity on an opportunity `user` sees; DoesNotExist (404) otherwise."""
    return visible_activities(user).select_related("opportunity").get(pk=pk)


def active_activity_types() -> list[ActivityType]:
    """The activity types a user may log, in their order (the first is the default)."""
    return list(ActivityType.objects.filter(is_active=True).order_by("position", "name"))


__all__ = [
    "ACTIVITY_LIMIT",
    "Bounds",
    "GROUPS",
    "TODO_PAGE",
    "active_activity_types",
    "todo_activity",
    "todo_counts",
    "todo_due_count",
    "todo_first_pages",
    "todo_group_page",
    "todo_opportunities",
    "todo_planned_activities",
]
