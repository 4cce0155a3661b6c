"""Settings: SQLite tuned for a small team's server, and bad environment values stop start-up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

SRC = Path(__file__).resolve().parents[2] / "src"


def sqlite_only() -> None:
    # The one legit skip: CI runs the whole suite a second time on PostgreSQL.
    if connection.vendor != "sqlite":
        pytest.skip(f"SQLite tuning does not apply to {connection.vendor}")


def pragma(conn, name: str) -> object:
    with conn.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_sqlite_has_a_busy_timeout():
    sqlite_only()
    assert pragma(connection, "busy_timeout") > 0


@pytest.mark.django_db
def test_sqlite_enforces_foreign_keys():
    sqlite_only()
    assert pragma(connection, "foreign_keys") == 1


@pytest.mark.django_db
def test_sqlite_file_database_uses_wal(tmp_path):
    sqlite_only()
    # The test database lives in memory, where SQLite always answers journal_mode=memory,
    # so open a second connection with the same settings on a file, as the real one is.
    default = connections[DEFAULT_DB_ALIAS]
    probe = type(default)({**default.settings_dict, "NAME": str(tmp_path / "probe.sqlite3")})
    try:
        assert pragma(probe, "journal_mode") == "wal"
    finally:
        probe.close()


def test_sqlite_transactions_are_immediate():
    sqlite_only()
    assert settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_every_sqlite_database_gets_the_backend_that_refreshes_statistics(monkeypatch):
    from opportuna.settings import SQLITE_ENGINE, database

    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert database()["ENGINE"] == SQLITE_ENGINE
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.sqlite3")
    assert database()["ENGINE"] == SQLITE_ENGINE
    monkeypatch.setenv("DATABASE_URL", "postgres://someone@db.example/opportuna")
    assert database()["ENGINE"] == "django.db.backends.postgresql"


@pytest.mark.django_db
def test_postgresql_sessions_run_without_jit():
    if connection.vendor != "postgresql":
        pytest.skip(f"a PostgreSQL session setting; this is {connection.vendor}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


def test_a_database_urls_own_jit_option_wins():
    from opportuna.settings import postgresql_options

    assert postgresql_options({}) == {"options": "-c jit=off"}
    assert postgresql_options({"options": "-c work_mem=8MB"}) == {
        "options": "-c work_mem=8MB -c jit=off"
    }
    assert postgresql_options({"options": "-c jit=on"}) == {"options": "-c jit=on"}


def import_settings(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """Import opportuna.settings in a fresh interpreter with only the given variables set."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OPPORTUNA_")
        and name not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["OPPORTUNA_DATA_DIR"] = str(tmp_path / "data")
    env.update(variables)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import opportuna.settings as s; print(s.SECRET_KEY)",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPPORTUNA_DEBUG", "maybe"),
        ("OPPORTUNA_HTTPS", "sometimes"),
        ("OPPORTUNA_SECRET_KEY", "too-short"),
        ("DATABASE_URL", "mysql://x/y"),
        ("DATABASE_URL", "nonsense://"),
        ("OPPORTUNA_LOG_LEVEL", "LOUD"),
        ("OPPORTUNA_EMAIL_PORT", "twenty-five"),
    ],
)
def test_bad_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = import_settings(tmp_path, **{name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_data_dir_that_cannot_be_created_stops_start_up(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = import_settings(tmp_path, OPPORTUNA_DATA_DIR=str(blocker / "data"))
    assert result.returncode != 0
    assert "OPPORTUNA_DATA_DIR" in result.stderr


def test_good_values_start_up(tmp_path):
    result = import_settings(
        tmp_path,
        OPPORTUNA_DEBUG="yes",
        OPPORTUNA_SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "x" * 50


def test_missing_secret_key_is_generated_into_the_data_folder_once(tmp_path):
    first = import_settings(tmp_path)
    second = import_settings(tmp_path)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    keyfile = tmp_path / "data" / "secret_key"
    assert len(keyfile.read_text().strip()) >= 50
    assert first.stdout.strip() == keyfile.read_text().strip()
    assert second.stdout.strip() == first.stdout.strip()


def test_generated_secret_key_is_readable_by_its_owner_only(tmp_path):
    result = import_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
