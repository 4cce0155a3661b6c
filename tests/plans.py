"""Query plans for tests that pin how a query is answered."""

from django.db import connection


def postgres_plan(sql: str) -> str:
    """PostgreSQL's plan for `sql` with sequential scans priced out, so that on a test
    database this small an index that gives the order is taken whenever it can be."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())
