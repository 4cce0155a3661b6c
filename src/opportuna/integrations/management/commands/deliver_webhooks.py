"""`opportuna deliver_webhooks`: send the webhook deliveries that are due, once or in a loop."""

from __future__ import annotations

import csv
import json
import signal
import threading
from argparse import ArgumentTypeError
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections
from django.utils import timezone

from opportuna.integrations.tabular import csv_text
from opportuna.integrations.webhooks import Sent, deliver_due, due_deliveries

SENT_COLUMNS = [
    "delivery",
    "endpoint",
    "event",
    "message_id",
    "attempt",
    "status",
    "http_status",
    "next_attempt_at",
    "error",
]
DUE_COLUMNS = ["delivery", "endpoint", "event", "message_id", "attempt", "due_since"]
STATUSES = ("delivered", "pending", "failed")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise ArgumentTypeError(f"not a whole number: {text!r}") from exc
    if value < 1:
        raise ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ArgumentTypeError(f"not a number of seconds: {text!r}") from exc
    if not value > 0:
        raise ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def sent_row(sent: Sent) -> dict[str, Any]:
    return {
        "delivery": sent.delivery_id,
        "endpoint": sent.endpoint_url,
        "event": sent.event_type,
        "message_id": sent.message_id,
        "attempt": sent.attempt,
        "status": sent.status,
        "http_status": sent.status_code,
        "next_attempt_at": iso(sent.next_attempt_at),
        "error": sent.error,
    }


class Command(BaseCommand):
    help = (
        "Send the webhook deliveries that are due: pending ones of active endpoints whose next "
        "attempt time has come, oldest first, one attempt each, and report what happened. "
        "A delivery that fails again is due again later, on the usual retry schedule. "
        "With the default task backend (tasks run at once) nothing else makes the retries: "
        "run this from cron every minute (with -v 0 it prints nothing when nothing was due), "
        "or keep it running with --loop. With "
        "OPPORTUNA_TASKS_BACKEND=django_tasks_db.DatabaseBackend 'opportuna worker' makes them, "
        "and this command is a safety net for attempts a crash interrupted (taken up 5 minutes "
        "after they started). Runs at the same time as each other or a worker are safe: each "
        "attempt is claimed in the database first and made once. Exits with an error only "
        "when the options are wrong."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=None,
            metavar="N",
            help="Send at most N deliveries per sweep (default: every due one).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the deliveries that would be sent, and send nothing.",
        )
        parser.add_argument(
            "--format",
            choices=("table", "json", "csv"),
            default="table",
            help="Format of the report (default: table).",
        )
        parser.add_argument(
            "--loop",
            type=positive_seconds,
            default=None,
            metavar="SECONDS",
            help="Keep sweeping, waiting SECONDS between sweeps, until Ctrl+C or SIGTERM "
            "(for installations without cron). Sweeps that send nothing print nothing, as "
            "with -v 0.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        output, limit, seconds = options["format"], options["limit"], options["loop"]
        if options["dry_run"]:
            if seconds is not None:
                raise CommandError("--dry-run sends nothing, so there is nothing to --loop.")
            self.write_due(limit, output)
            return
        self.looping = seconds is not None
        # A sweep that sends nothing prints nothing: in a loop, and at -v 0 (cron mails
        # whatever a job prints).
        self.quiet = self.looping or options["verbosity"] == 0
        self.csv_header = output == "csv"
        if self.csv_header and not self.quiet:
            self.write_csv_header()  # an empty run still gives a valid CSV
        if not self.looping:
            self.sweep(limit, output)
            return
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set():
                close_old_connections()  # a long-lived process: drop stale connections
                self.sweep(limit, output, stop=stop)
                stop.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)

    def sweep(self, limit: int | None, output: str, stop: threading.Event | None = None) -> None:
        """One sweep and its report; a stop request ends it between two deliveries."""
        rows: list[dict[str, Any]] = []
        for sent in deliver_due(limit=limit):
            rows.append(sent_row(sent))
            if output == "csv":  # streamed, one line per attempt as it ends
                if self.csv_header:
                    self.write_csv_header()
                self.csv_writer().writerow([csv_text(rows[-1][key]) for key in SENT_COLUMNS])
            if stop is not None and stop.is_set():
                break
        if output == "csv" or (self.quiet and not rows):
            return
        if output == "json":
            # Once: an indented list. In a loop: one line per sweep (JSON Lines).
            self.stdout.write(json.dumps(rows, indent=None if self.looping else 2))
            return
        if not rows:
            self.stdout.write("No webhook delivery is due.")
            return
        self.stdout.write(f"{timezone.localtime():%Y-%m-%d %H:%M:%S}")
        self.write_table(
            ["Delivery", "Endpoint", "Event", "Attempt", "Status", "HTTP", "Next attempt"],
            [
                [
                    row["delivery"],
                    row["endpoint"],
                    row["event"],
                    row["attempt"],
                    row["status"],
                    row["http_status"] or "-",
                    local(row["next_attempt_at"]) or "-",
                ]
                for row in rows
            ],
        )
        counts = [f"{sum(row['status'] == status for row in rows)} {status}" for status in STATUSES]
        self.stdout.write(f"{len(rows)} sent: {', '.join(counts)}.")

    def write_csv_header(self) -> None:
        self.csv_writer().writerow(SENT_COLUMNS)
        self.csv_header = False

    def write_due(self, limit: int | None, output: str) -> None:
        due = due_deliveries(now=timezone.now())
        if limit is not None:
            due = due[:limit]
        rows = [
            {
                "delivery": delivery.pk,
                "endpoint": delivery.endpoint.url,
                "event": delivery.event_type,
                "message_id": delivery.message_id,
                "attempt": delivery.attempt_count + 1,
                "due_since": iso(delivery.next_attempt_at),
            }
            for delivery in due
        ]
        if output == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if output == "csv":
            writer = self.csv_writer()
            writer.writerow(DUE_COLUMNS)
            for row in rows:
                writer.writerow([csv_text(row[key]) for key in DUE_COLUMNS])
            return
        if not rows:
            self.stdout.write("No webhook delivery is due; dry run, nothing sent.")
            return
        self.write_table(
            ["Delivery", "Endpoint", "Event", "Attempt", "Due since"],
            [
                [
                    row["delivery"],
                    row["endpoint"],
                    row["event"],
                    row["attempt"],
                    local(row["due_since"]),
                ]
                for row in rows
            ],
        )
        self.stdout.write(
            f"\n{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'} would be sent; "
            "dry run, nothing sent."
        )

    def csv_writer(self) -> Any:
        return csv.writer(self.stdout, lineterminator="\n")

    def write_table(self, headers: list[str], rows: list[list[Any]]) -> None:
        cells = [[str(cell) for cell in row] for row in rows]
        widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]

        def render(row: list[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

        self.stdout.write(render(headers).rstrip())
        self.stdout.write("  ".join("-" * width for width in widths))
        for row in cells:
            self.stdout.write(render(row).rstrip())


def local(moment: str | None) -> str:
    """An ISO moment in the installation's time zone, to the second."""
    if moment is None:
        return ""
    return f"{timezone.localtime(datetime.fromisoformat(moment)):%Y-%m-%d %H:%M:%S}"
