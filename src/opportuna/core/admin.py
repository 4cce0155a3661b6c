"""Admin building blocks: every admin write goes through a service, as in the web app.

`ServiceAdmin` replaces the model form's save with a service call and shows the service's
refusal (a domain error or PermissionDenied) as a form error, the way a view would.
`ReadOnlyAdmin` and `ReadOnlyInline` show records that only services may write.

Rights follow the roles, not Django's model permissions (those would be a second system to
keep in step): any active staff user may look, only an admin (role or superuser) may change
the configuration. `core` knows nothing of `accounts`, so the role is read as `user.is_admin`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connections, models, router, transaction
from django.db.models import DateField, F, Func, Value
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _

# Where the first pass of a refused save leaves the error for the second pass to show.
_REFUSAL_ATTR = "_opportuna_admin_refusal"


class _Refused(Exception):
    """A service refused an admin write; carries the original error out of the transaction."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def refusal_message(error: Exception) -> str:
    return str(error) or _("You are not allowed to do this.")


def may_view(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff)


def may_configure(request: HttpRequest) -> bool:
    return may_view(request) and bool(getattr(request.user, "is_admin", False))


def changed_values(form: forms.ModelForm[Any], allowed: Iterable[str]) -> dict[str, Any]:
    """The cleaned values of the form's changed fields, limited to what a service accepts."""
    allowed = set(allowed)
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}


def stored(obj: models.Model) -> Any:
    """A fresh copy from the database: the form has already written its values on `obj`,
    and update services compare before with after."""
    return type(obj)._default_manager.get(pk=obj.pk)


def _with_refusal(form_class: type[ModelForm[Any]], error: Exception) -> type[ModelForm[Any]]:
    field = getattr(error, "field", None)
    message = refusal_message(error)

    class RefusedForm(form_class):  # type: ignore[valid-type,misc]
        def clean(self) -> dict[str, Any]:
            cleaned_data = super().clean()
            self.add_error(field if field in self.fields else None, message)
            return cleaned_data

    return RefusedForm


def all_fields_read_only(model_admin: Any) -> list[str]:
    """Every field, so that non-editable ones (created_at, ...) may be listed too."""
    opts = model_admin.model._meta
    return [
        *model_admin.readonly_fields,
        *(f.name for f in opts.concrete_fields),
        *(f.name for f in opts.many_to_many),
    ]


# Date hierarchy ---------------------------------------------------------------------------

_STRFTIME_FORMATS = {"year": "%Y-01-01", "month": "%Y-%m-01", "day": "%Y-%m-%d"}


class _SQLiteDatesMixin:
    """`dates()` with SQLite's own strftime: Django's Trunc calls Python once per row there,
    seconds on a million rows for the admin's date hierarchy."""

    def dates(self, field_name: str, kind: str, order: str = "ASC") -> Any:
        qs: Any = self
        if connections[qs.db].vendor != "sqlite" or kind not in _STRFTIME_FORMATS:
            return super().dates(field_name, kind, order)  # type: ignore[misc]
        truncated = Func(
            Value(_STRFTIME_FORMATS[kind]),
            F(field_name),
            function="strftime",
            output_field=DateField(),
        )
        return (
            qs.annotate(datefield=truncated, plain_field=F(field_name))
            .values_list("datefield", flat=True)
            .distinct()
            .filter(plain_field__isnull=False)
            .order_by(("-" if order == "DESC" else "") + "datefield")
        )


@cache
def _sqlite_dates_class(queryset_class: type[Any]) -> type[Any]:
    return type(f"SQLiteDates{queryset_class.__name__}", (_SQLiteDatesMixin, queryset_class), {})


def with_sqlite_dates(queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """The same queryset, whose `dates()` (used by `date_hierarchy`) runs natively on SQLite."""
    clone = queryset.all()
    clone.__class__ = _sqlite_dates_class(type(queryset))
    return clone


class StaffViewMixin:
    """Any active staff user may look; what they see is narrowed by each admin's queryset."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_view(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_view(request)


class ServiceAdmin(StaffViewMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """A model admin whose saves and deletes are service calls.

    Subclasses implement `service_create` and `service_update` (and `service_delete` if they
    allow deleting). A refused write rolls back, and the same POST is rendered again with
    the refusal as a form error (a message, for deletes and bulk actions).
    """

    # The exceptions that mean "the service said no"; each app adds its domain error.
    refused_errors: tuple[type[Exception], ...] = (PermissionDenied,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_configure(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_configure(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def service_create(self, request: HttpRequest, form: forms.ModelForm[Any]) -> Any:
        raise NotImplementedError

    def service_update(self, request: HttpRequest, obj: Any, form: forms.ModelForm[Any]) -> Any:
        raise NotImplementedError

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    @contextmanager
    def refusals(self) -> Iterator[None]:
        try:
            yield
        except self.refused_errors as error:
            raise _Refused(error) from error

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with self.refusals():
            if change:
                saved = self.service_update(request, obj, form)
            else:
                saved = self.service_create(request, form)
        # The admin goes on with `obj` (change message, log, redirect): make it the saved row.
        obj.pk = saved.pk
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing here: relations are written by the service; inlines are read-only."""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with self.refusals():
            self.service_delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic(using=router.db_for_write(self.model)), self.refusals():
            for obj in queryset:
                self.service_delete(request, obj)

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, **kwargs)
        refusal = getattr(request, _REFUSAL_ATTR, None)
        return form_class if refusal is None else _with_refusal(form_class, refusal)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Refused as refused:
            # The write was rolled back; render the same POST again, now with the error.
            setattr(request, _REFUSAL_ATTR, refused.error)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except _Refused as refused:
            self.message_user(request, refusal_message(refused.error), messages.ERROR)
            opts = self.model._meta
            url = reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                args=[object_id],
            )
            return HttpResponseRedirect(url)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method != "POST":
            return super().changelist_view(request, extra_context)
        try:
            # Bulk actions log before they delete: one transaction keeps the log honest.
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().changelist_view(request, extra_context)
        except _Refused as refused:
            self.message_user(request, refusal_message(refused.error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ReadOnlyAdmin(StaffViewMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """Records only services write (opportunities and what lives in them): look, never touch."""

    # Big tables: the unfiltered COUNT(*) next to the filtered one is not worth its cost.
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return all_fields_read_only(self)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(StaffViewMixin, admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return all_fields_read_only(self)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
