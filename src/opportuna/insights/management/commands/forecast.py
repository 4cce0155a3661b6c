import csv
import json
from argparse import ArgumentTypeError
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from opportuna.accounts.models import Account, Role, User
from opportuna.core.money import from_cents
from opportuna.insights.periods import PERIODS, add_months, period_start
from opportuna.insights.selectors import (
    GROUPS,
    ForecastRow,
    UndatedOpen,
    forecast,
    forecast_total,
    forecast_undated,
)

# (field of ForecastRow, table header, kind): counts and money are right-aligned.
COLUMNS = [
    ("count_open", "Open", "count"),
    ("amount_open", "Open amount", "money"),
    ("weighted_open", "Weighted", "money"),
    ("count_won", "Won", "count"),
    ("won", "Won amount", "money"),
    ("count_lost", "Lost", "count"),
    ("lost_amount", "Lost amount", "money"),
    ("expected", "Expected", "money"),
]

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ArgumentTypeError(f"not a date in YYYY-MM-DD form: {text!r}") from exc


def safe_text(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote defuses a would-be formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def money(cents: int) -> str:
    return str(from_cents(cents))


class Command(BaseCommand):
    help = (
        "Print the forecast: per period, open opportunities by expected close date (count, "
        "amount, weighted amount = amount x probability / 100), won and lost ones by close "
        "date, and the expected total (won + weighted open), optionally broken down by owner, "
        "team, pipeline, step or product. It shows what the given user may see. Money is in "
        "currency units with two decimals; JSON carries it as exact decimal strings. Open "
        "opportunities without an expected close date belong to no period and are reported "
        "apart (in the table and the JSON)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--period",
            choices=PERIODS,
            default="month",
            help="Length of a period (default: month). For a multi-year view use year with "
            "a longer --end.",
        )
        parser.add_argument(
            "--by", choices=GROUPS, default=None, help="Break each period down by this."
        )
        parser.add_argument(
            "--start",
            type=iso_date,
            default=None,
            metavar="YYYY-MM-DD",
            help="First day, YYYY-MM-DD (default: the first day of the current period).",
        )
        parser.add_argument(
            "--end",
            type=iso_date,
            default=None,
            metavar="YYYY-MM-DD",
            help="Last day included, YYYY-MM-DD (default: 12 months after --start, less a day).",
        )
        parser.add_argument(
            "--user",
            default=None,
            metavar="USERNAME",
            help="Username whose view of the opportunities to use (default: the first active "
            "admin).",
        )
        parser.add_argument(
            "--format",
            choices=("table", "csv", "json"),
            default="table",
            help="Output format (default: table).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = self.user(options["user"])
        period = options["period"]
        by = options["by"]
        start = options["start"] or period_start(timezone.localdate(), period)
        end = options["end"] or add_months(start, 12) - timedelta(days=1)
        try:
            rows = forecast(user=user, period=period, start=start, end=end, by=by)
            total = forecast_total(user=user, start=start, end=end)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["format"] == "csv":
            self.write_csv(rows, by=by)
            return
        undated = forecast_undated(user=user)
        if options["format"] == "json":
            document = {
                "user": user.username,
                "period": period,
                "by": by,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "currency": Account.load().currency,
                "rows": [self.json_row(row, by=by) for row in rows],
                "totals": self.json_row(total, by=None),
                "undated": {
                    "count_open": undated.count,
                    "amount_open": money(undated.amount),
                    "weighted_open": money(undated.weighted),
                },
            }
            self.stdout.write(json.dumps(document, indent=2))
            return
        self.write_table(rows, total, undated, by=by)

    def user(self, username: str | None) -> User:
        if username is None:
            admin = (
                User.objects.filter(is_active=True)
                .filter(Q(role=Role.ADMIN) | Q(is_superuser=True))
                .order_by("pk")
                .first()
            )
            if admin is None:
                raise CommandError("There is no active admin; name a user with --user.")
            return admin
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named {username!r}.") from exc
        if not user.is_active:
            raise CommandError(f"The user {username!r} is not active.")
        return user

    @staticmethod
    def json_row(row: ForecastRow, *, by: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"period": row.period} if row.period else {}
        if by:
            out.update(group_id=row.group_id, group=row.group_label)
        for field, _header, kind in COLUMNS:
            value = getattr(row, field)
            out[field] = money(value) if kind == "money" else value
        return out

    def write_csv(self, rows: list[ForecastRow], *, by: str | None) -> None:
        writer = csv.writer(self.stdout, lineterminator="\n")
        group_header = [by, f"{by}_id"] if by else []
        writer.writerow(["period", *group_header, *(field for field, _h, _k in COLUMNS)])
        for row in rows:
            group = [safe_text(row.group_label), row.group_id or ""] if by else []
            numbers = [
                money(getattr(row, field)) if kind == "money" else getattr(row, field)
                for field, _header, kind in COLUMNS
            ]
            writer.writerow([safe_text(row.period), *group, *numbers])

    def write_table(
        self, rows: list[ForecastRow], total: ForecastRow, undated: UndatedOpen, *, by: str | None
    ) -> None:
        headers = ["Period", *([by.capitalize()] if by else []), *(h for _f, h, _k in COLUMNS)]
        text_columns = 2 if by else 1

        def cells(row: ForecastRow, period: str) -> list[str]:
            values = asdict(row)
            numbers = [
                f"{from_cents(values[field]):,}" if kind == "money" else f"{values[field]:,}"
                for field, _header, kind in COLUMNS
            ]
            return [period, *([row.group_label] if by else []), *numbers]

        lines = [cells(row, row.period) for row in rows]
        total_line = cells(total, "Total")
        if by:
            total_line[1] = ""
        widths = [
            max(len(line[i]) for line in [headers, *lines, total_line]) for i in range(len(headers))
        ]

        def render(line: list[str]) -> str:
            return "  ".join(
                cell.ljust(width) if i < text_columns else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()

        rule = "  ".join("-" * width for width in widths)
        for line in [render(headers), rule, *map(render, lines), rule, render(total_line)]:
            self.stdout.write(line)
        if undated.count:
            some = "opportunity has" if undated.count == 1 else "opportunities have"
            self.stdout.write(
                f"\n{undated.count} open {some} no expected close date and no period "
                f"(amount {from_cents(undated.amount):,}, weighted "
                f"{from_cents(undated.weighted):,})."
            )
