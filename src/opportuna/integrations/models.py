"""Webhooks: endpoints admins subscribe to event types, and the outbox of their deliveries.

A delivery row is written in the same transaction as the change it reports (see
`webhooks.record_outbox`), so a rolled-back change sends nothing and a committed one is never
lost; the row then doubles as the delivery log admins read.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class WebhookEndpointQuerySet(models.QuerySet["WebhookEndpoint"]):
    def active(self) -> WebhookEndpointQuerySet:
        return self.filter(is_active=True)

    def subscribed_to(self, event_type: str) -> WebhookEndpointQuerySet:
        # JSON `contains` does not exist on SQLite; the type in quotes matches one whole item
        # of the stored list on SQLite and PostgreSQL alike (types hold no quotes).
        return self.filter(event_types__icontains=json.dumps(event_type))


class WebhookEndpoint(models.Model):
    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    event_types = models.JSONField(
        _("events"), default=list, help_text=_("The kinds of change sent to this URL.")
    )
    # Stored as given: it signs every delivery. Shown once, when created or rotated.
    secret = models.CharField(_("signing secret"), max_length=100, editable=False)
    # The secret before the last rotation: it signs too (a second signature) until it
    # expires, so the receiver can switch to the new one at any moment in between.
    previous_secret = models.CharField(
        _("previous signing secret"), max_length=100, blank=True, editable=False
    )
    previous_secret_expires_at = models.DateTimeField(
        _("previous secret valid until"), null=True, blank=True, editable=False
    )
    is_active = models.BooleanField(_("active"), default=True)
    disabled_reason = models.CharField(_("why it was disabled"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["url", "pk"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.url

    def signing_secrets(self, at: datetime) -> list[str]:
        """The secrets that sign a delivery made at `at`: the current one, then the previous
        one while its grace period lasts."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and at < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row, its signed body, and its attempts."""

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        verbose_name=_("endpoint"),
        on_delete=models.CASCADE,
        related_name="deliveries",
    )
    # The `webhook-id` header: the same for every endpoint and every attempt of one event,
    # so a receiver can drop what it has already seen.
    message_id = models.CharField(_("message id"), max_length=40)
    event_type = models.CharField(_("event"), max_length=60)
    # The JSON text sent, frozen when the change was recorded: retries send the same bytes.
    body = models.TextField(_("body"))
    status = models.CharField(
        _("status"), max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempt_count = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(
        _("last HTTP status"), null=True, blank=True
    )
    # The log of attempts: [{"at", "status_code", "error", "response", "duration_ms"}, ...].
    attempts = models.JSONField(_("attempt log"), default=list, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(
                fields=["message_id", "endpoint"], name="webhook_delivery_once_per_endpoint"
            )
        ]
        indexes = [
            # The delivery log, newest first, for all endpoints or one.
            models.Index(fields=["-created_at"], name="webhook_delivery_log_idx"),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_endpoint_log_idx"),
            # Deliveries waiting for an attempt (admin filter "pending", a sweep of due ones).
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due_idx",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"
