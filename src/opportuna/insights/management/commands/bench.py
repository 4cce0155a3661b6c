"""`opportuna bench`: time the forecast and the statistics on the current database.

Meant for a database loaded with `opportuna demo --opportunities 100000` (or 1000000); see
bench/README.md. Each scenario runs once to warm up, then `--runs` times; the command prints
the median, minimum and maximum, the row counts and the database it ran on.
"""

from __future__ import annotations

import functools
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Q
from django.http import HttpRequest
from django.test import RequestFactory
from django.utils import timezone
from django_htmx.middleware import HtmxDetails

from opportuna.accounts.models import Role, User
from opportuna.accounts.selectors import visible_owner_filter
from opportuna.insights.analysis import (
    InsightFilters,
    behaviour_analysis,
    calibration_steps,
    probability_calibration,
)
from opportuna.insights.history import forecast_accuracy, pipeline_snapshot
from opportuna.insights.periods import (
    add_months,
    local_day_range,
    local_midnight,
    periods_between,
)
from opportuna.insights.selectors import forecast
from opportuna.insights.statistics import (
    StatisticsFilters,
    activities_per_outcome,
    activity_report,
    activity_types,
    lost_reason_matrix,
    lost_reasons,
    rotting_deals,
    step_funnel,
    win_rates,
)
from opportuna.insights.views import analysis as analysis_views
from opportuna.insights.views import forecast as forecast_views
from opportuna.insights.views import statistics as statistics_views
from opportuna.sales.models import Activity, Opportunity, OpportunityEvent, Step

YEARS = 5
HISTORY_MONTHS = 36  # the forecast range starts this many months back: the demo's history


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    run: Callable[[], object]


def forecast_range(today: date) -> tuple[date, date]:
    """Five years of months: the demo's three years of history and its two years ahead."""
    start = add_months(today.replace(day=1), -HISTORY_MONTHS)
    return start, add_months(start, 12 * YEARS) - timedelta(days=1)


def raw_forecast(start: date, end: date) -> list[tuple[Any, ...]]:
    """The whole-company monthly forecast as one hand-written SQL query, per vendor.

    The same numbers as `insights.selectors.forecast` for an admin: open opportunities by
    expected close month, won and lost ones by close month in the account's time zone.
    """
    first_instant, after_end = local_day_range(start, end)
    opp = connection.ops.quote_name(Opportunity._meta.db_table)
    if connection.vendor == "postgresql":
        zone = timezone.get_default_timezone_name()
        closed_month = "to_char(closed_at AT TIME ZONE %s, 'YYYY-MM')"
        month_params: list[Any] = [zone]
        open_month = "to_char(expected_close_date, 'YYYY-MM')"
    elif connection.vendor == "sqlite":
        # SQLite knows no time zones: compare with each month's first instant, computed here.
        months = periods_between(start, end, "month")
        whens = " ".join(
            "WHEN closed_at < %s THEN %s" for _ in months[1:]
        )  # month k ends where k+1 starts
        closed_month = f"CASE {whens} ELSE %s END"
        month_params = []
        for (key, _first), (_next_key, following) in zip(months, months[1:], strict=False):
            month_params += [local_midnight(following), key]
        month_params.append(months[-1][0])
        month_params = [
            connection.ops.adapt_datetimefield_value(p) if not isinstance(p, str) else p
            for p in month_params
        ]
        open_month = "strftime('%%Y-%%m', expected_close_date)"
    else:
        raise CommandError(f"no raw query written for {connection.vendor}")
    edges: list[Any] = [first_instant, after_end]
    if connection.vendor == "sqlite":
        edges = [connection.ops.adapt_datetimefield_value(e) for e in edges]
    sql = f"""
        SELECT bucket,
               COUNT(*) FILTER (WHERE status IN ('todo', 'standby')),
               COALESCE(SUM(amount) FILTER (WHERE status IN ('todo', 'standby')), 0),
               COALESCE(SUM(weighted) FILTER (WHERE status IN ('todo', 'standby')), 0),
               COUNT(*) FILTER (WHERE status = 'won'),
               COALESCE(SUM(won_amount) FILTER (WHERE status = 'won'), 0),
               COUNT(*) FILTER (WHERE status = 'lost'),
               COALESCE(SUM(amount) FILTER (WHERE status = 'lost'), 0),
               COALESCE(SUM(weighted) FILTER (WHERE status IN ('todo', 'standby', 'won')), 0)
        FROM (
            SELECT CASE WHEN status IN ('todo', 'standby') THEN {open_month}
                        ELSE {closed_month} END AS bucket,
                   status, amount, won_amount,
                   CASE WHEN status = 'won' THEN won_amount
                        WHEN status IN ('todo', 'standby') THEN (amount * probability + 50) / 100
                        ELSE 0 END AS weighted
            FROM {opp}
            WHERE (status IN ('todo', 'standby')
                   AND expected_close_date >= %s AND expected_close_date <= %s)
               OR (status IN ('won', 'lost') AND closed_at >= %s AND closed_at < %s)
        ) AS dated
        GROUP BY bucket
        ORDER BY bucket
    """  # noqa: S608 - table name from the model, values as parameters
    days: list[Any] = [start, end]
    if connection.vendor == "sqlite":
        days = [connection.ops.adapt_datefield_value(d) for d in days]
    params = [*month_params, *days, *edges]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(int(v) if i else v for i, v in enumerate(row)) for row in cursor.fetchall()]


def orm_forecast_rows(user: User, start: date, end: date) -> list[tuple[Any, ...]]:
    return [
        (
            row.period,
            row.count_open,
            row.amount_open,
            row.weighted_open,
            row.count_won,
            row.won,
            row.count_lost,
            row.lost_amount,
            row.expected,
        )
        for row in forecast(user=user, period="month", start=start, end=end)
    ]


def page(view: Callable[[HttpRequest], Any], user: User, **query: str) -> Callable[[], object]:
    """A page rendered through its view function (no HTTP, no middleware but htmx's)."""
    factory = RequestFactory()

    def render() -> object:
        request = factory.get("/", query)
        request.user = user
        request.htmx = HtmxDetails(request)  # type: ignore[attr-defined]
        response = view(request)
        assert response.status_code == 200, response.status_code
        return len(response.content)

    return render


def statistics_scenarios(user: User, today: date) -> list[Scenario]:
    """Every statistics computation and page, with the filters a page opens with (the last
    12 months, everything else unset)."""
    chosen = StatisticsFilters.from_query({}, today=today)
    span = f"{chosen.start} to {chosen.end}"
    types = functools.cache(activity_types)  # read at the first run, not when listing
    return [
        Scenario(
            "win_rates",
            f"statistics.win_rates by owner, closed {span}",
            lambda: win_rates(user=user, filters=chosen, by="owner"),
        ),
        Scenario(
            "funnel",
            f"statistics.step_funnel, created {span}",
            lambda: step_funnel(user=user, filters=chosen),
        ),
        Scenario(
            "lost_reasons",
            f"statistics.lost_reasons and lost_reason_matrix by month, lost {span}",
            lambda: (
                lost_reasons(user=user, filters=chosen),
                lost_reason_matrix(user=user, filters=chosen, by="month"),
            ),
        ),
        Scenario(
            "activity_report",
            f"statistics.activity_report, done {span}",
            lambda: activity_report(user=user, filters=chosen, types=types()),
        ),
        Scenario(
            "activities_outcome",
            f"statistics.activities_per_outcome, closed {span}",
            lambda: activities_per_outcome(user=user, filters=chosen, types=types()),
        ),
        Scenario(
            "rotting",
            "statistics.rotting_deals, open now",
            lambda: rotting_deals(user=user, filters=chosen),
        ),
        Scenario(
            "statistics_page",
            "/insights/statistics/ rendered (win rates by owner)",
            page(statistics_views.statistics, user),
        ),
        Scenario(
            "funnel_page",
            "/insights/statistics/funnel/ rendered",
            page(statistics_views.statistics_funnel, user),
        ),
        Scenario(
            "lost_page",
            "/insights/statistics/lost/ rendered (by month)",
            page(statistics_views.statistics_lost, user),
        ),
        Scenario(
            "activities_page",
            "/insights/statistics/activities/ rendered",
            page(statistics_views.statistics_activities, user),
        ),
        Scenario(
            "rotting_page",
            "/insights/statistics/rotting/ rendered",
            page(statistics_views.statistics_rotting, user),
        ),
    ]


def calibration_step() -> Step | None:
    """The step the calibration at a step is timed at: the first pipeline's second (one most
    deals pass through), else its first; None without steps."""
    steps = calibration_steps()
    if not steps:
        return None
    first = [step for step in steps if step.pipeline_id == steps[0].pipeline_id]
    return first[1] if len(first) > 1 else first[0]


def database_name() -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    return connection.vendor


class Command(BaseCommand):
    help = (
        "Time the whole-company monthly forecast over 5 years (ORM and one raw SQL query), "
        "the forecast page, the behaviour analysis, the probability calibration, the pipeline "
        "on a past date, forecast-versus-actual, and every statistics computation and page on "
        "the current database. "
        "Prints median, min and max of --runs runs (after one warm-up), the row counts and "
        "the database. Read-only, except that forecast-versus-actual stores the opening "
        "pipeline of months it finds missing, as the page does (during the warm-up)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--runs", type=int, default=5, help="Timed runs per scenario.")
        parser.add_argument(
            "--scenario",
            action="append",
            default=None,
            metavar="NAME",
            help="Only this scenario (repeatable); default: all. --list shows the names.",
        )
        parser.add_argument("--list", action="store_true", help="List the scenarios and stop.")
        parser.add_argument(
            "--user",
            default=None,
            metavar="USERNAME",
            help="Whose view to compute (default: the first active admin, who sees all).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["runs"] < 1:
            raise CommandError("--runs must be at least 1.")
        # Listing needs no database: an unsaved user and no step stand in for the real ones.
        listing = options["list"]
        user = User() if listing else self.user(options["user"])
        today = timezone.localdate()
        start, end = forecast_range(today)
        page_start = add_months(today.replace(day=1), -24)  # two years back, one ahead
        everything = InsightFilters()
        at_step = None if listing else calibration_step()
        past = min(local_midnight(today - timedelta(days=90)), timezone.now())
        scenarios = [
            Scenario(
                "forecast",
                f"insights.selectors.forecast, month, {start} to {end}",
                lambda: forecast(user=user, period="month", start=start, end=end),
            ),
            Scenario(
                "forecast_raw",
                "the same aggregate as one raw SQL query",
                lambda: raw_forecast(start, end),
            ),
            Scenario(
                "forecast_page",
                f"/insights/forecast/ rendered, 36 months from {page_start} (bands, targets)",
                page(
                    forecast_views.forecast_page,
                    user,
                    period="month",
                    start=page_start.isoformat(),
                    periods="36",
                ),
            ),
            Scenario(
                "forecast_page_years",
                "/insights/forecast/ rendered, the multi-year view (11 years)",
                page(forecast_views.forecast_page, user, period="multiyear"),
            ),
            Scenario(
                "analysis",
                "behaviour_analysis, all closed opportunities",
                lambda: behaviour_analysis(user=user, filters=everything),
            ),
            Scenario(
                "calibration",
                "probability_calibration, 30 days before closing",
                lambda: probability_calibration(user=user, filters=everything),
            ),
            Scenario(
                "calibration_step",
                "probability_calibration at the first pipeline's second step, from the visits",
                lambda: probability_calibration(user=user, filters=everything, step=at_step),
            ),
            Scenario(
                "as_of",
                f"pipeline_snapshot at {past:%Y-%m-%d} (as-of pipeline per step, and today's)",
                lambda: pipeline_snapshot(user=user, at=past, filters=everything),
            ),
            Scenario(
                "accuracy",
                "forecast_accuracy, 12 months and the current one",
                lambda: forecast_accuracy(user=user, filters=everything, months=12),
            ),
            Scenario(
                "analysis_page",
                "/insights/analysis/ rendered",
                page(analysis_views.analysis, user),
            ),
            Scenario(
                "calibration_page",
                "/insights/calibration/ rendered",
                page(analysis_views.calibration, user),
            ),
            Scenario(
                "history_page",
                "/insights/history/ rendered (90 days back, 12 months)",
                page(
                    analysis_views.history,
                    user,
                    at=(today - timedelta(days=90)).isoformat(),
                    months="12",
                ),
            ),
            *statistics_scenarios(user, today),
        ]
        if listing:
            for scenario in scenarios:
                self.stdout.write(f"{scenario.name:<18} {scenario.what}")
            return
        wanted = options["scenario"]
        if wanted:
            unknown = set(wanted) - {s.name for s in scenarios}
            if unknown:
                raise CommandError(f"Unknown scenario(s): {', '.join(sorted(unknown))}")
            scenarios = [s for s in scenarios if s.name in wanted]

        self.stdout.write(
            f"Database: {database_name()} · {Opportunity.objects.count():,} opportunities, "
            f"{Activity.objects.count():,} activities, "
            f"{OpportunityEvent.objects.count():,} events"
        )
        self.stdout.write(
            f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()} · user {user.username} · {options['runs']} runs "
            "after one warm-up"
        )
        if not wanted or {"forecast", "forecast_raw"} & set(wanted):
            if visible_owner_filter(user) is not None:  # sees part of the company
                self.stdout.write(
                    "Forecast ORM and raw SQL not compared: the raw query is the whole "
                    "company's, the ORM's this user's view"
                )
            else:
                same = orm_forecast_rows(user, start, end) == raw_forecast(start, end)
                self.stdout.write(
                    f"Forecast ORM and raw SQL give the same rows: {'yes' if same else 'NO'}"
                )
        self.stdout.write(f"{'scenario':<18} {'median':>9} {'min':>9} {'max':>9}  what")
        for scenario in scenarios:
            scenario.run()  # warm-up: caches, the planner, imports
            times = []
            for _ in range(options["runs"]):
                started = time.perf_counter()
                scenario.run()
                times.append((time.perf_counter() - started) * 1000)
            self.stdout.write(
                f"{scenario.name:<18} {statistics.median(times):>7.1f}ms {min(times):>7.1f}ms "
                f"{max(times):>7.1f}ms  {scenario.what}"
            )

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
            return User.objects.get(username=username, is_active=True)
        except User.DoesNotExist as exc:
            raise CommandError(f"No active user named {username!r}.") from exc
