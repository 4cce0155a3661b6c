"""Reads for the search page: index hits joined with what the user may see, in three groups."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from opportuna.accounts.models import User
from opportuna.sales.models import Client, Opportunity, OpportunityQuerySet
from opportuna.sales.search import (
    CLIENT_TABLE,
    MARK_END,
    MARK_START,
    OPPORTUNITY_TABLE,
    POSTGRESQL_CLIENT_DOCUMENT,
    is_postgresql,
    postgresql_tsquery,
    search_terms,
    sqlite_match,
)
from opportuna.sales.selectors import visible_clients, visible_opportunities

GROUP_LIMIT = 20
_MARKED = re.compile(f"{MARK_START}(.*?){MARK_END}", re.DOTALL)
_HEADLINE_OPTIONS = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=20, MinWords=8, MaxFragments=2, "
    'FragmentDelimiter=" … "'
)


@dataclass(frozen=True)
class SnippetPart:
    text: str
    mark: bool


@dataclass
class SearchResults:
    """What a query found: opportunities by title, client folders, and matches elsewhere."""

    text: str
    terms: list[str]
    titles: list[Opportunity] = field(default_factory=list)
    clients: list[Client] = field(default_factory=list)
    elsewhere: list[Opportunity] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.titles or self.clients or self.elsewhere)


def snippet_parts(snippet: str) -> list[SnippetPart]:
    """Split an index snippet into plain and highlighted parts (the template escapes both)."""
    parts: list[SnippetPart] = []
    position = 0
    for match in _MARKED.finditer(snippet):
        if match.start() > position:
            parts.append(SnippetPart(snippet[position : match.start()], False))
        parts.append(SnippetPart(match.group(1), True))
        position = match.end()
    tail = snippet[position:].replace(MARK_START, "").replace(MARK_END, "")
    if tail:
        parts.append(SnippetPart(tail, False))
    return parts


def _hits(
    visible: OpportunityQuerySet,
    *,
    condition: str,
    params: list[str],
    limit: int,
    snippet_query: str | None = None,
) -> list[Opportunity]:
    """Visible opportunities whose index row meets `condition`, newest first.

    With `snippet_query` (PostgreSQL: a tsquery; SQLite: anything) each hit gets the words
    around the match, as `snippet_parts`.
    """
    if is_postgresql():
        key = f"{OPPORTUNITY_TABLE}.opportunity_id"
        snippet = (
            f"ts_headline('simple'::regconfig, {OPPORTUNITY_TABLE}.client || ' · ' || "
            f"{OPPORTUNITY_TABLE}.body, to_tsquery('simple'::regconfig, %s), %s)"
        )
        snippet_params = [snippet_query or "", _HEADLINE_OPTIONS]
    else:
        key = f"{OPPORTUNITY_TABLE}.rowid"
        snippet = f"snippet({OPPORTUNITY_TABLE}, -1, %s, %s, '…', 14)"
        snippet_params = [MARK_START, MARK_END]
    select = {"search_key": key}
    if snippet_query is not None:
        select["search_snippet"] = snippet
    rows = (
        visible.select_related("client", "owner", "step")
        .extra(  # noqa: S610 - constant SQL; the user's words are parameters
            select=select,
            select_params=snippet_params if snippet_query is not None else [],
            tables=[OPPORTUNITY_TABLE],
            where=[f"{key} = sales_opportunity.id", condition],
            params=params,
        )
        .order_by("-search_key")[:limit]
    )
    hits = list(rows)
    for hit in hits:
        snippet = getattr(hit, "search_snippet", None) or ""
        hit.snippet_parts = snippet_parts(snippet)  # type: ignore[attr-defined]
    return hits


def search_everything(*, user: User, text: str, limit: int = GROUP_LIMIT) -> SearchResults:
    """Up to `limit` hits per group, only what `user` may see; three queries whatever the data."""
    terms = search_terms(text)
    results = SearchResults(text=text, terms=terms)
    if not terms:
        return results
    visible = visible_opportunities(user)
    if is_postgresql():
        anywhere, in_title = postgresql_tsquery(terms), postgresql_tsquery(terms, "A")
        document = f"{OPPORTUNITY_TABLE}.document"
        results.titles = _hits(
            visible,
            condition=f"{document} @@ to_tsquery('simple'::regconfig, %s)",
            params=[in_title],
            limit=limit,
        )
        results.elsewhere = _hits(
            visible,
            condition=(
                f"{document} @@ to_tsquery('simple'::regconfig, %s) "
                f"AND NOT {document} @@ to_tsquery('simple'::regconfig, %s)"
            ),
            params=[anywhere, in_title],
            limit=limit,
            snippet_query=anywhere,
        )
        # The matching folders first, from the text index, then sorted by name: OFFSET 0
        # keeps PostgreSQL from walking the name index and computing every folder's text
        # until it meets enough matches (2 s at 73,000 folders for a name late in the
        # alphabet, against 20 ms this way).
        clients = visible_clients(user).extra(  # noqa: S610 - constant SQL
            where=[
                "sales_client.id IN (SELECT sales_client.id FROM sales_client "  # noqa: S608
                f"WHERE {POSTGRESQL_CLIENT_DOCUMENT} @@ to_tsquery('simple'::regconfig, %s) "
                "OFFSET 0)"
            ],
            params=[anywhere],
        )
    else:
        anywhere, in_title = sqlite_match(terms), sqlite_match(terms, ["title"])
        results.titles = _hits(
            visible, condition=f"{OPPORTUNITY_TABLE} MATCH %s", params=[in_title], limit=limit
        )
        results.elsewhere = _hits(
            visible,
            condition=f"{OPPORTUNITY_TABLE} MATCH %s",
            params=[f"({anywhere}) NOT ({in_title})"],
            limit=limit,
            snippet_query=anywhere,
        )
        clients = visible_clients(user).extra(  # noqa: S610 - constant SQL
            tables=[CLIENT_TABLE],
            where=[f"{CLIENT_TABLE}.rowid = sales_client.id", f"{CLIENT_TABLE} MATCH %s"],
            params=[anywhere],
        )
    results.clients = list(clients.order_by("name", "pk")[:limit])
    return results
