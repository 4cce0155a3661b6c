"""To-do (home): my open opportunities by next action time, and my planned activities.

One click marks the planned action done (logs an activity) and plans the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Activity, ActivityType
from opportuna.sales.selectors import visible_opportunities
from opportuna.sales.selectors.board import Cursor, Page
from opportuna.sales.selectors.todo import (
    ACTIVITY_LIMIT,
    GROUPS,
    LATER,
    OVERDUE,
    STANDBY,
    TODAY,
    WEEK,
    Bounds,
    active_activity_types,
    todo_activity,
    todo_counts,
    todo_first_pages,
    todo_group_page,
    todo_planned_activities,
)
from opportuna.sales.services import activity_complete, activity_log, opportunity_plan_next_action

GROUP_LABELS = {
    OVERDUE: gettext_lazy("Overdue"),
    TODAY: gettext_lazy("Today"),
    WEEK: gettext_lazy("This week"),
    LATER: gettext_lazy("Later"),
    STANDBY: gettext_lazy("On standby"),
}

TOMORROW, IN_3_DAYS, NEXT_WEEK, CUSTOM = "tomorrow", "3days", "nextweek", "custom"
NEXT_CHOICES = [
    (TOMORROW, gettext_lazy("Tomorrow 9:00")),
    (IN_3_DAYS, gettext_lazy("In 3 days, 9:00")),
    (NEXT_WEEK, gettext_lazy("Next Monday 9:00")),
    (CUSTOM, gettext_lazy("Pick a date and time")),
]
MORNING = time(9, 0)


def quick_time(choice: str, now: datetime) -> datetime:
    """A quick choice as an instant: 9:00 local time tomorrow, in 3 days or next Monday."""
    today = timezone.localtime(now).date()
    days = {TOMORROW: 1, IN_3_DAYS: 3, NEXT_WEEK: 7 - today.weekday()}[choice]
    return timezone.make_aware(datetime.combine(today + timedelta(days=days), MORNING))


class DoneForm(forms.Form):
    """Log what was done and plan the next action, in one go."""

    type = forms.ModelChoiceField(
        label=gettext_lazy("Activity"), queryset=ActivityType.objects.filter(is_active=True)
    )
    note = forms.CharField(label=gettext_lazy("What happened"), required=False, max_length=2000)
    next = forms.ChoiceField(label=gettext_lazy("Next action"), choices=NEXT_CHOICES)
    at = forms.DateTimeField(label=gettext_lazy("Date and time"), required=False)
    next_note = forms.CharField(
        label=gettext_lazy("Next action note"), required=False, max_length=200
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        choice = cleaned.get("next")
        now = timezone.now()
        if choice == CUSTOM:
            at = cleaned.get("at")
            if at is None:
                self.add_error("at", _("Pick the date and time of the next action."))
            elif at <= now:
                self.add_error("at", _("The next action must be in the future."))
            else:
                cleaned["next_at"] = at
        elif choice:
            cleaned["next_at"] = quick_time(choice, now)
        return cleaned


@dataclass(frozen=True)
class Group:
    key: str
    label: str
    count: int
    page: Page
    more_url: str


def _url_of_more(group: str, cursor: Cursor | None) -> str:
    if cursor is None:
        return ""
    return f"{reverse('sales:todo_more')}?{urlencode({'group': group, 'after': str(cursor)})}"


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """Everything the to-do list shows; a constant number of queries whatever the data."""
    user = request.user
    bounds = Bounds.at()
    counts = todo_counts(user=user, bounds=bounds)  # 1 aggregate
    pages = todo_first_pages(user=user, bounds=bounds)  # 1 query, every group
    activities = todo_planned_activities(user=user)  # 1 query
    groups = [
        Group(
            key, str(GROUP_LABELS[key]), counts[key], pages[key], _url_of_more(key, pages[key].next)
        )
        for key in GROUPS
        if counts[key] or pages[key].rows
    ]
    return {
        "groups": groups,
        "activities": activities[:ACTIVITY_LIMIT],
        "more_activities": len(activities) > ACTIVITY_LIMIT,
        "currency": Account.load().currency,  # 1 query
        "bounds": bounds,
        "is_empty": not groups and not activities,
        **extra,
    }


def _render_list(request: HttpRequest, status: int = 200, **extra: Any) -> HttpResponse:
    """The whole list: the page, or its `todo-list` partial for htmx."""
    partial = request.htmx and not request.htmx.history_restore_request
    template = "sales/todo.html#todo-list" if partial else "sales/todo.html"
    return render(request, template, _context(request, **extra), status=status)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def todo(request: HttpRequest) -> HttpResponse:
    """Home: my next actions, overdue first, then today, this week, later; standby apart."""
    return _render_list(request)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def todo_more(request: HttpRequest) -> HttpResponse:
    """The next rows of one group (keyset); a plain page without htmx."""
    group = request.GET.get("group", "")
    if group not in GROUPS:
        return HttpResponseBadRequest(_("Unknown group."))
    try:
        cursor = Cursor.parse(request.GET.get("after", ""))
    except ValueError:
        return HttpResponseBadRequest(_("Bad cursor."))
    bounds = Bounds.at()
    page = todo_group_page(user=request.user, group=group, bounds=bounds, cursor=cursor)
    context = {
        "group": Group(group, str(GROUP_LABELS[group]), 0, page, _url_of_more(group, page.next)),
        "bounds": bounds,
        "currency": Account.load().currency,
    }
    template = "sales/todo.html#group-rows" if request.htmx else "sales/todo_group.html"
    return render(request, template, context)


def _form_context(opportunity: Any, form: DoneForm | None, *, plain: bool) -> dict[str, Any]:
    return {
        "opp": opportunity,
        "failed_form": form,
        "plain": plain,
        "activity_types": active_activity_types(),  # 1 query
        "next_choices": NEXT_CHOICES,
        "default_next": TOMORROW,
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def todo_done_form(request: HttpRequest, pk: int) -> HttpResponse:
    """The done-and-plan-next form: loaded inline by htmx, or a page of its own without it."""
    opportunity = get_object_or_404(visible_opportunities(request.user), pk=pk)
    if request.htmx:
        context = _form_context(opportunity, None, plain=False)
        return render(request, "sales/todo.html#done-form", context)
    return render(request, "sales/todo_done.html", _form_context(opportunity, None, plain=True))


@login_required
@require_POST
@vary_on_headers("HX-Request")
def todo_done(request: HttpRequest, pk: int) -> HttpResponse:
    """Log the planned action as done and plan the next one; both or neither are written."""
    opportunity = get_object_or_404(visible_opportunities(request.user), pk=pk)
    form = DoneForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                activity_log(
                    opportunity=opportunity,
                    actor=request.user,
                    type=data["type"],
                    note=data["note"],
                )
                opportunity_plan_next_action(
                    opportunity=opportunity,
                    actor=request.user,
                    at=data["next_at"],
                    note=data["next_note"],
                )
        except SalesRuleError as exc:
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, str(exc.message))
        else:
            if request.htmx:
                return _render_list(request, done_pk=opportunity.pk)
            when = date_format(timezone.localtime(data["next_at"]), "SHORT_DATETIME_FORMAT")
            messages.success(request, _("Done. Next action on %(when)s.") % {"when": when})
            return redirect("sales:todo")
    if request.htmx:
        # The form answers in place, with its errors (the list stays as it is).
        context = _form_context(opportunity, form, plain=False)
        response = render(request, "sales/todo.html#done-form", context, status=422)
        response["HX-Retarget"] = "this"
        response["HX-Reswap"] = "outerHTML"
        return response
    context = _form_context(opportunity, form, plain=True)
    return render(request, "sales/todo_done.html", context, status=422)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def todo_activity_done(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark one of my planned activities as done."""
    try:
        activity = todo_activity(user=request.user, pk=pk)
    except Activity.DoesNotExist:
        raise Http404 from None
    try:
        activity_complete(activity=activity, actor=request.user)
    except SalesRuleError as exc:
        if request.htmx:
            return _render_list(request, status=422, activity_error=(activity.pk, str(exc)))
        messages.error(request, str(exc))
        return redirect("sales:todo")
    if request.htmx:
        return _render_list(request)
    messages.success(request, _("Activity marked as done."))
    return redirect("sales:todo")


urlpatterns = [
    path("", todo, name="todo"),
    path("todo/more/", todo_more, name="todo_more"),
    path("todo/<int:pk>/done/", todo_done, name="todo_done"),
    path("todo/<int:pk>/done/form/", todo_done_form, name="todo_done_form"),
    path("todo/activities/<int:pk>/done/", todo_activity_done, name="todo_activity_done"),
]
