"""Settings: the catalogues (activity types, lost reasons, products, tags), admins only.

One page per catalogue, one small form per row, saved through the catalogue's `*_save`
service. Rows in use are deactivated rather than deleted; tags have no such flag and stay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import re_path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.forms_settings import (
    ActivityTypeForm,
    LostReasonForm,
    ProductForm,
    TagForm,
    row_auto_id,
)
from opportuna.sales.selectors.settings import (
    settings_activity_types,
    settings_lost_reasons,
    settings_products,
    settings_tags,
)
from opportuna.sales.services import activity_type_save, lost_reason_save, product_save, tag_save
from opportuna.sales.views.settings_common import admin_required, refuse, render_settings

REFUSALS = (SalesRuleError, PermissionDenied)


@dataclass(frozen=True)
class Catalogue:
    kind: str  # the URL segment
    title: Any
    intro: Any
    form: type[forms.ModelForm]  # type: ignore[type-arg]
    rows: Callable[..., QuerySet[Any]]
    save: Callable[[User, Any], Model]
    add_label: Any


CATALOGUES = {
    c.kind: c
    for c in [
        Catalogue(
            kind="activity-types",
            title=gettext_lazy("Activity types"),
            intro=gettext_lazy(
                "What salespeople log on an opportunity. Lower positions come first in the "
                "lists; deactivate a type rather than lose the activities logged with it."
            ),
            form=ActivityTypeForm,
            rows=settings_activity_types,
            save=lambda actor, obj: activity_type_save(actor=actor, activity_type=obj),
            add_label=gettext_lazy("Add an activity type"),
        ),
        Catalogue(
            kind="lost-reasons",
            title=gettext_lazy("Lost reasons"),
            intro=gettext_lazy(
                "Asked when an opportunity is closed as lost; they feed the statistics. "
                "Deactivate a reason to stop offering it: closed opportunities keep it."
            ),
            form=LostReasonForm,
            rows=settings_lost_reasons,
            save=lambda actor, obj: lost_reason_save(actor=actor, lost_reason=obj),
            add_label=gettext_lazy("Add a lost reason"),
        ),
        Catalogue(
            kind="products",
            title=gettext_lazy("Products"),
            intro=gettext_lazy(
                "The products and services you sell. The list price fills proposal lines; "
                "deactivate a product to stop offering it."
            ),
            form=ProductForm,
            rows=settings_products,
            save=lambda actor, obj: product_save(actor=actor, product=obj),
            add_label=gettext_lazy("Add a product"),
        ),
        Catalogue(
            kind="tags",
            title=gettext_lazy("Tags"),
            intro=gettext_lazy(
                "Free labels on opportunities (anyone may add new ones while working); "
                "here you rename them and choose their colour."
            ),
            form=TagForm,
            rows=settings_tags,
            save=lambda actor, obj: tag_save(actor=actor, tag=obj),
            add_label=gettext_lazy("Add a tag"),
        ),
    ]
}


def _catalogue(kind: str) -> Catalogue:
    try:
        return CATALOGUES[kind]
    except KeyError:
        raise Http404 from None


def _render(
    request: HttpRequest,
    catalogue: Catalogue,
    *,
    failed: tuple[int | None, forms.ModelForm] | None = None,  # type: ignore[type-arg]
    status: int = 200,
    notice: str = "",
) -> HttpResponse:
    """The catalogue page, or only its rows section for htmx; the failed form keeps its input."""
    rows = []
    for obj in catalogue.rows(user=request.user):  # 1 query
        if failed is not None and failed[0] == obj.pk:
            rows.append({"obj": obj, "form": failed[1]})
        else:
            form = catalogue.form(instance=obj, auto_id=row_auto_id("row", obj.pk))
            rows.append({"obj": obj, "form": form})
    add_form = failed[1] if failed is not None and failed[0] is None else None
    context = {
        "catalogue": catalogue,
        "rows": rows,
        "add_form": add_form or catalogue.form(auto_id=row_auto_id("row", None)),
        "currency": Account.load().currency,  # 1 query
        "notice": notice,
    }
    template = "sales/settings_catalogue.html"
    if request.htmx:
        template += "#rows"
    return render_settings(request, template, context, status=status, current=catalogue.kind)


@login_required
@admin_required
@require_GET
@vary_on_headers("HX-Request")
def catalogue_page(request: HttpRequest, kind: str) -> HttpResponse:
    return _render(request, _catalogue(kind))


def _save(
    request: HttpRequest,
    catalogue: Catalogue,
    form: forms.ModelForm,  # type: ignore[type-arg]
    pk: int | None,
) -> HttpResponse:
    if form.is_valid():
        try:
            saved = catalogue.save(request.user, form.instance)
        except REFUSALS as error:
            refuse(form, error)
        else:
            message = _("“%(name)s” saved.") % {"name": saved}
            if request.htmx:
                return _render(request, catalogue, notice=message)
            messages.success(request, message)
            return redirect("sales:settings_catalogue", kind=catalogue.kind)
    return _render(request, catalogue, failed=(pk, form), status=422)


@login_required
@admin_required
@require_POST
@vary_on_headers("HX-Request")
def catalogue_new(request: HttpRequest, kind: str) -> HttpResponse:
    catalogue = _catalogue(kind)
    form = catalogue.form(request.POST, auto_id=row_auto_id("row", None))
    return _save(request, catalogue, form, None)


@login_required
@admin_required
@require_POST
@vary_on_headers("HX-Request")
def catalogue_edit(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    catalogue = _catalogue(kind)
    pk = int(pk)  # re_path hands the digits over as text
    model = catalogue.form._meta.model
    try:
        obj = model._default_manager.get(pk=pk)
    except model.DoesNotExist:
        raise Http404 from None
    form = catalogue.form(request.POST, instance=obj, auto_id=row_auto_id("row", pk))
    return _save(request, catalogue, form, pk)


KINDS = "|".join(CATALOGUES)

urlpatterns = [
    re_path(rf"^settings/(?P<kind>{KINDS})/$", catalogue_page, name="settings_catalogue"),
    re_path(rf"^settings/(?P<kind>{KINDS})/new/$", catalogue_new, name="settings_catalogue_create"),
    re_path(
        rf"^settings/(?P<kind>{KINDS})/(?P<pk>[0-9]+)/$",
        catalogue_edit,
        name="settings_catalogue_update",
    ),
]
