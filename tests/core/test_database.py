"""Database helpers: planner statistics refreshed after bulk writes, and the settings a long
run of bulk writes uses for itself and puts back."""

import gc

import pytest
from django.db import connection

from opportuna.core.database import BULK_CHECKPOINT_PAGES, bulk_writes, refresh_planner_statistics
from tests.factories import OpportunityFactory

pytestmark = pytest.mark.django_db


def stat_rows(table):
    """SQLite's idea of how many rows the table has (None: no statistics)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        if cursor.fetchone() is None:
            return None
        cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s", [table])
        row = cursor.fetchone()
    return None if row is None else int(row[0].split()[0])


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own statistics")
def test_refreshed_statistics_tell_the_planner_how_big_the_tables_grew():
    OpportunityFactory.create_batch(3)
    refresh_planner_statistics()
    small = stat_rows("sales_opportunity")
    OpportunityFactory.create_batch(30)
    assert stat_rows("sales_opportunity") == small  # stale until refreshed
    refresh_planner_statistics()
    assert stat_rows("sales_opportunity") == small + 30


def test_bulk_writes_collect_less_often_and_put_everything_back():
    thresholds = gc.get_threshold()
    pages = None
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            pages = cursor.fetchone()[0]
    with bulk_writes():
        assert gc.get_threshold()[0] >= 50_000
        assert gc.get_freeze_count() > 0
        if connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA wal_autocheckpoint")
                assert cursor.fetchone()[0] == BULK_CHECKPOINT_PAGES
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            assert cursor.fetchone()[0] == pages


def test_bulk_writes_put_everything_back_after_an_error():
    thresholds = gc.get_threshold()
    with pytest.raises(RuntimeError), bulk_writes():
        raise RuntimeError
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
