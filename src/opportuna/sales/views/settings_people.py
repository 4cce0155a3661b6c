"""Settings: users, teams and the account (admins); managers read their teams' users.

Every write goes through `accounts.services`. A user is deactivated, never deleted, and
only after the admin confirms it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from opportuna.accounts.models import Account, Team, User
from opportuna.accounts.services import (
    AccountRuleError,
    account_update,
    team_create,
    team_set_managers,
    team_update,
    user_create,
    user_update,
)
from opportuna.sales.forms_settings import AccountForm, TeamForm, UserCreateForm, UserForm
from opportuna.sales.selectors.settings import (
    settings_possible_managers,
    settings_team_get,
    settings_teams,
    settings_user_get,
    settings_users,
)
from opportuna.sales.views.settings_common import admin_required, refuse, render_settings

REFUSALS = (AccountRuleError, PermissionDenied)
USER_FIELDS = ("first_name", "last_name", "email", "role", "team", "language", "is_active")

# Users ------------------------------------------------------------------------------------


@login_required
@require_GET
def users(request: HttpRequest) -> HttpResponse:
    """Admins: every user, to open and change. Managers: their teams' users, read-only."""
    user = request.user
    if not (user.is_admin or user.is_manager):
        raise PermissionDenied(_("Only admins and managers can see the users."))
    context = {
        "users": settings_users(user=user),  # 1 query, teams joined
        "read_only": not user.is_admin,
    }
    return render_settings(request, "sales/settings_users.html", context, current="settings_users")


@login_required
@admin_required
@require_http_methods(["GET", "POST"])
def user_new(request: HttpRequest) -> HttpResponse:
    """Create a user, with a password or none (then it is set later in the admin)."""
    status = 200
    if request.method == "POST":
        form = UserCreateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = user_create(
                    actor=request.user,
                    username=data["username"],
                    password=data["password1"] or None,
                    email=data["email"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    role=data["role"],
                    team=data["team"],
                    language=data["language"],
                )
            except REFUSALS as error:
                refuse(form, error)
            else:
                if data["password1"]:
                    messages.success(request, _("User %(user)s created.") % {"user": created})
                else:
                    messages.warning(
                        request,
                        _(
                            "User %(user)s created without a password: they cannot log in "
                            "until you set one (“Set a password” on their page, in the admin) "
                            "or they reset it."
                        )
                        % {"user": created},
                    )
                return redirect("sales:settings_user", pk=created.pk)
        status = 422
    else:
        form = UserCreateForm(initial={"role": "salesperson"})
    context = {"form": form, "subject": None}
    return render_settings(
        request, "sales/settings_user.html", context, status=status, current="settings_users"
    )


def _user_initial(subject: User) -> dict[str, Any]:
    return {
        "first_name": subject.first_name,
        "last_name": subject.last_name,
        "email": subject.email,
        "role": subject.role,
        "team": subject.team_id,
        "language": subject.language,
        "is_active": subject.is_active,
    }


@login_required
@admin_required
@require_http_methods(["GET", "POST"])
def user_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a user's name, email, role, team, language; deactivate after a confirmation."""
    try:
        subject = settings_user_get(user=request.user, pk=pk)
    except User.DoesNotExist:
        raise Http404 from None
    status, confirm_deactivation = 200, False
    if request.method == "POST":
        form = UserForm(request.POST, initial=_user_initial(subject))
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in form.changed_data}
            if values.get("is_active") is False and request.POST.get("confirm") != "deactivate":
                # Deactivating locks someone out: ask first, keeping what was typed.
                confirm_deactivation = True
            else:
                try:
                    user_update(user=subject, actor=request.user, **values)
                except REFUSALS as error:
                    refuse(form, error)
                    subject.refresh_from_db()
                else:
                    messages.success(request, _("User %(user)s saved.") % {"user": subject})
                    return redirect("sales:settings_users")
        status = 200 if confirm_deactivation else 422
    else:
        form = UserForm(initial=_user_initial(subject))
    context = {"form": form, "subject": subject, "confirm_deactivation": confirm_deactivation}
    return render_settings(
        request, "sales/settings_user.html", context, status=status, current="settings_users"
    )


# Teams ------------------------------------------------------------------------------------


def _team_form(request: HttpRequest, data: Any = None, **kwargs: Any) -> TeamForm:
    return TeamForm(data, managers=settings_possible_managers(user=request.user), **kwargs)


def _render_teams(
    request: HttpRequest, form: TeamForm | None = None, status: int = 200
) -> HttpResponse:
    context = {
        "teams": settings_teams(user=request.user),  # 2 queries: teams with counts, managers
        "form": form or _team_form(request, auto_id="id_newteam_%s"),  # 1 query: managers
    }
    return render_settings(
        request, "sales/settings_teams.html", context, status=status, current="settings_teams"
    )


@login_required
@admin_required
@require_GET
def teams(request: HttpRequest) -> HttpResponse:
    """Every team with its managers and member count, and a form to add one."""
    return _render_teams(request)


@login_required
@admin_required
@require_POST
def team_new(request: HttpRequest) -> HttpResponse:
    form = _team_form(request, request.POST, auto_id="id_newteam_%s")
    if form.is_valid():
        try:
            team = team_create(
                actor=request.user,
                name=form.cleaned_data["name"],
                managers=form.cleaned_data["managers"],
            )
        except REFUSALS as error:
            refuse(form, error)
        else:
            messages.success(request, _("Team “%(name)s” created.") % {"name": team.name})
            return redirect("sales:settings_teams")
    return _render_teams(request, form, status=422)


@login_required
@admin_required
@require_http_methods(["GET", "POST"])
def team_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename a team and choose its managers; members are chosen on each user's page."""
    try:
        team = settings_team_get(user=request.user, pk=pk)
    except Team.DoesNotExist:
        raise Http404 from None
    initial = {"name": team.name, "managers": [m.pk for m in team.managers.all()]}
    status = 200
    if request.method == "POST":
        form = _team_form(request, request.POST, initial=initial)
        if form.is_valid():
            try:
                with transaction.atomic():
                    if "name" in form.changed_data:
                        team_update(team=team, actor=request.user, name=form.cleaned_data["name"])
                    if "managers" in form.changed_data:
                        team_set_managers(
                            team=team, actor=request.user, managers=form.cleaned_data["managers"]
                        )
            except REFUSALS as error:
                refuse(form, error)
                team.refresh_from_db()
            else:
                messages.success(request, _("Team “%(name)s” saved.") % {"name": team.name})
                return redirect("sales:settings_teams")
        status = 422
    else:
        form = _team_form(request, initial=initial)
    context = {"team": team, "form": form}
    return render_settings(
        request, "sales/settings_team.html", context, status=status, current="settings_teams"
    )


# The account ------------------------------------------------------------------------------


@login_required
@admin_required
@require_http_methods(["GET", "POST"])
def account(request: HttpRequest) -> HttpResponse:
    """The account's name, currency and visibility policy."""
    current = Account.load()
    status = 200
    if request.method == "POST":
        form = AccountForm(request.POST)
        if form.is_valid():
            try:
                account_update(actor=request.user, **form.cleaned_data)
            except REFUSALS as error:
                refuse(form, error)
            else:
                messages.success(request, _("Account saved."))
                return redirect("sales:settings_account")
        status = 422
    else:
        form = AccountForm(
            initial={
                "name": current.name,
                "currency": current.currency,
                "visibility": current.visibility,
            }
        )
    return render_settings(
        request,
        "sales/settings_account.html",
        {"form": form},
        status=status,
        current="settings_account",
    )


urlpatterns = [
    path("settings/users/", users, name="settings_users"),
    path("settings/users/new/", user_new, name="settings_user_create"),
    path("settings/users/<int:pk>/", user_page, name="settings_user"),
    path("settings/teams/", teams, name="settings_teams"),
    path("settings/teams/new/", team_new, name="settings_team_create"),
    path("settings/teams/<int:pk>/", team_page, name="settings_team"),
    path("settings/account/", account, name="settings_account"),
]
