"""Statistics: win rates and sales cycle, step funnel, lost reasons, activities, rotting deals.

One page per subject under /insights/statistics/, sharing the filters (date range, pipeline,
owner, team, product), which travel in the URL from page to page. Each page's main table
downloads as CSV or XLSX with `?format=csv` / `?format=xlsx` and the same filters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from opportuna.accounts.models import Account, User
from opportuna.core.money import from_cents
from opportuna.insights.exports import csv_response, xlsx_response
from opportuna.insights.statistics import (
    BY_CHOICES,
    DEFAULT_ROT_DAYS,
    LOST_BY_CHOICES,
    ROTTING_LISTED,
    LostBy,
    Quantiles,
    StatisticsBy,
    StatisticsFilters,
    activities_per_outcome,
    activity_report,
    activity_types,
    lost_reason_matrix,
    lost_reasons,
    lost_reasons_of,
    rotting_deals,
    statistics_filter_choices,
    step_funnel,
    win_rates,
)

# (url name, tab title): the statistics pages, in the order of their tabs.
PAGES = [
    ("insights:statistics", gettext_lazy("Win rates")),
    ("insights:statistics_funnel", gettext_lazy("Step funnel")),
    ("insights:statistics_lost", gettext_lazy("Lost reasons")),
    ("insights:statistics_activities", gettext_lazy("Activities")),
    ("insights:statistics_rotting", gettext_lazy("Rotting deals")),
]

# (url name, tab title): pages of the analysis screens, linked from the same tabs when present.
RELATED = [
    ("insights:analysis", gettext_lazy("Behaviour analysis")),
    ("insights:calibration", gettext_lazy("Probability calibration")),
]

BY_LABELS = {
    "owner": gettext_lazy("Owner"),
    "team": gettext_lazy("Team"),
    "product": gettext_lazy("Product"),
    "pipeline": gettext_lazy("Pipeline"),
    "month": gettext_lazy("Month"),
    "quarter": gettext_lazy("Quarter"),
    "year": gettext_lazy("Year"),
}
EXPORTS: dict[str, Callable[..., HttpResponseBase]] = {"csv": csv_response, "xlsx": xlsx_response}


def _filters(request: HttpRequest) -> StatisticsFilters:
    return StatisticsFilters.from_query(request.GET, today=timezone.localdate())


def _choice(request: HttpRequest, name: str, allowed: Sequence[str], default: str) -> str:
    value = request.GET.get(name, "")
    return value if value in allowed else default


def _page(
    request: HttpRequest,
    name: str,
    template: str,
    filters: StatisticsFilters,
    context: dict[str, Any],
    extra: dict[str, str] | None = None,
) -> HttpResponse:
    """Render a statistics page with its tabs, the filter form and the download links."""
    user: User = request.user  # type: ignore[assignment]
    query = urlencode(filters.as_query())
    own_query = urlencode({**filters.as_query(), **(extra or {})})
    tabs = [
        {"url": f"{reverse(url_name)}?{query}", "title": title, "current": url_name == name}
        for url_name, title in PAGES
    ]
    for url_name, title in RELATED:
        try:
            tabs.append({"url": reverse(url_name), "title": title, "current": False})
        except NoReverseMatch:
            continue
    return render(
        request,
        template,
        {
            **context,
            "filters": filters,
            "choices": statistics_filter_choices(user=user),  # 3 or 4 queries
            "tabs": tabs,
            "page_url": reverse(name),
            "download_query": own_query,
            "currency": Account.load().currency,  # 1 query
        },
    )


def _download(
    request: HttpRequest,
    filename: str,
    headers: Sequence[Any],
    rows: Iterable[Sequence[Any]],
) -> HttpResponseBase | None:
    """The table as a file when `?format=csv|xlsx` asks for one, else None."""
    respond = EXPORTS.get(request.GET.get("format", ""))
    if respond is None:
        return None
    return respond(rows, headers, filename)


def _money(cents: int | None) -> Decimal | None:
    return None if cents is None else from_cents(cents)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _quartiles(quantiles: Quantiles | None) -> list[float | None]:
    if quantiles is None:
        return [None, None, None]
    return [_round(quantiles.median), _round(quantiles.p25), _round(quantiles.p75)]


# Win rates ------------------------------------------------------------------------------


@login_required
@require_GET
def statistics(request: HttpRequest) -> HttpResponseBase:
    """Win rate by count and value, deal size and sales cycle, per owner/team/.../period."""
    user: User = request.user  # type: ignore[assignment]
    filters = _filters(request)
    by: StatisticsBy = _choice(request, "by", BY_CHOICES, "owner")  # type: ignore[assignment]
    table = win_rates(user=user, filters=filters, by=by)  # 2 queries
    headers = [
        BY_LABELS[by],
        _("Won"),
        _("Lost"),
        _("Win rate (count) %"),
        _("Win rate (value) %"),
        _("Won value"),
        _("Lost value"),
        _("Average won deal"),
        _("Cycle of won deals, median days"),
        _("P25 days"),
        _("P75 days"),
        _("Cycle of lost deals, median days"),
        _("Cancelled"),
    ]
    rows = [
        [
            row.label,
            row.won,
            row.lost,
            _round(row.win_rate),
            _round(row.value_win_rate),
            _money(row.won_value),
            _money(row.lost_value),
            _money(row.average_won),
            *_quartiles(row.cycle_won),
            _quartiles(row.cycle_lost)[0],
            row.cancelled,
        ]
        for row in [*table.rows, table.total]
    ]
    download = _download(request, f"win-rates-by-{by}", headers, rows)
    if download is not None:
        return download
    context = {
        "table": table,
        "by": by,
        "by_choices": [(value, BY_LABELS[value]) for value in BY_CHOICES],
        "by_label": BY_LABELS[by],
    }
    return _page(
        request, "insights:statistics", "insights/statistics.html", filters, context, {"by": by}
    )


# Step funnel ----------------------------------------------------------------------------


@login_required
@require_GET
def statistics_funnel(request: HttpRequest) -> HttpResponseBase:
    """How far the opportunities created in the range got, step by step, and how long they
    stayed in each step."""
    user: User = request.user  # type: ignore[assignment]
    filters = _filters(request)
    funnels = step_funnel(user=user, filters=filters)  # 3 queries
    headers = [
        _("Pipeline"),
        _("Step"),
        _("Entered"),
        _("Moved forward"),
        _("Moved back"),
        _("Won"),
        _("Lost"),
        _("Cancelled"),
        _("Still there"),
        _("Advanced %"),
        _("Time in step, median days"),
        _("P25 days"),
        _("P75 days"),
        _("Still there, median days so far"),
    ]
    rows = [
        [
            funnel.pipeline.name,
            step.step.name,
            step.entered,
            step.forward,
            step.back,
            step.won,
            step.lost,
            step.cancelled,
            step.current,
            _round(step.advance_rate),
            *_quartiles(step.stay),
            _quartiles(step.waiting)[0],
        ]
        for funnel in funnels
        for step in funnel.steps
    ]
    download = _download(request, "step-funnel", headers, rows)
    if download is not None:
        return download
    return _page(
        request,
        "insights:statistics_funnel",
        "insights/statistics_funnel.html",
        filters,
        {"funnels": funnels},
    )


# Lost reasons ---------------------------------------------------------------------------

LOST_BY_LABELS = {
    "month": gettext_lazy("Month"),
    "quarter": gettext_lazy("Quarter"),
    "owner": gettext_lazy("Owner"),
    "product": gettext_lazy("Product"),
}


@login_required
@require_GET
def statistics_lost(request: HttpRequest) -> HttpResponseBase:
    """Why deals are lost: share by count and value, and per period, owner or product."""
    user: User = request.user  # type: ignore[assignment]
    filters = _filters(request)
    by: LostBy = _choice(request, "by", LOST_BY_CHOICES, "month")  # type: ignore[assignment]
    exporting = request.GET.get("format", "") in EXPORTS
    matrix = None if exporting else lost_reason_matrix(user=user, filters=filters, by=by)
    # 1 query: the breakdown, which the shares add up from (or, for a download, the shares)
    reasons = (
        lost_reasons(user=user, filters=filters) if matrix is None else lost_reasons_of(matrix)
    )
    headers = [
        _("Lost reason"),
        _("Lost"),
        _("Share of count %"),
        _("Value"),
        _("Share of value %"),
    ]
    rows = [
        [row.name, row.count, _round(row.count_share), _money(row.value), _round(row.value_share)]
        for row in reasons.rows
    ]
    download = _download(request, "lost-reasons", headers, rows)
    if download is not None:
        return download
    context = {
        "reasons": reasons,
        "matrix": matrix,
        "by": by,
        "by_choices": list(LOST_BY_LABELS.items()),
        "by_label": LOST_BY_LABELS[by],
    }
    return _page(
        request,
        "insights:statistics_lost",
        "insights/statistics_lost.html",
        filters,
        context,
        {"by": by},
    )


# Activities -----------------------------------------------------------------------------


@login_required
@require_GET
def statistics_activities(request: HttpRequest) -> HttpResponseBase:
    """Activities per salesperson per week by type; activities per won versus lost deal."""
    user: User = request.user  # type: ignore[assignment]
    filters = _filters(request)
    types = activity_types()  # 1 query
    report = activity_report(user=user, filters=filters, types=types)  # 1 query
    headers = [
        _("Salesperson"),
        _("Week of"),
        *(activity_type.name for activity_type in types),
        _("Total"),
    ]
    rows = (
        [person.name, week.monday, *week.counts, week.total]
        for person in report.people
        for week in person.weeks
    )
    download = _download(request, "activities-per-week", headers, rows)
    if download is not None:
        return download
    context = {
        "report": report,
        "outcome": activities_per_outcome(user=user, filters=filters, types=types),  # 2 queries
    }
    return _page(
        request,
        "insights:statistics_activities",
        "insights/statistics_activities.html",
        filters,
        context,
    )


# Rotting deals --------------------------------------------------------------------------


@login_required
@require_GET
def statistics_rotting(request: HttpRequest) -> HttpResponseBase:
    """Open opportunities idle for longer than their step allows, per owner."""
    user: User = request.user  # type: ignore[assignment]
    filters = _filters(request)
    exporting = request.GET.get("format", "") in EXPORTS
    owners = rotting_deals(  # 2 queries, 1 for a download
        user=user, filters=filters, listed=None if exporting else ROTTING_LISTED
    )
    headers = [
        _("Owner"),
        _("Opportunity"),
        _("Client"),
        _("Pipeline"),
        _("Step"),
        _("Amount"),
        _("Last activity"),
        _("Days idle"),
        _("Limit in days"),
    ]
    rows = (
        [
            owner.name,
            opportunity.title,
            opportunity.client.name if opportunity.client else "",
            opportunity.pipeline.name,
            opportunity.step.name,
            _money(opportunity.amount),
            opportunity.last_activity,
            int(opportunity.idle_days),
            opportunity.rot_limit,
        ]
        for owner in owners
        for opportunity in owner.listed
    )
    download = _download(request, "rotting-deals", headers, rows)
    if download is not None:
        return download
    context = {
        "owners": owners,
        "rotting_count": sum(owner.count for owner in owners),
        "rotting_amount": sum(owner.amount for owner in owners),
        "listed": ROTTING_LISTED,
        "default_rot_days": DEFAULT_ROT_DAYS,
    }
    return _page(
        request,
        "insights:statistics_rotting",
        "insights/statistics_rotting.html",
        filters,
        context,
    )


urlpatterns = [
    path("statistics/", statistics, name="statistics"),
    path("statistics/funnel/", statistics_funnel, name="statistics_funnel"),
    path("statistics/lost/", statistics_lost, name="statistics_lost"),
    path("statistics/activities/", statistics_activities, name="statistics_activities"),
    path("statistics/rotting/", statistics_rotting, name="statistics_rotting"),
]
