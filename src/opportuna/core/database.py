"""Helpers about the database itself, for both SQLite and PostgreSQL."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

# Rows SQLite reads per index when it samples statistics (`PRAGMA analysis_limit`): enough
# for the planner to know a table's size within a factor of a few, in milliseconds.
SAMPLED_ROWS = 400


def refresh_planner_statistics() -> None:
    """Tell the query planner how big the tables have become, after writing many rows.

    SQLite learns table sizes only when ANALYZE runs. Statistics taken while a table was
    small (a new database, the demo's ANALYZE before a big import) make it choose scans
    where an index lookup is far cheaper, so bulk writers call this as they grow a table
    (every connection's close runs `PRAGMA optimize` too, `core.sqlite`, but a long import
    runs on one connection).
    Sampled, so it costs milliseconds whatever the size. PostgreSQL's autovacuum keeps its
    own statistics up to date: nothing to do there.
    """
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA analysis_limit={SAMPLED_ROWS}")
        cursor.execute("ANALYZE")


# Pages of the SQLite write-ahead log that trigger a checkpoint while `bulk_writes` lasts
# (SQLite's default is 1,000 pages, 4 MB): an index page rewritten by batch after batch is
# copied to the database once per checkpoint, not once per batch.
BULK_CHECKPOINT_PAGES = 25_000  # about 100 MB of log


@contextmanager
def bulk_writes() -> Iterator[None]:
    """Settings for a long run of write transactions in this process (a big import).

    Python's cycle collector runs less often (a batch allocates hundreds of thousands of
    short-lived objects, and each full collection would walk every object of the process
    too), and on SQLite the write-ahead log grows further between checkpoints. Both are
    put back afterwards; nothing about what is written changes.
    """
    thresholds = gc.get_threshold()
    gc.freeze()  # what exists now (modules, Django) is never walked again
    gc.set_threshold(max(thresholds[0], 50_000), *thresholds[1:])
    sqlite = connection.vendor == "sqlite"
    if sqlite:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            pages = cursor.fetchone()[0]
            cursor.execute(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        if sqlite:
            with connection.cursor() as cursor:
                cursor.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")
