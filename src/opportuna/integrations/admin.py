"""Admin for webhooks: endpoints (written through the services) and the delivery log.

Only admins see either: the log holds the bodies sent, the endpoints hold their secrets
(shown once, after creation or rotation, and never again).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from opportuna.core.admin import (
    ServiceAdmin,
    all_fields_read_only,
    changed_values,
    may_configure,
    stored,
)
from opportuna.integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from opportuna.integrations.services import (
    ENDPOINT_FIELDS,
    WebhookRuleError,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from opportuna.integrations.webhooks import event_type_choices

# Where `service_create` leaves the new secret for `response_add` to show once.
_SHOWN_ONCE_ATTR = "_opportuna_webhook_secret"


class AdminsOnlyMixin:
    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_configure(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_configure(request)


class WebhookEndpointForm(forms.ModelForm):  # type: ignore[type-arg]
    event_types = forms.MultipleChoiceField(
        label=_("events"),
        choices=event_type_choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The kinds of change sent to this URL."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "description", "event_types", "is_active")


class RotateSecretForm(forms.Form):
    keep_old_for = forms.TypedChoiceField(
        label=_("Keep the old secret signing for"),
        choices=[
            (0, _("no time (it stops signing at once)")),
            (1, _("1 hour")),
            (24, _("24 hours")),
            (72, _("3 days")),
            (168, _("7 days")),
        ],
        coerce=int,
        initial=24,
        help_text=_("Time to put the new secret in the receiving system."),
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AdminsOnlyMixin, ServiceAdmin):
    form = WebhookEndpointForm
    refused_errors = (WebhookRuleError, PermissionDenied)
    list_display = (
        "url",
        "description",
        "is_active",
        "disabled_reason",
        "pending_count",
        "failed_count",
        "deliveries_link",
    )
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = (
        "disabled_reason",
        "previous_secret_expires_at",
        "created_by",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
                failed=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
            )
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("url", "description", "event_types")
        return ("url", "description", "event_types", "is_active", *self.readonly_fields)

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name=f"{opts.app_label}_{opts.model_name}_rotate_secret",
            ),
            *super().get_urls(),
        ]

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, rotate, and show the new secret on the answer to the POST: the only
        place it ever appears (not in a message kept in the session)."""
        if not may_configure(request):
            raise PermissionDenied
        endpoint = self.get_object(request, object_id)
        if endpoint is None:
            raise Http404
        form = RotateSecretForm(request.POST or None)
        secret = None
        if request.method == "POST" and form.is_valid():
            endpoint, secret = webhook_endpoint_rotate_secret(
                endpoint=endpoint,
                actor=request.user,  # type: ignore[arg-type]
                keep_old_for=timedelta(hours=form.cleaned_data["keep_old_for"]),
            )
            self.log_change(request, endpoint, [{"changed": {"fields": ["signing secret"]}}])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": endpoint,
            "title": _("Rotate the signing secret"),
            "form": form,
            "secret": secret,
        }
        response = TemplateResponse(
            request, "admin/integrations/webhookendpoint/rotate_secret.html", context
        )
        add_never_cache_headers(response)
        return response

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_configure(request)

    @admin.display(description=_("pending"), ordering="pending")
    def pending_count(self, endpoint: Any) -> int:
        return int(endpoint.pending)

    @admin.display(description=_("failed"), ordering="failed")
    def failed_count(self, endpoint: Any) -> int:
        return int(endpoint.failed)

    @admin.display(description=_("deliveries"))
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:integrations_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint__id__exact={}">{}</a>', url, endpoint.pk, _("log"))

    def service_create(self, request: HttpRequest, form: Any) -> WebhookEndpoint:
        data = form.cleaned_data
        endpoint, secret = webhook_endpoint_create(
            actor=request.user,  # type: ignore[arg-type]
            url=data["url"],
            event_types=data["event_types"],
            description=data.get("description", ""),
        )
        setattr(request, _SHOWN_ONCE_ATTR, secret)
        return endpoint

    def service_update(self, request: HttpRequest, obj: Any, form: Any) -> WebhookEndpoint:
        return webhook_endpoint_update(
            endpoint=stored(obj),
            actor=request.user,  # type: ignore[arg-type]
            **changed_values(form, ENDPOINT_FIELDS),
        )

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        webhook_endpoint_delete(endpoint=obj, actor=request.user)  # type: ignore[arg-type]

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(request, _SHOWN_ONCE_ATTR, None)
        if secret:
            self.message_user(
                request,
                format_html(
                    "{} <code>{}</code>",
                    _(
                        "Signing secret, shown only this once: copy it into the receiving "
                        "system now, it verifies the webhook-signature header."
                    ),
                    secret,
                ),
                messages.WARNING,
            )
        return super().response_add(request, obj, post_url_continue)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AdminsOnlyMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    """The delivery log: every event sent or to send, with its attempts. Read-only; the one
    write is "send again now", through `webhook_delivery_retry`."""

    list_display = (
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempt_count",
        "last_status_code",
        "last_attempt_at",
        "next_attempt_at",
    )
    list_filter = ("status", "endpoint")
    list_select_related = ("endpoint",)
    search_fields = ("message_id", "event_type")
    show_full_result_count = False
    fields = (
        "endpoint",
        "event_type",
        "message_id",
        "status",
        "attempt_count",
        "next_attempt_at",
        "created_at",
        "attempt_log",
        "pretty_body",
    )
    actions = ("send_again",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return all_fields_read_only(self) + ["attempt_log", "pretty_body"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_send_again_permission(self, request: HttpRequest) -> bool:
        return may_configure(request)

    @admin.display(description=_("attempts"))
    def attempt_log(self, delivery: WebhookDelivery) -> str:
        if not delivery.attempts:
            return str(_("No attempt yet."))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    entry.get("at", ""),
                    entry.get("status_code") or "–",
                    entry.get("duration_ms", ""),
                    entry.get("error", ""),
                    entry.get("response", ""),
                )
                for entry in delivery.attempts
            ),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            _("when"),
            _("HTTP status"),
            _("ms"),
            _("error"),
            _("answer"),
            rows,
        )

    @admin.display(description=_("body"))
    def pretty_body(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(json.loads(delivery.body), indent=2))

    @admin.action(description=_("Send again now"), permissions=["send_again"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = webhook_delivery_retry(deliveries=queryset, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, _("%(count)d delivery(ies) queued.") % {"count": count})
