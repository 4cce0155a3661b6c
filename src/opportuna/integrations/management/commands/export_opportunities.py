"""`opportuna export_opportunities --user NAME`: the opportunities (or client folders) as a file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from opportuna.accounts.models import User
from opportuna.integrations.exporting import export_table
from opportuna.integrations.tabular import csv_lines, xlsx_file
from opportuna.sales.models import Client, Pipeline, Status, Step, Tag
from opportuna.sales.selectors.opportunity_list import SORT_KEYS, ListFilters


class Command(BaseCommand):
    help = (
        "Write the opportunities USER can see (or, with --clients, the client folders) as CSV "
        "or XLSX, to a file or standard output, streamed. Filters as in the opportunity "
        "list. The file reads back with import_opportunities."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="Whose view to export (username).")
        parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
        parser.add_argument("--output", type=Path, help="The file to write (default: stdout).")
        parser.add_argument("--clients", action="store_true", help="Client folders instead.")
        parser.add_argument(
            "--status",
            choices=["open", "closed", *Status.values],
            help="open (to do or standby), closed, or one status.",
        )
        parser.add_argument("--owner", help="Owner's username.")
        parser.add_argument("--pipeline", help="Pipeline name.")
        parser.add_argument("--step", help="Step name (in --pipeline, if given).")
        parser.add_argument("--tag", help="Tag name.")
        parser.add_argument("--client", help="Client folder: name or external id.")
        parser.add_argument("--text", default="", help="Words to search, as the list's box.")
        parser.add_argument(
            "--sort",
            default="-created_at",
            help=f"One of {', '.join(SORT_KEYS)}, '-' first for descending.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user is called {options['user']!r}.")
        if options["format"] == "xlsx" and options["output"] is None and sys.stdout.isatty():
            raise CommandError("An XLSX file is binary: give --output, or redirect stdout.")
        headers, rows = export_table(
            user=user,
            what="clients" if options["clients"] else "opportunities",
            filters=self._filters(options),
            sort=options["sort"],
        )
        output: Path | None = options["output"]
        if options["format"] == "xlsx":
            with xlsx_file(
                headers, rows, title="clients" if options["clients"] else "opportunities"
            ) as data:
                if output is None:
                    shutil.copyfileobj(data, sys.stdout.buffer)
                else:
                    with output.open("wb") as file:
                        shutil.copyfileobj(data, file)
            return
        if output is None:
            for piece in csv_lines(headers, rows):
                self.stdout.write(piece, ending="")
            return
        with output.open("w", encoding="utf-8", newline="") as file:
            for piece in csv_lines(headers, rows):
                file.write(piece)

    def _filters(self, options: dict[str, Any]) -> ListFilters:
        def one(queryset: Any, label: str, value: str) -> int:
            found = list(queryset.values_list("pk", flat=True)[:2])
            if len(found) != 1:
                raise CommandError(
                    f"{label} {value!r}: {'none' if not found else 'several'} found."
                )
            return int(found[0])

        pipeline = step = owner = tag = client = None
        if options["pipeline"]:
            pipeline = one(
                Pipeline.objects.filter(name__iexact=options["pipeline"]),
                "Pipeline",
                options["pipeline"],
            )
        if options["step"]:
            steps = Step.objects.filter(name__iexact=options["step"])
            if pipeline:
                steps = steps.filter(pipeline_id=pipeline)
            step = one(steps, "Step", options["step"])
        if options["owner"]:
            owner = one(User.objects.filter(username=options["owner"]), "User", options["owner"])
        if options["tag"]:
            tag = one(Tag.objects.filter(name__iexact=options["tag"]), "Tag", options["tag"])
        if options["client"]:
            value = options["client"]
            by_id = Client.objects.filter(external_id=value)
            client = one(
                by_id if by_id.exists() else Client.objects.filter(name__iexact=value),
                "Client folder",
                value,
            )
        return ListFilters(
            owner=owner,
            tag=tag,
            client=client,
            text=options["text"],
            status=options["status"] or "",
            pipeline=pipeline,
            step=step,
        )
