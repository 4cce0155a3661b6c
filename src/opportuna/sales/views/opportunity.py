"""The opportunity page, its edit form and the new-opportunity form.

The page's actions live in `opportunity_actions`, proposals in `proposal`; this module's
`urlpatterns` gathers all three, so `sales/urls.py` needs one line per screen.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import formats
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.core.templatetags.opportuna import money
from opportuna.sales.errors import ConflictError, SalesRuleError
from opportuna.sales.forms import NewOpportunityForm, OpportunityForm, parse_lead
from opportuna.sales.models import Client, Opportunity, OpportunityEvent, Pipeline
from opportuna.sales.selectors import can_edit_opportunity
from opportuna.sales.selectors.opportunity import (
    client_get,
    client_matches,
    field_definitions,
    form_owners,
    form_pipelines,
    form_products,
    opportunity_for_page,
)
from opportuna.sales.services import client_create, opportunity_create, opportunity_update
from opportuna.sales.views import opportunity_actions, proposal
from opportuna.sales.views.opportunity_page import optional_url, render_page


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@login_required
@require_GET
@vary_on_headers("HX-Request")
def opportunity_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The opportunity page: header, fields, contacts, pinned comments, timeline, actions."""
    return render_page(request, pk)


def _form_error(form: Any, exc: SalesRuleError, *, aliases: dict[str, str] | None = None) -> None:
    """Show a service's rule error on its field when the form has one, else on top."""
    name = (aliases or {}).get(exc.field or "", exc.field)
    form.add_error(name if name in form.fields else None, str(exc.message))


# Edit -------------------------------------------------------------------------------------


def _conflict_rows(
    form: OpportunityForm, current: Opportunity, currency: str
) -> list[dict[str, str]]:
    """What differs between the user's typed values and the row as it is saved now."""
    data = form.cleaned_data
    rows: list[dict[str, str]] = []

    def add(label: str, yours: object, saved: object) -> None:
        rows.append({"label": label, "yours": str(yours), "saved": str(saved)})

    def shown(value: object) -> str:
        if value in (None, ""):
            return "—"
        if isinstance(value, date):
            return formats.date_format(value, "SHORT_DATE_FORMAT")
        return str(value)

    if data["title"] != current.title:
        add(_("Title"), data["title"], current.title)
    typed_client = form.client or form.new_client_name or None
    if (form.client.pk if form.client else None) != current.client_id or form.new_client_name:
        add(_("Client folder"), shown(typed_client), shown(current.client))
    if data["amount"] != current.amount:
        add(_("Amount"), money(data["amount"], currency), money(current.amount, currency))
    if (data["product"].pk if data["product"] else None) != current.product_id:
        add(_("Product"), shown(data["product"]), shown(current.product))
    if data["expected_close_date"] != current.expected_close_date:
        add(
            _("Expected close"),
            shown(data["expected_close_date"]),
            shown(current.expected_close_date),
        )
    if "owner" in data and data["owner"].pk != current.owner_id:
        add(_("Owner"), shown(data["owner"]), shown(current.owner))
    saved_fields = current.fields or {}
    for definition in form.definitions:
        typed = data["fields"].get(definition.key, "")
        saved = saved_fields.get(definition.key, "")
        if typed != saved:
            add(definition.label, shown(typed), shown(saved))
    if data["description"].strip() != current.description.strip():
        add(_("Description"), _("your text (kept below)"), current.description)
    return rows


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def opportunity_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit the header inline; a concurrent save is shown, and the typed input is kept."""
    user = _user(request)
    try:
        opp = opportunity_for_page(user=user, pk=pk)
    except Opportunity.DoesNotExist as exc:
        raise Http404 from exc
    if not can_edit_opportunity(user, opp):
        raise PermissionDenied(_("Only the owner, their manager or an admin can edit this."))
    kwargs: dict[str, Any] = {
        "user": user,
        "opportunity": opp,
        "definitions": field_definitions(),
        "products": form_products(current=opp.product),
        "owners": form_owners(user=user, current=opp.owner),
    }
    currency = Account.load().currency
    conflict: list[dict[str, str]] | None = None
    changed_by: OpportunityEvent | None = None
    status = 200
    if request.method == "POST":
        form = OpportunityForm(request.POST, **kwargs)
        if form.is_valid():
            try:
                with transaction.atomic():
                    client = form.client
                    if form.new_client_name:
                        client = client_create(actor=user, name=form.new_client_name)
                    opportunity_update(
                        opportunity=opp,
                        actor=user,
                        version=form.cleaned_data["version"],
                        client=client,
                        **form.values(opp.fields or {}),
                    )
            except ConflictError as exc:
                current = opportunity_for_page(user=user, pk=pk)
                conflict = _conflict_rows(form, current, currency)
                changed_by = current.events.select_related("actor").order_by("-at", "-pk").first()
                # Keep every typed value; the next save is against the version now saved.
                data = request.POST.copy()
                data["version"] = str(exc.current_version)
                form = OpportunityForm(data, **kwargs)
                status = 409
            except SalesRuleError as exc:
                _form_error(form, exc, aliases={"client": "client_name"})
                status = 422
            else:
                messages.success(request, _("Saved."))
                return redirect("sales:opportunity_detail", pk=pk)
        else:
            status = 422
    else:
        form = OpportunityForm(**kwargs)
    template = "sales/opportunity_edit.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#form"
    context = {
        "opp": opp,
        "form": form,
        "conflict": conflict,
        "changed_by": changed_by,
        "currency": currency,
    }
    return render(request, template, context, status=status)


# Client type-ahead ------------------------------------------------------------------------


@login_required
@require_GET
def opportunity_client_options(request: HttpRequest) -> HttpResponse:
    """`<option>`s of the client folders matching what was typed, for the datalist."""
    query = request.GET.get("client_name") or request.GET.get("q") or ""
    clients = client_matches(user=_user(request), query=query[:100])
    names = [c.name.casefold() for c in clients]
    options = [
        {
            "value": c.name if names.count(c.name.casefold()) == 1 else f"{c.name} (#{c.pk})",
            "hint": ", ".join(p for p in (c.city, c.country) if p),
        }
        for c in clients
    ]
    return render(request, "sales/opportunity_client_options.html", {"options": options})


# New --------------------------------------------------------------------------------------


# Posted names that are buttons or tokens, not values to prefill the form with.
NOT_INPUT = {"csrfmiddlewaretoken", "parse", "create"}


def _new_form_kwargs(request: HttpRequest, pipelines: list[Any]) -> dict[str, Any]:
    user = _user(request)
    return {
        "user": user,
        "pipelines": pipelines,
        "definitions": field_definitions(),
        "products": form_products(),
        "owners": form_owners(user=user),
    }


def _prefilled_client(request: HttpRequest) -> Client | None:
    raw = request.GET.get("client", "")
    return client_get(user=_user(request), pk=int(raw)) if raw.isdigit() else None


@login_required
@require_http_methods(["GET", "POST"])
def opportunity_new(request: HttpRequest) -> HttpResponse:
    """The quick form; "Read the text" fills it from pasted lead text, "Create" saves."""
    user = _user(request)
    pipelines = form_pipelines()
    kwargs = _new_form_kwargs(request, pipelines)
    prefilled = _prefilled_client(request)
    unknown: list[tuple[str, str]] | None = None
    recognised = 0
    status = 200
    if request.method == "POST" and "parse" in request.POST:
        parsed = parse_lead(request.POST.get("lead_text", ""), kwargs["definitions"])
        typed = {k: v for k, v in request.POST.items() if k not in NOT_INPUT and v}
        form = NewOpportunityForm(initial={**typed, **parsed.initial}, **kwargs)
        unknown, recognised = parsed.unknown, parsed.recognised
    elif request.method == "POST":
        form = NewOpportunityForm(request.POST, **kwargs)
        form.current_client = prefilled
        if form.is_valid():
            data = form.cleaned_data
            try:
                with transaction.atomic():
                    client = form.client
                    if form.new_client_name:
                        client = client_create(actor=user, name=form.new_client_name)
                    opp = opportunity_create(
                        actor=user,
                        title=data["title"],
                        pipeline=data["pipeline"],
                        step=data["step"],
                        owner=data.get("owner") or user,
                        client=client,
                        amount=data["amount"] or 0,
                        product=data["product"],
                        expected_close_date=data["expected_close_date"],
                        next_action_at=data["next_action_at"],
                        next_action_note=data["next_action_note"],
                        description=data["description"],
                        fields=data["fields"],
                    )
            except SalesRuleError as exc:
                _form_error(form, exc, aliases={"client": "client_name"})
                status = 422
            else:
                messages.success(request, _("Opportunity created."))
                return redirect("sales:opportunity_detail", pk=opp.pk)
        else:
            status = 422
    else:
        initial: dict[str, Any] = {}
        if pipelines:
            initial["pipeline"] = pipelines[0][0].pk
        if prefilled is not None:
            initial["client_name"] = prefilled.name
        form = NewOpportunityForm(initial=initial, **kwargs)
    context = {
        "form": form,
        "unknown": unknown,
        "recognised": recognised,
        "has_pipelines": bool(pipelines),
        "settings_url": _settings_url(),
    }
    return render(request, "sales/new_opportunity.html", context, status=status)


def _settings_url() -> str:
    return optional_url("sales:settings")


@login_required
@require_GET
def opportunity_new_steps(request: HttpRequest) -> HttpResponse:
    """The step select for the chosen pipeline (htmx swaps it when the pipeline changes)."""
    pipelines = form_pipelines()
    raw = request.GET.get("pipeline", "")
    chosen: Pipeline | None = next((p for p, _steps in pipelines if str(p.pk) == raw), None)
    form = NewOpportunityForm(
        initial={"pipeline": raw}, only_pipeline=chosen, **_new_form_kwargs(request, pipelines)
    )
    return render(request, "sales/new_opportunity.html#step_field", {"form": form})


urlpatterns = [
    path("o/new/", opportunity_new, name="opportunity_new"),
    path("o/new/steps/", opportunity_new_steps, name="opportunity_new_steps"),
    path("o/clients/", opportunity_client_options, name="opportunity_client_options"),
    path("o/<int:pk>/", opportunity_detail, name="opportunity_detail"),
    path("o/<int:pk>/edit/", opportunity_edit, name="opportunity_edit"),
    *opportunity_actions.urlpatterns,
    *proposal.urlpatterns,
]
