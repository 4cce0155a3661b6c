"""Proposals of an opportunity: compose (a new version each save), live totals, print,
and mark sent, accepted or declined."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import formats
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.forms import ProposalForm, ProposalLineFormSet
from opportuna.sales.models import Opportunity, Product, Proposal
from opportuna.sales.selectors import can_edit_opportunity, visible_opportunities
from opportuna.sales.selectors.opportunity import proposal_for_opportunity
from opportuna.sales.services import (
    line_total,
    proposal_accept,
    proposal_create,
    proposal_decline,
    proposal_revise,
    proposal_send,
)
from opportuna.sales.views.opportunity_page import done, failed

LINES_PREFIX = "lines"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _opportunity(request: HttpRequest, pk: int) -> Opportunity:
    return get_object_or_404(visible_opportunities(_user(request)).select_related("client"), pk=pk)


def _proposal(request: HttpRequest, pk: int, proposal_pk: int) -> Proposal:
    try:
        return proposal_for_opportunity(user=_user(request), opportunity_pk=pk, pk=proposal_pk)
    except Proposal.DoesNotExist as exc:
        raise Http404 from exc


def _products(source: Proposal | None) -> list[Product]:
    """Active products, plus retired ones the revised version still uses."""
    used = [line.product_id for line in source.lines.all()] if source else []
    return list(Product.objects.filter(Q(is_active=True) | Q(pk__in=used)).order_by("name"))


def plain_decimal(value: Decimal) -> Decimal:
    """1.000 → 1, 2.500 → 2.5, 100 → 100 (never 1E+2)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def decimal_text(value: Decimal) -> str:
    """A quantity or discount as people read it, in their locale."""
    return formats.number_format(plain_decimal(value), use_l10n=True)


@dataclass
class TotalRow:
    description: str
    quantity: Decimal
    unit_price: int
    from_list: bool
    discount: Decimal
    total: int

    @property
    def quantity_text(self) -> str:
        return decimal_text(self.quantity)

    @property
    def discount_text(self) -> str:
        return decimal_text(self.discount)


@dataclass
class Totals:
    rows: list[TotalRow]
    total: int
    invalid: int


def compute_totals(formset: Any) -> Totals:
    """Line totals and the total of what was typed, with the services' own arithmetic."""
    rows: list[TotalRow] = []
    invalid = 0
    for form in formset.forms:
        if form.empty_permitted and not form.has_changed():
            continue
        if not form.is_valid():
            invalid += 1
            continue
        line = form.line()
        if line is None:
            continue
        product = line["product"]
        rows.append(
            TotalRow(
                description=line["description"] or (product.name if product else ""),
                quantity=line["quantity"],
                unit_price=line["unit_price"],
                from_list=form.cleaned_data.get("unit_price") is None and product is not None,
                discount=line["discount"],
                total=line_total(
                    quantity=line["quantity"],
                    unit_price=line["unit_price"],
                    discount=line["discount"],
                ),
            )
        )
    return Totals(rows=rows, total=sum(r.total for r in rows), invalid=invalid)


def _initial_lines(source: Proposal | None) -> list[dict[str, Any]]:
    if source is None:
        return []
    return [
        {
            "product": line.product_id,
            "description": line.description,
            "quantity": format(plain_decimal(line.quantity), "f"),
            "unit_price": line.unit_price,
            "discount": format(plain_decimal(line.discount), "f"),
        }
        for line in source.lines.all()
    ]


def _with_extra_line(data: Any) -> Any:
    data = data.copy()
    key = f"{LINES_PREFIX}-TOTAL_FORMS"
    with contextlib.suppress(ValueError):
        data[key] = str(int(data.get(key, "0")) + 1)
    return data


@login_required
@require_http_methods(["GET", "POST"])
def proposal_new(request: HttpRequest, pk: int) -> HttpResponse:
    """Compose a proposal; `?from=<id>` starts from a previous version (saving revises it)."""
    opp = _opportunity(request, pk)
    user = _user(request)
    if not can_edit_opportunity(user, opp):
        raise PermissionDenied(_("Only the owner, their manager or an admin can write proposals."))
    source = None
    raw_source = request.GET.get("from", "")
    if raw_source.isdigit():
        source = _proposal(request, pk, int(raw_source))
    products = _products(source)
    form_kwargs = {"products": products}
    status = 200
    if request.method == "POST":
        data = request.POST
        if "add_line" in data:
            data = _with_extra_line(data)
        form = ProposalForm(data)
        formset = ProposalLineFormSet(data, prefix=LINES_PREFIX, form_kwargs=form_kwargs)
        if "save" in data and form.is_valid() and formset.is_valid():
            lines = [line for f in formset.forms if (line := f.line()) is not None]
            try:
                if source is not None:
                    saved = proposal_revise(
                        proposal=source,
                        actor=user,
                        scope=form.cleaned_data["scope"],
                        lines=lines,
                        valid_until=form.cleaned_data["valid_until"],
                    )
                else:
                    saved = proposal_create(
                        opportunity=opp,
                        actor=user,
                        scope=form.cleaned_data["scope"],
                        lines=lines,
                        valid_until=form.cleaned_data["valid_until"],
                    )
            except SalesRuleError as exc:
                form.add_error(None, str(exc.message))
                status = 422
            else:
                messages.success(
                    request, _("Proposal v%(number)s saved.") % {"number": saved.number}
                )
                url = reverse("sales:opportunity_detail", args=[pk])
                return redirect(f"{url}#proposals")
        elif "save" in data:
            status = 422
    else:
        initial = {}
        if source is not None:
            initial = {"scope": source.scope, "valid_until": source.valid_until}
        form = ProposalForm(initial=initial)
        formset = ProposalLineFormSet(
            prefix=LINES_PREFIX, initial=_initial_lines(source), form_kwargs=form_kwargs
        )
    totals = compute_totals(formset) if formset.is_bound else _unbound_totals(source)
    context = {
        "opp": opp,
        "source": source,
        "form": form,
        "formset": formset,
        "totals": totals,
        "currency": Account.load().currency,
        "preview_url": reverse("sales:proposal_preview", args=[pk])
        + (f"?from={source.pk}" if source else ""),
    }
    return render(request, "sales/proposal_form.html", context, status=status)


def _unbound_totals(source: Proposal | None) -> Totals:
    if source is None:
        return Totals(rows=[], total=0, invalid=0)
    rows = [
        TotalRow(
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            from_list=False,
            discount=line.discount,
            total=line.total,
        )
        for line in source.lines.all()
    ]
    return Totals(rows=rows, total=source.total, invalid=0)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def proposal_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The totals of the lines as typed so far (htmx swaps them in while typing)."""
    opp = _opportunity(request, pk)
    source_pk = request.GET.get("from", "")
    source = _proposal(request, pk, int(source_pk)) if source_pk.isdigit() else None
    formset = ProposalLineFormSet(
        request.POST, prefix=LINES_PREFIX, form_kwargs={"products": _products(source)}
    )
    context = {
        "opp": opp,
        "totals": compute_totals(formset),
        "currency": Account.load().currency,
        "preview_url": request.get_full_path(),
    }
    return render(request, "sales/proposal_form.html#totals", context)


@login_required
@require_GET
def proposal_print(request: HttpRequest, pk: int, proposal_pk: int) -> HttpResponse:
    """A clean page to print or save as PDF: the account, the client, scope, lines, total."""
    proposal = _proposal(request, pk, proposal_pk)
    account = Account.load()
    context = {
        "proposal": proposal,
        "opp": proposal.opportunity,
        "client": proposal.opportunity.client,
        "lines": [
            {
                "line": line,
                "quantity": decimal_text(line.quantity),
                "discount": decimal_text(line.discount) if line.discount else "",
            }
            for line in proposal.lines.all()
        ],
        "account": account,
        "currency": account.currency,
    }
    return render(request, "sales/proposal_print.html", context)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def proposal_mark_sent(request: HttpRequest, pk: int, proposal_pk: int) -> HttpResponse:
    proposal = _proposal(request, pk, proposal_pk)
    return _decide(request, pk, proposal, "send")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def proposal_mark_accepted(request: HttpRequest, pk: int, proposal_pk: int) -> HttpResponse:
    proposal = _proposal(request, pk, proposal_pk)
    return _decide(request, pk, proposal, "accept")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def proposal_mark_declined(request: HttpRequest, pk: int, proposal_pk: int) -> HttpResponse:
    proposal = _proposal(request, pk, proposal_pk)
    return _decide(request, pk, proposal, "decline")


def _decide(request: HttpRequest, pk: int, proposal: Proposal, what: str) -> HttpResponse:
    user = _user(request)
    try:
        if what == "send":
            proposal_send(proposal=proposal, actor=user)
            message = _("Proposal v%(number)s marked as sent; the activity is logged.")
        elif what == "accept":
            set_amount = request.POST.get("set_amount") == "1"
            proposal_accept(proposal=proposal, actor=user, set_amount=set_amount)
            message = _("Proposal v%(number)s accepted.")
        else:
            proposal_decline(proposal=proposal, actor=user)
            message = _("Proposal v%(number)s declined.")
    except SalesRuleError as exc:
        messages.error(request, str(exc.message))
        return failed(request, pk, "proposals", None)
    return done(request, pk, message % {"number": proposal.number}, anchor="proposals")


urlpatterns = [
    path("o/<int:pk>/proposals/new/", proposal_new, name="proposal_new"),
    path("o/<int:pk>/proposals/preview/", proposal_preview, name="proposal_preview"),
    path("o/<int:pk>/proposals/<int:proposal_pk>/print/", proposal_print, name="proposal_print"),
    path("o/<int:pk>/proposals/<int:proposal_pk>/send/", proposal_mark_sent, name="proposal_send"),
    path(
        "o/<int:pk>/proposals/<int:proposal_pk>/accept/",
        proposal_mark_accepted,
        name="proposal_accept",
    ),
    path(
        "o/<int:pk>/proposals/<int:proposal_pk>/decline/",
        proposal_mark_declined,
        name="proposal_decline",
    ),
]
