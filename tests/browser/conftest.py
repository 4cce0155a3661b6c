"""Real-browser tests: Playwright's sync API drives the system's Chromium against live_server.

Nothing is downloaded: the browser is Debian's Chromium (`OPPORTUNA_CHROMIUM`, else
/usr/bin/chromium). Without it these tests skip on a workstation and fail under CI, which
must never pass by skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connections
from django.urls import reverse
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from opportuna.accounts.models import User

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "pw"  # UserFactory's

# A slow CI machine gets more than the default 5 s before an expectation gives up.
expect.set_options(timeout=10_000)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="package")
def browser(django_db_setup: None) -> Iterator[Browser]:
    """One headless Chromium for all the browser tests (the test database exists first)."""
    path = os.environ.get("OPPORTUNA_CHROMIUM") or CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        reason = (
            f"no Chromium at {path}: install Debian's `chromium` package, or point "
            "OPPORTUNA_CHROMIUM at a Chromium binary"
        )
        if _in_ci():
            pytest.fail(f"{reason} (CI is set: the browser tests must run)", pytrace=False)
        pytest.skip(reason)
    snapshots = _serialized_contents()
    with pytest.MonkeyPatch.context() as env:
        # Playwright's sync API keeps an asyncio loop running in this thread for as long as
        # it is open, and Django's ORM refuses to run under a running loop. Our ORM calls
        # really are synchronous, so say so, for exactly that long.
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            # Under a running loop this thread gets new connection objects (asgiref keeps
            # Django's connections per async context), which lack the snapshot of the seeded
            # rows that serialized_rollback restores after each flush: hand it over.
            for alias, contents in snapshots.items():
                connections[alias]._test_serialized_contents = contents
            chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            try:
                yield chromium
            finally:
                chromium.close()
                # Those connections are out of reach once the loop stops; an open one would
                # keep PostgreSQL from dropping the test database at the end.
                connections.close_all()


def _serialized_contents() -> dict[str, str]:
    """The test database snapshots taken at creation, by database alias."""
    return {
        connection.alias: connection._test_serialized_contents
        for connection in connections.all()
        if hasattr(connection, "_test_serialized_contents")
    }


def _refuse(dialog: Dialog, problems: list[str]) -> None:
    # An alert means board.js met a refused move; nothing here expects one.
    problems.append(f"{dialog.type}: {dialog.message}")
    dialog.dismiss()


@pytest.fixture
def open_page(browser: Browser, live_server: LiveServer) -> Iterator[Callable[..., Page]]:
    """`open_page(user, javascript=True)`: a fresh browser context, logged in as `user`
    through the login form. The test fails if the page logs a script or console error."""
    contexts = []
    problems: list[str] = []

    def open_page(user: User, *, javascript: bool = True) -> Page:
        context = browser.new_context(
            base_url=live_server.url,
            locale="en-US",
            timezone_id=settings.TIME_ZONE,
            java_script_enabled=javascript,
        )
        contexts.append(context)
        context.set_default_timeout(10_000)
        # The app has no favicon; the browser's automatic request for one is not a fault.
        context.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"console error: {message.text} ({message.location['url']})")
                if message.type == "error"
                else None
            ),
        )
        page.on("dialog", lambda dialog: _refuse(dialog, problems))
        page.goto(reverse("accounts:login"))
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, "the browser reported:\n" + "\n".join(problems)
