"""The search index: what is written into it, when, and how a query is spelled for it.

One document per opportunity (title, client folder name, description, default-field values,
contacts, comments) and one per client folder. The tables are created by migration
`sales.0003_search_index`: FTS5 on SQLite, weighted tsvectors with a GIN index on
PostgreSQL. They are refreshed once after every committed transaction (the `changes_recorded`
receiver below collects what it touched) and rebuilt in bulk by `opportuna rebuild_search_index`.

Reads go through `opportuna.sales.selectors.search`, always joined with
`visible_opportunities(user)`: the index itself knows nothing about who may see what.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.dispatch import receiver

from opportuna.core.announce import Announcement, CommitBatch, changes_recorded

OPPORTUNITY_TABLE = "sales_search"
CLIENT_TABLE = "sales_client_search"
MAX_TERMS = 8
MIN_TERM_LENGTH = 2
# Highlight marks for snippets; the view escapes the text, then turns these into <mark>.
MARK_START = "\ue000"
MARK_END = "\ue001"
_CHUNK = 500
# PostgreSQL's "simple" configuration keeps accents; both the documents and the query words
# go through this table so "forli" finds "Forlì" (SQLite's tokenizer removes them itself).
ACCENTED = (
    "àáâãäåāăąèéêëēĕėęěìíîïĩīĭįòóôõöøōŏőùúûüũūŭůűųçćčñńňýÿśšźżžđł"
    "ÀÁÂÃÄÅĀĂĄÈÉÊËĒĔĖĘĚÌÍÎÏĨĪĬĮÒÓÔÕÖØŌŎŐÙÚÛÜŨŪŬŮŰŲÇĆČÑŃŇÝŸŚŠŹŻŽĐŁ"
)
UNACCENTED = (
    "aaaaaaaaaeeeeeeeeeiiiiiiiiooooooooouuuuuuuuuucccnnnyysszzzdl"
    "AAAAAAAAAEEEEEEEEEIIIIIIIIOOOOOOOOOUUUUUUUUUUCCCNNNYYSSZZZDL"
)
_UNACCENT = str.maketrans(ACCENTED, UNACCENTED)


def unaccented_sql(expression: str) -> str:
    """The SQL (PostgreSQL) of `expression` with the accents of ACCENTED taken off."""
    return f"translate({expression}, '{ACCENTED}', '{UNACCENTED}')"


_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")

# The document of each opportunity (SQLite), as rows (id, title, client, description,
# fields, contacts, comments). `{where}` narrows it to some opportunities.
_SQLITE_DOCUMENTS = """
    SELECT o.id, o.title, coalesce(c.name, ''), o.description,
        coalesce((SELECT group_concat(j.value, ' · ') FROM json_each(o.fields) AS j), ''),
        coalesce((SELECT group_concat(ct.name || ' ' || ct.role || ' ' || ct.email || ' '
                                      || ct.phone, ' · ')
                  FROM sales_contact AS ct WHERE ct.opportunity_id = o.id), ''),
        coalesce((SELECT group_concat(cm.body, ' · ')
                  FROM sales_comment AS cm WHERE cm.opportunity_id = o.id), '')
    FROM sales_opportunity AS o LEFT JOIN sales_client AS c ON c.id = o.client_id
    {where}
"""
_POSTGRESQL_DOCUMENTS = """
    SELECT d.id, d.title, d.client, d.body,
        setweight(to_tsvector('simple'::regconfig, {title}), 'A')
        || setweight(to_tsvector('simple'::regconfig, {client}), 'B')
        || setweight(to_tsvector('simple'::regconfig, {body}), 'D')
    FROM (
        SELECT o.id, o.title, coalesce(c.name, '') AS client,
            concat_ws(' · ',
                nullif(o.description, ''),
                (SELECT string_agg(j.value, ' · ') FROM jsonb_each_text(o.fields::jsonb) AS j),
                (SELECT string_agg(concat_ws(' ', ct.name, ct.role, ct.email, ct.phone), ' · ')
                 FROM sales_contact AS ct WHERE ct.opportunity_id = o.id),
                (SELECT string_agg(cm.body, ' · ')
                 FROM sales_comment AS cm WHERE cm.opportunity_id = o.id)
            ) AS body
        FROM sales_opportunity AS o LEFT JOIN sales_client AS c ON c.id = o.client_id
        {{where}}
    ) AS d
""".format(  # noqa: S608 - constant SQL, no user input
    title=unaccented_sql("d.title"),
    client=unaccented_sql("d.client"),
    body=unaccented_sql("d.body"),
)
# The text a client folder is found by; PostgreSQL's expression index uses the same one.
POSTGRESQL_CLIENT_DOCUMENT = "to_tsvector('simple'::regconfig, {})".format(
    unaccented_sql(
        "sales_client.name || ' ' || sales_client.city || ' ' || sales_client.country "
        "|| ' ' || sales_client.vat_number || ' ' || sales_client.email"
    )
)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


# Queries ----------------------------------------------------------------------------------


def search_terms(text: str) -> list[str]:
    """The words of a query: split on spaces, outer punctuation dropped, short words skipped.

    Inner punctuation stays ("anna.rossi@example.com", "o'brien"): each database splits such
    a term the way it split the indexed text.
    """
    terms: list[str] = []
    for raw in (text or "").split():
        term = _EDGE_PUNCTUATION.sub("", raw)
        if len(term) >= MIN_TERM_LENGTH and term.casefold() not in {t.casefold() for t in terms}:
            terms.append(term)
    return terms[:MAX_TERMS]


def sqlite_match(terms: Sequence[str], columns: Sequence[str] = ()) -> str:
    """An FTS5 MATCH expression: every term as a prefix, all required, in `columns` if given."""
    phrases = " ".join('"{}"*'.format(term.replace('"', '""')) for term in terms)
    if not columns:
        return phrases
    return "{{{}}} : ({})".format(" ".join(columns), phrases)


def postgresql_tsquery(terms: Sequence[str], weights: str = "") -> str:
    """A to_tsquery('simple', ...) text: every term as a prefix, all required, of `weights`."""
    lexemes = []
    for term in terms:
        term = term.translate(_UNACCENT)
        quoted = term.replace("\\", "\\\\").replace("'", "''")
        lexemes.append(f"'{quoted}':*{weights}")
    return " & ".join(lexemes)


def opportunity_match_q(text: str) -> Q | None:
    """A filter on opportunities whose document holds every word of `text`; None if no words.

    For list filters: the caller still starts from `visible_opportunities(user)`.
    """
    terms = search_terms(text)
    if not terms:
        return None
    if is_postgresql():
        sql = (
            f"SELECT opportunity_id FROM {OPPORTUNITY_TABLE} "  # noqa: S608 - constant name
            "WHERE document @@ to_tsquery('simple'::regconfig, %s)"
        )
        return Q(pk__in=RawSQL(sql, [postgresql_tsquery(terms)]))  # noqa: S611 - words are params
    sql = f"SELECT rowid FROM {OPPORTUNITY_TABLE} WHERE {OPPORTUNITY_TABLE} MATCH %s"  # noqa: S608
    return Q(pk__in=RawSQL(sql, [sqlite_match(terms)]))  # noqa: S611 - words are params


# Writes -----------------------------------------------------------------------------------


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    batch: list[int] = []
    for pk in sorted({int(pk) for pk in ids}):
        batch.append(pk)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def search_index_update(opportunity_ids: Iterable[int]) -> None:
    """Rewrite the documents of these opportunities from the database (deleted ones vanish)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for batch in _chunks(opportunity_ids):
            marks = ", ".join(["%s"] * len(batch))
            if is_postgresql():
                cursor.execute(
                    f"DELETE FROM {OPPORTUNITY_TABLE} WHERE opportunity_id IN ({marks})",  # noqa: S608
                    batch,
                )
                cursor.execute(
                    f"INSERT INTO {OPPORTUNITY_TABLE} (opportunity_id, title, client, body, "  # noqa: S608
                    "document) " + _POSTGRESQL_DOCUMENTS.format(where=f"WHERE o.id IN ({marks})"),
                    batch,
                )
            else:
                cursor.execute(
                    f"DELETE FROM {OPPORTUNITY_TABLE} WHERE rowid IN ({marks})",  # noqa: S608
                    batch,
                )
                cursor.execute(
                    f"INSERT INTO {OPPORTUNITY_TABLE} (rowid, title, client, description, "  # noqa: S608
                    "fields, contacts, comments) "
                    + _SQLITE_DOCUMENTS.format(where=f"WHERE o.id IN ({marks})"),
                    batch,
                )


def search_index_update_clients(client_ids: Iterable[int], *, with_opportunities: bool) -> None:
    """Rewrite these client folders' entries and, if asked, their opportunities' documents."""
    ids = sorted({int(pk) for pk in client_ids})
    if not ids:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        if not is_postgresql():  # PostgreSQL reads client folders through an expression index.
            for batch in _chunks(ids):
                marks = ", ".join(["%s"] * len(batch))
                cursor.execute(
                    f"DELETE FROM {CLIENT_TABLE} WHERE rowid IN ({marks})",  # noqa: S608
                    batch,
                )
                cursor.execute(
                    f"INSERT INTO {CLIENT_TABLE} (rowid, name, details) "  # noqa: S608
                    "SELECT id, name, city || ' ' || country || ' ' || vat_number || ' ' || email "
                    f"FROM sales_client WHERE id IN ({marks})",
                    batch,
                )
        if with_opportunities:
            from opportuna.sales.models import Opportunity

            opportunity_ids = Opportunity.objects.filter(client_id__in=ids).values_list(
                "pk", flat=True
            )
            search_index_update(opportunity_ids.iterator())


def search_index_rebuild() -> tuple[int, int]:
    """Empty the index and write every opportunity and client folder again; returns the counts."""
    with transaction.atomic(), connection.cursor() as cursor:
        if is_postgresql():
            cursor.execute(f"TRUNCATE {OPPORTUNITY_TABLE}")
            cursor.execute(
                f"INSERT INTO {OPPORTUNITY_TABLE} (opportunity_id, title, client, body, document) "  # noqa: S608
                + _POSTGRESQL_DOCUMENTS.format(where="")
            )
            opportunities = cursor.rowcount
            cursor.execute("SELECT count(*) FROM sales_client")
            clients = cursor.fetchone()[0]
        else:
            cursor.execute(f"DELETE FROM {OPPORTUNITY_TABLE}")  # noqa: S608
            cursor.execute(
                f"INSERT INTO {OPPORTUNITY_TABLE} (rowid, title, client, description, fields, "  # noqa: S608
                "contacts, comments) " + _SQLITE_DOCUMENTS.format(where="")
            )
            opportunities = cursor.rowcount
            cursor.execute(f"DELETE FROM {CLIENT_TABLE}")  # noqa: S608
            cursor.execute(
                f"INSERT INTO {CLIENT_TABLE} (rowid, name, details) "  # noqa: S608
                "SELECT id, name, city || ' ' || country || ' ' || vat_number || ' ' || email "
                "FROM sales_client"
            )
            clients = cursor.rowcount
            # Merge the b-trees written in bulk into one, for the fastest reads.
            for table in (OPPORTUNITY_TABLE, CLIENT_TABLE):
                cursor.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")  # noqa: S608
    return opportunities, clients


# Keeping in sync ----------------------------------------------------------------------------

# Announced kinds that change a client folder; every other kind names an opportunity.
CLIENT_KINDS = {"client.created", "client.updated", "client.merged"}
FOLLOWED_PREFIXES = ("opportunity.", "comment.", "activity.", "contact.", "tag.")


def _search_index_flush(keys: list[Any]) -> None:
    """Rewrite, once, everything a committed transaction touched: ("opportunity", id) or
    ("client", id, with its opportunities?)."""
    opportunities = [key[1] for key in keys if key[0] == "opportunity"]
    clients = [key for key in keys if key[0] == "client"]
    if opportunities:
        search_index_update(opportunities)
    for with_opportunities in (False, True):
        ids = [key[1] for key in clients if key[2] is with_opportunities]
        if ids:
            search_index_update_clients(ids, with_opportunities=with_opportunities)


_pending = CommitBatch(_search_index_flush)


@receiver(changes_recorded, dispatch_uid="opportuna.sales.search")
def search_index_follow(sender: Any, *, changes: list[Announcement], **_: Any) -> None:
    """Note what changes touch; it is rewritten once their transaction commits (one rewrite
    per transaction, however many changes: an import of a thousand rows costs one)."""
    keys: list[tuple[Any, ...]] = []
    for kind, _actor_id, object_id, data in changes:
        if kind in CLIENT_KINDS:
            merged = data.get("merged")
            with_opportunities = kind != "client.created"
            keys.extend(
                ("client", pk, with_opportunities)
                for pk in [object_id, *([merged] if merged else [])]
            )
        elif kind.startswith(FOLLOWED_PREFIXES):
            keys.append(("opportunity", object_id))
    _pending.add(*keys)
