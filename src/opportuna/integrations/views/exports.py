"""Export: opportunities (with the list's filters) or client folders, as CSV or XLSX.

`/integrations/export/` shows the choices; with `format=csv` or `format=xlsx` in the query it
sends the file instead, streamed. The opportunity list's "Export this list" link carries its
own query string here, so the file holds what the list shows (every page of it).
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.http import content_disposition_header
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from opportuna.accounts.models import User
from opportuna.integrations.exporting import export_filename, export_table
from opportuna.integrations.tabular import csv_lines, xlsx_file
from opportuna.sales.selectors.opportunity_list import opportunity_list_choices, parse_sort
from opportuna.sales.views.opportunity_list import FilterForm

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ExportForm(forms.Form):
    what = forms.ChoiceField(
        label=_("What"),
        choices=[("opportunities", _("Opportunities")), ("clients", _("Client folders"))],
        initial="opportunities",
        required=False,  # the opportunity list's link leaves it out
        widget=forms.RadioSelect,
    )
    format = forms.ChoiceField(
        label=_("Format"),
        choices=[("csv", _("CSV (comma separated, UTF-8)")), ("xlsx", _("Excel workbook (XLSX)"))],
        initial="csv",
        widget=forms.RadioSelect,
    )


@login_required
@require_GET
def export(request: HttpRequest) -> HttpResponse:
    """The export page, or (with a format in the query) the file itself."""
    user: User = request.user  # type: ignore[assignment]
    choices = opportunity_list_choices(user=user)
    filters_form = FilterForm(request.GET, choices=choices)
    form = ExportForm(request.GET or None)
    if "format" not in request.GET or not form.is_valid():
        return render(
            request,
            "integrations/export.html",
            {"form": form if request.GET else ExportForm(), "filters_form": filters_form},
        )
    what = form.cleaned_data["what"] or "opportunities"
    fmt = form.cleaned_data["format"]
    headers, rows = export_table(
        user=user,
        what=what,
        filters=filters_form.filters(),
        sort=parse_sort(request.GET.get("sort")),
    )
    filename = export_filename(what, fmt)
    if fmt == "xlsx":
        return FileResponse(
            xlsx_file(headers, rows, title=str(what)),
            as_attachment=True,
            filename=filename,
            content_type=XLSX_TYPE,
        )
    response = StreamingHttpResponse(csv_lines(headers, rows), content_type=CSV_TYPE)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


urlpatterns = [path("export/", export, name="export")]
