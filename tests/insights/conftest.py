"""Fixtures the insights tests share."""

from unittest import mock

import pytest
from django.utils import timezone


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run a service as if `at` were now and its transaction committed, so what waits for
    the commit (the stored facts' and step visits' flushes among it) runs as in production."""

    def run(service, at, **kwargs):
        with (
            mock.patch.object(timezone, "now", lambda: at),
            django_capture_on_commit_callbacks(execute=True),
        ):
            return service(**kwargs)

    return run
