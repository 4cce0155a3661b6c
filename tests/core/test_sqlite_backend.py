"""The SQLite backend runs `PRAGMA optimize` as a connection closes, without waiting for a
writer."""

import sqlite3
import time

import pytest
from django.db.utils import ConnectionHandler

from opportuna.core.sqlite.base import DatabaseWrapper, optimize
from opportuna.settings import SQLITE_ENGINE, SQLITE_OPTIONS


@pytest.fixture
def file_db(tmp_path):
    """A file database with an indexed table whose statistics say 10 rows, holding 5,010."""
    path = tmp_path / "stats.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER)")
    raw.execute("CREATE INDEX t_k ON t (k)")
    raw.executemany("INSERT INTO t (k) VALUES (?)", [(n,) for n in range(10)])
    raw.commit()
    raw.execute("ANALYZE")
    raw.executemany("INSERT INTO t (k) VALUES (?)", [(n % 50,) for n in range(5000)])
    raw.commit()
    raw.close()
    return path


def stat_rows(path):
    raw = sqlite3.connect(path)
    try:
        return int(
            raw.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 't_k'").fetchone()[0].split()[0]
        )
    finally:
        raw.close()


def wrapper_for(path):
    handler = ConnectionHandler(
        {"default": {"ENGINE": SQLITE_ENGINE, "NAME": str(path), "OPTIONS": SQLITE_OPTIONS}}
    )
    wrapper = handler["default"]
    assert isinstance(wrapper, DatabaseWrapper)
    return wrapper


def test_closing_a_connection_refreshes_the_statistics_of_what_it_read(file_db, django_db_blocker):
    assert stat_rows(file_db) == 10
    with django_db_blocker.unblock():
        wrapper = wrapper_for(file_db)
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT id FROM t WHERE k = %s", [7])
            assert len(cursor.fetchall()) == 101
        wrapper.close()
    # Sampled (`PRAGMA analysis_limit`): the size within a factor of a few, not to the row.
    assert 2500 < stat_rows(file_db) < 20000


def test_optimize_skips_rather_than_waits_for_another_writer(file_db):
    writer = sqlite3.connect(file_db)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock
    reader = sqlite3.connect(file_db)
    reader.execute("PRAGMA busy_timeout=20000")
    reader.execute("SELECT id FROM t WHERE k = 7").fetchall()
    try:
        started = time.monotonic()
        optimize(reader)  # with the connection's own timeout it would wait 20 s for the lock
        assert time.monotonic() - started < 5
        assert reader.execute("PRAGMA busy_timeout").fetchone()[0] == 20000
    finally:
        writer.rollback()
        writer.close()
        reader.close()
    assert stat_rows(file_db) == 10  # skipped: a later close does it
