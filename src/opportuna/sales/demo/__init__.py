"""The demo account: a deterministic, realistic data set for trying Opportuna and for benchmarks.

`demo_load` builds it in three parts:

1. `configuration`: users, teams, account settings, pipelines, default fields and catalogues,
   through the services, as an admin would;
2. `story`: a handful of opportunities played through the real services (on a simulated
   clock), so every kind of event exists;
3. `bulk`: the rest, simulated from creation to today and written with `bulk_create`, with
   the same row and event shapes the services write.

The same seed and the same `today` give the same data (ids aside).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date

from django.db import connection, transaction
from django.utils import timezone

from opportuna.accounts.models import Team, User
from opportuna.insights.models import (
    DealActivityCount,
    DealFacts,
    ForecastMonth,
    ForecastOpening,
    StepVisit,
)
from opportuna.sales.demo.bulk import Bulk
from opportuna.sales.demo.configuration import (
    ACCOUNT_NAME,
    ADMIN_USERNAME,
    DEMO_PASSWORD,
    EMAIL_DOMAIN,
    LOGINS,
    PEOPLE,
    TEAMS,
    configure,
)
from opportuna.sales.demo.rows import reset_sequences
from opportuna.sales.demo.story import tell_story
from opportuna.sales.models import (
    Activity,
    Client,
    Comment,
    Contact,
    FieldDefinition,
    LostReason,
    Opportunity,
    OpportunityEvent,
    Pipeline,
    Product,
    Proposal,
    ProposalLine,
    Step,
    Tag,
)
from opportuna.sales.search import search_index_rebuild

DEFAULT_OPPORTUNITIES = 2000
DEFAULT_SEED = 2024
DEFAULT_BATCH_SIZE = 5000
# Up to this size the whole load is one transaction (all or nothing); bigger loads commit
# batch by batch so SQLite's write-ahead log stays small, and an interrupted run needs --reset.
ONE_TRANSACTION_LIMIT = 50_000

__all__ = [
    "ACCOUNT_NAME",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_OPPORTUNITIES",
    "DEFAULT_SEED",
    "DEMO_PASSWORD",
    "LOGINS",
    "ONE_TRANSACTION_LIMIT",
    "DemoSummary",
    "demo_has_data",
    "demo_is_loaded",
    "demo_load",
    "demo_reset",
]


def analyze_database() -> None:
    """Update the query planner's statistics after a bulk load (SQLite and PostgreSQL).

    On PostgreSQL, outside a transaction, VACUUM too: it marks the new pages all-visible, so
    the forecast and statistics can answer from their covering indexes alone at once rather
    than after autovacuum's next pass.
    """
    vacuum = connection.vendor == "postgresql" and not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)" if vacuum else "ANALYZE")


@dataclass(frozen=True)
class DemoSummary:
    users: int
    clients: int
    opportunities: int
    activities: int
    events: int


def demo_is_loaded() -> bool:
    """The demo's admin exists (not just any user called "admin"): its logins work."""
    email = f"{ADMIN_USERNAME}@{EMAIL_DOMAIN}"
    return User.objects.filter(username=ADMIN_USERNAME, email=email).exists()


def demo_has_data() -> bool:
    """Anything the demo would collide with: opportunities, clients, pipelines, its users
    or teams."""
    usernames = [person.username for person in PEOPLE]
    return (
        Opportunity.objects.exists()
        or Client.objects.exists()
        or Pipeline.objects.exists()
        or User.objects.filter(username__in=usernames).exists()
        or Team.objects.filter(name__in=TEAMS).exists()
    )


def demo_load(
    *,
    opportunities: int = DEFAULT_OPPORTUNITIES,
    seed: int = DEFAULT_SEED,
    today: date | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] = lambda done: None,
) -> DemoSummary:
    """Build the demo account with `opportunities` opportunities (at least the story's six)."""
    today = today or timezone.localdate()
    whole = transaction.atomic() if opportunities <= ONE_TRANSACTION_LIMIT else nullcontext()
    with whole:
        with transaction.atomic():
            cast = configure()
            told = tell_story(cast, today=today)
            progress(told)
        bulk = Bulk(cast=cast, rng=random.Random(seed), today=today, batch_size=batch_size)
        bulk.run(max(0, opportunities - told), progress)
        reset_sequences()
    # Bulk rows bypass the announcements that keep the search index and the insights' derived
    # tables in step: index them all, refresh the planner's statistics so lists pick their
    # indexes on the new data, then rebuild the derived tables (as `opportuna rebuild_insights`
    # does) and let the planner know those too.
    from opportuna.insights.facts import rebuild_insights

    search_index_rebuild()
    analyze_database()
    rebuild_insights()
    analyze_database()
    return DemoSummary(
        users=User.objects.count(),
        clients=Client.objects.count(),
        opportunities=Opportunity.objects.count(),
        activities=Activity.objects.count(),
        events=OpportunityEvent.objects.count(),
    )


# Children first; raw DELETEs because the ORM would load every opportunity to cascade.
WIPED = [
    # Derived from the opportunities (emptied with them; rebuilt by the next load).
    DealActivityCount,
    DealFacts,
    ForecastOpening,
    ForecastMonth,
    StepVisit,
    ProposalLine,
    Proposal,
    OpportunityEvent,
    Activity,
    Comment,
    Contact,
    Opportunity.tags.through,
    Opportunity,
    Client,
    Step,
    Pipeline,
    FieldDefinition,
    Tag,
    Product,
    LostReason,
]


@transaction.atomic
def demo_reset() -> None:
    """Delete every opportunity, client folder and sales setting, and the demo users and teams.

    Activity types and users other than the demo's stay.
    """
    with connection.cursor() as cursor:
        for model in WIPED:
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - a model's own table name
    User.objects.filter(username__in=[person.username for person in PEOPLE]).delete()
    Team.objects.filter(name__in=TEAMS).delete()
    search_index_rebuild()
