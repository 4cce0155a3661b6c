"""`opportuna rebuild_search_index`: write the search index again from the database.

Needed after bulk writes that bypass the services (the demo generator, imports, restores).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from opportuna.sales.search import search_index_rebuild


class Command(BaseCommand):
    help = "Rebuild the search index of opportunities and client folders from the database."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        opportunities, clients = search_index_rebuild()
        self.stdout.write(
            f"Indexed {opportunities} opportunities and {clients} client folders "
            f"in {time.monotonic() - started:.1f} s."
        )
