"""Webhooks: an outbox row in the change's transaction, signed delivery, retries, safety."""

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.urls import reverse
from django_tasks import task_backends
from django_tasks_db.models import DBTaskResult
from standardwebhooks import Webhook

from opportuna.core.announce import changes_recorded
from opportuna.integrations import webhooks
from opportuna.integrations.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from opportuna.integrations.services import (
    WebhookRuleError,
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_update,
)
from opportuna.sales.services import (
    client_create,
    client_merge,
    comment_add,
    opportunity_close_won,
    opportunity_move,
)
from tests.factories import ClientFactory, OpportunityFactory, UserFactory

pytestmark = pytest.mark.django_db

DUMMY_TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


# A receiver on 127.0.0.1 ------------------------------------------------------------------


class Receiver:
    """A tiny HTTP server in a thread: records each request, answers the queued statuses."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "/elsewhere")
                self.end_headers()
                self.wfile.write(b"thanks")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _receivers_on_this_machine(settings):
    # Endpoints here point to 127.0.0.1 (port 9, discard, where nothing is ever delivered,
    # or the receiver below); the tests of the address guard turn it back on.
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def guard(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def admin(db):
    return UserFactory(username="webhook-admin", role="admin", is_staff=True)


@pytest.fixture
def opp():
    return OpportunityFactory()


def endpoint_for(url, admin, *events):
    endpoint, _secret = webhook_endpoint_create(
        actor=admin, url=url, event_types=list(events or ["opportunity.moved"])
    )
    return endpoint


def move(opp):
    return opportunity_move(opportunity=opp, step=opp.pipeline.steps.last(), actor=opp.owner)


@pytest.fixture
def dummy_tasks(settings):
    settings.TASKS = DUMMY_TASKS
    backend = task_backends["default"]
    backend.clear()
    return backend


def public_dns(address="93.184.216.34"):
    """getaddrinfo answering one address, whatever the name (no real DNS, no traffic)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return mock.patch.object(
        webhooks.socket,
        "getaddrinfo",
        return_value=[(family, socket.SOCK_STREAM, 6, "", (address, 443))],
    )


# The outbox -------------------------------------------------------------------------------


def test_the_delivery_row_is_written_inside_the_changes_transaction(
    admin, opp, django_capture_on_commit_callbacks
):
    endpoint = endpoint_for("http://127.0.0.1:9/hook", admin)
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        move(opp)
        # Not committed yet, and already there: it commits or rolls back with the move.
        delivery = WebhookDelivery.objects.get()
    assert delivery.endpoint == endpoint
    assert delivery.event_type == "opportunity.moved"
    assert delivery.status == DeliveryStatus.PENDING


def test_a_rolled_back_change_leaves_no_delivery_and_queues_nothing(
    admin, opp, django_capture_on_commit_callbacks
):
    endpoint_for("http://127.0.0.1:9/hook", admin)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        move(opp)
        raise RuntimeError("the caller gives up")
    assert WebhookDelivery.objects.count() == 0
    assert callbacks == []


def test_with_the_database_backend_the_task_row_commits_with_the_change(
    admin, opp, settings, django_capture_on_commit_callbacks
):
    settings.TASKS = DATABASE_TASKS
    endpoint_for("http://127.0.0.1:9/hook", admin)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            move(opp)
            assert DBTaskResult.objects.count() == 1
            raise RuntimeError("rolled back")
        assert DBTaskResult.objects.count() == 0
        move(opp)
    (queued,) = DBTaskResult.objects.all()
    assert queued.task_path == "opportuna.integrations.tasks.deliver_webhook"
    assert queued.args_kwargs["args"] == [WebhookDelivery.objects.get().pk, 0]
    # Nothing is enqueued after the commit: the task row written in the transaction is the queue.
    assert not [c for c in callbacks if "enqueue" in repr(c)]


def test_only_active_endpoints_subscribed_to_the_event_get_a_delivery(admin, opp):
    moved = endpoint_for("http://127.0.0.1:9/moved", admin, "opportunity.moved")
    endpoint_for("http://127.0.0.1:9/won", admin, "opportunity.won")
    off = endpoint_for("http://127.0.0.1:9/off", admin, "opportunity.moved")
    webhook_endpoint_update(endpoint=off, actor=admin, is_active=False)
    move(opp)
    assert [d.endpoint for d in WebhookDelivery.objects.all()] == [moved]


def test_every_endpoint_gets_the_same_message_id_and_body(admin, opp):
    endpoint_for("http://127.0.0.1:9/a", admin)
    endpoint_for("http://127.0.0.1:9/b", admin)
    move(opp)
    first, second = WebhookDelivery.objects.all()
    assert first.message_id == second.message_id
    assert first.message_id.startswith("msg_")
    assert first.body == second.body


def test_the_body_carries_type_timestamp_and_the_opportunity(admin, opp):
    endpoint_for("http://127.0.0.1:9/hook", admin, "opportunity.won")
    opp.amount = 1234_56
    opp.save()
    opportunity_close_won(opportunity=opp, actor=opp.owner)
    body = json.loads(WebhookDelivery.objects.get().body)
    assert body["type"] == "opportunity.won"
    assert body["timestamp"].endswith("Z")
    data = body["data"]
    assert data["actor"] == opp.owner.pk
    assert data["changes"]["status"] == ["todo", "won"]
    assert data["opportunity"] | {"updated_at": None} == data["opportunity"] | {
        "id": opp.pk,
        "title": opp.title,
        "status": "won",
        "amount": "1234.56",
        "won_amount": "1234.56",
        "owner": opp.owner_id,
        "step": opp.step_id,
        "step_name": opp.step.name,
        "updated_at": None,
    }


def test_a_comment_event_carries_the_comment_and_its_opportunity(admin, opp):
    endpoint_for("http://127.0.0.1:9/hook", admin, "comment.added")
    comment = comment_add(opportunity=opp, actor=opp.owner, body="Call <them> back")
    data = json.loads(WebhookDelivery.objects.get().body)["data"]
    assert data["comment"]["id"] == comment.pk
    assert data["comment"]["body"] == "Call <them> back"
    assert data["opportunity"]["id"] == opp.pk
    assert data["opportunity"]["title"] == opp.title


def test_a_client_event_carries_the_client_folder(admin, opp):
    endpoint_for("http://127.0.0.1:9/hook", admin, "client.created")
    client = client_create(actor=opp.owner, name="ACME", city="Milano")
    data = json.loads(WebhookDelivery.objects.get().body)["data"]
    assert data["client"] | {"created_at": None} == {
        "id": client.pk,
        "name": "ACME",
        "vat_number": "",
        "city": "Milano",
        "country": "",
        "external_id": "",
        "created_at": None,
    }


def test_a_merge_reports_the_client_the_opportunity_moved_to(admin, opp):
    source, target = ClientFactory(), ClientFactory()
    opp.client = source
    opp.save()
    endpoint_for("http://127.0.0.1:9/hook", admin, "opportunity.client_changed")
    client_merge(source=source, target=target, actor=admin)
    # Announced before the merge's bulk UPDATE: the body still says where it went.
    data = json.loads(WebhookDelivery.objects.get().body)["data"]
    assert data["changes"]["client"] == [source.pk, target.pk]
    assert data["opportunity"]["client"] == target.pk


@pytest.mark.parametrize("endpoints", [1, 30])
def test_the_outbox_runs_three_queries_whatever_the_number_of_endpoints(
    admin, opp, endpoints, django_assert_num_queries
):
    for index in range(endpoints):
        endpoint_for(f"http://127.0.0.1:9/{index}", admin)
    # subscribed endpoints, the opportunity, the insert of the deliveries
    with django_assert_num_queries(3):
        changes_recorded.send(sender=None, changes=[("opportunity.moved", None, opp.pk, {})])
    assert WebhookDelivery.objects.count() == endpoints


def test_a_group_of_changes_is_written_to_the_outbox_in_one_insert(
    admin, opp, django_assert_num_queries
):
    endpoint_for("http://127.0.0.1:9/hook", admin, "opportunity.moved", "opportunity.won")
    endpoint_for("http://127.0.0.1:9/won-only", admin, "opportunity.won")
    group = [("opportunity.moved", None, opp.pk, {}), ("opportunity.won", None, opp.pk, {})]
    # subscribed endpoints, the opportunity once for the group, one insert for the group
    with django_assert_num_queries(3):
        changes_recorded.send(sender=None, changes=group)
    kinds = sorted(WebhookDelivery.objects.values_list("event_type", flat=True))
    assert kinds == ["opportunity.moved", "opportunity.won", "opportunity.won"]
    # One message per change: both endpoints got the same id for the same change.
    won = WebhookDelivery.objects.filter(event_type="opportunity.won")
    assert len({delivery.message_id for delivery in won}) == 1


@pytest.mark.parametrize("size", [1, 12])
def test_a_group_is_read_with_one_query_per_kind_of_object_whatever_its_size(
    admin, size, django_assert_num_queries, monkeypatch
):
    monkeypatch.setattr(webhooks, "READ_CHUNK", 5)  # 12 rows: three chunks of opportunities
    endpoint_for(
        "http://127.0.0.1:9/hook", admin, "opportunity.moved", "comment.added", "client.created"
    )
    opps = OpportunityFactory.create_batch(size)
    comment = comment_add(opportunity=opps[0], actor=admin, body="Seen")
    client = ClientFactory(name="Rossi Srl")
    WebhookDelivery.objects.all().delete()
    group = [("opportunity.moved", admin.pk, o.pk, {"from": 1}) for o in opps]
    group += [
        ("comment.added", admin.pk, opps[0].pk, {"comment": comment.pk}),
        ("client.created", admin.pk, client.pk, {}),
        ("opportunity.moved", admin.pk, 10**9, {}),  # vanished since: its id only
    ]
    chunks = -(-(size + 1) // 5)
    # Opportunities per chunk, the comment with its opportunity, the client, the insert (the
    # endpoints were read in this transaction when the comment was added).
    with django_assert_num_queries(chunks + 1 + 1 + 1):
        changes_recorded.send(sender=None, changes=group)
    bodies = [
        json.loads(body)["data"]
        for body in WebhookDelivery.objects.order_by("pk").values_list("body", flat=True)
    ]
    assert [b["opportunity"]["title"] for b in bodies[:size]] == [o.title for o in opps]
    assert all(b["from"] == 1 and b["actor"] == admin.pk for b in bodies[:size])
    assert bodies[size]["comment"]["body"] == "Seen"
    assert bodies[size]["opportunity"]["id"] == opps[0].pk
    assert bodies[size + 1]["client"]["name"] == "Rossi Srl"
    assert bodies[size + 2]["opportunity"] == {"id": 10**9}


def test_without_a_subscribed_endpoint_the_outbox_runs_one_query(
    admin, opp, django_assert_num_queries
):
    endpoint_for("http://127.0.0.1:9/hook", admin, "opportunity.won")
    with django_assert_num_queries(1):  # subscribed endpoints: none
        changes_recorded.send(sender=None, changes=[("opportunity.moved", None, opp.pk, {})])
    assert WebhookDelivery.objects.count() == 0


# Delivery ---------------------------------------------------------------------------------


def test_the_delivery_is_signed_after_standard_webhooks(
    receiver, admin, opp, django_capture_on_commit_callbacks
):
    endpoint, secret = webhook_endpoint_create(
        actor=admin, url=receiver.url, event_types=["opportunity.moved"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    (request,) = receiver.requests
    delivery = WebhookDelivery.objects.get()
    assert request["path"] == "/hook"
    assert request["headers"]["webhook-id"] == delivery.message_id
    assert request["headers"]["Content-Type"] == "application/json"
    # The reference implementation accepts it (and checks the timestamp is fresh).
    payload = Webhook(secret).verify(request["body"], request["headers"])
    assert payload["type"] == "opportunity.moved"
    assert payload["data"]["opportunity"]["id"] == opp.pk
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts[0]["status_code"] == 200


def test_a_wrong_secret_does_not_verify(receiver, admin, opp, django_capture_on_commit_callbacks):
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    (request,) = receiver.requests
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(webhooks.new_secret()).verify(request["body"], request["headers"])


def test_500_schedules_retries_further_and_further_apart_then_gives_up(
    receiver, admin, opp, dummy_tasks, django_capture_on_commit_callbacks
):
    receiver.statuses = [500] * webhooks.MAX_ATTEMPTS
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    delivery = WebhookDelivery.objects.get()
    delays = []
    for attempt in range(webhooks.MAX_ATTEMPTS):
        queued = dummy_tasks.results[-1]
        assert queued.args == [delivery.pk, attempt]
        webhooks.deliver(delivery_id=delivery.pk, attempts=attempt)
        delivery.refresh_from_db()
        if delivery.status == DeliveryStatus.PENDING:
            rescheduled = dummy_tasks.results[-1]
            assert rescheduled.task.run_after == delivery.next_attempt_at
            delays.append(delivery.next_attempt_at - delivery.last_attempt_at)
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempt_count == webhooks.MAX_ATTEMPTS
    assert [d.total_seconds() // 1 for d in delays[:4]] == [30, 60, 120, 240]
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:], strict=False))
    assert [entry["status_code"] for entry in delivery.attempts] == [500] * webhooks.MAX_ATTEMPTS


def test_the_retries_span_about_three_days():
    waits = [webhooks.retry_delay(n) for n in range(1, webhooks.MAX_ATTEMPTS)]
    assert waits[0] == timedelta(seconds=30)
    assert max(waits) == timedelta(hours=12)
    assert timedelta(days=2.5) < sum(waits, timedelta()) < timedelta(days=3.5)


def test_with_the_immediate_backend_a_failed_attempt_stays_pending_with_its_time(
    receiver, admin, opp, django_capture_on_commit_callbacks
):
    receiver.statuses = [503]
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code == 503
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=30)
    assert len(receiver.requests) == 1


def test_a_connection_error_is_retried(admin, opp, dummy_tasks):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    endpoint_for(f"http://127.0.0.1:{port}/hook", admin)
    move(opp)
    delivery = WebhookDelivery.objects.get()
    assert webhooks.deliver(delivery_id=delivery.pk, attempts=0) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert "ConnectionRefusedError" in delivery.attempts[0]["error"]
    assert dummy_tasks.results[-1].args == [delivery.pk, 1]


def test_410_disables_the_endpoint(receiver, admin, opp, django_capture_on_commit_callbacks):
    receiver.statuses = [410]
    endpoint = endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    endpoint.refresh_from_db()
    assert endpoint.is_active is False
    assert endpoint.disabled_reason.startswith("410 Gone")
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED
    move(opp)
    assert WebhookDelivery.objects.count() == 1  # a disabled endpoint gets nothing new


@pytest.mark.parametrize("status", [400, 404, 302])
def test_other_client_errors_and_redirects_fail_without_retry(
    receiver, admin, opp, status, dummy_tasks, django_capture_on_commit_callbacks
):
    receiver.statuses = [status]
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    delivery = WebhookDelivery.objects.get()
    webhooks.deliver(delivery_id=delivery.pk, attempts=0)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_status_code == status
    assert [r["path"] for r in receiver.requests] == ["/hook"]  # the redirect is not followed
    assert len(dummy_tasks.results) == 1  # the first attempt only, no retry


def test_a_task_for_an_attempt_already_made_does_nothing(
    receiver, admin, opp, django_capture_on_commit_callbacks
):
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    delivery = WebhookDelivery.objects.get()
    assert webhooks.deliver(delivery_id=delivery.pk, attempts=0) == "skipped"
    assert len(receiver.requests) == 1


def test_an_admin_can_send_a_failed_delivery_again(
    receiver, admin, opp, django_capture_on_commit_callbacks
):
    receiver.statuses = [400, 200]
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        queued = webhook_delivery_retry(deliveries=[delivery], actor=admin)
    delivery.refresh_from_db()
    assert queued == 1
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [entry["status_code"] for entry in delivery.attempts] == [400, 200]
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


# Addresses --------------------------------------------------------------------------------

PRIVATE_URLS = [
    "http://127.0.0.1/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
]


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_a_private_address_is_refused_when_saving(guard, admin, url):
    with pytest.raises(WebhookRuleError) as refused:
        webhook_endpoint_create(actor=admin, url=url, event_types=["opportunity.moved"])
    assert refused.value.field == "url"
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1"])
def test_a_host_name_resolving_to_a_private_address_is_refused_when_saving(guard, admin, address):
    with public_dns(address), pytest.raises(WebhookRuleError, match="public addresses"):
        webhook_endpoint_create(
            actor=admin, url="https://hooks.example.com/in", event_types=["opportunity.moved"]
        )


def test_a_url_changed_to_a_private_address_is_refused(guard, admin):
    with public_dns():
        endpoint = endpoint_for("https://hooks.example.com/in", admin)
    with pytest.raises(WebhookRuleError):
        webhook_endpoint_update(endpoint=endpoint, actor=admin, url="http://10.0.0.1/in")
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.com/in"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1"])
def test_a_host_that_resolves_privately_at_delivery_time_is_not_contacted(
    guard, admin, opp, address, dummy_tasks
):
    with public_dns():  # public when saved...
        endpoint_for("https://hooks.example.com/in", admin)
    move(opp)
    delivery = WebhookDelivery.objects.get()
    connect = mock.patch.object(
        webhooks.socket, "create_connection", side_effect=AssertionError("must not connect")
    )
    with public_dns(address), connect as connecting:  # ...private when delivering
        assert webhooks.deliver(delivery_id=delivery.pk, attempts=0) == DeliveryStatus.FAILED
    assert connecting.call_count == 0
    delivery.refresh_from_db()
    assert address in delivery.attempts[0]["error"]
    assert dummy_tasks.results == []  # refused for good, not retried


def test_a_public_address_is_accepted(guard, admin):
    with public_dns("2606:2800:220:1::1"):
        endpoint = endpoint_for("https://hooks.example.com/in", admin)
    assert endpoint.pk is not None


def test_only_http_and_https_are_accepted(guard, admin):
    with pytest.raises(WebhookRuleError):
        webhook_endpoint_create(
            actor=admin, url="ftp://hooks.example.com/", event_types=["opportunity.moved"]
        )


# Endpoints and secrets --------------------------------------------------------------------


def test_the_secret_is_handed_out_at_creation_in_the_standard_form(admin):
    with public_dns():
        endpoint, secret = webhook_endpoint_create(
            actor=admin, url="https://hooks.example.com/in", event_types=["client.created"]
        )
    assert secret.startswith("whsec_")
    assert len(webhooks.base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert endpoint.secret == secret


@pytest.mark.parametrize("role", ["salesperson", "manager"])
def test_only_admins_manage_webhooks(role):
    user = UserFactory(role=role)
    with pytest.raises(PermissionDenied):
        webhook_endpoint_create(
            actor=user, url="https://hooks.example.com/in", event_types=["opportunity.moved"]
        )


def test_an_endpoint_needs_known_events(admin):
    with public_dns(), pytest.raises(WebhookRuleError) as refused:
        webhook_endpoint_create(
            actor=admin, url="https://hooks.example.com/in", event_types=["opportunity.exploded"]
        )
    assert refused.value.field == "event_types"


def test_re_enabling_an_endpoint_clears_why_it_was_disabled(admin):
    with public_dns():
        endpoint = endpoint_for("https://hooks.example.com/in", admin)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, disabled_reason="410 Gone"
    )
    endpoint = webhook_endpoint_update(endpoint=endpoint, actor=admin, is_active=True)
    assert endpoint.disabled_reason == ""


# The admin --------------------------------------------------------------------------------


def admin_url(model, view, *args):
    return reverse(f"admin:integrations_{model._meta.model_name}_{view}", args=args)


def test_the_admin_shows_the_secret_once_after_adding(client, admin):
    client.force_login(admin)
    with public_dns():
        response = client.post(
            admin_url(WebhookEndpoint, "add"),
            {"url": "https://hooks.example.com/in", "event_types": ["opportunity.won"]},
            follow=True,
        )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret in response.content.decode()
    assert endpoint.created_by == admin
    change_page = client.get(admin_url(WebhookEndpoint, "change", endpoint.pk))
    assert endpoint.secret not in change_page.content.decode()


def test_the_admin_refuses_a_private_url_as_a_form_error(guard, client, admin):
    client.force_login(admin)
    response = client.post(
        admin_url(WebhookEndpoint, "add"),
        {"url": "http://169.254.169.254/", "event_types": ["opportunity.won"]},
    )
    assert response.status_code == 200
    assert "public addresses" in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_the_delivery_log_lists_the_attempts(
    client, receiver, admin, opp, django_capture_on_commit_callbacks
):
    receiver.statuses = [503, 200]
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)
    delivery = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        webhook_delivery_retry(deliveries=[delivery], actor=admin)
    client.force_login(admin)
    listing = client.get(admin_url(WebhookDelivery, "changelist")).content.decode()
    assert "opportunity.moved" in listing
    page = client.get(admin_url(WebhookDelivery, "change", delivery.pk)).content.decode()
    assert "<td>503</td>" in page
    assert "<td>200</td>" in page


def test_the_delivery_log_is_for_admins_only(client, opp):
    staff_seller = UserFactory(role="salesperson", is_staff=True)
    client.force_login(staff_seller)
    assert client.get(admin_url(WebhookDelivery, "changelist")).status_code == 403
    assert client.get(admin_url(WebhookEndpoint, "changelist")).status_code == 403


@pytest.mark.parametrize("rows", [1, 30])
def test_the_delivery_log_runs_the_same_queries_for_1_and_30_rows(
    client, admin, opp, rows, django_assert_num_queries
):
    endpoint_for("http://127.0.0.1:9/hook", admin)
    for _ in range(rows):
        changes_recorded.send(sender=None, changes=[("opportunity.moved", None, opp.pk, {})])
    client.force_login(admin)
    # session, user, endpoints (filter), count, account (admin sidebar), user and group
    # permissions (sidebar), the page of deliveries with their endpoints
    with django_assert_num_queries(8):
        response = client.get(admin_url(WebhookDelivery, "changelist"))
    assert len(response.context["cl"].result_list) == rows
