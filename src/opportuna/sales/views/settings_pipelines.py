"""Settings: pipelines and their steps, and the default fields (admins only).

Steps are edited in place, one small form per row; up/down buttons send the whole new order
to `step_reorder`. With htmx each of those answers with the steps section only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.sales.errors import SalesRuleError
from opportuna.sales.forms_settings import (
    FieldDefinitionEditForm,
    FieldDefinitionForm,
    PipelineCreateForm,
    PipelineForm,
    StepCreateForm,
    StepForm,
    row_auto_id,
)
from opportuna.sales.models import FieldDefinition, Pipeline, Step
from opportuna.sales.selectors.settings import (
    settings_field_definitions,
    settings_pipeline_get,
    settings_pipelines,
    settings_step_get,
    settings_steps,
)
from opportuna.sales.services import (
    field_definition_create,
    field_definition_update,
    pipeline_create,
    pipeline_update,
    step_create,
    step_delete,
    step_reorder,
    step_update,
)
from opportuna.sales.views.settings_common import admin_required, refuse, render_settings

REFUSALS = (SalesRuleError, PermissionDenied)
UP, DOWN = "up", "down"


def _moved(ids: list[int], pk: int, direction: str) -> list[int] | None:
    """`ids` with `pk` swapped with its neighbour; None when it cannot move that way."""
    if pk not in ids or direction not in (UP, DOWN):
        return None
    index = ids.index(pk)
    other = index - 1 if direction == UP else index + 1
    if not 0 <= other < len(ids):
        return None
    ids = list(ids)
    ids[index], ids[other] = ids[other], ids[index]
    return ids


# Pipelines --------------------------------------------------------------------------------


def _render_pipelines(
    request: HttpRequest, form: PipelineCreateForm | None = None, status: int = 200
) -> HttpResponse:
    context = {
        "pipelines": settings_pipelines(user=request.user),  # 2 queries: pipelines, steps
        "form": form or PipelineCreateForm(),
    }
    return render_settings(
        request,
        "sales/settings_pipelines.html",
        context,
        status=status,
        current="settings_pipelines",
    )


@login_required
@admin_required
@require_GET
def pipelines(request: HttpRequest) -> HttpResponse:
    """Every pipeline with its steps, and a form to add one."""
    return _render_pipelines(request)


@login_required
@admin_required
@require_POST
def pipeline_new(request: HttpRequest) -> HttpResponse:
    form = PipelineCreateForm(request.POST)
    if form.is_valid():
        try:
            pipeline = pipeline_create(
                actor=request.user, name=form.cleaned_data["name"], steps=form.cleaned_data["steps"]
            )
        except REFUSALS as error:
            refuse(form, error)
        else:
            messages.success(request, _("Pipeline “%(name)s” created.") % {"name": pipeline.name})
            return redirect("sales:settings_pipeline", pk=pipeline.pk)
    return _render_pipelines(request, form, status=422)


def _pipeline_or_404(request: HttpRequest, pk: int) -> Pipeline:
    try:
        return settings_pipeline_get(user=request.user, pk=pk)
    except Pipeline.DoesNotExist:
        raise Http404 from None


def _steps_context(
    request: HttpRequest,
    pipeline: Pipeline,
    *,
    failed: tuple[int, StepForm] | None = None,
    add_form: StepCreateForm | None = None,
    error: str = "",
    notice: str = "",
) -> dict[str, Any]:
    """The steps section: one edit form per step (the failed one keeps its input)."""
    rows = []
    steps = settings_steps(user=request.user, pipeline=pipeline)  # 1 query
    for index, step in enumerate(steps):
        if failed is not None and failed[0] == step.pk:
            form = failed[1]
        else:
            form = StepForm(
                auto_id=row_auto_id("step", step.pk),
                initial={
                    "name": step.name,
                    "probability": step.probability,
                    "rot_days": step.rot_days,
                },
            )
        rows.append(
            {"step": step, "form": form, "first": index == 0, "last": index == len(steps) - 1}
        )
    return {
        "pipeline": pipeline,
        "rows": rows,
        "add_form": add_form or StepCreateForm(auto_id="id_newstep_%s"),
        "steps_error": error,
        "steps_notice": notice,
    }


def _render_pipeline(
    request: HttpRequest,
    pipeline: Pipeline,
    *,
    status: int = 200,
    form: PipelineForm | None = None,
    **steps: Any,
) -> HttpResponse:
    """The pipeline page, or only its steps section for htmx."""
    context = _steps_context(request, pipeline, **steps)
    if request.htmx:
        return render_settings(
            request, "sales/settings_pipeline.html#steps", context, status=status
        )
    context["form"] = form or PipelineForm(
        initial={"name": pipeline.name, "is_active": pipeline.is_active}
    )
    return render_settings(
        request,
        "sales/settings_pipeline.html",
        context,
        status=status,
        current="settings_pipelines",
    )


@login_required
@admin_required
@require_GET
@vary_on_headers("HX-Request")
def pipeline_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One pipeline: its name, whether it is active, and its steps."""
    return _render_pipeline(request, _pipeline_or_404(request, pk))


@login_required
@admin_required
@require_POST
def pipeline_edit(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline_or_404(request, pk)
    form = PipelineForm(request.POST)
    if form.is_valid():
        try:
            pipeline = pipeline_update(pipeline=pipeline, actor=request.user, **form.cleaned_data)
        except REFUSALS as error:
            refuse(form, error)
            pipeline.refresh_from_db()
        else:
            messages.success(request, _("Pipeline saved."))
            return redirect("sales:settings_pipeline", pk=pipeline.pk)
    return _render_pipeline(request, pipeline, form=form, status=422)


def _after_step_change(request: HttpRequest, pipeline: Pipeline, message: str) -> HttpResponse:
    if request.htmx:
        return _render_pipeline(request, pipeline, notice=message)
    messages.success(request, message)
    return redirect("sales:settings_pipeline", pk=pipeline.pk)


@login_required
@admin_required
@require_POST
@vary_on_headers("HX-Request")
def step_new(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = _pipeline_or_404(request, pk)
    form = StepCreateForm(request.POST, auto_id="id_newstep_%s")
    if form.is_valid():
        try:
            step = step_create(actor=request.user, pipeline=pipeline, **form.cleaned_data)
        except REFUSALS as error:
            refuse(form, error)
        else:
            return _after_step_change(
                request, pipeline, _("Step “%(name)s” added.") % {"name": step.name}
            )
    return _render_pipeline(request, pipeline, add_form=form, status=422)


def _step_or_404(request: HttpRequest, pk: int) -> Step:
    try:
        return settings_step_get(user=request.user, pk=pk)
    except Step.DoesNotExist:
        raise Http404 from None


@login_required
@admin_required
@require_POST
@vary_on_headers("HX-Request")
def step_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename a step or change its default probability (open followers take it too)."""
    step = _step_or_404(request, pk)
    form = StepForm(request.POST, auto_id=row_auto_id("step", step.pk))
    if form.is_valid():
        try:
            step = step_update(step=step, actor=request.user, **form.cleaned_data)
        except REFUSALS as error:
            refuse(form, error)
        else:
            return _after_step_change(
                request, step.pipeline, _("Step “%(name)s” saved.") % {"name": step.name}
            )
    return _render_pipeline(request, step.pipeline, failed=(step.pk, form), status=422)


@login_required
@admin_required
@require_POST
@vary_on_headers("HX-Request")
def step_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a step up or down: the whole new order goes to `step_reorder`."""
    pipeline = _pipeline_or_404(request, pk)
    try:
        step_pk = int(request.POST.get("step", ""))
    except ValueError:
        return HttpResponseBadRequest(_("Which step?"))
    ids = list(pipeline.steps.order_by("position", "pk").values_list("pk", flat=True))
    if step_pk not in ids:
        raise Http404
    order = _moved(ids, step_pk, request.POST.get("direction", ""))
    if order is None:  # already first or last: nothing to do
        return _after_step_change(request, pipeline, _("Steps unchanged."))
    try:
        step_reorder(pipeline=pipeline, actor=request.user, step_ids=order)
    except REFUSALS as error:
        if request.htmx:
            return _render_pipeline(request, pipeline, error=str(error), status=422)
        messages.error(request, str(error))
        return redirect("sales:settings_pipeline", pk=pipeline.pk)
    return _after_step_change(request, pipeline, _("Steps reordered."))


@login_required
@admin_required
@require_http_methods(["GET", "POST"])
def step_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask, then delete an empty step; one holding opportunities is refused with the reason."""
    step = _step_or_404(request, pk)
    error = ""
    if request.method == "POST":
        try:
            step_delete(step=step, actor=request.user)
        except REFUSALS as refusal:
            error = str(refusal)
        else:
            messages.success(request, _("Step “%(name)s” deleted.") % {"name": step.name})
            return redirect("sales:settings_pipeline", pk=step.pipeline_id)
    context = {"step": step, "pipeline": step.pipeline, "error": error}
    return render_settings(
        request,
        "sales/settings_step_delete.html",
        context,
        status=422 if error else 200,
        current="settings_pipelines",
    )


# Default fields ---------------------------------------------------------------------------


def _render_fields(
    request: HttpRequest,
    form: FieldDefinitionForm | None = None,
    *,
    status: int = 200,
    error: str = "",
    notice: str = "",
) -> HttpResponse:
    definitions = settings_field_definitions(user=request.user)  # 1 query
    context = {
        "definitions": definitions,
        "last_index": len(definitions) - 1,
        "form": form or FieldDefinitionForm(auto_id="id_newfield_%s"),
        "fields_error": error,
        "fields_notice": notice,
    }
    template = "sales/settings_fields.html"
    if request.htmx:
        template += "#field-list"
    return render_settings(request, template, context, status=status, current="settings_fields")


@login_required
@admin_required
@require_GET
@vary_on_headers("HX-Request")
def fields(request: HttpRequest) -> HttpResponse:
    """The default fields in order, and a form to define one."""
    return _render_fields(request)


@login_required
@admin_required
@require_POST
def field_new(request: HttpRequest) -> HttpResponse:
    form = FieldDefinitionForm(request.POST, auto_id="id_newfield_%s")
    if form.is_valid():
        try:
            definition = field_definition_create(actor=request.user, **form.cleaned_data)
        except REFUSALS as error:
            refuse(form, error)
        else:
            messages.success(request, _("Field “%(label)s” added.") % {"label": definition.label})
            return redirect("sales:settings_fields")
    return _render_fields(request, form, status=422)


@login_required
@admin_required
@require_http_methods(["GET", "POST"])
def field_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a default field's label, kind, choices, required flag or whether it is active."""
    try:
        definition = FieldDefinition.objects.get(pk=pk)
    except FieldDefinition.DoesNotExist:
        raise Http404 from None
    status = 200
    if request.method == "POST":
        form = FieldDefinitionEditForm(request.POST)
        if form.is_valid():
            try:
                field_definition_update(
                    definition=definition, actor=request.user, **form.cleaned_data
                )
            except REFUSALS as error:
                refuse(form, error)
                definition.refresh_from_db()
            else:
                messages.success(request, _("Field saved."))
                return redirect("sales:settings_fields")
        status = 422
    else:
        form = FieldDefinitionEditForm(
            initial={
                "label": definition.label,
                "kind": definition.kind,
                "choices": definition.choices,
                "required": definition.required,
                "is_active": definition.is_active,
            }
        )
    context = {"definition": definition, "form": form}
    return render_settings(
        request,
        "sales/settings_field.html",
        context,
        status=status,
        current="settings_fields",
    )


@login_required
@admin_required
@require_POST
@vary_on_headers("HX-Request")
def field_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a field up or down: positions are renumbered through `field_definition_update`."""
    definitions = settings_field_definitions(user=request.user)
    by_pk = {d.pk: d for d in definitions}
    if pk not in by_pk:
        raise Http404
    order = _moved(list(by_pk), pk, request.POST.get("direction", ""))
    if order is not None:
        try:
            with transaction.atomic():
                for position, definition_pk in enumerate(order):
                    definition = by_pk[definition_pk]
                    if definition.position != position:
                        field_definition_update(
                            definition=definition, actor=request.user, position=position
                        )
        except REFUSALS as error:
            if request.htmx:
                return _render_fields(request, status=422, error=str(error))
            messages.error(request, str(error))
            return redirect("sales:settings_fields")
    if request.htmx:
        return _render_fields(request, notice=_("Fields reordered."))
    messages.success(request, _("Fields reordered."))
    return redirect("sales:settings_fields")


urlpatterns = [
    path("settings/pipelines/", pipelines, name="settings_pipelines"),
    path("settings/pipelines/new/", pipeline_new, name="settings_pipeline_create"),
    path("settings/pipelines/<int:pk>/", pipeline_page, name="settings_pipeline"),
    path("settings/pipelines/<int:pk>/edit/", pipeline_edit, name="settings_pipeline_update"),
    path("settings/pipelines/<int:pk>/steps/new/", step_new, name="settings_step_create"),
    path("settings/pipelines/<int:pk>/steps/move/", step_move, name="settings_step_move"),
    path("settings/steps/<int:pk>/edit/", step_edit, name="settings_step_update"),
    path("settings/steps/<int:pk>/delete/", step_remove, name="settings_step_delete"),
    path("settings/fields/", fields, name="settings_fields"),
    path("settings/fields/new/", field_new, name="settings_field_create"),
    path("settings/fields/<int:pk>/", field_page, name="settings_field"),
    path("settings/fields/<int:pk>/move/", field_move, name="settings_field_move"),
]
