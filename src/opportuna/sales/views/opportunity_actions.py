"""The actions of the opportunity page: each one a small form over one service.

A dialog action answers GET with the page and its dialog open (a plain page without
JavaScript), and POST by calling its service: then post/redirect/get, or for htmx the page
partial. A refused form or a broken rule shows the page again with the dialog open (422).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.sales import forms
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Activity, Comment, Contact, Opportunity
from opportuna.sales.selectors import visible_opportunities
from opportuna.sales.selectors.opportunity import (
    activity_types_active,
    form_owners,
    lost_reasons_active,
    opportunity_steps,
)
from opportuna.sales.services import (
    activity_complete,
    activity_log,
    activity_plan,
    comment_add,
    comment_delete,
    comment_edit,
    comment_pin,
    comment_unpin,
    contact_add,
    contact_remove,
    contact_reorder,
    contact_update,
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_duplicate,
    opportunity_move,
    opportunity_plan_next_action,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_standby,
    tag_add,
    tag_remove,
)
from opportuna.sales.views.opportunity_page import done, failed, render_page


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _opportunity(request: HttpRequest, pk: int) -> Opportunity:
    """The opportunity through the door: 404 for anyone who may not see it."""
    return get_object_or_404(
        visible_opportunities(_user(request)).select_related("pipeline", "step", "owner"), pk=pk
    )


def _rule_error(request: HttpRequest, form: Form, exc: SalesRuleError) -> None:
    """A broken rule shows on its field when the form has it, else as a message on top."""
    if exc.field in form.fields:
        form.add_error(exc.field, str(exc.message))
    else:
        messages.error(request, str(exc.message))


def _dialog(
    request: HttpRequest,
    pk: int,
    name: str,
    make_form: Callable[[Opportunity, Any], Form],
    perform: Callable[[Opportunity, dict[str, Any]], str],
) -> HttpResponse:
    """GET: the page with this dialog open. POST: validate, call the service, answer."""
    opp = _opportunity(request, pk)
    if request.method == "GET":
        return render_page(request, pk, open_dialog=name)
    form = make_form(opp, request.POST)
    if not form.is_valid():
        return failed(request, pk, name, form)
    try:
        message = perform(opp, form.cleaned_data)
    except SalesRuleError as exc:
        _rule_error(request, form, exc)
        return failed(request, pk, name, form)
    return done(request, pk, message)


# Planning and steps -----------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def next_action(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_plan_next_action(
            opportunity=opp, at=data["at"], note=data["note"], actor=_user(request)
        )
        return _("Next action planned.")

    return _dialog(request, pk, "next_action", lambda o, d: forms.NextActionForm(d), perform)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def standby(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_standby(
            opportunity=opp, until=data["until"], note=data["note"], actor=_user(request)
        )
        return _("On standby until %(date)s.") % {
            "date": formats.date_format(data["until"], "SHORT_DATE_FORMAT")
        }

    return _dialog(request, pk, "standby", lambda o, d: forms.StandbyForm(d), perform)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def move(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_move(opportunity=opp, step=data["step"], actor=_user(request))
        return _("Moved to %(step)s.") % {"step": data["step"].name}

    return _dialog(
        request,
        pk,
        "move",
        lambda o, d: forms.MoveForm(d, steps=opportunity_steps(opportunity=o)),
        perform,
    )


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def probability(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        value = None if data["follow_step"] else data["probability"]
        opportunity_set_probability(opportunity=opp, probability=value, actor=_user(request))
        return _("Probability saved.")

    return _dialog(request, pk, "probability", lambda o, d: forms.ProbabilityForm(d), perform)


# Closing and reopening --------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def close_won(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_close_won(opportunity=opp, won_amount=data["won_amount"], actor=_user(request))
        return _("Closed as won. Well done!")

    return _dialog(request, pk, "won", lambda o, d: forms.WonForm(d), perform)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def close_lost(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_close_lost(
            opportunity=opp, reason=data["reason"], note=data["note"], actor=_user(request)
        )
        return _("Closed as lost.")

    return _dialog(
        request, pk, "lost", lambda o, d: forms.LostForm(d, reasons=lost_reasons_active()), perform
    )


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_cancel(opportunity=opp, note=data["note"], actor=_user(request))
        return _("Cancelled.")

    return _dialog(request, pk, "cancel", lambda o, d: forms.CancelForm(d), perform)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        opportunity_reopen(
            opportunity=opp, next_action_at=data["next_action_at"], actor=_user(request)
        )
        return _("Reopened: it is back in the to-do list.")

    return _dialog(request, pk, "reopen", lambda o, d: forms.ReopenForm(d), perform)


# Comments and activities ------------------------------------------------------------------


@login_required
@require_POST
@vary_on_headers("HX-Request")
def comment(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a comment, or log it as an activity when a type is chosen; anyone who sees it may."""
    opp = _opportunity(request, pk)
    form = forms.CommentForm(request.POST, activity_types=activity_types_active())
    if not form.is_valid():
        return failed(request, pk, "comment", form)
    data = form.cleaned_data
    try:
        if data["as_type"] is not None:
            activity_log(
                opportunity=opp, actor=_user(request), type=data["as_type"], note=data["body"]
            )
            message = _("Activity logged.")
        else:
            comment_add(
                opportunity=opp, actor=_user(request), body=data["body"], pinned=data["pinned"]
            )
            message = _("Comment added.")
    except SalesRuleError as exc:
        _rule_error(request, form, exc)
        return failed(request, pk, "comment", form)
    return done(request, pk, message, anchor="timeline")


def comment_pin_toggle(
    request: HttpRequest, pk: int, comment_pk: int, *, pin: bool
) -> HttpResponse:
    opp = _opportunity(request, pk)
    target = get_object_or_404(Comment, pk=comment_pk, opportunity=opp)
    if pin:
        comment_pin(comment=target, actor=_user(request))
        return done(request, pk, _("Comment pinned on top."), anchor="timeline")
    comment_unpin(comment=target, actor=_user(request))
    return done(request, pk, _("Comment unpinned."), anchor="timeline")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def comment_edit_view(request: HttpRequest, pk: int, comment_pk: int) -> HttpResponse:
    """Reword one's own comment (the form sits under the comment on the page)."""
    opp = _opportunity(request, pk)
    target = get_object_or_404(Comment, pk=comment_pk, opportunity=opp)
    body = request.POST.get("body", "")
    try:
        comment_edit(comment=target, actor=_user(request), body=body)
    except SalesRuleError as exc:
        messages.error(request, str(exc))
        return render_page(request, pk, status=422)
    return done(request, pk, _("Comment saved."), anchor=f"comment-{comment_pk}")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def comment_delete_view(request: HttpRequest, pk: int, comment_pk: int) -> HttpResponse:
    """Delete a comment, once confirmed on the page."""
    opp = _opportunity(request, pk)
    target = get_object_or_404(Comment, pk=comment_pk, opportunity=opp)
    comment_delete(comment=target, actor=_user(request))
    return done(request, pk, _("Comment deleted."), anchor="timeline")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def pin(request: HttpRequest, pk: int, comment_pk: int) -> HttpResponse:
    return comment_pin_toggle(request, pk, comment_pk, pin=True)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def unpin(request: HttpRequest, pk: int, comment_pk: int) -> HttpResponse:
    return comment_pin_toggle(request, pk, comment_pk, pin=False)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def log_activity(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        activity_log(
            opportunity=opp,
            actor=_user(request),
            type=data["type"],
            note=data["note"],
            done_at=data["done_at"],
        )
        return _("Activity logged.")

    return _dialog(
        request,
        pk,
        "activity_log",
        lambda o, d: forms.ActivityLogForm(d, activity_types=activity_types_active()),
        perform,
    )


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def plan_activity(request: HttpRequest, pk: int) -> HttpResponse:
    def perform(opp: Opportunity, data: dict[str, Any]) -> str:
        activity_plan(
            opportunity=opp,
            actor=_user(request),
            type=data["type"],
            due_at=data["due_at"],
            note=data["note"],
        )
        return _("Activity planned.")

    return _dialog(
        request,
        pk,
        "activity_plan",
        lambda o, d: forms.ActivityPlanForm(d, activity_types=activity_types_active()),
        perform,
    )


@login_required
@require_POST
@vary_on_headers("HX-Request")
def complete_activity(request: HttpRequest, pk: int, activity_pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    activity = get_object_or_404(Activity, pk=activity_pk, opportunity=opp)
    try:
        activity_complete(activity=activity, actor=_user(request))
    except SalesRuleError as exc:
        messages.error(request, str(exc.message))
        return failed(request, pk, "planned", None)
    return done(request, pk, _("Activity done."), anchor="timeline")


# Contacts and tags ------------------------------------------------------------------------


@login_required
@require_POST
@vary_on_headers("HX-Request")
def add_contact(request: HttpRequest, pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    form = forms.ContactForm(request.POST, prefix="new-contact")
    if not form.is_valid():
        return failed(request, pk, "contact_add", form)
    try:
        contact_add(opportunity=opp, actor=_user(request), **form.cleaned_data)
    except SalesRuleError as exc:
        _rule_error(request, form, exc)
        return failed(request, pk, "contact_add", form)
    return done(request, pk, _("Contact added."), anchor="contacts")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def edit_contact(request: HttpRequest, pk: int, contact_pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    contact = get_object_or_404(Contact, pk=contact_pk, opportunity=opp)
    form = forms.ContactForm(request.POST, prefix=f"contact-{contact.pk}")
    if form.is_valid():
        try:
            contact_update(contact=contact, actor=_user(request), **form.cleaned_data)
        except SalesRuleError as exc:
            _rule_error(request, form, exc)
        else:
            return done(request, pk, _("Contact saved."), anchor="contacts")
    return failed(request, pk, f"contact-{contact.pk}", None, contact_forms={contact.pk: form})


@login_required
@require_POST
@vary_on_headers("HX-Request")
def remove_contact(request: HttpRequest, pk: int, contact_pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    contact = get_object_or_404(Contact, pk=contact_pk, opportunity=opp)
    contact_remove(contact=contact, actor=_user(request))
    return done(request, pk, _("Contact removed."), anchor="contacts")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def reorder_contacts(request: HttpRequest, pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    raw = request.POST.getlist("contact_ids")
    if not all(value.isdigit() for value in raw):
        messages.error(request, _("The new order of the contacts could not be read."))
        return failed(request, pk, "contacts", None)
    try:
        contact_reorder(opportunity=opp, actor=_user(request), contact_ids=[int(v) for v in raw])
    except SalesRuleError as exc:
        messages.error(request, str(exc.message))
        return failed(request, pk, "contacts", None)
    return done(request, pk, _("Contacts reordered."), anchor="contacts")


@login_required
@require_POST
@vary_on_headers("HX-Request")
def add_tag(request: HttpRequest, pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    form = forms.TagForm(request.POST)
    if not form.is_valid():
        return failed(request, pk, "tag_add", form)
    try:
        tag = tag_add(opportunity=opp, actor=_user(request), tag=form.cleaned_data["name"])
    except SalesRuleError as exc:
        _rule_error(request, form, exc)
        return failed(request, pk, "tag_add", form)
    return done(request, pk, _("Tag %(name)s added.") % {"name": tag.name})


@login_required
@require_POST
@vary_on_headers("HX-Request")
def remove_tag(request: HttpRequest, pk: int, tag_pk: int) -> HttpResponse:
    opp = _opportunity(request, pk)
    tag = get_object_or_404(opp.tags.all(), pk=tag_pk)
    tag_remove(opportunity=opp, actor=_user(request), tag=tag)
    return done(request, pk, _("Tag %(name)s removed.") % {"name": tag.name})


# Duplicate --------------------------------------------------------------------------------


def _a_year_later(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


@login_required
@require_http_methods(["GET", "POST"])
def duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    """A prefilled form for an upsell or a renewal; saving opens the new opportunity."""
    opp = _opportunity(request, pk)
    user = _user(request)
    owners = form_owners(user=user)
    if request.method == "POST":
        form = forms.DuplicateForm(request.POST, owners=owners)
        if form.is_valid():
            data = form.cleaned_data
            try:
                new = opportunity_duplicate(
                    opportunity=opp,
                    actor=user,
                    title=data["title"],
                    amount=data["amount"],
                    expected_close_date=data["expected_close_date"],
                    next_action_at=data["next_action_at"],
                    owner=data.get("owner") or user,
                )
            except SalesRuleError as exc:
                _rule_error(request, form, exc)
            else:
                messages.success(request, _("Duplicated: this is the new opportunity."))
                return redirect("sales:opportunity_detail", pk=new.pk)
        status = 422
    else:
        start = opp.expected_close_date or timezone.localdate()
        form = forms.DuplicateForm(
            owners=owners,
            initial={
                "title": _("%(title)s (renewal)") % {"title": opp.title},
                "amount": opp.amount,
                "expected_close_date": _a_year_later(start),
                "next_action_at": (timezone.localtime() + timedelta(days=1)).replace(
                    hour=9, minute=0, second=0, microsecond=0
                ),
                "owner": user.pk,
            },
        )
        status = 200
    context = {"opp": opp, "form": form, "currency": Account.load().currency}
    return render(request, "sales/opportunity_duplicate.html", context, status=status)


urlpatterns = [
    path("o/<int:pk>/next-action/", next_action, name="opportunity_next_action"),
    path("o/<int:pk>/standby/", standby, name="opportunity_standby"),
    path("o/<int:pk>/move/", move, name="opportunity_move"),
    path("o/<int:pk>/probability/", probability, name="opportunity_probability"),
    path("o/<int:pk>/won/", close_won, name="opportunity_won"),
    path("o/<int:pk>/lost/", close_lost, name="opportunity_lost"),
    path("o/<int:pk>/cancel/", cancel, name="opportunity_cancel"),
    path("o/<int:pk>/reopen/", reopen, name="opportunity_reopen"),
    path("o/<int:pk>/comments/", comment, name="opportunity_comment"),
    path(
        "o/<int:pk>/comments/<int:comment_pk>/edit/",
        comment_edit_view,
        name="opportunity_comment_edit",
    ),
    path(
        "o/<int:pk>/comments/<int:comment_pk>/delete/",
        comment_delete_view,
        name="opportunity_comment_delete",
    ),
    path("o/<int:pk>/comments/<int:comment_pk>/pin/", pin, name="opportunity_comment_pin"),
    path("o/<int:pk>/comments/<int:comment_pk>/unpin/", unpin, name="opportunity_comment_unpin"),
    path("o/<int:pk>/activities/log/", log_activity, name="opportunity_activity_log"),
    path("o/<int:pk>/activities/plan/", plan_activity, name="opportunity_activity_plan"),
    path(
        "o/<int:pk>/activities/<int:activity_pk>/done/",
        complete_activity,
        name="opportunity_activity_done",
    ),
    path("o/<int:pk>/contacts/", add_contact, name="opportunity_contact_add"),
    path("o/<int:pk>/contacts/reorder/", reorder_contacts, name="opportunity_contact_reorder"),
    path("o/<int:pk>/contacts/<int:contact_pk>/", edit_contact, name="opportunity_contact_edit"),
    path(
        "o/<int:pk>/contacts/<int:contact_pk>/remove/",
        remove_contact,
        name="opportunity_contact_remove",
    ),
    path("o/<int:pk>/tags/", add_tag, name="opportunity_tag_add"),
    path("o/<int:pk>/tags/<int:tag_pk>/remove/", remove_tag, name="opportunity_tag_remove"),
    path("o/<int:pk>/duplicate/", duplicate, name="opportunity_duplicate"),
]
