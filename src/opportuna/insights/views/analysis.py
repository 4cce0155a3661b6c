"""Behaviour analysis, probability calibration and the pipeline on a past date.

Three read-only pages over closed and past opportunities, each with the same filters in the
URL (dates, pipeline, owner, team); htmx filter changes get the results only. The numbers
come from `insights.analysis` and `insights.history`, a constant number of queries each;
this module only shapes them for the templates, charts included (small SVGs drawn here, with
coordinates formatted as plain numbers so no locale puts a comma in them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account
from opportuna.insights.analysis import (
    MIN_SAMPLE,
    BehaviourAnalysis,
    Calibrated,
    Calibration,
    InsightFilters,
    WinRate,
    behaviour_analysis,
    calibration_steps,
    insight_filter_choices,
    probability_calibration,
)
from opportuna.insights.history import (
    MAX_MONTHS,
    ForecastAccuracy,
    forecast_accuracy,
    pipeline_snapshot,
)
from opportuna.insights.periods import local_midnight

MONTH_CHOICES = (6, 12, 24, MAX_MONTHS)
DEFAULT_MONTHS = 12
DAYS_BACK = 30  # the history page opens on the pipeline of a month ago


def _n(value: float) -> str:
    """A number for an SVG attribute: plain digits and a dot, whatever the language."""
    return f"{value:.1f}"


def _wants_partial(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False)) and not request.htmx.history_restore_request  # type: ignore[attr-defined]


def _page(
    request: HttpRequest, template: str, context: dict[str, Any], filters: InsightFilters
) -> HttpResponse:
    """The results alone for htmx; the whole page, with the filter choices, otherwise."""
    if _wants_partial(request):
        return render(request, f"{template}#results", context)
    context["choices"] = insight_filter_choices(user=request.user)  # 2-3 queries
    context["query"] = urlencode(filters.as_query())
    return render(request, template, context)


# Behaviour analysis ---------------------------------------------------------------------


@dataclass(frozen=True)
class RateRow:
    """A win rate as a table row shows it, with its bar drawn on a 0-100 scale."""

    rate: WinRate
    bar: str  # width of the bar
    low: str
    high: str
    baseline: str

    @property
    def note(self) -> str:
        if self.rate.small:
            return _("Small sample")
        if self.rate.versus == "above":
            return _("Above average")
        if self.rate.versus == "below":
            return _("Below average")
        return ""


def _rate_rows(rows: list[WinRate], baseline: WinRate) -> list[RateRow]:
    return [
        RateRow(
            rate=row,
            bar=_n(row.rate * 100),
            low=_n(row.low * 100),
            high=_n(row.high * 100),
            baseline=_n(baseline.rate * 100),
        )
        for row in rows
    ]


def _analysis_tables(result: BehaviourAnalysis) -> list[dict[str, Any]]:
    return [
        {"dimension": d, "rows": _rate_rows(d.rows, result.baseline)} for d in result.dimensions
    ]


@login_required
@require_GET
@vary_on_headers("HX-Request")
def analysis(request: HttpRequest) -> HttpResponse:
    """Win rate of closed opportunities by what was done before closing, with sentences."""
    filters = InsightFilters.from_query(request.GET)
    result = behaviour_analysis(user=request.user, filters=filters)  # 2 queries
    context = {
        "section": "analysis",
        "filters": filters,
        "result": result,
        "tables": _analysis_tables(result),
        "min_sample": MIN_SAMPLE,
    }
    return _page(request, "insights/analysis.html", context, filters)


# Calibration ----------------------------------------------------------------------------

CHART = 300  # the reliability chart's drawing area, in SVG units
MARGIN = 36


@dataclass(frozen=True)
class Point:
    """A band on the reliability chart: predicted (x) against actual (y), with its interval."""

    item: Calibrated
    x: str
    y: str
    y_low: str
    y_high: str
    r: str


def _reliability_points(bands: list[Calibrated]) -> list[Point]:
    largest = max((b.n for b in bands), default=0) or 1
    points = []
    for band in bands:
        if not band.n:
            continue
        points.append(
            Point(
                item=band,
                x=_n(MARGIN + band.predicted * CHART),
                y=_n(MARGIN + (1 - band.actual) * CHART),
                y_low=_n(MARGIN + (1 - band.low) * CHART),
                y_high=_n(MARGIN + (1 - band.high) * CHART),
                r=_n(3 + 6 * (band.n / largest) ** 0.5),
            )
        )
    return points


def _ticks() -> list[dict[str, str]]:
    return [
        {
            "label": f"{p}%",
            "at": _n(MARGIN + p / 100 * CHART),
            "flip": _n(MARGIN + CHART - p / 100 * CHART),
        }
        for p in range(0, 101, 25)
    ]


def _chosen_step(request: HttpRequest, steps: list[Any]) -> Any:
    raw = (request.GET.get("step") or "").strip()
    if not raw.isdigit():
        return None
    return next((s for s in steps if s.pk == int(raw)), None)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def calibration(request: HttpRequest) -> HttpResponse:
    """The probability closed opportunities carried against how often they were won."""
    filters = InsightFilters.from_query(request.GET)
    steps = calibration_steps()  # 1 query
    step = _chosen_step(request, steps)
    result: Calibration = probability_calibration(user=request.user, filters=filters, step=step)
    context = {
        "section": "calibration",
        "filters": filters,
        "steps": steps,
        "step": step,
        "result": result,
        "points": _reliability_points(result.bands),
        "min_sample": MIN_SAMPLE,
        "chart": {
            "size": CHART + 2 * MARGIN,
            "low": MARGIN,
            "high": MARGIN + CHART,
            "ticks": _ticks(),
        },
    }
    return _page(request, "insights/calibration.html", context, filters)


# History --------------------------------------------------------------------------------


def _as_of_day(request: HttpRequest, today: date) -> date:
    try:
        day = date.fromisoformat((request.GET.get("at") or "").strip())
    except ValueError:
        return today - timedelta(days=DAYS_BACK)
    return min(day, today)


def _months(request: HttpRequest) -> int:
    raw = (request.GET.get("months") or "").strip()
    return int(raw) if raw.isdigit() and int(raw) in MONTH_CHOICES else DEFAULT_MONTHS


@dataclass(frozen=True)
class Bar:
    key: str
    x: str
    width: str
    forecast_y: str
    forecast_height: str
    won_y: str
    won_height: str
    label_x: str


ACCURACY_WIDTH, ACCURACY_HEIGHT, ACCURACY_BASE = 640, 200, 180


def _accuracy_bars(accuracy: ForecastAccuracy) -> list[Bar]:
    months = accuracy.months
    top = max([max(m.forecast, m.won) for m in months] + [1])
    slot = ACCURACY_WIDTH / len(months)
    bars = []
    for index, month in enumerate(months):
        forecast_h = month.forecast / top * (ACCURACY_BASE - 10)
        won_h = month.won / top * (ACCURACY_BASE - 10)
        left = index * slot
        bars.append(
            Bar(
                key=month.key,
                x=_n(left + slot * 0.15),
                width=_n(slot * 0.35),
                forecast_y=_n(ACCURACY_BASE - forecast_h),
                forecast_height=_n(forecast_h),
                won_y=_n(ACCURACY_BASE - won_h),
                won_height=_n(won_h),
                label_x=_n(left + slot / 2),
            )
        )
    return bars


@login_required
@require_GET
@vary_on_headers("HX-Request")
def history(request: HttpRequest) -> HttpResponse:
    """The pipeline on a past date next to today's, and the forecast's record month by month."""
    filters = InsightFilters.from_query(request.GET)
    today = timezone.localdate()
    day = _as_of_day(request, today)
    months = _months(request)
    # The end of the chosen day (now, for today): what the pipeline looked like that evening.
    at = min(local_midnight(day + timedelta(days=1)), timezone.now())
    snapshot = pipeline_snapshot(user=request.user, at=at, filters=filters)  # 3 queries
    accuracy = forecast_accuracy(user=request.user, filters=filters, months=months, today=today)
    context = {
        "section": "history",
        "filters": filters,
        "day": day,
        "today": today,
        "months": months,
        "month_choices": MONTH_CHOICES,
        "snapshot": snapshot,
        "accuracy": accuracy,
        "bars": _accuracy_bars(accuracy),
        "chart": {"width": ACCURACY_WIDTH, "height": ACCURACY_HEIGHT, "base": ACCURACY_BASE},
        "currency": Account.load().currency,  # 1 query
    }
    return _page(request, "insights/history.html", context, filters)


urlpatterns = [
    path("analysis/", analysis, name="analysis"),
    path("calibration/", calibration, name="calibration"),
    path("history/", history, name="history"),
]
