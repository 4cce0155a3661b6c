"""`opportuna rebuild_insights`: write the insights' derived tables again from the database.

The closed-deal facts (behaviour analysis, calibration), the step visits (funnel, time in
step) and the monthly forecast openings (forecast versus actual) follow every change made
through the services; this recomputes them all, for after writes that bypass the services
(a bulk SQL load, a restore of a backup taken before they existed) or a back-dated import.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from opportuna.insights.facts import rebuild_insights


class Command(BaseCommand):
    help = (
        "Rebuild the insights' derived tables from the activities and the event log: the "
        "facts of every won or lost opportunity (behaviour analysis, probability calibration), "
        "every stay of an opportunity on a step (funnel, time in step), then the pipeline at "
        "the start of each month (forecast versus actual). Run it after loading data without "
        "the application (SQL, a restore of an older backup) or after importing opportunities "
        "with past dates. Safe at any time: each table is rebuilt in one transaction, so the "
        "pages show the old figures until it commits (on PostgreSQL they then wait a few "
        "seconds while the closed-deal tables are compacted)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        rebuild_insights(say=self.stdout.write)
        self.stdout.write(f"Done in {time.monotonic() - started:.1f} s.")
