"""Django's SQLite backend, plus `PRAGMA optimize` when a connection closes.

SQLite learns how big tables are only when ANALYZE runs. Statistics taken while a table was
small (a new database, the demo's ANALYZE) stay until the next ANALYZE, and a grown table
read with them can be scanned where an index lookup is far cheaper. SQLite's advice for
connections that live as long as a request is to run `PRAGMA optimize` as each one closes:
it analyzes only the tables this connection's queries used whose size changed a lot since
(usually none, and then it costs microseconds), sampled (`PRAGMA analysis_limit`) so it stays
quick whatever the size. It never waits for the write lock: when another connection writes,
it is skipped, and a later close does it.

Selected by `settings.database()` for every SQLite database; `vendor` stays "sqlite".
"""

from __future__ import annotations

import sqlite3

from django.db.backends.sqlite3 import base
from django.utils.asyncio import async_unsafe

from opportuna.core.database import SAMPLED_ROWS


class DatabaseWrapper(base.DatabaseWrapper):
    @async_unsafe
    def close(self) -> None:
        self.validate_thread_sharing()  # before touching the connection, as Django's close
        if self.connection is not None and not self.in_atomic_block and not self.is_in_memory_db():
            optimize(self.connection)
        super().close()


def optimize(connection: sqlite3.Connection) -> None:
    """`PRAGMA optimize`, sampled, without waiting for another writer; errors are ignored
    (a connection being closed has nothing left to report them to)."""
    try:
        timeout = connection.execute("PRAGMA busy_timeout").fetchone()[0]
        connection.execute("PRAGMA busy_timeout=0")
        try:
            connection.execute(f"PRAGMA analysis_limit={SAMPLED_ROWS}")
            connection.execute("PRAGMA optimize")
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(timeout)}")
    except sqlite3.Error:
        pass
