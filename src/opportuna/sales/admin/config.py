"""Configuration in the admin: each save is a call to `sales.services`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model, ProtectedError, QuerySet, URLField
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from opportuna.core.admin import (
    ReadOnlyInline,
    ServiceAdmin,
    changed_values,
    may_configure,
    may_view,
    stored,
)
from opportuna.sales import services
from opportuna.sales.admin.money import MoneyField, money, with_currency
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    Activity,
    ActivityType,
    Client,
    FieldDefinition,
    LostReason,
    Opportunity,
    Pipeline,
    Product,
    ProposalLine,
    Step,
    Tag,
)
from opportuna.sales.selectors import visible_clients
from opportuna.sales.services.clients import CLIENT_FIELDS


class SalesServiceAdmin(ServiceAdmin):
    refused_errors = (SalesRuleError, PermissionDenied)


class CatalogueAdmin(SalesServiceAdmin):
    """A catalogue row may be deleted while nothing uses it; in use, deactivate it instead."""

    # (model, field) pairs whose rows would keep this one.
    used_by: tuple[tuple[type[Model], str], ...] = ()
    refused_errors = (SalesRuleError, PermissionDenied, ProtectedError)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_configure(request)

    def in_use(self, objs: Any) -> bool:
        return any(
            model._default_manager.filter(**{f"{field}__in": objs}).exists()
            for model, field in self.used_by
        )

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # Listing every protected opportunity would load a million rows: say it in one line.
        if self.in_use(objs):
            return [], {}, set(), [_("In use: deactivate it instead of deleting it.")]
        return super().get_deleted_objects(objs, request)

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        # No service deletes catalogue rows: nothing uses them (checked above), nothing to log.
        obj.delete()


class StepInline(ReadOnlyInline):
    """Steps are edited one by one on the step page, each save through step_update."""

    model = Step
    fields = ("position", "name", "probability", "rot_days")
    ordering = ("position", "pk")


@admin.register(Pipeline)
class PipelineAdmin(SalesServiceAdmin):
    list_display = ("name", "position", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)
    fields = ("name", "position", "is_active")
    inlines = (StepInline,)

    def service_create(self, request: HttpRequest, form: Any) -> Pipeline:
        data = form.cleaned_data
        pipeline = services.pipeline_create(
            actor=request.user, name=data["name"], position=data["position"]
        )
        if not data["is_active"]:
            pipeline = services.pipeline_update(
                pipeline=pipeline, actor=request.user, is_active=False
            )
        return pipeline

    def service_update(self, request: HttpRequest, obj: Pipeline, form: Any) -> Pipeline:
        values = changed_values(form, ("name", "position", "is_active"))
        return services.pipeline_update(pipeline=stored(obj), actor=request.user, **values)


class StepForm(forms.ModelForm):  # type: ignore[type-arg]
    probability = forms.IntegerField(
        label=_("default probability"), min_value=0, max_value=100, help_text=_("Percent.")
    )
    position = forms.IntegerField(
        label=_("position"), min_value=0, required=False, help_text=_("Empty: after the last.")
    )

    class Meta:
        model = Step
        fields = ("pipeline", "name", "probability", "position", "rot_days")


@admin.register(Step)
class StepAdmin(SalesServiceAdmin):
    form = StepForm
    list_display = ("name", "pipeline", "position", "probability", "rot_days")
    list_filter = ("pipeline",)
    list_select_related = ("pipeline",)
    search_fields = ("name", "pipeline__name")
    ordering = ("pipeline__position", "pipeline__name", "position", "pk")
    fields = ("pipeline", "name", "probability", "position", "rot_days")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # step_update keeps a step in its pipeline; reordering takes the whole order.
        return ("pipeline", "position") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_configure(request)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        if Opportunity.objects.filter(step__in=objs).exists():
            message = _("Opportunities are on this step: move them elsewhere first.")
            return [], {}, set(), [message]
        return super().get_deleted_objects(objs, request)

    def service_create(self, request: HttpRequest, form: Any) -> Step:
        data = form.cleaned_data
        step = services.step_create(
            actor=request.user,
            pipeline=data["pipeline"],
            name=data["name"],
            probability=data["probability"],
            position=data["position"],
        )
        if data["rot_days"] is not None:
            step = services.step_update(step=step, actor=request.user, rot_days=data["rot_days"])
        return step

    def service_update(self, request: HttpRequest, obj: Step, form: Any) -> Step:
        values = changed_values(form, ("name", "probability", "rot_days"))
        return services.step_update(step=stored(obj), actor=request.user, **values)

    def service_delete(self, request: HttpRequest, obj: Step) -> None:
        services.step_delete(step=obj, actor=request.user)


class FieldDefinitionForm(forms.ModelForm):  # type: ignore[type-arg]
    key = forms.SlugField(
        label=_("key"), required=False, help_text=_("Empty: made from the label.")
    )
    choices = forms.CharField(
        label=_("choices"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("For a choice field: one allowed value per line."),
    )

    class Meta:
        model = FieldDefinition
        fields = ("label", "key", "kind", "choices", "required", "position", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.initial.get("choices"), list):
            self.initial["choices"] = "\n".join(str(c) for c in self.initial["choices"])

    def clean_choices(self) -> list[str]:
        lines = self.cleaned_data["choices"].splitlines()
        return [line.strip() for line in lines if line.strip()]


@admin.register(FieldDefinition)
class FieldDefinitionAdmin(SalesServiceAdmin):
    form = FieldDefinitionForm
    list_display = ("label", "key", "kind", "required", "position", "is_active")
    list_filter = ("kind", "required", "is_active")
    search_fields = ("label", "key")
    fields = ("label", "key", "kind", "choices", "required", "position", "is_active")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The key names stored values: it never changes once they may exist.
        return ("key",) if obj is not None else ()

    def service_create(self, request: HttpRequest, form: Any) -> FieldDefinition:
        data = form.cleaned_data
        definition = services.field_definition_create(
            actor=request.user,
            label=data["label"],
            kind=data["kind"],
            key=data["key"],
            choices=data["choices"],
            required=data["required"],
            position=data["position"],
        )
        if not data["is_active"]:
            definition = services.field_definition_update(
                definition=definition, actor=request.user, is_active=False
            )
        return definition

    def service_update(self, request: HttpRequest, obj: FieldDefinition, form: Any) -> Any:
        values = changed_values(
            form, ("label", "kind", "choices", "required", "position", "is_active")
        )
        return services.field_definition_update(
            definition=stored(obj), actor=request.user, **values
        )


@admin.register(Tag)
class TagAdmin(CatalogueAdmin):
    list_display = ("name", "colour")
    search_fields = ("name",)
    fields = ("name", "colour")
    used_by = ((Opportunity.tags.through, "tag"),)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_view(request)  # tag_save: any active user may create a tag

    def service_create(self, request: HttpRequest, form: Any) -> Tag:
        return services.tag_save(actor=request.user, tag=form.instance)

    def service_update(self, request: HttpRequest, obj: Tag, form: Any) -> Tag:
        return services.tag_save(actor=request.user, tag=obj)


class ProductForm(forms.ModelForm):  # type: ignore[type-arg]
    unit_price = MoneyField(label=_("list price"), help_text=_("In the account currency."))

    class Meta:
        model = Product
        fields = ("name", "unit_price", "is_active")


@admin.register(Product)
class ProductAdmin(CatalogueAdmin):
    form = ProductForm
    list_display = ("name", "price", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)
    used_by = ((Opportunity, "product"), (ProposalLine, "product"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return with_currency(super().get_queryset(request))

    @admin.display(description=_("list price"), ordering="unit_price")
    def price(self, product: Product) -> str:
        return money(product, product.unit_price)

    def service_create(self, request: HttpRequest, form: Any) -> Product:
        return services.product_save(actor=request.user, product=form.instance)

    def service_update(self, request: HttpRequest, obj: Product, form: Any) -> Product:
        return services.product_save(actor=request.user, product=obj)


@admin.register(LostReason)
class LostReasonAdmin(CatalogueAdmin):
    list_display = ("name", "position", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)
    fields = ("name", "position", "is_active")
    used_by = ((Opportunity, "lost_reason"),)

    def service_create(self, request: HttpRequest, form: Any) -> LostReason:
        return services.lost_reason_save(actor=request.user, lost_reason=form.instance)

    def service_update(self, request: HttpRequest, obj: LostReason, form: Any) -> LostReason:
        return services.lost_reason_save(actor=request.user, lost_reason=obj)


@admin.register(ActivityType)
class ActivityTypeAdmin(CatalogueAdmin):
    list_display = ("name", "key", "position", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "key")
    fields = ("name", "key", "position", "is_active")
    used_by = ((Activity, "type"),)

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        if "key" in form.base_fields:
            form.base_fields["key"].required = False  # activity_type_save makes it
            form.base_fields["key"].help_text = _("Empty: made from the name.")
        return form

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Events and statistics refer to activity types by key.
        return ("key",) if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Sending a proposal logs an activity of this type.
        if obj is not None and obj.key == ActivityType.PROPOSAL_SENT:
            return False
        return super().has_delete_permission(request, obj)

    def service_create(self, request: HttpRequest, form: Any) -> ActivityType:
        return services.activity_type_save(actor=request.user, activity_type=form.instance)

    def service_update(self, request: HttpRequest, obj: ActivityType, form: Any) -> Any:
        return services.activity_type_save(actor=request.user, activity_type=obj)


@admin.register(Client)
class ClientAdmin(SalesServiceAdmin):
    list_display = ("name", "city", "country", "vat_number", "email", "phone")
    search_fields = ("name", "vat_number", "email", "external_id")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    formfield_overrides = {URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("name", "vat_number", "opportunity_list")}),
        (_("Contact"), {"fields": ("email", "phone", "website")}),
        (_("Address"), {"fields": ("address", "city", "country")}),
        (None, {"fields": ("notes", "external_id", "created_at")}),
    )
    readonly_fields = ("opportunity_list", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Client]:
        return visible_clients(request.user)  # type: ignore[arg-type]

    # client_create and client_update let any active user open and edit a client folder.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_view(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_view(request)

    @admin.display(description=_("opportunities"))
    def opportunity_list(self, client: Client) -> str:
        if client.pk is None:
            return "-"
        url = reverse("admin:sales_opportunity_changelist")
        return format_html(
            '<a href="{}?client__id__exact={}">{}</a>',
            url,
            client.pk,
            _("Opportunities of this client folder"),
        )

    def service_create(self, request: HttpRequest, form: Any) -> Client:
        values = {k: v for k, v in form.cleaned_data.items() if k in CLIENT_FIELDS}
        return services.client_create(actor=request.user, **values)

    def service_update(self, request: HttpRequest, obj: Client, form: Any) -> Client:
        values = changed_values(form, CLIENT_FIELDS)
        return services.client_update(client=stored(obj), actor=request.user, **values)
