import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Tests create many users; the MD5 hasher keeps that cheap.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language():
    # A request in Italian leaves Italian active in the thread; every test starts in English.
    from django.utils import translation

    translation.activate("en")
    yield
    translation.deactivate()
