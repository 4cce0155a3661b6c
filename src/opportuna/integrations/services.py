"""Writes on webhook endpoints and deliveries: admins only."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from opportuna.accounts.models import User
from opportuna.integrations import webhooks
from opportuna.integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from opportuna.sales.errors import SalesRuleError

ENDPOINT_FIELDS = {"url", "description", "event_types", "is_active"}


class WebhookRuleError(SalesRuleError):
    """A webhook rule was broken (an unsafe URL, no events). The message is for users."""


def _require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise PermissionDenied(_("Only an admin can manage webhooks."))


def _clean_url(url: str) -> str:
    url = url.strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise WebhookRuleError(_("Enter a full http:// or https:// address."), field="url") from exc
    try:
        webhooks.resolve(url)
    except webhooks.UnsafeURLError as exc:
        raise WebhookRuleError(str(exc), field="url") from exc
    return url


def _clean_event_types(event_types: Iterable[str]) -> list[str]:
    known = [value for value, _label in webhooks.event_type_choices()]
    chosen = set(event_types)
    unknown = sorted(chosen - set(known))
    if unknown:
        raise WebhookRuleError(
            _("Unknown events: %(events)s.") % {"events": ", ".join(unknown)}, field="event_types"
        )
    if not chosen:
        raise WebhookRuleError(_("Choose at least one event."), field="event_types")
    return [value for value in known if value in chosen]


@transaction.atomic
def webhook_endpoint_create(
    *, actor: User, url: str, event_types: Sequence[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret: the only time the secret is handed out."""
    _require_admin(actor)
    secret = webhooks.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=_clean_url(url),
        event_types=_clean_event_types(event_types),
        description=description.strip(),
        secret=secret,
        created_by=actor,
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *, endpoint: WebhookEndpoint, actor: User, **values: Any
) -> WebhookEndpoint:
    """Change an endpoint's URL, events, description or activity; re-enabling clears why it
    was disabled. The secret never changes here."""
    _require_admin(actor)
    unknown = set(values) - ENDPOINT_FIELDS
    if unknown:
        raise TypeError(f"webhook_endpoint_update does not take {sorted(unknown)}")
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if "url" in values and values["url"] != endpoint.url:
        endpoint.url = _clean_url(values["url"])
    if "event_types" in values:
        endpoint.event_types = _clean_event_types(values["event_types"])
    if "description" in values:
        endpoint.description = values["description"].strip()
    if "is_active" in values:
        endpoint.is_active = bool(values["is_active"])
        if endpoint.is_active:
            endpoint.disabled_reason = ""
    endpoint.save()
    return endpoint


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: User, keep_old_for: timedelta = timedelta(hours=24)
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret, handed out this once; the current one keeps signing too (a
    second signature) for `keep_old_for`, then only the new one signs.

    Rotating again within that time drops the oldest secret: two sign at most.
    """
    _require_admin(actor)
    if keep_old_for < timedelta(0):
        raise WebhookRuleError(_("The old secret cannot be kept for a negative time."))
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = webhooks.new_secret()
    if keep_old_for:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = timezone.now() + keep_old_for
    else:
        endpoint.previous_secret = ""
        endpoint.previous_secret_expires_at = None
    endpoint.secret = secret
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: User) -> None:
    """Remove an endpoint with its delivery log."""
    _require_admin(actor)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


@transaction.atomic
def webhook_delivery_retry(*, deliveries: Iterable[WebhookDelivery], actor: User) -> int:
    """Attempt the given undelivered deliveries again now; returns how many were queued.

    A pending one keeps its schedule if this attempt fails too; a failed one gets this one
    more attempt (and stays failed if it fails again, since its retries were spent).
    """
    _require_admin(actor)
    rows = list(
        WebhookDelivery.objects.select_for_update()
        .filter(pk__in=[delivery.pk for delivery in deliveries])
        .exclude(status=DeliveryStatus.DELIVERED)
        .values_list("pk", "attempt_count")
    )
    WebhookDelivery.objects.filter(pk__in=[pk for pk, _count in rows]).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now()
    )
    webhooks.queue_deliveries(rows)
    return len(rows)
