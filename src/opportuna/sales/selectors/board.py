"""Reads for the pipeline board: columns of open opportunities per step, their totals, filters.

Every function starts from `visible_opportunities(user)`. Columns are read a page at a time
with a keyset cursor on (next_action_at, id), never OFFSET, so a page reads only the rows it
shows when an index on (step, next_action_at, id) serves it (see `opportunity_board`).
Column totals are one aggregate grouped by step, whatever the number of cards loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.expressions import RawSQL
from django.utils import timezone

from opportuna.accounts.models import Team, User
from opportuna.accounts.selectors import team_members, users_managed_by
from opportuna.sales.models import (
    Opportunity,
    OpportunityQuerySet,
    Pipeline,
    Product,
    Step,
    Tag,
)
from opportuna.sales.selectors import visible_opportunities

BOARD_PAGE = 25
ORDER = ("next_action_at", "id")
K = TypeVar("K")


# Keyset cursors -------------------------------------------------------------------------


class Cursor(NamedTuple):
    """The last row of a page: the next page starts strictly after it."""

    at: datetime
    pk: int

    def __str__(self) -> str:
        return f"{self.at.astimezone(UTC).isoformat()}|{self.pk}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Read `<iso datetime>|<id>`; ValueError on anything else."""
        at_text, sep, pk_text = (text or "").rpartition("|")
        if not sep:
            raise ValueError("a cursor reads <iso datetime>|<id>")
        at = datetime.fromisoformat(at_text)
        if timezone.is_naive(at):
            at = timezone.make_aware(at, UTC)
        return cls(at, int(pk_text))

    @classmethod
    def of(cls, opportunity: Opportunity) -> Cursor:
        assert opportunity.next_action_at is not None  # open ones always have one
        return cls(opportunity.next_action_at, opportunity.pk)


def after(cursor: Cursor | None) -> Q:
    """Rows strictly after the cursor in (next_action_at, id) order."""
    if cursor is None:
        return Q()
    return Q(next_action_at__gt=cursor.at) | Q(next_action_at=cursor.at, id__gt=cursor.pk)


class Page(NamedTuple):
    rows: list[Opportunity]
    next: Cursor | None  # None: this was the last page


def page_of(rows: Sequence[Opportunity], limit: int) -> Page:
    """Cut `limit + 1` fetched rows into a page and the cursor of the next one."""
    shown = list(rows[:limit])
    more = len(rows) > limit
    return Page(shown, Cursor.of(shown[-1]) if more and shown else None)


def first_pages(
    queryset: OpportunityQuerySet,
    partitions: Mapping[K, Q],
    *,
    limit: int,
    key: Callable[[Opportunity], K],
    shape: Callable[[OpportunityQuerySet], OpportunityQuerySet] = lambda qs: qs,
) -> dict[K, Page]:
    """The first page of every partition in ONE query, whatever the number of partitions.

    Each partition is a LIMITed subquery in keyset order (an index range scan); their ids
    are one `pk IN (... UNION ALL ...)`; `key(row)` deals the rows back to their partition,
    which must not overlap. `shape` adds what the rows show (select_related, annotations,
    prefetches).
    """
    dealt: dict[K, list[Opportunity]] = {k: [] for k in partitions}
    if partitions:
        picks = [
            queryset.filter(condition).order_by(*ORDER).values("pk")[: limit + 1]
            for condition in partitions.values()
        ]
        # Only ids picked by the subqueries (so from `queryset`) come back. Repeating
        # `queryset`'s filters out here would let SQLite scan the whole pipeline instead of
        # looking the picked ids up. One union, not one `pk IN` per partition OR-ed: over
        # those PostgreSQL read every opportunity and probed each subquery's ids (0.3 s at 1M).
        rows = Opportunity.objects.filter(pk__in=_union_all(picks))
        for row in shape(rows).order_by(*ORDER):
            dealt.setdefault(key(row), []).append(row)
    return {k: page_of(dealt[k], limit) for k in partitions}


def _union_all(picks: Sequence[QuerySet[Any]]) -> RawSQL:
    """The rows of the (sliced, one-column) `picks` as one subquery: a UNION ALL of derived
    tables, as SQLite allows no LIMIT on a compound's own members."""
    parts: list[str] = []
    params: list[Any] = []
    for index, pick in enumerate(picks):
        sql, pick_params = pick.query.sql_with_params()
        parts.append(f"SELECT * FROM ({sql}) AS pick{index}")  # noqa: S608 - compiled ORM SQL
        params.extend(pick_params)
    return RawSQL(" UNION ALL ".join(parts), params)  # noqa: S611 - compiled ORM SQL


# Filters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardFilters:
    """What narrows the board; every field travels in the URL so a view can be shared."""

    owner: int | None = None
    team: int | None = None
    tag: int | None = None
    product: int | None = None
    client: int | None = None
    mine: bool = False
    q: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> BoardFilters:
        """Read the filters from a query string; a malformed value is ignored, not an error."""

        def number(name: str) -> int | None:
            raw = (query.get(name) or "").strip()
            return int(raw) if raw.isdigit() else None

        return cls(
            owner=number("owner"),
            team=number("team"),
            tag=number("tag"),
            product=number("product"),
            client=number("client"),
            mine=(query.get("mine") or "") in {"1", "on", "true"},
            q=(query.get("q") or "").strip()[:100],
        )

    def as_query(self) -> dict[str, str]:
        """The non-empty filters as query-string values."""
        values: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is None or value == "" or value is False:
                continue
            values[name] = "1" if value is True else str(value)
        return values

    @property
    def active(self) -> bool:
        return bool(self.as_query())

    def apply(self, queryset: OpportunityQuerySet, *, user: User) -> OpportunityQuerySet:
        if self.owner is not None:
            queryset = queryset.filter(owner_id=self.owner)
        if self.team is not None:
            queryset = queryset.filter(owner__in=team_members(self.team))
        if self.tag is not None:
            through = Opportunity.tags.through
            queryset = queryset.filter(
                Exists(through.objects.filter(opportunity_id=OuterRef("pk"), tag_id=self.tag))
            )
        if self.product is not None:
            queryset = queryset.filter(product_id=self.product)
        if self.client is not None:
            queryset = queryset.filter(client_id=self.client)
        if self.mine:
            queryset = queryset.filter(owner=user)
        if self.q:
            queryset = queryset.filter(
                Q(title__icontains=self.q) | Q(client__name__icontains=self.q)
            )
        return queryset


@dataclass(frozen=True)
class FilterChoices:
    owners: list[User]
    teams: list[Team]
    tags: list[Tag]
    products: list[Product]


def board_filter_choices(*, user: User) -> FilterChoices:
    """What the filter selects offer `user`: people and teams they may look at, all tags and
    products. Four small queries (teams only for managers and admins)."""
    if user.is_admin or user.is_manager:
        owners = users_managed_by(user)
    elif user.team_id:
        owners = User.objects.filter(Q(pk=user.pk) | Q(team_id=user.team_id))
    else:
        owners = User.objects.filter(pk=user.pk)
    if user.is_admin:
        teams: list[Team] = list(Team.objects.all())
    elif user.is_manager:
        teams = list(Team.objects.filter(managers=user))
    else:
        teams = []
    return FilterChoices(
        owners=list(owners.filter(is_active=True).order_by("first_name", "last_name", "username")),
        teams=teams,
        tags=list(Tag.objects.order_by("name")),
        products=list(Product.objects.filter(is_active=True).order_by("name")),
    )


# The board ------------------------------------------------------------------------------


def board_pipelines() -> list[Pipeline]:
    """The active pipelines, in their order: the board's pipeline switch."""
    return list(Pipeline.objects.filter(is_active=True).order_by("position", "name", "pk"))


def board_steps(*, pipeline: Pipeline) -> list[Step]:
    """The columns of the board, in order."""
    return list(pipeline.steps.order_by("position", "pk"))


def opportunity_board(
    *, user: User, pipeline: Pipeline | int, filters: BoardFilters
) -> OpportunityQuerySet:
    """The open opportunities of `pipeline` that `user` sees, narrowed by `filters`."""
    pipeline_id = pipeline if isinstance(pipeline, int) else pipeline.pk
    # `open()` repeats the partial index's condition, which lets it serve the keyset scans.
    queryset = visible_opportunities(user).open().filter(pipeline_id=pipeline_id)
    return filters.apply(queryset, user=user)


def _editable(user: User) -> Any:
    """`can_edit_opportunity` for a whole page of cards, as one SQL expression."""
    if not user.is_active:
        return Value(False, output_field=BooleanField())
    if user.is_admin:
        return Value(True, output_field=BooleanField())
    return Exists(users_managed_by(user).filter(pk=OuterRef("owner_id")))


def _with_card(queryset: OpportunityQuerySet, user: User) -> OpportunityQuerySet:
    """What a card shows: client, owner (initials), tags (one query for all), editable."""
    return (
        queryset.select_related("client", "owner")
        .prefetch_related("tags")
        .annotate(editable=_editable(user))
    )


class ColumnTotals(NamedTuple):
    count: int
    amount: int
    weighted: int


EMPTY_TOTALS = ColumnTotals(0, 0, 0)


def board_totals(
    *, user: User, pipeline: Pipeline | int, filters: BoardFilters
) -> dict[int, ColumnTotals]:
    """Count, sum and weighted sum (cents) per step, in ONE aggregate query grouped by step."""
    rows = (
        opportunity_board(user=user, pipeline=pipeline, filters=filters)
        .with_weighted_amount()
        .values("step_id")
        .annotate(n=Count("pk"), amount_sum=Sum("amount"), weighted_sum=Sum("weighted"))
        .order_by()
    )
    return {
        row["step_id"]: ColumnTotals(row["n"], row["amount_sum"] or 0, row["weighted_sum"] or 0)
        for row in rows
    }


def board_first_pages(
    *,
    user: User,
    pipeline: Pipeline | int,
    steps: Sequence[Step],
    filters: BoardFilters,
    limit: int = BOARD_PAGE,
) -> dict[int, Page]:
    """The first `limit` cards of every column: one query for the cards, one for their tags."""
    return first_pages(
        opportunity_board(user=user, pipeline=pipeline, filters=filters),
        {step.pk: Q(step_id=step.pk) for step in steps},
        limit=limit,
        key=lambda opportunity: opportunity.step_id,
        shape=lambda queryset: _with_card(queryset, user),
    )


def board_column_page(
    *,
    user: User,
    step: Step,
    filters: BoardFilters,
    cursor: Cursor | None,
    limit: int = BOARD_PAGE,
) -> Page:
    """The next `limit` cards of one column after `cursor` (keyset, no OFFSET)."""
    queryset = (
        _with_card(opportunity_board(user=user, pipeline=step.pipeline_id, filters=filters), user)
        .filter(step=step)
        .filter(after(cursor))
        .order_by(*ORDER)
    )
    return page_of(list(queryset[: limit + 1]), limit)


def board_card(*, user: User, pk: int) -> Opportunity:
    """One visible card with what it shows; DoesNotExist (404) otherwise."""
    return _with_card(visible_opportunities(user), user).get(pk=pk)


def board_step(*, pk: int) -> Step:
    """A step with its pipeline (the column a page or a move points at)."""
    return Step.objects.select_related("pipeline").get(pk=pk)


__all__ = [
    "BOARD_PAGE",
    "BoardFilters",
    "ColumnTotals",
    "Cursor",
    "EMPTY_TOTALS",
    "FilterChoices",
    "Page",
    "after",
    "board_card",
    "board_column_page",
    "board_filter_choices",
    "board_first_pages",
    "board_pipelines",
    "board_step",
    "board_steps",
    "board_totals",
    "first_pages",
    "opportunity_board",
    "page_of",
]
