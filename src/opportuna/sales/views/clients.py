"""Client folders: the list, one folder with its opportunities, editing and merging."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Client, Status
from opportuna.sales.selectors.clients import (
    GROUP_LIMIT,
    client_contacts,
    client_get,
    client_list_page,
    client_opportunities,
    client_totals,
    merge_candidates,
    opportunity_count,
)
from opportuna.sales.services import client_merge, client_update
from opportuna.sales.views.opportunity_list import opportunity_url

EDITABLE = [
    "name",
    "vat_number",
    "email",
    "phone",
    "website",
    "address",
    "city",
    "country",
    "notes",
]


def _folder(request: HttpRequest, pk: int) -> Client:
    try:
        return client_get(user=request.user, pk=pk)  # type: ignore[arg-type]
    except Client.DoesNotExist:
        raise Http404(_("No such client folder.")) from None


def _may_merge(user: User) -> bool:
    return user.is_admin or user.is_manager


@login_required
@vary_on_headers("HX-Request")
def client_list(request: HttpRequest) -> HttpResponse:
    """Client folders by name, searchable, with what is open in each (visible opportunities)."""
    text = request.GET.get("q", "")[:200]
    page = client_list_page(user=request.user, text=text, cursor=request.GET.get("after"))  # type: ignore[arg-type]
    context = {
        "page": page,
        "text": text,
        "query": request.GET,
        "currency": Account.load().currency,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "sales/client_list.html#results", context)
    return render(request, "sales/client_list.html", context)


@login_required
def client_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One folder: its visible opportunities by status, totals, contacts, and what to do next."""
    user: User = request.user  # type: ignore[assignment]
    client = _folder(request, pk)
    groups = [
        ("open", _("Open"), (Status.TODO, Status.STANDBY)),
        ("won", _("Won"), (Status.WON,)),
        ("lost", _("Lost"), (Status.LOST,)),
        ("cancelled", _("Cancelled"), (Status.CANCELLED,)),
    ]
    totals = client_totals(user=user, client=client)
    counts = {
        "open": totals.open_count,
        "won": totals.won_count,
        "lost": totals.lost_count,
        "cancelled": totals.cancelled_count,
    }
    sections = []
    for key, label, statuses in groups:
        rows = client_opportunities(user=user, client=client, status=statuses)
        for row in rows:
            row.url = opportunity_url(row.pk)  # type: ignore[attr-defined]
            row.duplicate_url = f"/o/{row.pk}/duplicate/"  # type: ignore[attr-defined]
        sections.append(
            {
                "key": key,
                "label": label,
                "rows": rows,
                "count": counts[key],
                "more": counts[key] > len(rows),
            }
        )
    context = {
        "client": client,
        "totals": totals,
        "sections": sections,
        "contacts": client_contacts(user=user, client=client),
        "currency": Account.load().currency,
        "may_merge": _may_merge(user),
        "group_limit": GROUP_LIMIT,
        "new_opportunity_url": f"/o/new/?client={client.pk}",
        "list_url": f"{reverse('sales:opportunity_list')}?client={client.pk}",
    }
    return render(request, "sales/client_detail.html", context)


class ClientForm(forms.ModelForm):
    """Validates the folder's details; the service writes them."""

    class Meta:
        model = Client
        fields = EDITABLE
        widgets = {"notes": forms.Textarea(attrs={"rows": 4})}


@login_required
def client_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a folder's details through `client_update`."""
    client = _folder(request, pk)
    initial = {name: getattr(client, name) for name in EDITABLE}
    if request.method == "POST":
        form = ClientForm(request.POST, initial=initial)
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in EDITABLE}
            try:
                client_update(client=client, actor=request.user, **values)  # type: ignore[arg-type]
            except SalesRuleError as error:
                form.add_error(error.field if error.field in form.fields else None, str(error))
            else:
                messages.success(request, _("Client folder saved."))
                return redirect("sales:client_detail", pk=client.pk)
        status = 422
    else:
        form = ClientForm(initial=initial)
        status = 200
    return render(
        request, "sales/client_edit.html", {"client": client, "form": form}, status=status
    )


@login_required
def client_merge_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Merge this folder into another: find the target, confirm, then `client_merge`.

    Managers and admins only; the folder being merged disappears, its opportunities move.
    """
    user: User = request.user  # type: ignore[assignment]
    if not _may_merge(user):
        raise PermissionDenied(_("Only a manager or an admin can merge client folders."))
    source = _folder(request, pk)
    data = request.POST if request.method == "POST" else request.GET
    target: Client | None = None
    target_id = data.get("target", "")
    if target_id:
        if not target_id.isdigit():
            raise Http404(_("No such client folder."))
        target = _folder(request, int(target_id))
    context: dict[str, Any] = {"client": source, "target": target, "status": 200}
    if request.method == "POST":
        if target is None:
            messages.error(request, _("Choose the folder to merge into."))
            return redirect("sales:client_merge", pk=source.pk)
        if data.get("confirm") != "yes":
            context["error"] = _("Tick the box to confirm the merge.")
            context["status"] = 422
        else:
            try:
                merged = client_merge(source=source, target=target, actor=user)
            except SalesRuleError as error:
                context["error"] = str(error)
                context["status"] = 422
            else:
                messages.success(
                    request,
                    _("“%(source)s” was merged into “%(target)s”.")
                    % {"source": source.name, "target": merged.name},
                )
                return redirect("sales:client_detail", pk=merged.pk)
    if target is not None:
        context["source_count"] = opportunity_count(user=user, client=source)
    else:
        text = data.get("q", "")[:200]
        context["text"] = text
        context["candidates"] = list(merge_candidates(user=user, client=source, text=text))
    return render(request, "sales/client_merge.html", context, status=context["status"])


urlpatterns = [
    path("clients/", client_list, name="client_list"),
    path("clients/<int:pk>/", client_detail, name="client_detail"),
    path("clients/<int:pk>/edit/", client_edit, name="client_edit"),
    path("clients/<int:pk>/merge/", client_merge_view, name="client_merge"),
]
