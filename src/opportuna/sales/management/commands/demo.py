"""`opportuna demo`: load the demo account (for trying Opportuna, or big for benchmarks)."""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from opportuna.sales.demo import (
    ACCOUNT_NAME,
    DEFAULT_BATCH_SIZE,
    DEFAULT_OPPORTUNITIES,
    DEFAULT_SEED,
    DEMO_PASSWORD,
    LOGINS,
    ONE_TRANSACTION_LIMIT,
    demo_has_data,
    demo_is_loaded,
    demo_load,
    demo_reset,
)

MINIMUM = 10


class Command(BaseCommand):
    help = (
        f"Load the demo account '{ACCOUNT_NAME}': 8 users in 2 teams, 2 pipelines, default "
        "fields, client folders and opportunities with three years of history and 18 months "
        f"of forecast. Every demo user's password is '{DEMO_PASSWORD}'. The same --seed gives "
        "the same data. Refuses a database that already has data unless --if-empty or --reset."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--opportunities",
            type=int,
            default=DEFAULT_OPPORTUNITIES,
            metavar="N",
            help=f"How many opportunities (default {DEFAULT_OPPORTUNITIES}, at least {MINIMUM}); "
            "100000 or 1000000 make a benchmark data set. Up to "
            f"{ONE_TRANSACTION_LIMIT} load all or nothing; bigger loads commit batch by batch, "
            "so an interrupted one needs --reset.",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=DEFAULT_SEED,
            help=f"Random seed (default {DEFAULT_SEED}): the same seed gives the same data.",
        )
        parser.add_argument(
            "--today",
            type=date.fromisoformat,
            default=None,
            metavar="YYYY-MM-DD",
            help="Build the history as if today were this date (default: today), "
            "for data that is the same on any day.",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (and say so) when the database already has data; for 'make demo'.",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="First delete ALL opportunities, client folders, pipelines, default fields, "
            "products, lost reasons and tags, and the demo users and teams.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            metavar="N",
            help=f"Opportunities written per batch (default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="No progress bar (there is none anyway when the output is not a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        count = options["opportunities"]
        if count < MINIMUM:
            raise CommandError(f"--opportunities must be at least {MINIMUM}.")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        if options["if_empty"] and options["reset"]:
            raise CommandError("Use either --if-empty or --reset, not both.")
        if options["reset"]:
            demo_reset()
            self.stdout.write("Deleted the existing sales data and the demo users.")
        elif demo_has_data():
            if not options["if_empty"]:
                raise CommandError(
                    "The database already has data. Use --reset to replace it with the demo "
                    "(this deletes every opportunity), or --if-empty to leave it as it is."
                )
            self.stdout.write("The database already has data: the demo was not loaded again.")
            if demo_is_loaded():
                self.print_logins()
            return

        started = time.monotonic()
        quiet = options["no_progress"] or not sys.stderr.isatty()
        with tqdm(total=count, unit=" opp", disable=quiet, file=sys.stderr) as bar:
            summary = demo_load(
                opportunities=count,
                seed=options["seed"],
                today=options["today"],
                batch_size=options["batch_size"],
                progress=bar.update,
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded the demo account '{ACCOUNT_NAME}' in {time.monotonic() - started:.1f} s: "
                f"{summary.users} users, {summary.clients} client folders, "
                f"{summary.opportunities} opportunities, {summary.activities} activities, "
                f"{summary.events} events."
            )
        )
        self.print_logins()

    def print_logins(self) -> None:
        self.stdout.write(f"Demo logins (password '{DEMO_PASSWORD}' for everyone):")
        for role, username in LOGINS:
            self.stdout.write(f"  {role:<12} {username} / {DEMO_PASSWORD}")
