"""Reads for the opportunity list: filters, sortable columns and keyset pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core import signing
from django.db.models import F, Q
from django.db.models.expressions import OrderBy
from django.utils import timezone

from opportuna.accounts.models import Team, User
from opportuna.accounts.selectors import team_members, users_managed_by
from opportuna.sales.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Opportunity,
    OpportunityQuerySet,
    Pipeline,
    Product,
    Status,
    Step,
    Tag,
)
from opportuna.sales.search import opportunity_match_q
from opportuna.sales.selectors import visible_opportunities
from opportuna.sales.selectors.api import keyset_order

PAGE_SIZE = 50
# Sortable columns: the allow-list, and the field each one reads.
SORT_KEYS = (
    "title",
    "amount",
    "probability",
    "expected_close_date",
    "next_action_at",
    "created_at",
)
DEFAULT_SORT = "-created_at"
_NULLABLE_KEYS = frozenset({"expected_close_date", "next_action_at"})
_DATE_KEYS = {"expected_close_date"}
_DATETIME_KEYS = {"next_action_at", "created_at"}
_CURSOR_SALT = "opportuna.sales.opportunity_list"


@dataclass(frozen=True)
class ListFilters:
    """What the list shows; every field optional. `status` is a Status value, "open" or "closed"."""

    owner: int | None = None
    team: int | None = None
    tag: int | None = None
    product: int | None = None
    client: int | None = None
    mine: bool = False
    text: str = ""
    status: str = ""
    pipeline: int | None = None
    step: int | None = None
    # Date ranges (inclusive, the account's days), e.g. from a forecast cell's drill-down.
    expected_close_from: date | None = None
    expected_close_to: date | None = None
    undated: bool = False  # only those without an expected close date
    closed_from: date | None = None
    closed_to: date | None = None


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


@dataclass
class ListPage:
    rows: list[Opportunity]
    sort: str
    next_cursor: str | None
    filters: ListFilters = field(default_factory=ListFilters)


@dataclass(frozen=True)
class ListChoices:
    """What the filter and bulk forms offer, each list read once."""

    owners: list[User]
    teams: list[Team]
    tags: list[Tag]
    products: list[Product]
    steps: list[Step]
    assignees: list[User]

    @property
    def pipelines(self) -> list[Pipeline]:
        seen: dict[int, Pipeline] = {}
        for step in self.steps:
            seen.setdefault(step.pipeline_id, step.pipeline)
        return list(seen.values())


def opportunity_list_choices(*, user: User) -> ListChoices:
    """Owners, teams, tags, products, steps (with their pipelines) and who `user` may assign to."""
    return ListChoices(
        owners=list(User.objects.filter(is_active=True)),
        teams=list(Team.objects.all()),
        tags=list(Tag.objects.all()),
        products=list(Product.objects.filter(is_active=True)),
        steps=list(
            Step.objects.filter(pipeline__is_active=True)
            .select_related("pipeline")
            .order_by("pipeline__position", "pipeline__name", "position", "pk")
        ),
        assignees=list(users_managed_by(user).filter(is_active=True)),
    )


def parse_sort(value: str | None) -> str:
    """A sort from the allow-list ("amount", "-amount"), or the default."""
    value = (value or "").strip()
    return value if value.lstrip("-") in SORT_KEYS else DEFAULT_SORT


def _filtered(user: User, filters: ListFilters) -> OpportunityQuerySet:
    queryset = visible_opportunities(user)
    exact = {
        "owner_id": user.pk if filters.mine else filters.owner,
        "owner__in": None if filters.team is None else team_members(filters.team),
        "product_id": filters.product,
        "client_id": filters.client,
        "pipeline_id": filters.pipeline,
        "step_id": filters.step,
    }
    queryset = queryset.filter(**{k: v for k, v in exact.items() if v is not None})
    if filters.tag is not None:
        queryset = queryset.filter(tags=filters.tag)
    if filters.status == "open":
        queryset = queryset.filter(status__in=OPEN_STATUSES)
    elif filters.status == "closed":
        queryset = queryset.filter(status__in=CLOSED_STATUSES)
    elif filters.status in Status.values:
        queryset = queryset.filter(status=filters.status)
    if filters.expected_close_from is not None:
        queryset = queryset.filter(expected_close_date__gte=filters.expected_close_from)
    if filters.expected_close_to is not None:
        queryset = queryset.filter(expected_close_date__lte=filters.expected_close_to)
    if filters.undated:
        queryset = queryset.filter(expected_close_date__isnull=True)
    if filters.closed_from is not None:
        queryset = queryset.filter(closed_at__gte=_day_start(filters.closed_from))
    if filters.closed_to is not None:
        queryset = queryset.filter(closed_at__lt=_day_start(filters.closed_to + timedelta(days=1)))
    match = opportunity_match_q(filters.text)
    if match is not None:
        queryset = queryset.filter(match)
    return queryset


# Cursors --------------------------------------------------------------------------------


def _to_cursor_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _from_cursor_value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _DATE_KEYS:
        return date.fromisoformat(value)
    if key in _DATETIME_KEYS:
        return datetime.fromisoformat(value)
    if key == "title":
        return str(value)
    return int(value)


def make_cursor(sort: str, row: Opportunity) -> str:
    """The opaque position just after `row` in this sort: (sort, value, id), signed."""
    key = sort.lstrip("-")
    return signing.dumps([sort, _to_cursor_value(getattr(row, key)), row.pk], salt=_CURSOR_SALT)


def read_cursor(sort: str, cursor: str | None) -> tuple[Any, int] | None:
    """(value, id) from a cursor of this sort; None for no cursor or a foreign or broken one."""
    if not cursor:
        return None
    try:
        cursor_sort, value, pk = signing.loads(cursor, salt=_CURSOR_SALT)
        if cursor_sort != sort:
            return None
        return _from_cursor_value(sort.lstrip("-"), value), int(pk)
    except (signing.BadSignature, ValueError, TypeError):
        return None


def _after(sort: str, position: tuple[Any, int]) -> Q:
    """Rows after `position` in the order (key, id), NULL keys last in both directions."""
    key = sort.lstrip("-")
    value, pk = position
    descending = sort.startswith("-")
    beyond = "lt" if descending else "gt"
    if value is None:
        return Q(**{f"{key}__isnull": True, f"pk__{beyond}": pk})
    after = Q(**{f"{key}__{beyond}": value}) | Q(**{key: value, f"pk__{beyond}": pk})
    return after | Q(**{f"{key}__isnull": True}) if key in _NULLABLE_KEYS else after


def list_ordering(sort: str) -> list[OrderBy]:
    """The order of a sort from `parse_sort`, then the id; empty keys last either way."""
    key, descending = sort.lstrip("-"), sort.startswith("-")
    return [
        keyset_order(F(key), descending, key in _NULLABLE_KEYS),
        keyset_order(F("pk"), descending),
    ]


def opportunity_list_page(
    *,
    user: User,
    filters: ListFilters,
    sort: str = DEFAULT_SORT,
    cursor: str | None = None,
    page_size: int = PAGE_SIZE,
) -> ListPage:
    """One keyset page of the visible opportunities matching `filters`: two queries.

    The page's ids are chosen first, sorting the opportunities alone, and only their rows are
    joined with what the list shows: a sort no index gives (title, probability, expected
    close, next action) then sorts narrow rows instead of joining every visible opportunity
    with its client, owner, pipeline, step and product first (at 1M: 2.1 s -> 0.1-0.4 s on
    SQLite, 0.8-1.1 s -> 0.1-0.2 s on PostgreSQL)."""
    sort = parse_sort(sort)
    queryset = _filtered(user, filters)
    position = read_cursor(sort, cursor)
    if position is not None:
        queryset = queryset.filter(_after(sort, position))
    ordering = list_ordering(sort)
    page = queryset.order_by(*ordering).values("pk")[: page_size + 1]
    rows = list(
        Opportunity.objects.filter(pk__in=page)
        .with_card_relations()
        .select_related("pipeline")
        .with_weighted_amount()
        .order_by(*ordering)
    )
    next_cursor = make_cursor(sort, rows[page_size - 1]) if len(rows) > page_size else None
    return ListPage(rows=rows[:page_size], sort=sort, next_cursor=next_cursor, filters=filters)


def opportunities_for_bulk(*, user: User, ids: list[int]) -> dict[int, Opportunity]:
    """The visible ones among `ids`, with the version each service call must quote."""
    rows = visible_opportunities(user).filter(pk__in=ids).select_related("pipeline")
    return {row.pk: row for row in rows.order_by("pk")}


def opportunity_ids_with_tag(*, ids: list[int], tag: Tag) -> set[int]:
    """Which of `ids` already carry `tag` (so a bulk "add tag" can say what it changed)."""
    through = Opportunity.tags.through
    return set(
        through.objects.filter(opportunity_id__in=ids, tag_id=tag.pk).values_list(
            "opportunity_id", flat=True
        )
    )
