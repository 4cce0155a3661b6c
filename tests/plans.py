"""Query plans for tests that pin how a query is answered."""

from collections.abc import Sequence

from django.db import connection


def postgres_plan(sql: str, *, priced_out: Sequence[str] = ("seqscan",)) -> str:
    """PostgreSQL's plan for `sql` with the named plan nodes priced out (`enable_<name>`
    off): by default sequential scans, so that on a test database this small an index that
    gives the order is taken whenever it can be."""
    with connection.cursor() as cursor:
        for name in priced_out:
            cursor.execute(f"SET LOCAL enable_{name} = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())
