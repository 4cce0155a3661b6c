"""Derived data follows committed changes once per transaction (`CommitBatch`), and a
listener may read a value once per transaction (`transaction_cached`)."""

import pytest
from django.db import transaction

from opportuna.core.announce import (
    CommitBatch,
    announce_many,
    change_announced,
    changes_recorded,
    transaction_cache_forget,
    transaction_cached,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def flushed():
    calls = []
    return calls, CommitBatch(calls.append)


def test_keys_of_one_transaction_are_flushed_once_after_commit(
    flushed, django_capture_on_commit_callbacks
):
    calls, batch = flushed
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        batch.add(3)
        batch.add(1, 3)
        batch.add(2)
        assert calls == []
    assert len(callbacks) == 1
    assert calls == [[3, 1, 2]]


def test_outside_a_transaction_keys_are_flushed_at_once(flushed):
    calls, batch = flushed
    # pytest-django wraps the test in a transaction; leave it to see autocommit behaviour.
    connection = transaction.get_connection()
    atomic, connection.in_atomic_block = connection.in_atomic_block, False
    try:
        batch.add(7, 7)
    finally:
        connection.in_atomic_block = atomic
    assert calls == [[7]]


def test_a_rolled_back_transaction_flushes_nothing_and_the_next_one_its_own(
    flushed, django_capture_on_commit_callbacks
):
    calls, batch = flushed
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            batch.add(1)
            raise RuntimeError
        batch.add(2)
    assert calls == [[2]]


def test_keys_after_a_flush_start_a_new_batch(flushed, django_capture_on_commit_callbacks):
    calls, batch = flushed
    with django_capture_on_commit_callbacks(execute=True):
        batch.add(1)
    with django_capture_on_commit_callbacks(execute=True):
        batch.add(2)
    assert calls == [[1], [2]]


def test_keys_added_outside_a_rolled_back_savepoint_are_still_flushed(
    flushed, django_capture_on_commit_callbacks
):
    calls, batch = flushed
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            batch.add(1)  # registered inside the savepoint that rolls back
            raise RuntimeError
        batch.add(2)
        with pytest.raises(RuntimeError), transaction.atomic():
            batch.add(3)
            raise RuntimeError
        batch.add(4)
    flat = [key for call in calls for key in call]
    assert 1 not in flat
    assert {2, 4} <= set(flat)


def test_transaction_cached_computes_once_per_transaction_and_can_forget():
    computed = []

    def compute():
        computed.append(1)
        return len(computed)

    with transaction.atomic():
        assert transaction_cached("test", compute) == 1
        assert transaction_cached("test", compute) == 1
        transaction_cache_forget("test")
        assert transaction_cached("test", compute) == 2
    assert len(computed) == 2


def test_announce_many_records_the_group_at_once_and_announces_each_after_commit(
    django_capture_on_commit_callbacks,
):
    recorded, announced = [], []

    def on_recorded(sender, changes, **kwargs):
        recorded.append([(kind, object_id) for kind, _actor, object_id, _data in changes])

    def on_announced(sender, kind, object_id, **kwargs):
        announced.append((kind, object_id))

    changes_recorded.connect(on_recorded, dispatch_uid="test-many-recorded")
    change_announced.connect(on_announced, dispatch_uid="test-many-announced")
    try:
        group = [("opportunity.created", 1, pk, {}) for pk in (5, 3, 9)]
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            with pytest.raises(RuntimeError), transaction.atomic():
                announce_many([("opportunity.created", 1, 99, {})])
                raise RuntimeError
            with transaction.atomic():
                announce_many(group)
                assert announced == []
        sends = [c for c in callbacks if "announce_many" in getattr(c, "__qualname__", "")]
        assert len(sends) == 1
    finally:
        changes_recorded.disconnect(dispatch_uid="test-many-recorded")
        change_announced.disconnect(dispatch_uid="test-many-announced")
    # One call per group, inside the transaction (the rolled-back one too).
    assert recorded == [
        [("opportunity.created", 99)],
        [("opportunity.created", pk) for pk in (5, 3, 9)],
    ]
    assert announced == [("opportunity.created", pk) for pk in (5, 3, 9)]
