"""My account: profile through user_update, personal API tokens shown once and stored hashed,
revoked after a confirmation; the admin lists and revokes tokens without showing hashes."""

import hashlib
import logging
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import ApiToken, Role
from opportuna.accounts.tokens import api_token_create
from tests.factories import OpportunityFactory, UserFactory, make_cast

pytestmark = pytest.mark.django_db

ME = "/accounts/me/"
NEW_TOKEN = "/accounts/me/tokens/new/"
OPPORTUNITIES = "/api/v1/opportunities"
RAW = re.compile(r"opp_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
XSS = "<script>alert(1)</script>"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def owner_client(client, cast):
    client.force_login(cast.owner)
    return client


def text(response):
    return response.content.decode()


def revoke_url(token):
    return reverse("accounts:token_revoke", args=[token.pk])


def create_token(client, **data):
    """Create a token through the page; return the response and the token it shows."""
    response = client.post(NEW_TOKEN, {"name": "ERP sync", **data})
    assert response.status_code == 200
    found = RAW.findall(text(response))
    assert len(set(found)) == 1, "the page shows exactly one full token"
    return response, found[0]


def api_get(raw):
    return Client().get(OPPORTUNITIES, headers={"Authorization": f"Bearer {raw}"})


# Who may come in ------------------------------------------------------------------------


def test_url_names_and_paths(cast):
    assert reverse("accounts:my_account") == ME
    assert reverse("accounts:token_create") == NEW_TOKEN


def test_anonymous_is_sent_to_login(client, cast):
    token, _raw = api_token_create(actor=None, user=cast.owner)
    for method, url in [
        ("get", ME),
        ("post", ME),
        ("post", NEW_TOKEN),
        ("get", revoke_url(token)),
        ("post", revoke_url(token)),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("accounts:login")), url
    token.refresh_from_db()
    assert token.revoked_at is None
    assert ApiToken.objects.count() == 1


def test_the_header_links_the_user_name_to_my_account(owner_client, cast):
    html = text(owner_client.get("/"))
    assert f'<a href="{ME}">{cast.owner}</a>' in html


def test_the_page_links_to_the_password_change(owner_client):
    assert f'href="{reverse("accounts:password_change")}"' in text(owner_client.get(ME))


def test_a_post_without_the_csrf_token_is_refused(cast):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    assert browser.post(NEW_TOKEN, {"name": "x"}).status_code == 403
    assert browser.post(ME, {"first_name": "Hacked"}).status_code == 403
    assert not ApiToken.objects.exists()
    cast.owner.refresh_from_db()
    assert cast.owner.first_name != "Hacked"


# Profile --------------------------------------------------------------------------------


def test_i_change_my_name_email_and_language(owner_client, cast):
    response = owner_client.post(
        ME,
        {"first_name": "Anna", "last_name": "Rossi", "email": "anna@example.com", "language": "it"},
    )
    assert response.status_code == 302
    cast.owner.refresh_from_db()
    assert (cast.owner.first_name, cast.owner.last_name, cast.owner.email) == (
        "Anna",
        "Rossi",
        "anna@example.com",
    )
    assert cast.owner.language == "it"
    assert '<html lang="it">' in text(owner_client.get(ME))


def test_a_bad_email_is_shown_and_nothing_changes(owner_client, cast):
    before = (cast.owner.first_name, cast.owner.email)
    # A name the factories never make up (they once drew "Anna", the name sent here before).
    new_name = f"{cast.owner.first_name}-Renamed"
    response = owner_client.post(ME, {"first_name": new_name, "email": "not-an-email"})
    assert response.status_code == 422
    assert "Enter a valid email address." in text(response)
    cast.owner.refresh_from_db()
    assert (cast.owner.first_name, cast.owner.email) == before


def test_an_unknown_language_is_refused(owner_client, cast):
    response = owner_client.post(ME, {"language": "xx"})
    assert response.status_code == 422
    cast.owner.refresh_from_db()
    assert cast.owner.language == ""


# Tokens ---------------------------------------------------------------------------------


def test_a_new_token_is_shown_once_and_stored_hashed(owner_client, cast):
    response, raw = create_token(owner_client, expires_in_days="30")
    html = text(response)
    assert "it will not be shown again" in html
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=cast.owner)
    assert token.name == "ERP sync"
    assert raw.startswith(f"opp_{token.prefix}_")
    assert token.hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {str(value) for value in ApiToken.objects.values().get(pk=token.pk).values()}
    expected = timezone.now() + timedelta(days=30)
    assert abs((token.expires_at - expected).total_seconds()) < 60
    # Reloading My account lists the token by its prefix, never in full.
    page = text(owner_client.get(ME))
    assert token.prefix in page
    assert raw not in page
    assert RAW.search(page) is None
    assert token.hash not in page


def test_the_new_token_is_not_logged(owner_client, caplog):
    with caplog.at_level(logging.DEBUG):
        _response, raw = create_token(owner_client)
    assert raw not in caplog.text
    assert raw.split("_")[2] not in caplog.text


def test_the_new_token_works_with_the_api(owner_client, cast):
    mine = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Lighthouse")
    OpportunityFactory(owner=cast.other, pipeline=cast.pipeline, title="Not mine")
    _response, raw = create_token(owner_client)
    response = api_get(raw)
    assert response.status_code == 200
    titles = [item["title"] for item in response.json()["items"]]
    assert titles == [mine.title]
    assert ApiToken.objects.get(user=cast.owner).last_used_at is not None


def test_a_read_only_token_reads_and_cannot_write(owner_client, cast):
    _response, raw = create_token(owner_client, read_only="on")
    token = ApiToken.objects.get(user=cast.owner)
    assert token.read_only
    assert "Read-only" in text(owner_client.get(ME))
    assert api_get(raw).status_code == 200
    response = Client().post(
        OPPORTUNITIES,
        {},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 403


def test_a_revoked_token_gets_401(owner_client, cast):
    _response, raw = create_token(owner_client)
    token = ApiToken.objects.get(user=cast.owner)
    assert api_get(raw).status_code == 200
    page = owner_client.get(revoke_url(token))
    assert "Yes, revoke it" in text(page)
    token.refresh_from_db()
    assert token.revoked_at is None  # asking revokes nothing
    response = owner_client.post(revoke_url(token), follow=True)
    assert response.status_code == 200
    assert "revoked" in text(response)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_get(raw).status_code == 401
    assert f'href="{revoke_url(token)}"' not in text(owner_client.get(ME))


def test_someone_elses_token_is_404_and_stays(owner_client, cast):
    theirs, raw = api_token_create(actor=None, user=cast.teammate, name="Theirs")
    assert owner_client.get(revoke_url(theirs)).status_code == 404
    assert owner_client.post(revoke_url(theirs)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert "Theirs" not in text(owner_client.get(ME))
    assert api_get(raw).status_code == 200


@pytest.mark.parametrize(
    "data,message",
    [
        ({"name": ""}, "This field is required."),
        ({"name": "x", "expires_in_days": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"name": "x", "expires_in_days": "soon"}, "Enter a whole number."),
    ],
)
def test_token_form_errors_are_shown_and_nothing_is_created(owner_client, data, message):
    response = owner_client.post(NEW_TOKEN, data)
    assert response.status_code == 422
    assert message in text(response)
    assert not ApiToken.objects.exists()


def test_token_names_are_escaped(owner_client, cast):
    api_token_create(actor=None, user=cast.owner, name=XSS)
    html = text(owner_client.get(ME))
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    response = owner_client.post(NEW_TOKEN, {"name": XSS})
    assert XSS not in text(response)


@pytest.mark.parametrize("rows", [1, 30])
def test_query_count_is_constant(owner_client, cast, rows, django_assert_num_queries):
    for index in range(rows):
        token, _raw = api_token_create(actor=None, user=cast.owner, name=f"t{index}")
    api_token_create(actor=None, user=cast.teammate, name="not mine")
    # session, user, to-do badge, my tokens
    with django_assert_num_queries(4):
        response = owner_client.get(ME)
    assert len(response.context["tokens"]) == rows


# The admin ------------------------------------------------------------------------------


@pytest.fixture
def token_admin_client(client, cast):
    # An admin by role, with the staff flag user_create gives admins (the factory does not).
    client.force_login(UserFactory(username="boss", role=Role.ADMIN, is_staff=True))
    return client


def test_admin_lists_tokens_without_their_hash(token_admin_client, cast):
    token, _raw = api_token_create(actor=None, user=cast.owner, name="ERP sync")
    changelist = text(token_admin_client.get(reverse("admin:accounts_apitoken_changelist")))
    assert token.prefix in changelist and "ERP sync" in changelist
    assert 'value="revoke"' in changelist
    assert token.hash not in changelist
    change = token_admin_client.get(reverse("admin:accounts_apitoken_change", args=[token.pk]))
    assert change.status_code == 200
    assert token.prefix in text(change)
    assert token.hash not in text(change)


def test_tokens_cannot_be_added_or_changed_in_the_admin(token_admin_client, cast):
    token, _raw = api_token_create(actor=None, user=cast.owner, name="ERP sync")
    assert token_admin_client.get(reverse("admin:accounts_apitoken_add")).status_code == 403
    response = token_admin_client.post(
        reverse("admin:accounts_apitoken_change", args=[token.pk]), {"name": "changed"}
    )
    assert response.status_code == 403
    token.refresh_from_db()
    assert token.name == "ERP sync"


def test_admin_revokes_tokens_with_the_action(token_admin_client, cast):
    first, raw = api_token_create(actor=None, user=cast.owner)
    second, _raw = api_token_create(actor=None, user=cast.teammate)
    kept, _raw = api_token_create(actor=None, user=cast.other)
    response = token_admin_client.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    for token in (first, second, kept):
        token.refresh_from_db()
    assert first.revoked_at and second.revoked_at
    assert kept.revoked_at is None
    assert api_get(raw).status_code == 401


def test_a_staff_salesperson_cannot_revoke_in_the_admin(client, cast):
    staff = UserFactory(username="staffer", is_staff=True)
    token, _raw = api_token_create(actor=None, user=cast.owner)
    client.force_login(staff)
    changelist = client.get(reverse("admin:accounts_apitoken_changelist"))
    assert changelist.status_code == 200
    assert 'value="revoke"' not in text(changelist)
    response = client.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code in (200, 302)
    token.refresh_from_db()
    assert token.revoked_at is None
