"""Rotating an endpoint's signing secret: two signatures during the grace period, then one."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from opportuna.integrations.models import WebhookEndpoint
from opportuna.integrations.services import (
    WebhookRuleError,
    webhook_endpoint_create,
    webhook_endpoint_rotate_secret,
)
from tests.factories import OpportunityFactory, UserFactory
from tests.integrations.test_webhooks import Receiver, move

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
def endpoint_and_secret(receiver, admin):
    return webhook_endpoint_create(
        actor=admin, url=receiver.url, event_types=["opportunity.moved", "comment.added"]
    )


def delivered_request(receiver, django_capture_on_commit_callbacks):
    """Make a change, let the immediate backend deliver it; the request the receiver got."""
    before = len(receiver.requests)
    with django_capture_on_commit_callbacks(execute=True):
        move(OpportunityFactory())
    (request,) = receiver.requests[before:]
    return request


def verifies(secret, request):
    try:
        Webhook(secret).verify(request["body"], request["headers"])
    except WebhookVerificationError:
        return False
    return True


# Signing --------------------------------------------------------------------------------


def test_during_the_grace_period_old_and_new_secrets_both_verify(
    receiver, admin, endpoint_and_secret, django_capture_on_commit_callbacks
):
    endpoint, old = endpoint_and_secret
    endpoint, new = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=admin)
    assert new.startswith("whsec_")
    assert new != old
    request = delivered_request(receiver, django_capture_on_commit_callbacks)
    assert verifies(new, request)
    assert verifies(old, request)
    # Two signatures, space separated, the new one first.
    assert [part[:3] for part in request["headers"]["webhook-signature"].split(" ")] == [
        "v1,",
        "v1,",
    ]


def test_after_the_grace_period_only_the_new_secret_verifies(
    receiver, admin, endpoint_and_secret, django_capture_on_commit_callbacks
):
    endpoint, old = endpoint_and_secret
    endpoint, new = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=admin)
    # The 24 hours go by.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    request = delivered_request(receiver, django_capture_on_commit_callbacks)
    assert verifies(new, request)
    assert not verifies(old, request)
    assert " " not in request["headers"]["webhook-signature"]


def test_the_old_secret_is_kept_for_the_time_asked_and_24_hours_by_default(
    admin, endpoint_and_secret
):
    endpoint, old = endpoint_and_secret
    before = timezone.now()
    endpoint, new = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=admin)
    expires = endpoint.previous_secret_expires_at
    assert before + timedelta(hours=24) <= expires <= timezone.now() + timedelta(hours=24)
    assert endpoint.signing_secrets(expires - timedelta(seconds=1)) == [new, old]
    assert endpoint.signing_secrets(expires) == [new]

    endpoint, newer = webhook_endpoint_rotate_secret(
        endpoint=endpoint, actor=admin, keep_old_for=timedelta(hours=1)
    )
    assert endpoint.previous_secret_expires_at <= timezone.now() + timedelta(hours=1)
    # Rotating again within the grace period: the oldest secret no longer signs.
    assert endpoint.signing_secrets(timezone.now()) == [newer, new]


def test_keeping_the_old_secret_for_no_time_drops_it_at_once(
    receiver, admin, endpoint_and_secret, django_capture_on_commit_callbacks
):
    endpoint, old = endpoint_and_secret
    endpoint, new = webhook_endpoint_rotate_secret(
        endpoint=endpoint, actor=admin, keep_old_for=timedelta(0)
    )
    assert endpoint.previous_secret == ""
    request = delivered_request(receiver, django_capture_on_commit_callbacks)
    assert verifies(new, request)
    assert not verifies(old, request)


def test_the_rotation_is_stored(admin, endpoint_and_secret):
    endpoint, old = endpoint_and_secret
    _endpoint, new = webhook_endpoint_rotate_secret(endpoint=endpoint, actor=admin)
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (stored.secret, stored.previous_secret) == (new, old)


@pytest.mark.parametrize("role", ["salesperson", "manager"])
def test_only_admins_rotate_a_secret(role, endpoint_and_secret):
    endpoint, old = endpoint_and_secret
    with pytest.raises(PermissionDenied):
        webhook_endpoint_rotate_secret(endpoint=endpoint, actor=UserFactory(role=role))
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == old


def test_a_negative_grace_period_is_refused(admin, endpoint_and_secret):
    endpoint, old = endpoint_and_secret
    with pytest.raises(WebhookRuleError):
        webhook_endpoint_rotate_secret(
            endpoint=endpoint, actor=admin, keep_old_for=timedelta(hours=-1)
        )
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == old


# The admin ------------------------------------------------------------------------------


def rotate_url(endpoint):
    return reverse("admin:integrations_webhookendpoint_rotate_secret", args=[endpoint.pk])


def change_url(endpoint):
    return reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])


def test_the_endpoint_page_offers_rotation(client, admin, endpoint_and_secret):
    endpoint, _old = endpoint_and_secret
    client.force_login(admin)
    page = client.get(change_url(endpoint)).content.decode()
    assert rotate_url(endpoint) in page
    assert "Rotate secret" in page


def test_the_confirmation_page_says_what_happens_and_changes_nothing(
    client, admin, endpoint_and_secret
):
    endpoint, old = endpoint_and_secret
    client.force_login(admin)
    response = client.get(rotate_url(endpoint))
    page = response.content.decode()
    assert response.status_code == 200
    assert "two signatures" in page
    assert 'name="keep_old_for"' in page
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == old
    assert old not in page


def test_confirming_rotates_and_shows_the_new_secret_once(client, admin, endpoint_and_secret):
    endpoint, old = endpoint_and_secret
    client.force_login(admin)
    response = client.post(rotate_url(endpoint), {"keep_old_for": "72"})
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    page = response.content.decode()
    assert response.status_code == 200
    assert stored.secret != old
    assert f'<code id="new-secret">{stored.secret}</code>' in page
    assert old not in page
    assert "no-store" in response["Cache-Control"]
    assert stored.previous_secret_expires_at > timezone.now() + timedelta(hours=71)
    (logged,) = LogEntry.objects.filter(object_id=str(endpoint.pk), action_flag=CHANGE)
    assert logged.get_change_message() == "Changed signing secret."
    # Never again: not on the endpoint's page, not on the rotation page.
    assert stored.secret not in client.get(change_url(endpoint)).content.decode()
    assert stored.secret not in client.get(rotate_url(endpoint)).content.decode()


def test_a_staff_member_who_is_not_an_admin_cannot_rotate(client, endpoint_and_secret):
    endpoint, old = endpoint_and_secret
    client.force_login(UserFactory(role="manager", is_staff=True))
    assert client.get(rotate_url(endpoint)).status_code == 403
    assert client.post(rotate_url(endpoint), {"keep_old_for": "24"}).status_code == 403
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == old


def test_rotating_an_unknown_endpoint_answers_404(client, admin):
    client.force_login(admin)
    url = reverse("admin:integrations_webhookendpoint_rotate_secret", args=[999999])
    assert client.get(url).status_code == 404
