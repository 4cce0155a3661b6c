"""`opportuna backup` and `restore`: consistent copies of a live database and a safe way back.

The test database lives in memory, so the round trips run the real command line on a file
database in a scratch data folder (and on a scratch PostgreSQL database when the suite runs
on PostgreSQL and pg_dump is installed).
"""

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from unittest import mock
from urllib.parse import quote

import pytest
from django.core.management import load_command_class
from django.db import connection

from opportuna.core import backups
from opportuna.core.backups import (
    BackupError,
    Database,
    backup_target,
    pg_connection_arguments,
    pg_dump_command,
    pg_environment,
    pg_restore_command,
    sqlite_backup,
    sqlite_check,
    sqlite_restore,
)

SRC = Path(__file__).resolve().parents[2] / "src"
PG = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "opportuna",
    "USER": "sales",
    "PASSWORD": "s3cret-Pa55",
    "HOST": "db.example.com",
    "PORT": 5433,
    "OPTIONS": {"sslmode": "require"},
}
COUNT_TITLES = (
    "from opportuna.sales.models import Opportunity as O; "
    "print('RESULT', O.objects.count(), O.objects.filter(title='changed').count())"
)
CHANGE_TITLES = (
    "from opportuna.sales.models import Opportunity as O; O.objects.update(title='changed')"
)


def opportuna(*args: str, data_dir: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OPPORTUNA_")
        and name not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(OPPORTUNA_DATA_DIR=str(data_dir), **variables)
    # The arguments come from the tests themselves, never from outside.
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "opportuna", *args],
        env=env,
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def counts(data_dir: Path, **variables: str) -> tuple[int, int]:
    """(opportunities, opportunities titled 'changed') in the site's database."""
    line = next(
        line
        for line in ok(opportuna("shell", "-c", COUNT_TITLES, data_dir=data_dir, **variables))
        .strip()
        .splitlines()
        if line.startswith("RESULT ")
    )
    _label, total, changed = line.split()
    return int(total), int(changed)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A data folder with a migrated SQLite database and a small demo account."""
    data_dir = tmp_path_factory.mktemp("site")
    ok(opportuna("migrate", "-v0", data_dir=data_dir))
    ok(opportuna("demo", "--opportunities", "10", data_dir=data_dir))
    return data_dir


def make_sqlite(path: Path, *tables: str, wal: bool = False) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    for table in tables:
        db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, app TEXT, name TEXT)")
    db.commit()
    return db


def opportuna_like(path: Path, *, wal: bool = False) -> sqlite3.Connection:
    return make_sqlite(path, "django_migrations", "sales_opportunity", wal=wal)


# --- SQLite round trip through the command line -------------------------------------------


def test_backup_restore_round_trip_brings_the_data_back(site, tmp_path):
    backup = tmp_path / "before.sqlite3"
    ok(opportuna("backup", "--output", str(backup), data_dir=site))
    ok(opportuna("shell", "-c", CHANGE_TITLES, data_dir=site))
    assert counts(site) == (10, 10)
    ok(opportuna("restore", "--yes", str(backup), data_dir=site))
    assert counts(site) == (10, 0)


def test_backup_prints_the_file_and_its_size(site, tmp_path):
    backup = tmp_path / "copy.sqlite3"
    out = ok(opportuna("backup", "--output", str(backup), data_dir=site))
    assert str(backup) in out
    assert f"{backup.stat().st_size:,} bytes" in out


def test_backup_is_a_private_self_contained_opportuna_database(site, tmp_path):
    backup = tmp_path / "copy.sqlite3"
    ok(opportuna("backup", "--output", str(backup), data_dir=site))
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sqlite_check(backup).migrations


def test_backup_goes_into_the_data_folder_by_default(tmp_path):
    ok(opportuna("migrate", "-v0", data_dir=tmp_path))
    out = ok(opportuna("backup", data_dir=tmp_path))
    (written,) = (tmp_path / "backups").glob("opportuna-*.sqlite3")
    assert written.name[len("opportuna-") :].removesuffix(".sqlite3").replace("-", "").isdigit()
    assert str(written) in out


def test_backup_dry_run_writes_nothing(site, tmp_path):
    backup = tmp_path / "never.sqlite3"
    out = ok(opportuna("backup", "--dry-run", "--output", str(backup), data_dir=site))
    assert not backup.exists()
    assert "Would back up" in out


def test_restore_without_yes_explains_and_changes_nothing(site, tmp_path):
    backup = tmp_path / "before.sqlite3"
    ok(opportuna("backup", "--output", str(backup), data_dir=site))
    ok(opportuna("shell", "-c", CHANGE_TITLES, data_dir=site))
    try:
        refused = opportuna("restore", str(backup), data_dir=site)
        assert refused.returncode != 0
        assert "--yes" in refused.stderr
        assert counts(site) == (10, 10)
    finally:
        ok(opportuna("restore", "--yes", str(backup), data_dir=site))


def test_restore_dry_run_only_checks(site, tmp_path):
    backup = tmp_path / "before.sqlite3"
    ok(opportuna("backup", "--output", str(backup), data_dir=site))
    ok(opportuna("shell", "-c", CHANGE_TITLES, data_dir=site))
    try:
        out = ok(opportuna("restore", "--dry-run", str(backup), data_dir=site))
        assert "is a valid backup" in out
        assert counts(site) == (10, 10)
    finally:
        ok(opportuna("restore", "--yes", str(backup), data_dir=site))


def test_restore_refuses_a_file_that_is_not_an_opportuna_database(site, tmp_path):
    other = tmp_path / "other.sqlite3"
    make_sqlite(other, "notes").close()
    refused = opportuna("restore", "--yes", str(other), data_dir=site)
    assert refused.returncode != 0
    assert "not Opportuna's" in refused.stderr
    assert counts(site)[0] == 10


# --- SQLite building blocks -----------------------------------------------------------------


def test_backup_copies_committed_rows_still_in_the_wal(tmp_path):
    live = opportuna_like(tmp_path / "live.sqlite3", wal=True)
    live.execute("PRAGMA wal_autocheckpoint=0")  # keep the new rows in the -wal file only
    live.execute("INSERT INTO sales_opportunity (name) VALUES ('in the wal')")
    live.commit()
    assert (tmp_path / "live.sqlite3-wal").stat().st_size > 0
    sqlite_backup(source=tmp_path / "live.sqlite3", target=tmp_path / "copy.sqlite3")
    with sqlite3.connect(tmp_path / "copy.sqlite3") as copy:
        assert copy.execute("SELECT name FROM sales_opportunity").fetchall() == [("in the wal",)]
    live.close()


def test_restore_is_seen_by_connections_already_open_and_keeps_wal(tmp_path):
    backup = opportuna_like(tmp_path / "backup.sqlite3")
    backup.execute("INSERT INTO sales_opportunity (name) VALUES ('from the backup')")
    backup.commit()
    backup.close()
    live = opportuna_like(tmp_path / "live.sqlite3", wal=True)
    live.execute("INSERT INTO sales_opportunity (name) VALUES ('current')")
    live.commit()
    sqlite_restore(source=tmp_path / "backup.sqlite3", target=tmp_path / "live.sqlite3")
    assert live.execute("SELECT name FROM sales_opportunity").fetchall() == [("from the backup",)]
    assert live.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    live.close()


def test_check_refuses_a_file_that_is_not_sqlite(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackupError, match="not a readable SQLite database"):
        sqlite_check(junk)


def test_check_refuses_a_missing_file(tmp_path):
    with pytest.raises(BackupError, match="no such file"):
        sqlite_check(tmp_path / "nothing.sqlite3")


def test_check_refuses_a_database_without_opportunas_tables(tmp_path):
    make_sqlite(tmp_path / "half.sqlite3", "django_migrations").close()
    with pytest.raises(BackupError, match="no sales_opportunity table"):
        sqlite_check(tmp_path / "half.sqlite3")


def test_restore_refuses_the_live_database_itself(tmp_path):
    opportuna_like(tmp_path / "live.sqlite3").close()
    with pytest.raises(BackupError, match="live database itself"):
        sqlite_restore(source=tmp_path / "live.sqlite3", target=tmp_path / "live.sqlite3")


def test_backup_never_overwrites_a_file(tmp_path):
    existing = tmp_path / "taken.sqlite3"
    existing.write_text("keep me")
    database = Database(vendor="sqlite", settings={"NAME": str(tmp_path / "live.sqlite3")})
    with pytest.raises(BackupError, match="already exists"):
        backup_target(database, existing)
    assert existing.read_text() == "keep me"


def test_a_database_in_memory_cannot_be_backed_up():
    database = Database(vendor="sqlite", settings={"NAME": ":memory:"})
    with pytest.raises(BackupError, match="in memory"):
        database.sqlite_path  # noqa: B018 - the property raises


# --- PostgreSQL: the commands that are run --------------------------------------------------


@pytest.fixture
def pg_tools(monkeypatch):
    monkeypatch.setattr(backups.shutil, "which", lambda name: f"/opt/pg/bin/{name}")


def test_pg_dump_uses_custom_format_and_the_settings_connection(pg_tools, tmp_path):
    command = pg_dump_command(PG, tmp_path / "out.dump")
    assert command[0] == "/opt/pg/bin/pg_dump"
    assert "--format=custom" in command
    for argument in ("--host=db.example.com", "--port=5433", "--username=sales"):
        assert argument in command
    assert "--dbname=opportuna" in command
    assert f"--file={tmp_path / 'out.dump'}" in command


def test_the_password_is_never_on_the_command_line(pg_tools, tmp_path):
    commands = [pg_dump_command(PG, tmp_path / "x"), pg_restore_command(PG, tmp_path / "x")]
    assert not any(PG["PASSWORD"] in argument for command in commands for argument in command)
    assert "--no-password" in commands[0]


def test_the_password_and_ssl_mode_travel_in_the_environment():
    environment = pg_environment(PG)
    assert environment["PGPASSWORD"] == PG["PASSWORD"]
    assert environment["PGSSLMODE"] == "require"


def test_pg_restore_cleans_and_restores_in_one_transaction(pg_tools, tmp_path):
    command = pg_restore_command(PG, tmp_path / "in.dump")
    for option in ("--clean", "--if-exists", "--single-transaction", "--exit-on-error"):
        assert option in command
    assert command[-1] == str(tmp_path / "in.dump")


def test_connection_arguments_skip_what_the_settings_leave_empty():
    assert pg_connection_arguments({"NAME": "opportuna", "HOST": "", "PORT": ""}) == [
        "--no-password",
        "--dbname=opportuna",
    ]


def test_missing_pg_dump_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(backups.shutil, "which", lambda name: None)
    with pytest.raises(BackupError, match="pg_dump was not found"):
        pg_dump_command(PG, tmp_path / "out.dump")


def test_pg_backup_runs_pg_dump_with_the_password_in_its_environment(pg_tools, tmp_path):
    def fake_run(command, **kwargs):
        if "pg_dump" in command[0]:
            target = next(a.removeprefix("--file=") for a in command if a.startswith("--file="))
            Path(target).write_bytes(b"PGDMP")
        return subprocess.CompletedProcess(command, 0, stdout="", stderr="")

    checked = backups.BackupFile(path=tmp_path / "x", size=5, vendor="postgresql")
    with (
        mock.patch.object(backups.subprocess, "run", side_effect=fake_run) as run,
        mock.patch.object(backups, "pg_check", return_value=checked),
    ):
        written = backups.pg_backup(config=PG, target=tmp_path / "out.dump")
    (dump_call,) = run.call_args_list
    assert dump_call.kwargs["env"]["PGPASSWORD"] == PG["PASSWORD"]
    assert written.path == tmp_path / "out.dump"
    assert (tmp_path / "out.dump").read_bytes() == b"PGDMP"
    assert not (tmp_path / "out.dump.partial").exists()


def test_failed_pg_dump_leaves_no_file_and_says_why(pg_tools, tmp_path):
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="connection refused")
    with (
        mock.patch.object(backups.subprocess, "run", return_value=failed),
        pytest.raises(BackupError, match="pg_dump failed.*connection refused"),
    ):
        backups.pg_backup(config=PG, target=tmp_path / "out.dump")
    assert list(tmp_path.iterdir()) == []


# --- PostgreSQL: a real round trip when the suite runs there --------------------------------


@pytest.fixture
def scratch_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the real pg_dump round trip runs in the PostgreSQL pass of the suite")
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed here")
    import psycopg

    config = connection.settings_dict
    name = f"opportuna_backup_{uuid.uuid4().hex[:12]}"
    server = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    user = quote(config["USER"] or "", safe="")
    password = f":{quote(config['PASSWORD'], safe='')}" if config["PASSWORD"] else ""
    host = config["HOST"] or "localhost"
    port = config["PORT"] or 5432
    try:
        yield f"postgres://{user}{password}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_pg_backup_restore_round_trip_brings_the_data_back(scratch_postgres, tmp_path):
    db = {"DATABASE_URL": scratch_postgres}
    ok(opportuna("migrate", "-v0", data_dir=tmp_path, **db))
    ok(opportuna("demo", "--opportunities", "10", data_dir=tmp_path, **db))
    backup = tmp_path / "before.dump"
    ok(opportuna("backup", "--output", str(backup), data_dir=tmp_path, **db))
    ok(opportuna("restore", "--dry-run", str(backup), data_dir=tmp_path, **db))
    ok(opportuna("shell", "-c", CHANGE_TITLES, data_dir=tmp_path, **db))
    assert counts(tmp_path, **db) == (10, 10)
    out = ok(opportuna("restore", "--yes", str(backup), data_dir=tmp_path, **db))
    assert "migrate" not in out  # the backup has every migration of this version
    assert counts(tmp_path, **db) == (10, 0)


# --- Help ---------------------------------------------------------------------------------


def help_of(app: str, name: str) -> str:
    return load_command_class(app, name).create_parser("opportuna", name).format_help()


def test_backup_help_names_its_options_and_both_databases():
    text = help_of("opportuna.core", "backup")
    for expected in ("--output", "--dry-run", "SQLite", "pg_dump"):
        assert expected in text


def test_restore_help_says_it_needs_yes():
    text = help_of("opportuna.core", "restore")
    for expected in ("--yes", "--dry-run", "WHOLE database", "pg_restore"):
        assert expected in text


def test_worker_help_says_when_tasks_are_queued():
    text = help_of("opportuna.core", "worker")
    assert "OPPORTUNA_TASKS_BACKEND=django_tasks_db.DatabaseBackend" in text
    assert "--batch" in text  # db_worker's options pass through
