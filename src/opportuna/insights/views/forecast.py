"""The forecast page: per period (and group) what should be won, its range and its target.

The URL holds every control (period, start, number of periods, breakdown, filters), so a
forecast can be shared, printed, and downloaded as CSV or XLSX with the same parameters.
Numbers come from `selectors.forecast_report`, which starts from `visible_opportunities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import numberformat, timezone
from django.utils.formats import get_format, number_format
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, Team, User
from opportuna.core.money import from_cents
from opportuna.insights.chart import forecast_chart
from opportuna.insights.exports import csv_response, xlsx_response
from opportuna.insights.models import Target
from opportuna.insights.periods import (
    MAX_PERIODS,
    Period,
    add_months,
    period_start,
    periods_between,
)
from opportuna.insights.selectors import (
    BREAKDOWNS,
    ForecastBy,
    ForecastFilters,
    ForecastReport,
    ReportLine,
    TargetScope,
    forecast_report,
    period_label,
    visible_targets,
)
from opportuna.insights.services import InsightsRuleError, target_delete, target_set
from opportuna.sales.forms import MoneyField
from opportuna.sales.models import Client
from opportuna.sales.selectors import visible_clients
from opportuna.sales.selectors.board import FilterChoices, board_filter_choices, board_pipelines

# The period control: three lengths, and a multi-year view of whole years around today.
PERIOD_CHOICES = [
    ("month", gettext_lazy("Month")),
    ("quarter", gettext_lazy("Quarter")),
    ("year", gettext_lazy("Year")),
    ("multiyear", gettext_lazy("Multi-year")),
]
# The multi-year view shows this many years back and ahead of the current one.
YEARS_AROUND = 5
DEFAULT_COUNT = {"month": 12, "quarter": 4, "year": 3, "multiyear": 2 * YEARS_AROUND + 1}
MAX_COUNT = {"month": 36, "quarter": 20, "year": 20, "multiyear": 2 * YEARS_AROUND + 1}
# The page shows at most this many groups per period (the rest folded in one line); the
# downloads have them all.
GROUPS_SHOWN = 20
BREAKDOWN_LABELS = {
    "owner": gettext_lazy("Owner"),
    "team": gettext_lazy("Team"),
    "pipeline": gettext_lazy("Pipeline"),
    "step": gettext_lazy("Step"),
    "product": gettext_lazy("Product"),
    "tag": gettext_lazy("Tag"),
    "client": gettext_lazy("Client"),
}


# The controls ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Controls:
    """The page's controls as read from the URL; a bad value falls back to its default."""

    view: str  # a PERIOD_CHOICES key
    start: date
    count: int
    by: ForecastBy | None
    filters: ForecastFilters

    @property
    def period(self) -> Period:
        return "year" if self.view == "multiyear" else self.view  # type: ignore[return-value]

    @property
    def end(self) -> date:
        months = {"month": 1, "quarter": 3, "year": 12}[self.period]
        return add_months(self.start, months * self.count) - timedelta(days=1)

    def as_query(self) -> dict[str, str]:
        query = {"period": self.view, "start": self.start.isoformat(), "periods": str(self.count)}
        if self.by:
            query["by"] = self.by
        return {**query, **self.filters.as_query()}

    def urlencode(self, **extra: str) -> str:
        return urlencode({**self.as_query(), **extra})

    @classmethod
    def from_query(cls, query: QueryDict, *, today: date) -> Controls:
        view = query.get("period", "")
        if view not in DEFAULT_COUNT:
            view = "month"
        period: Period = "year" if view == "multiyear" else view  # type: ignore[assignment]
        raw_count = (query.get("periods") or "").strip()
        count = int(raw_count) if raw_count.isdigit() and len(raw_count) < 4 else 0
        count = min(count or DEFAULT_COUNT[view], MAX_COUNT[view], MAX_PERIODS)
        start = _parse_start(query.get("start", ""))
        if view == "multiyear":  # always the years around this one
            start = date(today.year - YEARS_AROUND, 1, 1)
            count = 2 * YEARS_AROUND + 1
        else:
            start = period_start(start or today, period)
        by = query.get("by") or None
        return cls(
            view=view,
            start=start,
            count=count,
            by=by if by in BREAKDOWNS else None,  # type: ignore[arg-type]
            filters=ForecastFilters.from_query(query),
        )


def _parse_start(text: str) -> date | None:
    """YYYY-MM-DD, YYYY-MM or YYYY, within years people plan in; None otherwise."""
    text = (text or "").strip()
    try:
        if len(text) == 4:
            day = date(int(text), 1, 1)
        elif len(text) == 7:
            day = date.fromisoformat(f"{text}-01")
        else:
            day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if 1900 <= day.year <= 2200 else None


# Links into the opportunity list ----------------------------------------------------------


def drill_url(
    controls: Controls, line: ReportLine, status: str, group: bool, *, list_url: str = ""
) -> str:
    """The opportunity list narrowed to what a cell counts; "" when it cannot say so.

    The list's `expected_close_from/_to` and `closed_from/_to` (inclusive ISO dates) narrow
    it to the cell's period. `list_url`: the list's address, when the caller has it already
    (a page links every cell, and each `reverse` costs more than building the query).
    """
    query: dict[str, Any] = {"status": status, **controls.filters.as_query()}
    if group and controls.by is not None:
        if line.group_id is None:
            return ""  # "no team", "no product"...: the list has no filter for that
        query[controls.by] = str(line.group_id)  # the list's filters have the same names
    prefix = "expected_close" if status == "open" else "closed"
    query[f"{prefix}_from"] = line.first_day.isoformat()
    query[f"{prefix}_to"] = line.last_day.isoformat()
    return f"{list_url or reverse('sales:opportunity_list')}?{urlencode(query)}"


def _undated_url(controls: Controls) -> str:
    query = {"status": "open", "expected_close": "none", **controls.filters.as_query()}
    return f"{reverse('sales:opportunity_list')}?{urlencode(query)}"


# The target form --------------------------------------------------------------------------


class TargetForm(forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"))
    scope = forms.ChoiceField(label=gettext_lazy("Target for"))
    amount = MoneyField(label=gettext_lazy("Amount"), required=False)

    def __init__(self, *args: Any, periods: list[str], scopes: list[tuple[str, str]], **kw: Any):
        super().__init__(*args, **kw)
        self.fields["period"].choices = [(key, period_label(key)) for key in periods]
        self.fields["scope"].choices = scopes


def _target_scopes(user: User, choices: FilterChoices) -> list[tuple[str, str]]:
    """The subjects `user` may set a target for (company for admins, then teams and people)."""
    if not (user.is_admin or user.is_manager):
        return []
    scopes = [(TargetScope("company").key, _("The whole company"))] if user.is_admin else []
    scopes += [(TargetScope("team", team.pk).key, str(team)) for team in choices.teams]
    scopes += [(TargetScope("user", person.pk).key, str(person)) for person in choices.owners]
    return scopes


# The page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PerPage:
    """What every row needs and is slow to look up, looked up once per page: the addresses
    it links to and the active language's number format."""

    opportunity_list: str
    forecast: str
    decimal_separator: str
    grouping: Any
    thousand_separator: str

    @classmethod
    def load(cls) -> _PerPage:
        language = get_language()
        return cls(
            opportunity_list=reverse("sales:opportunity_list"),
            forecast=reverse("insights:forecast"),
            **{
                name: get_format(setting, language, use_l10n=True)
                for name, setting in (
                    ("decimal_separator", "DECIMAL_SEPARATOR"),
                    ("grouping", "NUMBER_GROUPING"),
                    ("thousand_separator", "THOUSAND_SEPARATOR"),
                )
            },
        )

    def amount(self, cents: int | None) -> str:
        """`_amount`, without looking the format up again."""
        if cents is None:
            return ""
        return numberformat.format(
            from_cents(cents),
            self.decimal_separator,
            2,
            self.grouping,
            self.thousand_separator,
            force_grouping=True,
            use_l10n=True,
        )


def _line_links(
    controls: Controls, line: ReportLine, page: _PerPage, *, group: bool
) -> dict[str, str]:
    return {
        status: drill_url(controls, line, status, group, list_url=page.opportunity_list)
        for status in ("open", "won", "lost")
    }


def _target_link(controls: Controls, line: ReportLine, settable: set[str], page: _PerPage) -> str:
    if line.scope is None or line.scope.key not in settable or not line.period:
        return ""
    query = controls.urlencode(target_period=line.period, target_scope=line.scope.key)
    return f"{page.forecast}?{query}#target-form"


def _amount(cents: int | None) -> str:
    """Cents as a localized amount with two decimals (the currency is said once, above)."""
    if cents is None:
        return ""
    return number_format(from_cents(cents), 2, use_l10n=True, force_grouping=True)


def _display(line: ReportLine, page: _PerPage) -> dict[str, str]:
    row, band, amount = line.row, line.band, page.amount
    return {
        "amount_open": amount(row.amount_open),
        "weighted_open": amount(row.weighted_open),
        "won": amount(row.won),
        "lost_amount": amount(row.lost_amount),
        "expected": amount(row.expected),
        "p10": amount(band.p10),
        "p50": amount(band.p50),
        "p90": amount(band.p90),
        "target": amount(line.target_amount),
    }


def _row(
    controls: Controls, line: ReportLine, settable: set[str], page: _PerPage, *, kind: str
) -> dict[str, Any]:
    return {
        "line": line,
        "kind": kind,
        "shown": _display(line, page),
        "links": _line_links(controls, line, page, group=kind == "group"),
        "target_link": _target_link(controls, line, settable, page),
    }


def _rows(
    report: ForecastReport, controls: Controls, settable: set[str], page: _PerPage
) -> list[dict[str, Any]]:
    """The table's rows in order: each period, then its groups, with their links."""
    rows = []
    for block in report.blocks:
        rows.append(_row(controls, block.line, settable, page, kind="period"))
        rows.extend(_row(controls, line, settable, page, kind="group") for line in block.groups)
    return rows


def _page_context(
    request: HttpRequest, query: QueryDict, *, target_form: TargetForm | None = None
) -> dict[str, Any]:
    user: User = request.user  # type: ignore[assignment]
    today = timezone.localdate()
    controls = Controls.from_query(query, today=today)
    account = Account.load()  # 1 query: the currency and the visibility policy
    report = forecast_report(
        user=user,
        period=controls.period,
        start=controls.start,
        end=controls.end,
        by=controls.by,
        filters=controls.filters,
        visibility=account.visibility,
        max_groups=GROUPS_SHOWN,
    )
    choices = board_filter_choices(user=user)  # owners, teams (managers, admins), tags, products
    scopes = _target_scopes(user, choices)
    settable = {key for key, _label in scopes}
    keys = [block.line.period for block in report.blocks]
    if target_form is None and scopes:
        initial_scope = query.get("target_scope") or (report.scope.key if report.scope else "")
        initial_period = query.get("target_period") or ""
        target_form = TargetForm(
            periods=keys,
            scopes=scopes,
            initial={
                "scope": initial_scope if initial_scope in settable else scopes[0][0],
                "period": initial_period if initial_period in keys else keys[0],
                "amount": _initial_amount(report, initial_period, initial_scope),
            },
        )
    client: Client | None = None
    if controls.filters.client is not None:
        client = visible_clients(user).filter(pk=controls.filters.client).first()
    lines = [block.line for block in report.blocks]
    page = _PerPage.load()
    return {
        "controls": controls,
        "report": report,
        "rows": _rows(report, controls, settable, page),
        "total": _row(controls, report.total, set(), page, kind="total"),
        "undated": {
            "amount": _amount(report.undated.amount),
            "weighted": _amount(report.undated.weighted),
        },
        "chart": forecast_chart(lines),
        "range_label": (
            f"{lines[0].label} – {lines[-1].label}" if len(lines) > 1 else lines[0].label
        ),
        "currency": account.currency,
        "period_choices": PERIOD_CHOICES,
        "breakdowns": [(key, BREAKDOWN_LABELS[key]) for key in BREAKDOWNS],
        "by_label": BREAKDOWN_LABELS.get(controls.by or "", ""),
        "choices": choices,
        "pipelines": board_pipelines(),
        "client": client,
        "target_form": target_form,
        "return_query": controls.urlencode(),
        "csv_url": f"{reverse('insights:forecast_export')}?{controls.urlencode(format='csv')}",
        "xlsx_url": f"{reverse('insights:forecast_export')}?{controls.urlencode(format='xlsx')}",
        "undated_url": _undated_url(controls),
        "max_count": MAX_COUNT[controls.view],
        "tag_note": controls.by == "tag",
        "groups_shown": GROUPS_SHOWN,
    }


def _initial_amount(report: ForecastReport, period: str, scope: str) -> int | None:
    for block in report.blocks:
        if block.line.period != period:
            continue
        for line in [block.line, *block.groups]:
            if (
                line.scope is not None
                and line.scope.key == scope
                and line.target_amount is not None
            ):
                return line.target_amount
    return None


def _wants_partial(request: HttpRequest) -> bool:
    # A history restore needs the whole page, even though htmx asks for it.
    return bool(request.htmx) and not request.htmx.history_restore_request  # type: ignore[attr-defined]


@login_required
@require_GET
@vary_on_headers("HX-Request")
def forecast_page(request: HttpRequest) -> HttpResponse:
    """The forecast table and chart; htmx control changes get the body only."""
    context = _page_context(request, request.GET)
    if _wants_partial(request):
        return render(request, "insights/forecast.html#forecast-body", context)
    return render(request, "insights/forecast.html", context)


# Exports ----------------------------------------------------------------------------------


def _export_headers(by: ForecastBy | None) -> list[str]:
    group = []
    if by is not None:
        label = BREAKDOWN_LABELS[by]
        group = [str(label), _("%(group)s id") % {"group": label}]
    return [
        _("Period"),
        _("Period name"),
        *group,
        _("Open"),
        _("Open amount"),
        _("Weighted"),
        _("Won"),
        _("Won amount"),
        _("Lost"),
        _("Lost amount"),
        _("Expected"),
        "P10",
        "P50",
        "P90",
        _("Target"),
        _("Attainment %"),
    ]


def _export_cells(line: ReportLine) -> list[Any]:
    row = line.row
    target = from_cents(line.target_amount) if line.target_amount is not None else None
    return [
        row.count_open,
        from_cents(row.amount_open),
        from_cents(row.weighted_open),
        row.count_won,
        from_cents(row.won),
        row.count_lost,
        from_cents(row.lost_amount),
        from_cents(row.expected),
        from_cents(line.band.p10),
        from_cents(line.band.p50),
        from_cents(line.band.p90),
        target,
        line.attainment,
    ]


def _export_rows(report: ForecastReport) -> list[list[Any]]:
    """Each period (with a breakdown: as "All", then its groups), then the total."""
    everything = [_("All"), None] if report.by else []
    rows = []
    for block in report.blocks:
        line = block.line
        rows.append([line.period, line.label, *everything, *_export_cells(line)])
        for sub in block.groups:
            rows.append([sub.period, line.label, sub.label, sub.group_id, *_export_cells(sub)])
    rows.append([_("Total"), "", *everything, *_export_cells(report.total)])
    return rows


@login_required
@require_GET
def forecast_export(request: HttpRequest) -> HttpResponse:
    """The forecast table as CSV or XLSX, with the page's parameters."""
    user: User = request.user  # type: ignore[assignment]
    controls = Controls.from_query(request.GET, today=timezone.localdate())
    account = Account.load()
    report = forecast_report(
        user=user,
        period=controls.period,
        start=controls.start,
        end=controls.end,
        by=controls.by,
        filters=controls.filters,
        visibility=account.visibility,
    )
    headers = _export_headers(controls.by)
    suffix = f"-{controls.by}" if controls.by else ""
    filename = f"forecast-{controls.view}-{controls.start.isoformat()}{suffix}"
    rows = _export_rows(report)
    if request.GET.get("format") == "xlsx":
        title = _("Forecast (%(currency)s)") % {"currency": account.currency}
        return xlsx_response(rows, headers, filename, sheet_title=title)
    return csv_response(rows, headers, filename)


# Setting a target ---------------------------------------------------------------------------


def _scope_subject(scope: TargetScope) -> tuple[Team | None, User | None]:
    """The team or user a scope names; PermissionDenied if it names nobody."""
    if scope.kind == "team":
        team = Team.objects.filter(pk=scope.id).first()
        if team is None:
            raise PermissionDenied
        return team, None
    if scope.kind == "user":
        person = User.objects.filter(pk=scope.id).first()
        if person is None:
            raise PermissionDenied
        return None, person
    return None, None


@login_required
@require_POST
def forecast_target(request: HttpRequest) -> HttpResponse:
    """Set or remove one target, then back to the same forecast (or the form, with errors)."""
    user: User = request.user  # type: ignore[assignment]
    if not (user.is_admin or user.is_manager):
        raise PermissionDenied
    query = QueryDict(request.POST.get("return_query", ""))
    controls = Controls.from_query(query, today=timezone.localdate())
    periods = [
        key for key, _first in periods_between(controls.start, controls.end, controls.period)
    ]
    scopes = _target_scopes(user, board_filter_choices(user=user))
    form = TargetForm(request.POST, periods=periods, scopes=scopes)
    if form.is_valid():
        scope = TargetScope.parse(form.cleaned_data["scope"])
        assert scope is not None  # the choices hold valid keys only
        period = form.cleaned_data["period"]
        amount = form.cleaned_data["amount"]
        try:
            if request.POST.get("action") == "delete":
                _delete(request, user, period, scope)
            elif amount is None:
                form.add_error("amount", _("Type the target amount."))
            else:
                team, person = _scope_subject(scope)
                target_set(actor=user, period_key=period, amount=amount, team=team, user=person)
                messages.success(
                    request, _("Target for %(period)s saved.") % {"period": period_label(period)}
                )
        except InsightsRuleError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
    if not form.errors:
        return redirect(f"{reverse('insights:forecast')}?{controls.urlencode()}#target-form")
    context = _page_context(request, query, target_form=form)
    return render(request, "insights/forecast.html", context, status=422)


def _delete(request: HttpRequest, user: User, period: str, scope: TargetScope) -> None:
    target = _find_target(user, period, scope)
    if target is None:
        messages.info(request, _("There was no target to remove."))
        return
    target_delete(actor=user, target=target)
    messages.success(request, _("Target removed."))


def _find_target(user: User, period: str, scope: TargetScope) -> Target | None:
    team_id = scope.id if scope.kind == "team" else None
    user_id = scope.id if scope.kind == "user" else None
    return (
        visible_targets(user=user)
        .filter(period_key=period, team_id=team_id, user_id=user_id)
        .select_related("team", "user")
        .first()
    )


urlpatterns = [
    path("forecast/", forecast_page, name="forecast"),
    path("forecast/export/", forecast_export, name="forecast_export"),
    path("forecast/target/", forecast_target, name="forecast_target"),
]
