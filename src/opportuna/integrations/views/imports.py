"""Import: upload a file, map its columns, check it (dry run), then import it.

upload → mapping form → dry-run report → confirm → report. The file waits in the data folder
(`importing.Upload`) and only its uploader may use it. A small file is checked and imported
within the request; a big one goes to a background task, and a page polls the task's result
(htmx, or a plain refresh without JavaScript) showing the progress the task writes.
Only admins and managers may import (salespeople get 403).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_tasks import TaskResultStatus
from django_tasks.exceptions import TaskException

from opportuna.accounts.models import User
from opportuna.integrations.importing import (
    CLIENTS,
    CONTACT_PREFIX,
    FIELD_PREFIX,
    IGNORE,
    OPPORTUNITIES,
    Upload,
    check_mapping,
    import_upload,
    run_upload,
    target_choices,
    upload_save,
)
from opportuna.integrations.tabular import TableError
from opportuna.sales.models import FieldDefinition
from opportuna.sales.services.imports import require_importer

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# Files above this size are checked and imported by a background task.
BACKGROUND_BYTES = 256 * 1024


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy("CSV (comma or semicolon separated) or Excel workbook (XLSX)."),
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("The rows are"),
        choices=[
            (OPPORTUNITIES, gettext_lazy("Opportunities")),
            (CLIENTS, gettext_lazy("Client folders")),
        ],
        initial=OPPORTUNITIES,
        widget=forms.RadioSelect,
    )
    encoding = forms.ChoiceField(
        label=gettext_lazy("Text encoding (CSV)"),
        choices=[
            ("auto", gettext_lazy("Find out")),
            ("utf-8", "UTF-8"),
            ("utf-8-sig", gettext_lazy("UTF-8 with byte order mark")),
            ("cp1252", gettext_lazy("Windows-1252 (Western European)")),
        ],
        initial="auto",
    )
    delimiter = forms.ChoiceField(
        label=gettext_lazy("Separator (CSV)"),
        choices=[
            ("", gettext_lazy("Find out")),
            (",", gettext_lazy("Comma")),
            (";", gettext_lazy("Semicolon")),
        ],
        required=False,
    )

    def clean_file(self) -> Any:
        file = self.cleaned_data["file"]
        if file.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("The file is too big: %(limit)d MB at most.")
                % {"limit": MAX_UPLOAD_BYTES // 1024 // 1024}
            )
        return file


def _grouped(choices: list[tuple[str, str]]) -> list[Any]:
    """Targets grouped for the select: the opportunity's own, default fields, contacts."""
    groups: dict[str, list[tuple[str, str]]] = {}
    plain = []
    for value, label in choices:
        if value.startswith(FIELD_PREFIX):
            groups.setdefault(_("Default fields"), []).append((value, label))
        elif value.startswith(CONTACT_PREFIX):
            groups.setdefault(_("Contacts"), []).append((value, label))
        else:
            plain.append((value, label))
    return plain + list(groups.items())


class MappingForm(forms.Form):
    """One select per column of the file: where its values go."""

    def __init__(self, *args: Any, upload: Upload, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upload = upload
        definitions = list(FieldDefinition.objects.all())
        choices = target_choices(upload.kind, definitions)
        grouped = _grouped(choices)
        for index, header in enumerate(upload.headers):
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=header or _("Column %(n)d") % {"n": index + 1},
                choices=grouped,
                required=False,
                initial=upload.mapping[index] if index < len(upload.mapping) else IGNORE,
            )
        self.labels = dict(choices)

    def columns(self) -> list[dict[str, Any]]:
        samples = self.upload.samples
        return [
            {
                "field": self[f"column_{index}"],
                "samples": [row[index] for row in samples if index < len(row) and row[index]],
            }
            for index in range(len(self.upload.headers))
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        mapping = [data.get(f"column_{i}") or IGNORE for i in range(len(self.upload.headers))]
        seen: set[str] = set()
        for target in mapping:
            if target and target in seen:
                raise forms.ValidationError(
                    _("Two columns go to %(target)s; choose one.")
                    % {"target": self.labels.get(target, target)}
                )
            seen.add(target)
        for problem in check_mapping(self.upload.kind, mapping):
            self.add_error(None, problem)
        data["mapping"] = mapping
        return data


def _importer(request: HttpRequest) -> User:
    user: User = request.user  # type: ignore[assignment]
    require_importer(user)  # PermissionDenied -> 403
    return user


def _upload(request: HttpRequest, token: str) -> Upload:
    upload = Upload.load(token, _importer(request))
    if upload is None:
        raise Http404
    return upload


@login_required
@require_http_methods(["GET", "POST"])
def import_start(request: HttpRequest) -> HttpResponse:
    """Step 1: choose the file and what its rows are."""
    user = _importer(request)
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            upload = upload_save(
                user=user,
                chunks=data["file"].chunks(),
                name=data["file"].name,
                kind=data["kind"],
                format=None,
                encoding=data["encoding"],
                delimiter=data["delimiter"] or None,
            )
        except TableError as error:
            form.add_error("file", _("This file cannot be read: %(why)s.") % {"why": error})
        else:
            return redirect("integrations:import_mapping", token=upload.token)
    status = 422 if form.errors else 200
    return render(request, "integrations/import.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def import_mapping(request: HttpRequest, token: str) -> HttpResponse:
    """Step 2: say where each column goes; the button checks the whole file (a dry run)."""
    upload = _upload(request, token)
    form = MappingForm(request.POST or None, upload=upload)
    if request.method == "POST" and form.is_valid():
        upload.mapping = form.cleaned_data["mapping"]
        upload.save()
        return _run(request, upload, dry_run=True)
    status = 422 if form.errors else 200
    return render(
        request, "integrations/import_mapping.html", {"form": form, "upload": upload}, status=status
    )


@login_required
@require_POST
def import_run(request: HttpRequest, token: str) -> HttpResponse:
    """Step 3: import for real what the dry run checked."""
    upload = _upload(request, token)
    return _run(request, upload, dry_run=False)


def _run(request: HttpRequest, upload: Upload, *, dry_run: bool) -> HttpResponse:
    """Run now for a small file; a background task for a big one (then show its progress)."""
    user: User = request.user  # type: ignore[assignment]
    if not upload.path.exists():
        raise Http404
    if upload.path.stat().st_size <= BACKGROUND_BYTES:
        try:
            data = run_upload(user_id=user.pk, token=upload.token, dry_run=dry_run)
        except TableError as error:
            return _failed(request, upload, str(error))
        return _report(request, upload, data)
    result = import_upload.enqueue(user_id=user.pk, token=upload.token, dry_run=dry_run)
    if result.is_finished:  # a backend that runs tasks at once
        if result.status == TaskResultStatus.SUCCESSFUL:
            return _report(request, upload, result.return_value or {})
        return _failed(request, upload, _("The import stopped with an error."))
    upload.task_id = result.id
    upload.task_dry_run = dry_run
    upload.save()
    return redirect("integrations:import_status", token=upload.token)


def _template(request: HttpRequest) -> str:
    # A polling request swaps the report in place of the progress bar.
    if request.htmx:  # type: ignore[attr-defined]
        return "integrations/import_report.html#report"
    return "integrations/import_report.html"


def _report(request: HttpRequest, upload: Upload, data: dict[str, Any]) -> HttpResponse:
    if not data.get("dry_run"):
        upload.delete()
    return render(request, _template(request), {"upload": upload, "report": data})


def _failed(request: HttpRequest, upload: Upload, message: str) -> HttpResponse:
    context = {"upload": upload, "error": message}
    return render(request, _template(request), context, status=422)


@login_required
@vary_on_headers("HX-Request")
def import_status(request: HttpRequest, token: str) -> HttpResponse:
    """The background run: its progress until it ends, then its report."""
    upload = _upload(request, token)
    if not upload.task_id:
        raise Http404
    try:
        result = import_upload.get_result(upload.task_id)
    except (TaskException, NotImplementedError) as exc:  # gone, or a backend keeping none
        raise Http404 from exc
    if result.status == TaskResultStatus.SUCCESSFUL:
        return _report(request, upload, result.return_value or {})
    if result.status == TaskResultStatus.FAILED:
        return _failed(request, upload, _("The import stopped with an error."))
    done, total = upload.progress()
    context = {
        "upload": upload,
        "done": done,
        "total": total,
        "dry_run": upload.task_dry_run,
        "status_url": reverse("integrations:import_status", args=[upload.token]),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "integrations/import_report.html#progress", context)
    return render(request, "integrations/import_report.html", context)


urlpatterns = [
    path("import/", import_start, name="import"),
    path("import/<str:token>/", import_mapping, name="import_mapping"),
    path("import/<str:token>/run/", import_run, name="import_run"),
    path("import/<str:token>/status/", import_status, name="import_status"),
]
