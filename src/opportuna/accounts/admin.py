"""Admin for people and the account; every save is a call to `accounts.services`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from opportuna.accounts.models import Account, ApiToken, Role, Team, User
from opportuna.accounts.services import (
    AccountRuleError,
    account_update,
    team_create,
    team_set_managers,
    team_update,
    user_create,
    user_update,
)
from opportuna.accounts.tokens import api_token_revoke
from opportuna.core.admin import (
    ServiceAdmin,
    StaffViewMixin,
    changed_values,
    may_configure,
    stored,
)

# Roles decide who may do what; Django's groups would be a second, unused system beside them.
admin.site.unregister(Group)

USER_UPDATE_FIELDS = ("email", "first_name", "last_name", "role", "team", "language", "is_active")


class AccountsServiceAdmin(ServiceAdmin):
    refused_errors = (AccountRuleError, PermissionDenied)


def _language_field(db_field: Any, **kwargs: Any) -> forms.Field:
    choices = [("", _("Follow the browser")), *settings.LANGUAGES]
    return forms.ChoiceField(
        label=db_field.verbose_name,
        choices=choices,
        required=False,
        help_text=db_field.help_text,
    )


@admin.register(User)
class UserAdmin(AccountsServiceAdmin, DjangoUserAdmin):
    list_display = (
        "username",
        "first_name",
        "last_name",
        "email",
        "role",
        "team",
        "language",
        "is_active",
        "is_staff",
    )
    list_filter = ("role", "team", "is_active")
    list_select_related = ("team",)
    search_fields = ("username", "first_name", "last_name", "email")
    ordering = ("username",)
    filter_horizontal = ()
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email", "language")}),
        (_("Role"), {"fields": ("role", "team", "is_active")}),
        (
            _("Admin site access"),
            {
                "fields": ("is_staff", "is_superuser"),
                "description": _(
                    "Admins get access with their role; superusers come from "
                    "the createsuperuser command."
                ),
            },
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "usable_password", "password1", "password2"),
            },
        ),
        (_("Personal info"), {"fields": ("first_name", "last_name", "email", "language")}),
        (_("Role"), {"fields": ("role", "team")}),
    )
    readonly_fields = ("is_staff", "is_superuser", "last_login", "date_joined")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        # user_update does not rename: a username is how people log in and are referred to.
        return ("username", *readonly) if obj is not None else readonly

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "language":
            return _language_field(db_field, **kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def service_create(self, request: HttpRequest, form: Any) -> User:
        data = form.cleaned_data
        return user_create(
            actor=request.user,
            username=data["username"],
            password=data.get("password1") if data.get("set_usable_password") else None,
            email=data.get("email", ""),
            first_name=data.get("first_name", ""),
            last_name=data.get("last_name", ""),
            role=data.get("role", Role.SALESPERSON),
            team=data.get("team"),
            language=data.get("language", ""),
        )

    def service_update(self, request: HttpRequest, obj: User, form: Any) -> User:
        return user_update(
            user=stored(obj), actor=request.user, **changed_values(form, USER_UPDATE_FIELDS)
        )


@admin.register(Team)
class TeamAdmin(AccountsServiceAdmin):
    list_display = ("name", "member_count", "manager_names")
    search_fields = ("name",)
    fields = ("name", "managers")
    filter_horizontal = ("managers",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Count("members", distinct=True))
            .prefetch_related("managers")
        )

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, team: Any) -> int:
        return int(team.member_count)

    @admin.display(description=_("managers"))
    def manager_names(self, team: Team) -> str:
        return ", ".join(str(manager) for manager in team.managers.all())

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "managers":
            # Only these may manage (team_set_managers says so too, as the last word).
            kwargs["queryset"] = User.objects.filter(role__in=[Role.MANAGER, Role.ADMIN])
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def service_create(self, request: HttpRequest, form: Any) -> Team:
        data = form.cleaned_data
        return team_create(actor=request.user, name=data["name"], managers=data["managers"])

    def service_update(self, request: HttpRequest, obj: Team, form: Any) -> Team:
        team = stored(obj)
        if "name" in form.changed_data:
            team = team_update(team=team, actor=request.user, name=form.cleaned_data["name"])
        if "managers" in form.changed_data:
            team_set_managers(team=team, actor=request.user, managers=form.cleaned_data["managers"])
        return team


@admin.register(Account)
class AccountAdmin(AccountsServiceAdmin):
    """The one account: it always exists (a migration seeds it) and is never deleted."""

    list_display = ("name", "currency", "visibility")
    fields = ("name", "currency", "visibility")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_configure(request) and not Account.objects.exists()

    def service_create(self, request: HttpRequest, form: Any) -> Account:
        return self._update(request, form)

    def service_update(self, request: HttpRequest, obj: Account, form: Any) -> Account:
        return self._update(request, form)

    def _update(self, request: HttpRequest, form: Any) -> Account:
        data = form.cleaned_data
        return account_update(
            actor=request.user,
            name=data["name"],
            currency=data["currency"],
            visibility=data["visibility"],
        )


@admin.register(ApiToken)
class ApiTokenAdmin(StaffViewMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Personal tokens are made by their owners (My account) or `create_token`; here admins
    see them and revoke them. The hash is never shown."""

    TOKEN_FIELDS = (
        "prefix",
        "user",
        "name",
        "read_only",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    list_display = TOKEN_FIELDS
    list_filter = ("read_only", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username")
    fields = TOKEN_FIELDS
    readonly_fields = TOKEN_FIELDS
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return may_configure(request)

    @admin.action(description=_("Revoke the selected tokens"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        with transaction.atomic():
            tokens = list(queryset.select_related("user"))
            for token in tokens:
                api_token_revoke(actor=request.user, token=token)  # type: ignore[arg-type]
        self.message_user(request, _("%(count)d token(s) revoked.") % {"count": len(tokens)})
