import pytest
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_login_page_renders_with_language_switch(client):
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    assert b'name="language"' in response.content
    assert b"csrfmiddlewaretoken" in response.content


def test_user_logs_in_and_lands_on_todo(client):
    UserFactory(username="anna", password="a-long-password-1")
    response = client.post(
        reverse("accounts:login"), {"username": "anna", "password": "a-long-password-1"}
    )
    assert response.status_code == 302
    assert response.url == "/"
    assert client.get("/").status_code == 200


def test_language_choice_is_remembered_on_the_user(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("accounts:language"), {"language": "it", "next": "/"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.language == "it"
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.content.decode().startswith("<!DOCTYPE html>")
    assert '<html lang="it">' in page.content.decode()


def test_language_switch_ignores_unknown_language_and_foreign_next(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post(
        reverse("accounts:language"), {"language": "xx", "next": "https://evil.example/"}
    )
    assert response.url == "/"
    user.refresh_from_db()
    assert user.language == ""


def test_logout_needs_post_and_ends_the_session(client):
    client.force_login(UserFactory())
    assert client.post(reverse("accounts:logout")).status_code == 302
    assert client.get("/").status_code == 302
