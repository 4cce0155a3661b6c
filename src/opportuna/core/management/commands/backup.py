"""`opportuna backup`: a consistent copy of the whole database, taken while Opportuna runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from opportuna.core.backups import (
    BackupError,
    Database,
    backup_target,
    database_backup,
    human_size,
)


class Command(BaseCommand):
    help = (
        "Back up the whole database while Opportuna runs. SQLite: a consistent copy through "
        "SQLite's online backup API (WAL included) into one self-contained file, then checked "
        "with PRAGMA integrity_check. PostgreSQL: pg_dump in custom format (-Fc), with the "
        "connection from DATABASE_URL (the password passed in PGPASSWORD); pg_dump must be "
        "installed. Default file: <data folder>/backups/opportuna-YYYYmmdd-HHMMSS.sqlite3 (.dump "
        "for PostgreSQL). Restore it with 'opportuna restore FILE'. Keep the data folder's "
        "secret_key too: it is not in the database."
    )

    # Backups are for bad days too: they must not wait for the app's checks to pass.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            metavar="FILE",
            help="Write the backup to FILE (it must not exist yet).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say which database would be backed up into which file, and write nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            database = Database.of()
            if options["dry_run"]:
                target = backup_target(database, options["output"])
                self.stdout.write(f"Would back up {database.describe()} to {target}.")
                if database.vendor == "sqlite" and database.sqlite_path.exists():
                    size = human_size(database.sqlite_path.stat().st_size)
                    self.stdout.write(f"The database file holds {size}. Dry run: nothing written.")
                return
            backup = database_backup(output=options["output"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Backed up {database.describe()} to:")
        self.stdout.write(f"{backup.path}  {human_size(backup.size)}")
