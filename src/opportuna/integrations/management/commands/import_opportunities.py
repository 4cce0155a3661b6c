"""`opportuna import_opportunities FILE --user NAME`: import opportunities (or client folders)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from opportuna.accounts.models import User
from opportuna.integrations.importing import (
    CLIENTS,
    IGNORE,
    OPPORTUNITIES,
    TEXT,
    ImportOptions,
    apply_overrides,
    check_mapping,
    count_rows,
    guess_mapping,
    import_file,
    open_sheet,
    target_choices,
)
from opportuna.integrations.tabular import DELIMITERS, ENCODINGS, FORMATS, TableError
from opportuna.sales.models import FieldDefinition
from opportuna.sales.services.imports import REJECTED


def _mapping(value: str) -> tuple[str, str]:
    column, sep, target = value.rpartition("=")
    if not sep or not column.strip():
        raise ValueError(value)
    return column.strip(), target.strip()


class Command(BaseCommand):
    help = (
        "Import opportunities (or, with --clients, client folders) from a CSV or XLSX file, "
        "as the given admin or manager. Columns are guessed from the header; --map changes "
        "them. Rows with an external id already imported update that opportunity, so "
        "importing the same file again changes nothing. Every row is all or nothing. "
        "Prints a summary and every rejected row."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The CSV or XLSX file.")
        parser.add_argument(
            "--user", required=True, help="Who imports (username): an admin or a manager."
        )
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file.")
        parser.add_argument("--delimiter", choices=DELIMITERS, help="CSV only. Default: guessed.")
        parser.add_argument(
            "--encoding", choices=ENCODINGS, default="auto", help="CSV only. Default: auto."
        )
        parser.add_argument(
            "--map",
            type=_mapping,
            action="extend",
            nargs="+",
            default=[],
            metavar="COLUMN=FIELD",
            help="Import a column as this field (one or more, repeatable): e.g. 'Valore=amount', "
            "'Budget=field:budget', 'Referente=contact:1:name', 'Notes=' to skip a column. "
            "--list-fields shows the fields.",
        )
        parser.add_argument(
            "--text-column",
            metavar="NAME",
            help="A noCRM-style text column: 'Label: value' lines for default fields, a line "
            "'---', then the description.",
        )
        parser.add_argument("--clients", action="store_true", help="The rows are client folders.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check every row and report; write nothing."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--list-fields", action="store_true", help="List the fields a column can go to."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = CLIENTS if options["clients"] else OPPORTUNITIES
        definitions = list(FieldDefinition.objects.all())
        valid = {target for target, _label in target_choices(kind, definitions)}
        if options["list_fields"]:
            for target, label in target_choices(kind, definitions):
                if target:
                    self.stdout.write(f"{target:32} {label}")
            return
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user is called {options['user']!r}.")
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        import_options = ImportOptions(
            kind=kind,
            format=options["format"],
            encoding=options["encoding"],
            delimiter=options["delimiter"],
        )
        try:
            headers = open_sheet(path, import_options).headers
            mapping = guess_mapping(headers, kind, definitions)
            overrides = list(options["map"])
            if options["text_column"]:
                overrides.append((options["text_column"], TEXT))
            mapping = apply_overrides(headers, mapping, overrides, valid | {IGNORE})
        except (TableError, ValueError) as error:
            raise CommandError(str(error)) from error
        problems = check_mapping(kind, mapping)
        if problems:
            raise CommandError(" ".join(problems))
        import_options.mapping = mapping
        if options["verbosity"] >= 2:
            for header, target in zip(headers, mapping, strict=True):
                self.stdout.write(f"  {header!r} -> {target or '(not imported)'}")
        bar = None
        if not options["no_progress"]:
            bar = tqdm(total=count_rows(path, import_options), unit="row", file=self.stderr)
        started = time.perf_counter()
        try:
            report, columns = import_file(
                actor=user,
                path=path,
                options=import_options,
                dry_run=options["dry_run"],
                progress=bar.update if bar else None,
            )
        except PermissionDenied as error:
            raise CommandError(str(error) or "Not allowed.") from error
        except TableError as error:
            raise CommandError(f"{path}: {error}") from error
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - started
        for row in report.rows:
            if row.action == REJECTED:
                reasons = "; ".join(f"{c}: {m}" if c else m for c, m in row.errors)
                self.stdout.write(f"row {row.number}: {reasons}")
        counts = report.counts()
        rate = len(report.rows) / seconds if seconds else 0
        verb = "would be" if options["dry_run"] else "were"
        self.stdout.write(
            f"{len(report.rows)} rows in {seconds:.1f} s ({rate:,.0f} rows/s): "
            f"{counts['created']} {verb} created, {counts['updated']} {verb} updated, "
            f"{counts['unchanged']} unchanged, {counts['rejected']} rejected; "
            f"{len(report.new_clients)} new client folders, {len(report.new_tags)} new tags."
            + (" Nothing was written (dry run)." if options["dry_run"] else "")
        )
