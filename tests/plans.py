"""Query plans for tests that pin how a query is answered."""

from collections.abc import Sequence

from django.db import connection

# For "is this order read from an index": with sorting priced out too, PostgreSQL sorts only
# where no index can give the order, whatever it believes of a test table's size.
ORDER_FROM_AN_INDEX = ("seqscan", "sort", "incremental_sort")


def postgres_plan(sql: str, *, priced_out: Sequence[str] = ("seqscan",)) -> str:
    """PostgreSQL's plan for `sql` with the named plan nodes priced out (`enable_<name>`
    off): by default sequential scans, so that on a test database this small an index that
    gives the order is taken whenever it can be."""
    with connection.cursor() as cursor:
        for name in priced_out:
            cursor.execute(f"SET LOCAL enable_{name} = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def sqlite_plan(sql: str, params: Sequence[object] = ()) -> str:
    """SQLite's `EXPLAIN QUERY PLAN` for `sql`, its steps joined by " / "."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return " / ".join(row[-1] for row in cursor.fetchall())
