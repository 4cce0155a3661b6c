"""Webhooks after the Standard Webhooks convention: the outbox, the signature, the delivery.

- `record_outbox` listens to `changes_recorded` (inside the service's transaction) and writes one
  `WebhookDelivery` per subscribed endpoint, with the JSON body frozen then: a rolled-back
  change leaves no row, a committed one cannot be lost.
- `deliver` makes one attempt: `webhook-id`, `webhook-timestamp` and
  `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` with the endpoint's
  `whsec_` secret; during the grace period after a rotation, a second `v1,...` made with the
  previous secret, space separated). 2xx is delivered; 5xx, 408, 429, time-outs and
  connection errors are tried again after 30 s, 1 min, 2 min, ... (doubling, at most 12 h
  apart) for about three days; 410 Gone disables the endpoint; any other answer fails at
  once, since sending the same request again would get the same answer.
- `deliver_due` (the `deliver_webhooks` command) sends what is due and nobody is sending: the
  retries of a backend that cannot wait (the immediate one) and attempts a crash interrupted.
  Every attempt, from a task or a sweep, is claimed by one conditional UPDATE first.
- URLs are resolved when saved and again before each attempt, and every address they resolve
  to must be public (no private, loopback, link-local, multicast, reserved or unspecified
  address, unless `WEBHOOK_ALLOW_PRIVATE`); the connection goes to the address that was checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from opportuna.core.announce import Announcement, transaction_cache_forget, transaction_cached
from opportuna.core.money import from_cents
from opportuna.integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from opportuna.sales.models import Activity, Client, Comment, EventKind, Opportunity
from opportuna.sales.services._common import ANNOUNCED_AS

WHSEC_PREFIX = "whsec_"
TIMEOUT_SECONDS = 10
RESPONSE_KEPT = 500  # characters of the receiver's answer kept in the log
RETRY_FIRST = timedelta(seconds=30)
RETRY_LONGEST = timedelta(hours=12)
# 17 attempts: the last one about 77 hours (3.2 days) after the first.
MAX_ATTEMPTS = 17
RETRIED_STATUSES = {408, 429}
# How long a claimed attempt may take before a sweep takes it as lost (its process crashed)
# and makes the next one; an attempt normally ends within two TIMEOUT_SECONDS.
CLAIM_LEASE = timedelta(minutes=5)
SWEEP_BATCH = 100
USER_AGENT = "Opportuna-Webhooks/1"


# Event types ------------------------------------------------------------------------------

CLIENT_EVENT_TYPES = [
    ("client.created", gettext_lazy("Client folder created")),
    ("client.updated", gettext_lazy("Client folder changed")),
    ("client.merged", gettext_lazy("Client folders merged")),
]


def event_type_choices() -> list[tuple[str, Any]]:
    """Every kind of change services announce, as (type, label): what an endpoint may pick."""
    opportunity = [
        (ANNOUNCED_AS.get(kind, f"opportunity.{kind.value}"), kind.label) for kind in EventKind
    ]
    return [
        (value, format_lazy("{} ({})", label, value))
        for value, label in [*opportunity, *CLIENT_EVENT_TYPES]
    ]


# Secrets and signatures -------------------------------------------------------------------


def new_secret() -> str:
    return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix(WHSEC_PREFIX))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(
    *, secrets: list[str], message_id: str, body: str, at: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers; one signature per secret, space separated (the
    convention's way to carry a new and an old secret while a receiver switches)."""
    timestamp = int(at.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            signature(secret, message_id, timestamp, body) for secret in secrets
        ),
    }


# Addresses --------------------------------------------------------------------------------


class UnsafeURLError(Exception):
    """The URL may not receive webhooks (its scheme, or an address it resolves to)."""


class UnresolvedHostError(UnsafeURLError):
    """The host name did not resolve: refused when saving, tried again when delivering."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone ("fe80::1%eth0")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is false for private, loopback, link-local, unspecified and shared addresses.
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


def resolve(url: str) -> tuple[SplitResult, str]:
    """The URL's parts and the address to connect to; every address of the host is checked."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    if parts.scheme not in {"http", "https"} or not parts.hostname or not port:
        raise UnsafeURLError(_("A webhook URL starts with http:// or https:// and names a host."))
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHostError(
            _("The host %(host)s cannot be found.") % {"host": parts.hostname}
        ) from exc
    addresses = [str(info[4][0]) for info in found]
    if not addresses:
        raise UnresolvedHostError(
            _("The host %(host)s cannot be found.") % {"host": parts.hostname}
        )
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeURLError(
                    _(
                        "%(host)s leads to %(address)s, a private, loopback or link-local "
                        "address: webhooks are only sent to public addresses."
                    )
                    % {"host": parts.hostname, "address": address}
                )
    return parts, addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address `resolve` checked, never to a second DNS answer (rebinding)."""

    def __init__(self, host: str, port: int | None, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS; the certificate is still checked against the host name."""

    def __init__(self, host: str, port: int | None, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _post(parts: SplitResult, address: str, headers: dict[str, str], body: str) -> tuple[int, str]:
    """POST without following redirects; the status and the start of the answer."""
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(
        parts.hostname or "", parts.port, address=address, timeout=TIMEOUT_SECONDS
    )
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    try:
        connection.request("POST", path, body=body.encode(), headers=headers)
        response = connection.getresponse()
        return response.status, response.read(RESPONSE_KEPT).decode("utf-8", "replace")
    finally:
        connection.close()


# The outbox -------------------------------------------------------------------------------

# Payload key -> ORM path, read with `values()`; foreign keys as ids, money as decimal text.
OPPORTUNITY_FIELDS = {
    "id": "id",
    "title": "title",
    "status": "status",
    "pipeline": "pipeline_id",
    "step": "step_id",
    "step_name": "step__name",
    "probability": "probability",
    "amount": "amount",
    "won_amount": "won_amount",
    "expected_close_date": "expected_close_date",
    "next_action_at": "next_action_at",
    "owner": "owner_id",
    "client": "client_id",
    "product": "product_id",
    "updated_at": "updated_at",
}
CLIENT_FIELDS = {
    "id": "id",
    "name": "name",
    "vat_number": "vat_number",
    "city": "city",
    "country": "country",
    "external_id": "external_id",
    "created_at": "created_at",
}
COMMENT_FIELDS = {
    "id": "id",
    "body": "body",
    "pinned": "pinned",
    "author": "author_id",
    "created_at": "created_at",
}
ACTIVITY_FIELDS = {
    "id": "id",
    "type": "type__key",
    "note": "note",
    "user": "user_id",
    "due_at": "due_at",
    "done_at": "done_at",
}
MONEY_FIELDS = ("amount", "won_amount")


# Rows read per query when a group of changes is read at once (under SQLite's parameter limit).
READ_CHUNK = 500

# A payload's source: the model to read, the payload key of its row, the row's id, and the
# fields to read per payload key (a comment or an activity brings its opportunity along).
Source = tuple[Any, str, Any, dict[str, dict[str, str]]]


def _read_many(
    model: Any, pks: list[Any], groups: dict[str, dict[str, str]]
) -> dict[Any, dict[str, dict[str, Any]]]:
    """One query per READ_CHUNK ids: `groups` maps a payload key to its fields; a vanished
    row is left out."""
    paths = list(dict.fromkeys(path for fields in groups.values() for path in fields.values()))
    read: dict[Any, dict[str, dict[str, Any]]] = {}
    unique = list(dict.fromkeys(pks))
    for offset in range(0, len(unique), READ_CHUNK):
        chunk = unique[offset : offset + READ_CHUNK]
        for row in model.objects.filter(pk__in=chunk).values("pk", *paths):
            read[row["pk"]] = {
                name: {key: row[path] for key, path in fields.items()}
                for name, fields in groups.items()
            }
    return read


def _through_opportunity() -> dict[str, str]:
    return {key: f"opportunity__{path}" for key, path in OPPORTUNITY_FIELDS.items()}


_COMMENT_GROUPS = {"comment": COMMENT_FIELDS, "opportunity": _through_opportunity()}
_ACTIVITY_GROUPS = {"activity": ACTIVITY_FIELDS, "opportunity": _through_opportunity()}


def _source(kind: str, object_id: int, data: dict[str, Any]) -> Source:
    """Which row the payload of a change is read from."""
    if kind.startswith("client."):
        return Client, "client", object_id, {"client": CLIENT_FIELDS}
    # A comment or an activity is read together with its opportunity, in the same query.
    if kind == "comment.added" and "comment" in data:
        return Comment, "comment", data["comment"], _COMMENT_GROUPS
    if kind == "activity.logged" and "activity" in data:
        return Activity, "activity", data["activity"], _ACTIVITY_GROUPS
    return Opportunity, "opportunity", object_id, {"opportunity": OPPORTUNITY_FIELDS}


def _payload(
    kind: str,
    *,
    actor_id: int | None,
    object_id: int,
    data: dict[str, Any],
    source: Source,
    read: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The event's `data` from what was announced and its source row as `read` (empty when
    the row has vanished)."""
    announced = dict(data)
    event_id = announced.pop("event_id", None)
    payload: dict[str, Any] = {"actor": actor_id, **({"event": event_id} if event_id else {})}
    payload.update(announced)
    _model, key, pk, _groups = source
    # Copies: rows read once may serve several changes of a group.
    payload[key] = dict(read.get(key) or {"id": pk})
    if key == "client":
        return payload
    opportunity = dict(read.get("opportunity") or {"id": object_id})
    # Bulk services (merges, step defaults) announce before their UPDATE: the announced
    # "after" values are the truth the row does not show yet.
    for field, change in (announced.get("changes") or {}).items():
        if field in opportunity and isinstance(change, list) and len(change) == 2:
            opportunity[field] = change[1]
    for field in MONEY_FIELDS:
        if opportunity.get(field) is not None:
            opportunity[field] = str(from_cents(opportunity[field]))
    payload["opportunity"] = opportunity
    return payload


def payloads_data(changes: list[Announcement]) -> list[dict[str, Any]]:
    """The event `data` of each change of a group, in order: what was announced, with the
    objects it names (`_source`) read in one query per kind of source row
    (opportunity, client, comment, activity) and READ_CHUNK rows, whatever the group's size."""
    sources = [_source(kind, object_id, data) for kind, _actor, object_id, data in changes]
    wanted: dict[tuple[Any, str], list[Any]] = {}
    for model, key, pk, _groups in sources:
        wanted.setdefault((model, key), []).append(pk)
    groups_of = {(model, key): groups for model, key, _pk, groups in sources}
    rows = {
        (model, key): _read_many(model, pks, groups_of[model, key])
        for (model, key), pks in wanted.items()
    }
    return [
        _payload(
            kind,
            actor_id=actor_id,
            object_id=object_id,
            data=data,
            source=source,
            read=rows[source[0], source[1]].get(source[2], {}),
        )
        for (kind, actor_id, object_id, data), source in zip(changes, sources, strict=True)
    ]


class _BodyEncoder(DjangoJSONEncoder):
    """Dates, decimals, ids as usual; anything else as text, never an error that would fail
    the change being recorded."""

    def default(self, o: Any) -> Any:
        try:
            return super().default(o)
        except TypeError:
            return str(o)


ENDPOINTS_CACHE = "webhook_endpoints"


def endpoints_changed(sender: Any, **_: Any) -> None:
    transaction_cache_forget(ENDPOINTS_CACHE)


def _active_endpoints() -> list[tuple[int, frozenset[str]]]:
    return [
        (pk, frozenset(event_types or ()))
        for pk, event_types in WebhookEndpoint.objects.active().values_list("pk", "event_types")
    ]


def record_outbox(sender: Any, *, changes: list[Announcement], **_: Any) -> None:
    """`changes_recorded` receiver: one delivery per change and subscribed endpoint, in the
    transaction.

    Queries: one per transaction to find the active endpoints; when some are subscribed,
    one per group of changes and kind of object to read them (`payloads_data`), and one to
    insert the group's deliveries (plus one per delivery with the database task backend).
    """
    endpoints = transaction_cached(ENDPOINTS_CACHE, _active_endpoints)
    if not endpoints:
        return
    now = timezone.now()
    subscribed = []
    for change in changes:
        endpoint_ids = [pk for pk, event_types in endpoints if change[0] in event_types]
        if endpoint_ids:
            subscribed.append((change, endpoint_ids))
    if not subscribed:
        return
    datas = payloads_data([change for change, _ in subscribed])
    deliveries: list[WebhookDelivery] = []
    for ((kind, *_rest), endpoint_ids), data in zip(subscribed, datas, strict=True):
        payload = {"type": kind, "timestamp": now, "data": data}
        body = json.dumps(payload, cls=_BodyEncoder, separators=(",", ":"))
        message_id = f"msg_{uuid.uuid4().hex}"
        deliveries.extend(
            WebhookDelivery(
                endpoint_id=pk,
                message_id=message_id,
                event_type=kind,
                body=body,
                next_attempt_at=now,
            )
            for pk in endpoint_ids
        )
    if deliveries:
        created = WebhookDelivery.objects.bulk_create(deliveries)
        queue_deliveries([(delivery.pk, 0) for delivery in created])


# Delivery ---------------------------------------------------------------------------------


def _delivery_task() -> Any:
    from opportuna.integrations.tasks import deliver_webhook  # tasks imports this module

    return deliver_webhook


def queue_deliveries(deliveries: list[tuple[int, int]]) -> None:
    """Enqueue an attempt for each (delivery id, attempts made so far).

    With the database task backend the task rows are written in the current transaction, so
    they commit (or vanish) with the change; other backends get them once it commits.
    """
    task = _delivery_task()
    from django_tasks_db.backend import DatabaseBackend

    if isinstance(task.get_backend(), DatabaseBackend):
        for pk, attempts in deliveries:
            task.enqueue(pk, attempts)
        return
    for pk, attempts in deliveries:
        transaction.on_commit(partial(task.enqueue, pk, attempts), robust=True)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 30 s, doubling, at most 12 h."""
    return min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_LONGEST)


@dataclass
class Attempt:
    status_code: int | None = None
    error: str = ""
    response: str = ""
    delivered: bool = False
    retry: bool = False
    gone: bool = False


def _attempt(delivery: WebhookDelivery, at: datetime) -> Attempt:
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return Attempt(error="The endpoint is disabled.")
    try:
        parts, address = resolve(endpoint.url)
    except UnresolvedHostError as exc:
        return Attempt(error=str(exc), retry=True)
    except UnsafeURLError as exc:
        return Attempt(error=str(exc))
    headers = signed_headers(
        secrets=endpoint.signing_secrets(at),
        message_id=delivery.message_id,
        body=delivery.body,
        at=at,
    )
    try:
        status, response = _post(parts, address, headers, delivery.body)
    except (OSError, http.client.HTTPException) as exc:  # time-outs and TLS errors included
        return Attempt(error=f"{type(exc).__name__}: {exc}"[:300], retry=True)
    except ValueError as exc:  # a request http.client refuses to write: the same next time
        return Attempt(error=f"{type(exc).__name__}: {exc}"[:300])
    return Attempt(
        status_code=status,
        response=response,
        delivered=200 <= status < 300,
        retry=status >= 500 or status in RETRIED_STATUSES,
        gone=status == 410,
    )


@dataclass(frozen=True)
class Sent:
    """What one attempt did, for the sweeper's report."""

    delivery_id: int
    endpoint_url: str
    event_type: str
    message_id: str
    attempt: int
    status: str
    status_code: int | None
    error: str
    next_attempt_at: datetime | None


def deliver(*, delivery_id: int, attempts: int) -> str:
    """Make the next attempt of a pending delivery that has had `attempts` so far.

    A task whose delivery has moved on (delivered, failed, or tried by another task or a
    sweep) does nothing. Returns the delivery's status afterwards ("skipped" when there was
    nothing to do).
    """
    sent = attempt_delivery(delivery_id=delivery_id, attempts=attempts)
    return "skipped" if sent is None else sent.status


def attempt_delivery(
    *, delivery_id: int, attempts: int, due_by: datetime | None = None
) -> Sent | None:
    """Claim and make attempt number `attempts + 1` of a delivery; None if it was not ours.

    The claim is one conditional UPDATE (still pending, still `attempts` made), so two
    workers or sweepers never make the same attempt. It moves `next_attempt_at` a lease
    ahead: while the attempt runs no sweep takes it, and if its process dies a sweep makes
    the next one once the lease is over. With `due_by` (a sweep) the delivery must also be
    due by then and its endpoint active, or it is left alone.
    """
    started = timezone.now()
    claim = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, attempt_count=attempts
    )
    if due_by is not None:
        # A subquery, not a join: the UPDATE keeps its conditions on the delivery row itself,
        # which PostgreSQL checks again on the newest row when two claims race.
        claim = claim.filter(
            next_attempt_at__lte=due_by, endpoint__in=WebhookEndpoint.objects.active().values("pk")
        )
    claimed = claim.update(
        attempt_count=attempts + 1, last_attempt_at=started, next_attempt_at=started + CLAIM_LEASE
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    clock = time.monotonic()
    outcome = _attempt(delivery, started)
    entry = {
        "at": started.isoformat(),
        "status_code": outcome.status_code,
        "error": outcome.error,
        "response": outcome.response,
        "duration_ms": round((time.monotonic() - clock) * 1000),
    }
    next_attempt_at = None
    if outcome.delivered:
        status = DeliveryStatus.DELIVERED
    elif outcome.retry and delivery.attempt_count < MAX_ATTEMPTS:
        status = DeliveryStatus.PENDING
        next_attempt_at = started + retry_delay(delivery.attempt_count)
    else:
        status = DeliveryStatus.FAILED
    # Only while the claim is still ours: an attempt that outlived its lease has been taken
    # over by the next one, whose outcome stands (it sent the same webhook-id).
    WebhookDelivery.objects.filter(pk=delivery_id, attempt_count=delivery.attempt_count).update(
        status=status,
        next_attempt_at=next_attempt_at,
        last_status_code=outcome.status_code,
        attempts=[*delivery.attempts, entry],
    )
    if outcome.gone:
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
            is_active=False,
            disabled_reason=f"410 Gone on {started:%Y-%m-%d %H:%M} UTC",
            updated_at=timezone.now(),
        )
    if next_attempt_at is not None:
        _schedule_retry(delivery.pk, delivery.attempt_count, next_attempt_at)
    return Sent(
        delivery_id=delivery.pk,
        endpoint_url=delivery.endpoint.url,
        event_type=delivery.event_type,
        message_id=delivery.message_id,
        attempt=delivery.attempt_count,
        status=str(status),
        status_code=outcome.status_code,
        error=outcome.error,
        next_attempt_at=next_attempt_at,
    )


def _schedule_retry(delivery_id: int, attempts: int, at: datetime) -> None:
    task = _delivery_task()
    if task.get_backend().supports_defer:
        task.using(run_after=at).enqueue(delivery_id, attempts)
    # A backend that cannot wait (the immediate one) leaves the delivery pending with its
    # next attempt time, for `opportuna deliver_webhooks` (or an admin's "Send again now").


# The sweep --------------------------------------------------------------------------------


def due_deliveries(*, now: datetime) -> QuerySet[WebhookDelivery]:
    """Pending deliveries of active endpoints whose next attempt is due by `now`, oldest
    first (the partial index `webhook_delivery_due_idx`)."""
    return (
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
            endpoint__is_active=True,
        )
        .select_related("endpoint")
        .order_by("next_attempt_at", "pk")
    )


def deliver_due(*, limit: int | None = None, now: datetime | None = None) -> Iterator[Sent]:
    """Make the next attempt of every delivery due by `now` (default: the sweep's start),
    oldest first, at most `limit`; yields each attempt as it ends.

    Safe beside workers and other sweeps: each attempt is claimed first, and one another
    process claimed is skipped. What fails now is due again later, after `now`, so a sweep
    ends.
    """
    now = now or timezone.now()
    made = 0
    seen: set[int] = set()
    while limit is None or made < limit:
        size = SWEEP_BATCH if limit is None else min(SWEEP_BATCH, limit - made)
        batch = [
            (pk, attempts)
            for pk, attempts in due_deliveries(now=now).values_list("pk", "attempt_count")[:size]
            if pk not in seen
        ]
        if not batch:
            return
        for pk, attempts in batch:
            seen.add(pk)
            sent = attempt_delivery(delivery_id=pk, attempts=attempts, due_by=now)
            if sent is not None:
                made += 1
                yield sent
                if limit is not None and made >= limit:
                    return
