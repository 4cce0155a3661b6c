"""The search index: one document per opportunity, one per client folder.

SQLite: two FTS5 tables keyed by rowid (= opportunity id, = client id) that keep their own
copy of the text, so a row can be replaced after the source changed.
PostgreSQL: a table of weighted tsvectors (title A, client B, the rest D) with a GIN index,
and a GIN expression index over client folder names.

No model describes these tables: `opportuna.sales.search` keeps them in sync after each
committed change and rebuilds them (`opportuna rebuild_search_index`). This migration
carries its own copy of the SQL, as migrations never import app code.
"""

from django.db import migrations

SQLITE_CREATE = [
    """
    CREATE VIRTUAL TABLE sales_search USING fts5(
        title, client, description, fields, contacts, comments,
        tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
    )
    """,
    """
    CREATE VIRTUAL TABLE sales_client_search USING fts5(
        name, details, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
    )
    """,
    """
    INSERT INTO sales_search (rowid, title, client, description, fields, contacts, comments)
    SELECT o.id, o.title, coalesce(c.name, ''), o.description,
        coalesce((SELECT group_concat(j.value, ' · ') FROM json_each(o.fields) AS j), ''),
        coalesce((SELECT group_concat(ct.name || ' ' || ct.role || ' ' || ct.email || ' ' || ct.phone, ' · ')
                  FROM sales_contact AS ct WHERE ct.opportunity_id = o.id), ''),
        coalesce((SELECT group_concat(cm.body, ' · ')
                  FROM sales_comment AS cm WHERE cm.opportunity_id = o.id), '')
    FROM sales_opportunity AS o LEFT JOIN sales_client AS c ON c.id = o.client_id
    """,
    """
    INSERT INTO sales_client_search (rowid, name, details)
    SELECT id, name, city || ' ' || country || ' ' || vat_number || ' ' || email FROM sales_client
    """,
]
SQLITE_DROP = ["DROP TABLE IF EXISTS sales_search", "DROP TABLE IF EXISTS sales_client_search"]

# PostgreSQL's "simple" configuration keeps accents: documents and query words lose them first.
ACCENTED = (
    "àáâãäåāăąèéêëēĕėęěìíîïĩīĭįòóôõöøōŏőùúûüũūŭůűųçćčñńňýÿśšźżžđł"
    "ÀÁÂÃÄÅĀĂĄÈÉÊËĒĔĖĘĚÌÍÎÏĨĪĬĮÒÓÔÕÖØŌŎŐÙÚÛÜŨŪŬŮŰŲÇĆČÑŃŇÝŸŚŠŹŻŽĐŁ"
)
UNACCENTED = (
    "aaaaaaaaaeeeeeeeeeiiiiiiiiooooooooouuuuuuuuuucccnnnyysszzzdl"
    "AAAAAAAAAEEEEEEEEEIIIIIIIIOOOOOOOOOUUUUUUUUUUCCCNNNYYSSZZZDL"
)


def unaccented(expression):
    return f"translate({expression}, '{ACCENTED}', '{UNACCENTED}')"


POSTGRESQL_CREATE = [
    """
    CREATE TABLE sales_search (
        opportunity_id bigint PRIMARY KEY,
        title text NOT NULL,
        client text NOT NULL,
        body text NOT NULL,
        document tsvector NOT NULL
    )
    """,
    "CREATE INDEX sales_search_document_idx ON sales_search USING gin (document)",
    """
    CREATE INDEX sales_client_search_idx ON sales_client USING gin (
        to_tsvector('simple'::regconfig, {})
    )
    """.format(
        unaccented(
            "sales_client.name || ' ' || sales_client.city || ' ' || sales_client.country "
            "|| ' ' || sales_client.vat_number || ' ' || sales_client.email"
        )
    ),
    """
    INSERT INTO sales_search (opportunity_id, title, client, body, document)
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
    ) AS d
    """.format(  # noqa: S608 - constant SQL
        title=unaccented("d.title"), client=unaccented("d.client"), body=unaccented("d.body")
    ),
]
POSTGRESQL_DROP = [
    "DROP INDEX IF EXISTS sales_client_search_idx",
    "DROP TABLE IF EXISTS sales_search",
]


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def create_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE_CREATE)
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRESQL_CREATE)


def drop_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        _run(schema_editor, SQLITE_DROP)
    elif vendor == "postgresql":
        _run(schema_editor, POSTGRESQL_DROP)


class Migration(migrations.Migration):
    dependencies = [("sales", "0002_seed_activity_types")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
