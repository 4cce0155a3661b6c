"""`opportuna send_reminders`: the daily digest email of each user's next actions."""

from __future__ import annotations

import csv
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.sales.reminders import Digest, Item, reminder_digests, send_reminder_digests

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ["user", "email", "language", "kind", "due", "overdue", "title", "client", "url"]


def safe_text(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote defuses a would-be formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def local_time(item: Item) -> str:
    return timezone.localtime(item.due_at).strftime("%Y-%m-%d %H:%M")


def rows(digests: list[Digest]) -> list[dict[str, Any]]:
    return [
        {
            "user": digest.user.username,
            "email": digest.user.email,
            "language": digest.language,
            "kind": item.kind,
            "due": local_time(item),
            "overdue": item.overdue,
            "title": item.title,
            "client": item.client,
            "url": item.url,
        }
        for digest in digests
        for item in [*digest.next_actions, *digest.activities]
    ]


def json_digest(digest: Digest) -> dict[str, Any]:
    def item(entry: Item) -> dict[str, Any]:
        out: dict[str, Any] = {
            "opportunity_id": entry.opportunity_id,
            "title": entry.title,
            "client": entry.client,
            "due_at": timezone.localtime(entry.due_at).isoformat(),
            "overdue": entry.overdue,
            "note": entry.note,
            "url": entry.url,
        }
        if entry.kind == "activity":
            out = {"activity_id": entry.pk, "type": entry.activity_type, **out}
        return out

    return {
        "user": digest.user.username,
        "email": digest.user.email,
        "language": digest.language,
        "day": digest.day.isoformat(),
        "next_action_count": digest.next_action_count,
        "next_actions": [item(entry) for entry in digest.next_actions],
        "activity_count": digest.activity_count,
        "activities": [item(entry) for entry in digest.activities],
    }


class Command(BaseCommand):
    help = (
        "Email each active user a digest of their open opportunities whose next action is "
        "overdue or due today, and their planned activities due today, in their language, with "
        "links (OPPORTUNA_BASE_URL). Users with nothing due get nothing. Run it once a day, e.g. "
        "from cron at 7:00; 'today' is the local day in OPPORTUNA_TIME_ZONE. Email goes through "
        "OPPORTUNA_EMAIL_BACKEND (the console by default). The same work runs as the task "
        "opportuna.sales.tasks.send_reminder_digests."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List who would get what, and send nothing.",
        )
        parser.add_argument(
            "--user", default=None, metavar="USERNAME", help="Only this user's digest."
        )
        parser.add_argument(
            "--format",
            choices=("table", "json", "csv"),
            default="table",
            help="Format of the --dry-run listing (default: table).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["user"]
        if username is not None:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r}.")
            if not user.is_active:
                raise CommandError(f"The user {username!r} is not active.")
        if options["dry_run"]:
            self.write_listing(reminder_digests(username=username), options["format"])
            return
        result = send_reminder_digests(username=username)
        sent = len(result.sent)
        self.stdout.write(f"Sent {sent} reminder email{'' if sent == 1 else 's'}.")
        for digest in result.without_email:
            self.stderr.write(
                f"Not sent to {digest.user.username}: no email address "
                f"({digest.count} item{'' if digest.count == 1 else 's'} due)."
            )

    def write_listing(self, digests: list[Digest], output: str) -> None:
        if output == "json":
            self.stdout.write(
                json.dumps(
                    [json_digest(digest) for digest in digests], indent=2, ensure_ascii=False
                )
            )
            return
        lines = rows(digests)
        if output == "csv":
            writer = csv.DictWriter(self.stdout, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            for line in lines:
                writer.writerow(
                    {key: safe_text(v) if isinstance(v, str) else v for key, v in line.items()}
                )
            return
        self.write_table(digests, lines)

    def write_table(self, digests: list[Digest], lines: list[dict[str, Any]]) -> None:
        if not digests:
            self.stdout.write("Nobody has anything due today: no email would be sent.")
            return
        headers = ["User", "Email", "Kind", "Due", "Title", "Client"]
        cells = [
            [
                line["user"],
                line["email"] or "(no email: not sent)",
                "next action" if line["kind"] == "next_action" else "activity",
                line["due"] + (" overdue" if line["overdue"] else ""),
                line["title"],
                line["client"],
            ]
            for line in lines
        ]
        widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]

        def render(row: list[str]) -> str:
            return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

        self.stdout.write(render(headers).rstrip())
        self.stdout.write("  ".join("-" * width for width in widths))
        for row in cells:
            self.stdout.write(render(row).rstrip())
        with_email = sum(1 for digest in digests if digest.user.email)
        self.stdout.write(
            f"\n{with_email} email{'' if with_email == 1 else 's'} would be sent "
            f"({len(digests) - with_email} user(s) without an email address); dry run, "
            "nothing sent."
        )
