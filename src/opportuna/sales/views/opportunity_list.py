"""The opportunity list: a filterable, sortable table with keyset pages and bulk actions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.sales.errors import ConflictError, SalesRuleError
from opportuna.sales.models import Status, Step, Tag
from opportuna.sales.selectors.opportunity_list import (
    ListChoices,
    ListFilters,
    opportunities_for_bulk,
    opportunity_ids_with_tag,
    opportunity_list_choices,
    opportunity_list_page,
    parse_sort,
)
from opportuna.sales.services import opportunity_move, opportunity_update, tag_add

BULK_LIMIT = 200
COLUMNS = [
    ("title", gettext_lazy("Title")),
    ("amount", gettext_lazy("Amount")),
    ("probability", gettext_lazy("Probability")),
    ("expected_close_date", gettext_lazy("Expected close")),
    ("next_action_at", gettext_lazy("Next action")),
    ("created_at", gettext_lazy("Created")),
]


def _id_choices(items: list[Any], empty: str) -> list[tuple[str, str]]:
    return [("", empty), *((str(item.pk), str(item)) for item in items)]


class FilterForm(forms.Form):
    """The list's filters, read from the query string; a bad value drops only that filter."""

    q = forms.CharField(label=gettext_lazy("Text"), required=False, max_length=200)
    status = forms.ChoiceField(label=gettext_lazy("Status"), required=False)
    pipeline = forms.TypedChoiceField(label=gettext_lazy("Pipeline"), coerce=int, required=False)
    step = forms.TypedChoiceField(label=gettext_lazy("Step"), coerce=int, required=False)
    owner = forms.TypedChoiceField(label=gettext_lazy("Owner"), coerce=int, required=False)
    team = forms.TypedChoiceField(label=gettext_lazy("Team"), coerce=int, required=False)
    tag = forms.TypedChoiceField(label=gettext_lazy("Tag"), coerce=int, required=False)
    product = forms.TypedChoiceField(label=gettext_lazy("Product"), coerce=int, required=False)
    client = forms.IntegerField(widget=forms.HiddenInput, required=False)
    mine = forms.BooleanField(label=gettext_lazy("Only mine"), required=False)
    expected_close_from = forms.DateField(
        label=gettext_lazy("Expected close from"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    expected_close_to = forms.DateField(
        label=gettext_lazy("Expected close to"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    closed_from = forms.DateField(
        label=gettext_lazy("Closed from"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    closed_to = forms.DateField(
        label=gettext_lazy("Closed to"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    expected_close = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, data: QueryDict, *, choices: ListChoices) -> None:
        super().__init__(data)
        anything = _("Any")
        self.fields["status"].choices = [
            ("", anything),
            ("open", _("Open (to do or standby)")),
            ("closed", _("Closed")),
            *Status.choices,
        ]
        self.fields["pipeline"].choices = _id_choices(choices.pipelines, anything)
        self.fields["step"].choices = [
            ("", anything),
            *((str(s.pk), f"{s.pipeline.name} · {s.name}") for s in choices.steps),
        ]
        self.fields["owner"].choices = _id_choices(choices.owners, anything)
        self.fields["team"].choices = _id_choices(choices.teams, anything)
        self.fields["tag"].choices = _id_choices(choices.tags, anything)
        self.fields["product"].choices = _id_choices(choices.products, anything)

    def filters(self) -> ListFilters:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})

        def pick(name: str) -> Any:
            value = data.get(name)
            return None if value in ("", None) else value

        return ListFilters(
            owner=pick("owner"),
            team=pick("team"),
            tag=pick("tag"),
            product=pick("product"),
            client=pick("client"),
            mine=bool(data.get("mine")),
            text=(data.get("q") or "").strip(),
            status=data.get("status") or "",
            pipeline=pick("pipeline"),
            step=pick("step"),
            expected_close_from=pick("expected_close_from"),
            expected_close_to=pick("expected_close_to"),
            undated=data.get("expected_close") == "none",
            closed_from=pick("closed_from"),
            closed_to=pick("closed_to"),
        )


def opportunity_url(pk: int) -> str:
    """The opportunity page (another screen); its path if the name is not there yet."""
    try:
        return reverse("sales:opportunity_detail", args=[pk])
    except NoReverseMatch:
        return f"/o/{pk}/"


def _page_context(request: HttpRequest, query: QueryDict) -> dict[str, Any]:
    choices = opportunity_list_choices(user=request.user)  # type: ignore[arg-type]
    form = FilterForm(query, choices=choices)
    filters = form.filters()
    page = opportunity_list_page(
        user=request.user,  # type: ignore[arg-type]
        filters=filters,
        sort=parse_sort(query.get("sort")),
        cursor=query.get("after"),
    )
    for row in page.rows:
        row.url = opportunity_url(row.pk)  # type: ignore[attr-defined]
    descending = page.sort.startswith("-")
    columns = {
        key: {
            "label": label,
            "active": page.sort.lstrip("-") == key,
            "descending": descending,
            "numeric": key in ("amount", "probability"),
            # A click on the active column flips it; another column starts ascending.
            "next_sort": f"-{key}" if page.sort == key else key,
        }
        for key, label in COLUMNS
    }
    client_name = ""
    if filters.client is not None:
        client_name = next(
            (row.client.name for row in page.rows if row.client_id == filters.client), ""
        )
    return {
        "form": form,
        "filters": filters,
        "page": page,
        "columns": columns,
        "choices": choices,
        "client_name": client_name,
        "currency": Account.load().currency,
        "list_path": reverse("sales:opportunity_list"),
        "query": query,
        "now": timezone.now(),
        "return_query": query.urlencode(),
        "bulk_actions": [
            ("owner", _("Assign owner")),
            ("tag", _("Add tag")),
            ("step", _("Move to step")),
        ],
    }


@login_required
@vary_on_headers("HX-Request")
def opportunity_list(request: HttpRequest) -> HttpResponse:
    """The table of visible opportunities; an htmx request gets only the results."""
    context = _page_context(request, request.GET)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "sales/opportunity_list.html#results", context)
    return render(request, "sales/opportunity_list.html", context)


def _bulk_apply(request: HttpRequest, action: str, ids: list[int]) -> tuple[int, int, Counter[str]]:
    """Call the service once per opportunity (one transaction each): changed, unchanged, refused."""
    user: User = request.user  # type: ignore[assignment]
    found = opportunities_for_bulk(user=user, ids=ids)
    refused: Counter[str] = Counter()
    missing = len([pk for pk in ids if pk not in found])
    if missing:
        refused[_("not found")] += missing
    changed = unchanged = 0
    target: Any = None
    if action == "owner":
        target = User.objects.filter(pk=_int(request.POST.get("owner")), is_active=True).first()
        if target is None:
            raise SalesRuleError(_("Choose the new owner."), field="owner")
    elif action == "tag":
        name = (request.POST.get("tag") or "").strip()
        if not name:
            raise SalesRuleError(_("Type or choose a tag."), field="tag")
        target = Tag.objects.filter(name__iexact=name).first() or name
    elif action == "step":
        target = Step.objects.filter(pk=_int(request.POST.get("step"))).first()
        if target is None:
            raise SalesRuleError(_("Choose the step to move to."), field="step")
    else:
        raise SalesRuleError(_("Choose an action."), field="action")
    tagged = (
        opportunity_ids_with_tag(ids=list(found), tag=target) if isinstance(target, Tag) else set()
    )
    for opportunity in found.values():
        try:
            if action == "owner":
                result = opportunity_update(
                    opportunity=opportunity.pk,
                    actor=user,
                    version=opportunity.version,
                    owner=target,
                )
                did_change = result.version != opportunity.version
            elif action == "tag":
                target = tag_add(opportunity=opportunity.pk, actor=user, tag=target)
                did_change = opportunity.pk not in tagged
            else:
                result = opportunity_move(
                    opportunity=opportunity.pk,
                    step=target,
                    actor=user,
                    version=opportunity.version,
                )
                did_change = result.version != opportunity.version
        except ConflictError:
            refused[_("changed by someone else meanwhile")] += 1
        except (PermissionDenied, SalesRuleError) as error:
            refused[str(error) or _("not allowed")] += 1
        else:
            if did_change:
                changed += 1
            else:
                unchanged += 1
    return changed, unchanged, refused


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _summary(changed: int, unchanged: int, refused: Counter[str]) -> str:
    parts = [ngettext("%(n)d changed", "%(n)d changed", changed) % {"n": changed}]
    if unchanged:
        parts.append(ngettext("%(n)d already so", "%(n)d already so", unchanged) % {"n": unchanged})
    total = sum(refused.values())
    if total:
        reasons = "; ".join(f"{reason} ({count})" for reason, count in refused.most_common())
        parts.append(
            ngettext("%(n)d refused: %(reasons)s", "%(n)d refused: %(reasons)s", total)
            % {"n": total, "reasons": reasons}
        )
    return ", ".join(parts) + "."


def _return_query(request: HttpRequest) -> QueryDict:
    return QueryDict(request.POST.get("return_query", ""))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def opportunity_bulk(request: HttpRequest) -> HttpResponse:
    """Apply one action to the selected opportunities through the services, one at a time."""
    ids = [pk for pk in (_int(v) for v in request.POST.getlist("ids")) if pk is not None]
    ids = list(dict.fromkeys(ids))
    action = request.POST.get("action", "")
    status = 200
    if not ids:
        messages.error(request, _("Select at least one opportunity."))
        status = 422
    elif len(ids) > BULK_LIMIT:
        messages.error(
            request, _("Select at most %(limit)d opportunities at once.") % {"limit": BULK_LIMIT}
        )
        status = 422
    else:
        try:
            changed, unchanged, refused = _bulk_apply(request, action, ids)
        except SalesRuleError as error:
            messages.error(request, str(error))
            status = 422
        else:
            level = messages.SUCCESS if not refused else messages.WARNING
            messages.add_message(request, level, _summary(changed, unchanged, refused))
    query = _return_query(request)
    if request.htmx:  # type: ignore[attr-defined]
        context = _page_context(request, query)
        return render(request, "sales/opportunity_list.html#results", context, status=status)
    # Back to the same filters, sort and page: the query string only, never another path.
    return redirect(f"{reverse('sales:opportunity_list')}?{query.urlencode()}")


urlpatterns = [
    path("opportunities/", opportunity_list, name="opportunity_list"),
    path("opportunities/bulk/", opportunity_bulk, name="opportunity_bulk"),
]
