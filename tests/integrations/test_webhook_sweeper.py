"""The sweeper (`opportuna deliver_webhooks`): due deliveries are sent, each attempt once."""

import io
import json
import os
import signal
import threading
from collections import Counter
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tasks import task_backends

from opportuna.core.announce import changes_recorded
from opportuna.integrations import webhooks
from opportuna.integrations.management.commands import deliver_webhooks
from opportuna.integrations.models import DeliveryStatus, WebhookDelivery
from opportuna.integrations.services import webhook_endpoint_update
from opportuna.integrations.webhooks import attempt_delivery, deliver_due
from tests.factories import OpportunityFactory, UserFactory
from tests.integrations.test_webhooks import DUMMY_TASKS, Receiver, endpoint_for, move

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _receivers_on_this_machine(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def admin(db):
    return UserFactory(username="webhook-admin", role="admin", is_staff=True)


@pytest.fixture
def opp(db):
    return OpportunityFactory()


@pytest.fixture
def queued_only(settings):
    """Tasks are queued and never run: deliveries wait for the sweeper."""
    settings.TASKS = DUMMY_TASKS
    task_backends["default"].clear()


def pending(opp, count=1):
    """`count` deliveries waiting, due a minute ago, a second apart (oldest first)."""
    for _ in range(count):
        changes_recorded.send(sender=None, changes=[("opportunity.moved", None, opp.pk, {})])
    deliveries = list(WebhookDelivery.objects.order_by("pk"))
    start = timezone.now() - timedelta(minutes=1)
    for index, delivery in enumerate(deliveries):
        delivery.next_attempt_at = start + timedelta(seconds=index)
        delivery.save(update_fields=["next_attempt_at"])
    return deliveries


# What is due --------------------------------------------------------------------------------


def test_a_retry_the_immediate_backend_left_pending_is_sent_when_due(
    receiver, admin, opp, django_capture_on_commit_callbacks
):
    receiver.statuses = [503, 200]
    endpoint_for(receiver.url, admin)
    with django_capture_on_commit_callbacks(execute=True):
        move(opp)  # the immediate backend tries at once: 503
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING

    assert list(deliver_due()) == []  # due in 30 s, not yet
    sent = list(deliver_due(now=delivery.next_attempt_at))

    delivery.refresh_from_db()
    assert [(s.delivery_id, s.attempt, s.status) for s in sent] == [(delivery.pk, 2, "delivered")]
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [entry["status_code"] for entry in delivery.attempts] == [503, 200]
    assert len({r["headers"]["webhook-id"] for r in receiver.requests}) == 1


def test_deliveries_of_a_disabled_endpoint_wait_until_it_is_enabled_again(
    receiver, admin, opp, queued_only
):
    endpoint = endpoint_for(receiver.url, admin)
    (delivery,) = pending(opp)
    webhook_endpoint_update(endpoint=endpoint, actor=admin, is_active=False)
    assert list(deliver_due()) == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING  # not failed: it waits

    webhook_endpoint_update(endpoint=endpoint, actor=admin, is_active=True)
    assert [s.status for s in deliver_due()] == ["delivered"]
    assert len(receiver.requests) == 1


def test_oldest_first_and_at_most_the_limit(receiver, admin, opp, queued_only):
    endpoint_for(receiver.url, admin)
    third, first, second = pending(opp, 3)
    # The first recorded has been waiting the least (say, an admin sent it again just now).
    WebhookDelivery.objects.filter(pk=third.pk).update(next_attempt_at=timezone.now())
    sent = list(deliver_due(limit=2))
    assert [s.delivery_id for s in sent] == [first.pk, second.pk]
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [
        first.message_id,
        second.message_id,
    ]
    third.refresh_from_db()
    assert third.status == DeliveryStatus.PENDING
    assert third.attempt_count == 0


def test_what_fails_again_waits_for_its_next_time_and_the_sweep_ends(
    receiver, admin, opp, queued_only
):
    receiver.statuses = [500] * 5
    endpoint_for(receiver.url, admin)
    (delivery,) = pending(opp)
    assert [s.status for s in deliver_due()] == ["pending"]  # one attempt, not five
    delivery.refresh_from_db()
    assert delivery.attempt_count == 1
    assert delivery.next_attempt_at - delivery.last_attempt_at == timedelta(seconds=30)


# Each attempt once ------------------------------------------------------------------------


def test_two_sweeps_at_once_never_make_the_same_attempt(receiver, admin, opp, queued_only):
    receiver.statuses = [200, 500]  # the second stays pending, to be tried again later
    endpoint_for(receiver.url, admin)
    first, second = pending(opp, 2)
    now = timezone.now()
    sweep_a, sweep_b = deliver_due(now=now), deliver_due(now=now)
    assert next(sweep_a).delivery_id == first.pk  # A has read both, sent the first...
    assert [s.delivery_id for s in sweep_b] == [second.pk]  # ...B sends the second...
    assert list(sweep_a) == []  # ...and A, coming to it, finds it taken.
    assert Counter(r["headers"]["webhook-id"] for r in receiver.requests) == {
        first.message_id: 1,
        second.message_id: 1,
    }


def test_a_claim_for_an_attempt_already_made_is_refused(receiver, admin, opp, queued_only):
    receiver.statuses = [500]
    endpoint_for(receiver.url, admin)
    (delivery,) = pending(opp)
    assert attempt_delivery(delivery_id=delivery.pk, attempts=0, due_by=timezone.now())
    assert attempt_delivery(delivery_id=delivery.pk, attempts=0, due_by=timezone.now()) is None
    assert webhooks.deliver(delivery_id=delivery.pk, attempts=0) == "skipped"
    assert len(receiver.requests) == 1


@pytest.mark.skipif(connection.vendor == "sqlite", reason="one writer at a time on SQLite")
@pytest.mark.django_db(transaction=True)
def test_sweepers_in_parallel_send_every_delivery_exactly_once(receiver, queued_only):
    admin = UserFactory(role="admin", is_staff=True)
    endpoint_for(receiver.url, admin)
    pending(OpportunityFactory(), 12)
    now = timezone.now()
    results: list[list[int]] = [[], [], []]

    def run(index):
        try:
            results[index].extend(s.delivery_id for s in deliver_due(now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [pk for result in results for pk in result]
    assert sorted(sent) == sorted(WebhookDelivery.objects.values_list("pk", flat=True))
    assert Counter(r["headers"]["webhook-id"] for r in receiver.requests).most_common(1)[0][1] == 1
    assert len(receiver.requests) == 12


def test_an_attempt_a_crash_interrupted_is_made_again_after_its_lease(
    receiver, admin, opp, queued_only
):
    endpoint_for(receiver.url, admin)
    (delivery,) = pending(opp)
    with (
        mock.patch.object(webhooks, "_attempt", side_effect=SystemExit("worker killed")),
        pytest.raises(SystemExit),
    ):
        list(deliver_due())
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempt_count == 1
    assert list(deliver_due()) == []  # still within its lease: maybe still running
    later = delivery.last_attempt_at + webhooks.CLAIM_LEASE
    assert [(s.attempt, s.status) for s in deliver_due(now=later)] == [(2, "delivered")]
    assert len(receiver.requests) == 1


def test_an_attempt_that_outlived_its_lease_does_not_overwrite_the_next_one(
    receiver, admin, opp, queued_only
):
    receiver.statuses = [200]
    endpoint_for(receiver.url, admin)
    (delivery,) = pending(opp)

    real_attempt = webhooks._attempt
    calls = []

    def slow_attempt(row, at):
        calls.append(row.attempt_count)
        if len(calls) > 1:
            return real_attempt(row, at)  # the attempt that took over: sent for real
        # While this first attempt hangs, its lease runs out and a sweep makes the next one.
        taken_over = attempt_delivery(
            delivery_id=row.pk, attempts=1, due_by=at + webhooks.CLAIM_LEASE
        )
        assert taken_over.status == "delivered"
        return webhooks.Attempt(error="timed out", retry=True)

    with mock.patch.object(webhooks, "_attempt", side_effect=slow_attempt):
        attempt_delivery(delivery_id=delivery.pk, attempts=0)
    assert calls == [1, 2]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempt_count == 2
    assert [entry["status_code"] for entry in delivery.attempts] == [200]


# The command --------------------------------------------------------------------------------


def run(*args):
    out = io.StringIO()
    call_command("deliver_webhooks", *args, stdout=out)
    return out.getvalue()


def test_the_command_sends_what_is_due_and_reports_it(receiver, admin, opp, queued_only):
    endpoint_for(receiver.url, admin)
    (delivery,) = pending(opp)
    table = run()
    assert receiver.url in table
    assert "opportunity.moved" in table
    assert "1 sent: 1 delivered, 0 pending, 0 failed." in table
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert run() == "No webhook delivery is due.\n"
    assert run("-v", "0") == ""  # for cron, which mails whatever a job prints
    assert run("-v", "0", "--format", "csv") == ""
    assert run("--format", "csv") == ",".join(deliver_webhooks.SENT_COLUMNS) + "\n"


def test_the_command_reports_in_json_and_csv(receiver, admin, opp, queued_only):
    receiver.statuses = [503]
    endpoint_for(receiver.url, admin)
    first, second = pending(opp, 2)
    (row,) = json.loads(run("--format", "json", "--limit", "1"))
    assert row | {"next_attempt_at": None} == {
        "delivery": first.pk,
        "endpoint": receiver.url,
        "event": "opportunity.moved",
        "message_id": first.message_id,
        "attempt": 1,
        "status": "pending",
        "http_status": 503,
        "next_attempt_at": None,
        "error": "",
    }
    lines = run("--format", "csv").splitlines()
    assert lines[0] == ",".join(deliver_webhooks.SENT_COLUMNS)
    assert lines[1].startswith(f"{second.pk},{receiver.url},opportunity.moved,")
    assert len(lines) == 2


def test_the_dry_run_lists_what_is_due_and_sends_nothing(receiver, admin, opp, queued_only):
    endpoint_for(receiver.url, admin)
    first, second = pending(opp, 2)
    listed = json.loads(run("--dry-run", "--format", "json"))
    assert [(row["delivery"], row["attempt"]) for row in listed] == [(first.pk, 1), (second.pk, 1)]
    assert "2 deliveries would be sent; dry run, nothing sent." in run("--dry-run")
    assert (
        run("--dry-run", "--format", "csv", "--limit", "1")
        .splitlines()[1]
        .startswith(f"{first.pk},")
    )
    assert receiver.requests == []
    assert set(WebhookDelivery.objects.values_list("attempt_count", flat=True)) == {0}


def test_the_loop_sweeps_until_sigterm(receiver, admin, opp, queued_only):
    endpoint_for(receiver.url, admin)
    pending(opp)
    sweeps = []
    before = signal.getsignal(signal.SIGTERM)

    def counted(**kwargs):
        sweeps.append(kwargs)
        yield from deliver_due(**kwargs)
        if len(sweeps) == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with (
        mock.patch.object(deliver_webhooks, "deliver_due", side_effect=counted),
        # It would drop the connection that holds the test's transaction.
        mock.patch.object(deliver_webhooks, "close_old_connections") as closing,
    ):
        out = run("--loop", "0.01", "--format", "json")
    assert closing.call_count == 3
    assert len(sweeps) == 3
    (line,) = out.splitlines()  # sweeps that send nothing print nothing
    assert [row["status"] for row in json.loads(line)] == ["delivered"]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(
    "args",
    [["--limit", "0"], ["--limit", "many"], ["--loop", "0"], ["--dry-run", "--loop", "60"]],
)
def test_usage_errors_stop_the_command(args):
    with pytest.raises(CommandError):
        run(*args)
