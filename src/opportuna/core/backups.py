"""Backups and restores of the whole database, while Opportuna runs.

SQLite: SQLite's online backup API copies a consistent snapshot of the live file (WAL
included) into one self-contained file, and restores the same way, so other connections see
either the old database or the restored one, never a mix. PostgreSQL: `pg_dump` in custom
format and `pg_restore --clean --if-exists` in one transaction; the password travels in the
PGPASSWORD environment variable, never on a command line. The `backup` and `restore` commands
are thin over these functions.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

# A file is an Opportuna database when it has these tables.
REQUIRED_TABLES = ("django_migrations", "sales_opportunity")
SQLITE, POSTGRESQL = "sqlite", "postgresql"
SUFFIXES = {SQLITE: ".sqlite3", POSTGRESQL: ".dump"}
# libpq reads these from the environment; the OPTIONS of DATABASES map onto them.
PG_OPTION_VARIABLES = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}
BUSY_TIMEOUT_SECONDS = 20


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Database:
    """The database a backup reads or a restore replaces (settings.DATABASES[alias])."""

    vendor: str
    settings: Mapping[str, Any]

    @classmethod
    def of(cls, alias: str = DEFAULT_DB_ALIAS) -> Database:
        config = settings.DATABASES[alias]
        engine = str(config["ENGINE"])
        if engine in ("django.db.backends.sqlite3", settings.SQLITE_ENGINE):
            return cls(vendor=SQLITE, settings=config)
        if engine == "django.db.backends.postgresql":
            return cls(vendor=POSTGRESQL, settings=config)
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {engine}.")

    @property
    def sqlite_path(self) -> Path:
        name = str(self.settings["NAME"])
        if not name or name == ":memory:" or "mode=memory" in name:
            raise BackupError("The database lives in memory: there is no file to back up.")
        return Path(name)

    def describe(self) -> str:
        if self.vendor == SQLITE:
            return f"the SQLite database {self.sqlite_path}"
        host = self.settings.get("HOST") or "localhost"
        port = self.settings.get("PORT") or 5432
        return f"the PostgreSQL database {self.settings['NAME']} on {host}:{port}"


@dataclass(frozen=True)
class BackupFile:
    """A checked backup: where it is, how big, which migrations it was taken at."""

    path: Path
    size: int
    vendor: str
    migrations: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def missing_migrations(self) -> list[tuple[str, str]]:
        """Migrations of this version of Opportuna that the backup was taken without."""
        return sorted(code_migrations() - self.migrations)

    def unknown_migrations(self) -> list[tuple[str, str]]:
        """Migrations in the backup that this version does not know (a newer version)."""
        return sorted(self.migrations - code_migrations())


def code_migrations() -> frozenset[tuple[str, str]]:
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def default_backup_path(database: Database, *, now: datetime | None = None) -> Path:
    """DATA_DIR/backups/opportuna-YYYYmmdd-HHMMSS.sqlite3 (.dump for PostgreSQL), local time."""
    stamp = timezone.localtime(now or timezone.now()).strftime("%Y%m%d-%H%M%S")
    return Path(settings.DATA_DIR) / "backups" / f"opportuna-{stamp}{SUFFIXES[database.vendor]}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size:,} bytes)"
        value /= 1024
    raise AssertionError("unreachable")


def _private_file(target: Path) -> Path:
    """An empty file next to `target`, readable by its owner only, to write the backup into;
    renamed to `target` once complete, so `target` never holds half a backup."""
    partial = target.with_name(f"{target.name}.partial")
    partial.unlink(missing_ok=True)
    partial.touch(mode=0o600)
    return partial


# --- SQLite -----------------------------------------------------------------------------


def _sqlite_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=20)


def sqlite_check(path: Path) -> BackupFile:
    """The file as a backup if it is an intact Opportuna SQLite database; BackupError if not."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file.")
    try:
        with closing(_sqlite_readonly(path)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            missing = [table for table in REQUIRED_TABLES if table not in tables]
            if missing:
                raise BackupError(
                    f"{path} is a SQLite database but not Opportuna's: it has no "
                    f"{', '.join(missing)} table."
                )
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(
                    f"{path} fails SQLite's integrity check: {'; '.join(problems[:5])}"
                )
            migrations = frozenset(db.execute("SELECT app, name FROM django_migrations"))
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a readable SQLite database: {exc}.") from exc
    return BackupFile(path=path, size=path.stat().st_size, vendor=SQLITE, migrations=migrations)


def sqlite_backup(*, source: Path, target: Path) -> BackupFile:
    """Copy the live database into `target` (a new file) while it is in use, then check it.

    The copy leaves WAL mode: a backup is one self-contained file.
    """
    if not source.is_file():
        raise BackupError(f"There is no database at {source}: nothing to back up.")
    partial = _private_file(target)
    try:
        with closing(_sqlite_readonly(source)) as live, closing(sqlite3.connect(partial)) as copy:
            live.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
        checked = sqlite_check(partial)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"The backup of {source} failed: {exc}.") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupFile(
        path=target, size=target.stat().st_size, vendor=SQLITE, migrations=checked.migrations
    )


def sqlite_restore(*, source: Path, target: Path) -> None:
    """Replace the live database's content with `source`'s, in one write transaction.

    Through the backup API, so the live file keeps WAL mode and other connections wait on
    the busy timeout, then see the restored database.
    """
    if target.exists() and source.resolve() == target.resolve():
        raise BackupError(f"{source} is the live database itself.")
    try:
        with (
            closing(_sqlite_readonly(source)) as backup,
            closing(sqlite3.connect(target, timeout=BUSY_TIMEOUT_SECONDS)) as live,
        ):
            backup.backup(live)
    except sqlite3.Error as exc:
        raise BackupError(f"The restore into {target} failed: {exc}.") from exc


# --- PostgreSQL -------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} was not found on PATH. Install the PostgreSQL client tools (the same major "
            "version as the server or newer), e.g. the postgresql-client package."
        )
    return found


def pg_connection_arguments(config: Mapping[str, Any]) -> list[str]:
    """Host, port, user and database as options; the password is never among them."""
    arguments = ["--no-password"]
    for key, option in (("HOST", "--host"), ("PORT", "--port"), ("USER", "--username")):
        if config.get(key):
            arguments.append(f"{option}={config[key]}")
    arguments.append(f"--dbname={config['NAME']}")
    return arguments


def pg_environment(config: Mapping[str, Any]) -> dict[str, str]:
    """This process's environment plus PGPASSWORD and the SSL options of the settings."""
    environment = dict(os.environ)
    if config.get("PASSWORD"):
        environment["PGPASSWORD"] = str(config["PASSWORD"])
    options = config.get("OPTIONS") or {}
    for option, variable in PG_OPTION_VARIABLES.items():
        if options.get(option) not in (None, ""):
            environment[variable] = str(options[option])
    return environment


def pg_dump_command(config: Mapping[str, Any], target: Path) -> list[str]:
    return [
        pg_tool("pg_dump"),
        "--format=custom",
        *pg_connection_arguments(config),
        f"--file={target}",
    ]


def pg_restore_command(config: Mapping[str, Any], source: Path) -> list[str]:
    # --no-owner: the restoring role owns what it creates, whoever owned the dumped objects.
    return [
        pg_tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        *pg_connection_arguments(config),
        str(source),
    ]


def _run(command: list[str], *, environment: Mapping[str, str] | None = None) -> str:
    # The command is built above from the settings and a path, never from a shell string.
    result = subprocess.run(  # noqa: S603
        command,
        env=dict(environment) if environment is not None else None,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tool = Path(command[0]).name
        raise BackupError(f"{tool} failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _pg_migrations(path: Path) -> frozenset[tuple[str, str]]:
    """The applied migrations stored in a custom-format dump (its django_migrations rows)."""
    script = _run(
        [pg_tool("pg_restore"), "--data-only", "--table=django_migrations", "--file=-", str(path)]
    )
    migrations: set[tuple[str, str]] = set()
    copying = False
    for line in script.splitlines():
        if line.startswith("COPY ") and "django_migrations" in line:
            copying = True
        elif copying and line == "\\.":
            break
        elif copying:
            _id, app, name, *_rest = line.split("\t")
            migrations.add((app, name))
    return frozenset(migrations)


def pg_check(path: Path) -> BackupFile:
    """The file as a backup if it is a custom-format dump of Opportuna's database."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file.")
    try:
        listing = _run([pg_tool("pg_restore"), "--list", str(path)])
    except BackupError as exc:
        raise BackupError(f"{path} is not a readable pg_dump custom-format archive: {exc}") from exc
    missing = [
        table
        for table in REQUIRED_TABLES
        if not re.search(rf"^\d+; \d+ \d+ TABLE \S+ {table} ", listing, re.MULTILINE)
    ]
    if missing:
        raise BackupError(
            f"{path} is a PostgreSQL archive but not of Opportuna's database: it has no "
            f"{', '.join(missing)} table."
        )
    return BackupFile(
        path=path, size=path.stat().st_size, vendor=POSTGRESQL, migrations=_pg_migrations(path)
    )


def pg_backup(*, config: Mapping[str, Any], target: Path) -> BackupFile:
    """pg_dump the database into `target` (renamed into place once complete and checked)."""
    partial = _private_file(target)
    try:
        _run(pg_dump_command(config, partial), environment=pg_environment(config))
        checked = pg_check(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return BackupFile(
        path=target, size=target.stat().st_size, vendor=POSTGRESQL, migrations=checked.migrations
    )


def pg_restore(*, config: Mapping[str, Any], source: Path) -> None:
    """Drop and recreate every object of the archive, all in one transaction."""
    _run(pg_restore_command(config, source), environment=pg_environment(config))


# --- What the commands call -------------------------------------------------------------


def database_backup(*, output: Path | None = None, alias: str = DEFAULT_DB_ALIAS) -> BackupFile:
    """Back the database up into `output` (default: a new time-stamped file under DATA_DIR);
    the backup is checked before this returns."""
    database = Database.of(alias)
    target = backup_target(database, output)
    target.parent.mkdir(parents=True, exist_ok=True)
    if database.vendor == SQLITE:
        return sqlite_backup(source=database.sqlite_path, target=target)
    return pg_backup(config=database.settings, target=target)


def backup_target(database: Database, output: Path | None) -> Path:
    """Where a backup goes; never over an existing file."""
    target = output if output is not None else default_backup_path(database)
    if target.exists():
        raise BackupError(f"{target} already exists: choose another --output.")
    if database.vendor == SQLITE:
        database.sqlite_path  # noqa: B018 - raises for a database in memory
    return target


def backup_check(path: Path, *, alias: str = DEFAULT_DB_ALIAS) -> BackupFile:
    """Check that `path` is a backup this database can be restored from."""
    database = Database.of(alias)
    if database.vendor == SQLITE:
        return sqlite_check(path)
    return pg_check(path)


def database_restore(*, source: Path, alias: str = DEFAULT_DB_ALIAS) -> BackupFile:
    """Replace the whole database with the backup `source`, after checking it."""
    database = Database.of(alias)
    live = database.sqlite_path if database.vendor == SQLITE else None
    backup = backup_check(source, alias=alias)
    # Our own connection must not hold a lock or a stale snapshot across the swap.
    connections.close_all()
    if live is not None:
        sqlite_restore(source=source, target=live)
    else:
        pg_restore(config=database.settings, source=source)
    return backup
