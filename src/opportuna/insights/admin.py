"""Sales targets in the admin; each save or delete is a call to `insights.services`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from opportuna.core.admin import ServiceAdmin, may_configure
from opportuna.insights.models import Target
from opportuna.insights.services import InsightsRuleError, target_delete, target_set
from opportuna.sales.admin.money import MoneyField, money, with_currency


class TargetForm(forms.ModelForm):  # type: ignore[type-arg]
    amount = MoneyField(label=_("target"))

    class Meta:
        model = Target
        fields = ("period_key", "team", "user", "amount")


@admin.register(Target)
class TargetAdmin(ServiceAdmin):
    form = TargetForm
    refused_errors = (InsightsRuleError, PermissionDenied)
    list_display = ("period_key", "subject", "target", "set_by", "updated_at")
    list_filter = ("period_kind", "team")
    list_select_related = ("team", "user", "set_by")
    search_fields = ("period_key", "team__name", "user__username")
    ordering = ("-period_key", "pk")
    fields = ("period_key", "team", "user", "amount")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Target]:
        return with_currency(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # target_set replaces the target of one period and subject: on a change, only the
        # amount moves; another period or subject is another target.
        return ("period_key", "team", "user") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_configure(request)

    @admin.display(description=_("for"))
    def subject(self, target: Target) -> str:
        if target.team is not None:
            return str(target.team)
        if target.user is not None:
            return str(target.user)
        return str(_("the company"))

    @admin.display(description=_("target"), ordering="amount")
    def target(self, target: Target) -> str:
        return money(target, target.amount)

    def service_create(self, request: HttpRequest, form: Any) -> Target:
        data = form.cleaned_data
        return target_set(
            actor=request.user,
            period_key=data["period_key"],
            amount=data["amount"],
            team=data["team"],
            user=data["user"],
        )

    def service_update(self, request: HttpRequest, obj: Target, form: Any) -> Target:
        stored = Target.objects.select_related("team", "user").get(pk=obj.pk)
        return target_set(
            actor=request.user,
            period_key=stored.period_key,
            amount=form.cleaned_data["amount"],
            team=stored.team,
            user=stored.user,
        )

    def service_delete(self, request: HttpRequest, obj: Target) -> None:
        target_delete(actor=request.user, target=obj)
