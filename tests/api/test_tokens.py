"""Personal API tokens: stored hashed, found by prefix, refused when unusable, shown once."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportuna.accounts.models import ApiToken
from opportuna.accounts.tokens import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
)
from tests.factories import UserFactory, make_cast

pytestmark = pytest.mark.django_db

PIPELINES = "/api/v1/pipelines"
OPPORTUNITIES = "/api/v1/opportunities"


@pytest.fixture
def cast():
    return make_cast()


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_only_the_hash_is_stored(cast):
    token, raw = api_token_create(actor=cast.owner, user=cast.owner, name="ERP sync")

    stored = ApiToken.objects.values().get(pk=token.pk)
    assert raw not in {str(value) for value in stored.values()}
    assert stored["hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(f"opp_{token.prefix}_")
    assert len(token.prefix) == 8


def test_token_is_found_by_its_prefix_in_one_query(cast):
    token, raw = api_token_create(actor=cast.owner, user=cast.owner)
    api_token_authenticate(raw)  # the first use writes last_used_at

    with CaptureQueriesContext(connection) as queries:
        found = api_token_authenticate(raw)

    assert found == token and found.user == cast.owner
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "prefix" in queries[0]["sql"]


def test_right_prefix_with_wrong_secret_is_refused(cast):
    token, raw = api_token_create(actor=cast.owner, user=cast.owner)

    assert api_token_authenticate(f"opp_{token.prefix}_not-the-secret") is None
    assert api_token_authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None


@pytest.mark.parametrize("raw", ["", "opp", "opp__x", "xyz_12345678_secret", "opp_123_secret"])
def test_malformed_tokens_are_refused(cast, raw):
    assert api_token_authenticate(raw) is None


def test_valid_token_reads_the_api(client, cast):
    _token, raw = api_token_create(actor=cast.owner, user=cast.owner)

    assert client.get(PIPELINES, headers=bearer(raw)).status_code == 200


def test_no_token_is_401(client, cast):
    response = client.get(PIPELINES)

    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_revoked_token_is_401(client, cast):
    token, raw = api_token_create(actor=cast.owner, user=cast.owner)
    api_token_revoke(actor=cast.owner, token=token)

    assert client.get(PIPELINES, headers=bearer(raw)).status_code == 401


def test_expired_token_is_401(client, cast):
    token, raw = api_token_create(
        actor=cast.owner, user=cast.owner, expires_at=timezone.now() + timedelta(days=1)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get(PIPELINES, headers=bearer(raw)).status_code == 401


def test_token_of_inactive_user_is_401(client, cast):
    _token, raw = api_token_create(actor=cast.owner, user=cast.owner)
    cast.owner.is_active = False
    cast.owner.save()

    assert client.get(PIPELINES, headers=bearer(raw)).status_code == 401


def test_bad_token_on_a_write_is_401_not_a_csrf_failure(client, cast):
    response = client.post(
        OPPORTUNITIES, {"title": "x"}, content_type="application/json", headers=bearer("opp_x")
    )

    assert response.status_code == 401


def test_read_only_token_reads(client, cast):
    _token, raw = api_token_create(actor=cast.owner, user=cast.owner, read_only=True)

    assert client.get(OPPORTUNITIES, headers=bearer(raw)).status_code == 200


def test_read_only_token_cannot_post(client, cast):
    _token, raw = api_token_create(actor=cast.owner, user=cast.owner, read_only=True)

    response = client.post(
        OPPORTUNITIES,
        {"title": "Nope", "pipeline": cast.pipeline.pk},
        content_type="application/json",
        headers=bearer(raw),
    )

    assert response.status_code == 403
    assert "read-only" in response.json()["detail"]


def test_last_used_is_written_at_most_once_a_minute(cast):
    token, raw = api_token_create(actor=cast.owner, user=cast.owner)
    now = timezone.now()

    api_token_authenticate(raw, now=now)
    with CaptureQueriesContext(connection) as within_a_minute:
        api_token_authenticate(raw, now=now + timedelta(seconds=59))
    token.refresh_from_db()
    assert token.last_used_at == now
    assert not [q for q in within_a_minute if q["sql"].startswith("UPDATE")]

    api_token_authenticate(raw, now=now + timedelta(seconds=61))
    token.refresh_from_db()
    assert token.last_used_at == now + timedelta(seconds=61)


def test_last_used_update_is_conditional(cast):
    """Two requests that both read an old last_used_at write it once between them."""
    token, raw = api_token_create(actor=cast.owner, user=cast.owner)
    now = timezone.now()
    api_token_authenticate(raw, now=now)
    # Another process wrote it a moment ago; this one still holds the stale value.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now + timedelta(seconds=90))

    api_token_authenticate(raw, now=now + timedelta(seconds=100))

    token.refresh_from_db()
    assert token.last_used_at == now + timedelta(seconds=90)


def test_user_cannot_create_a_token_for_someone_else(cast):
    with pytest.raises(PermissionDenied):
        api_token_create(actor=cast.owner, user=cast.teammate)


def test_admin_creates_a_token_for_anyone(cast):
    token, _raw = api_token_create(actor=cast.admin, user=cast.teammate)

    assert token.user == cast.teammate


def test_user_cannot_revoke_someone_elses_token(cast):
    token, _raw = api_token_create(actor=cast.teammate, user=cast.teammate)

    with pytest.raises(PermissionDenied):
        api_token_revoke(actor=cast.owner, token=token)


def test_revoking_twice_keeps_the_first_time(cast):
    token, _raw = api_token_create(actor=cast.owner, user=cast.owner)
    first = api_token_revoke(actor=cast.owner, token=token).revoked_at

    assert api_token_revoke(actor=cast.admin, token=token).revoked_at == first


def test_create_token_command_prints_a_working_token(client, cast):
    out, err = StringIO(), StringIO()

    call_command("create_token", "--user", "owner", "--name", "cli", stdout=out, stderr=err)

    raw = out.getvalue().strip()
    assert raw.startswith("opp_") and "\n" not in raw
    assert "cannot be shown again" in err.getvalue()
    assert ApiToken.objects.get(user=cast.owner).name == "cli"
    assert client.get(PIPELINES, headers=bearer(raw)).status_code == 200


def test_create_token_command_read_only_with_expiry(client, cast):
    out = StringIO()

    call_command(
        "create_token",
        "--user",
        "owner",
        "--read-only",
        "--expires-days",
        "7",
        stdout=out,
        stderr=StringIO(),
    )

    token = ApiToken.objects.get(user=cast.owner)
    assert token.read_only
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)
    raw = out.getvalue().strip()
    response = client.post(OPPORTUNITIES, {}, content_type="application/json", headers=bearer(raw))
    assert response.status_code == 403


def test_create_token_command_refuses_unknown_user(db):
    with pytest.raises(CommandError, match="No user"):
        call_command("create_token", "--user", "ghost", stdout=StringIO(), stderr=StringIO())


def test_create_token_command_refuses_inactive_user(db):
    UserFactory(username="gone", is_active=False)

    with pytest.raises(CommandError, match="deactivated"):
        call_command("create_token", "--user", "gone", stdout=StringIO(), stderr=StringIO())
