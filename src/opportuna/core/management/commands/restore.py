"""`opportuna restore FILE`: replace the whole database with a backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from opportuna.core.backups import (
    BackupError,
    BackupFile,
    Database,
    backup_check,
    database_restore,
    human_size,
)


class Command(BaseCommand):
    help = (
        "Replace the WHOLE database with a backup made by 'opportuna backup'. The file is "
        "checked first (an Opportuna database that passes the integrity check, or a pg_dump "
        "archive of one). SQLite: copied in through SQLite's backup API in one transaction. "
        "PostgreSQL: pg_restore --clean --if-exists in one transaction (pg_restore must be "
        "installed). Everything written since the backup is lost: stop the app and the worker "
        "first, and take a backup of the current data if you may want it back. Needs --yes."
    )

    # Backups are for bad days too: they must not wait for the app's checks to pass.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The backup file to restore.")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Confirm that the current data may be replaced.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Only check the file and say what would happen; change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source: Path = options["file"]
        try:
            database = Database.of()
            target = database.describe()
            if options["dry_run"]:
                backup = backup_check(source)
                self.stdout.write(
                    f"{source} is a valid backup of {human_size(backup.size)}. It would replace "
                    f"{target}. Dry run: nothing changed."
                )
                self.write_migration_notes(backup)
                return
            if not options["yes"]:
                raise CommandError(
                    f"This replaces ALL data in {target} with {source}; whatever was written "
                    "since that backup is lost. Stop the app and the worker, consider "
                    "'opportuna backup' first, then run again with --yes (or check the file "
                    "with --dry-run)."
                )
            backup = database_restore(source=source)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Restored {source} into {target}.")
        self.write_migration_notes(backup)

    def write_migration_notes(self, backup: BackupFile) -> None:
        missing = backup.missing_migrations()
        if missing:
            self.stdout.write(
                f"The backup predates {len(missing)} migration(s) of this version: run "
                "'opportuna migrate' after restoring."
            )
        unknown = backup.unknown_migrations()
        if unknown:
            names = ", ".join(f"{app}.{name}" for app, name in unknown[:5])
            self.stderr.write(
                f"The backup comes from a newer version of Opportuna ({names}"
                f"{', ...' if len(unknown) > 5 else ''}): upgrade Opportuna before using it."
            )
