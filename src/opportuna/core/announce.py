"""Announcing changes: the plain hook that webhooks, the search index and the insights use.

A service calls `announce(kind, ...)` (or `announce_many` for changes written together in
bulk) inside its transaction. Listeners connected to `change_announced` run only once the
transaction commits, one call per change, and never for a rolled-back change. Listeners
connected to `changes_recorded` run at once, inside the transaction, one call per group of
changes (one for `announce`, one per `announce_many`), for work that must commit or roll back
with the change (the webhook outbox) or that notes what to recompute after commit
(`CommitBatch`); an error there fails the change.
"""

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

Announcement = tuple[str, int | None, int, dict[str, Any]]  # kind, actor_id, object_id, data

# Sent with: kind (str, e.g. "opportunity.moved"), actor_id, object_id, data (dict).
change_announced = Signal()
# Sent with: changes, a list of Announcements in the order they were made.
changes_recorded = Signal()
# Sent inside a transaction that recorded changes dated in the past (an import's creation and
# closing times), with: since (an aware datetime), the earliest of them. For what was stored
# about past moments, which such a change makes out of date.
past_changed = Signal()


def announce(kind: str, *, actor_id: int | None, object_id: int, data: dict[str, Any]) -> None:
    announce_many([(kind, actor_id, object_id, data)])


def announce_many(announcements: Iterable[Announcement]) -> None:
    """Announce changes written together (one bulk statement, one savepoint): one
    `changes_recorded` call for the whole group, and one after-commit callback that sends
    `change_announced` for each, in order."""
    group = list(announcements)
    if not group:
        return
    changes_recorded.send(sender=None, changes=group)

    def send() -> None:
        if not change_announced.has_listeners():
            return
        for kind, actor_id, object_id, data in group:
            try:
                change_announced.send(
                    sender=None, kind=kind, actor_id=actor_id, object_id=object_id, data=data
                )
            except Exception:  # as robust on_commit callbacks: one failure stops no other
                logger.exception("A listener failed on %s #%s", kind, object_id)

    transaction.on_commit(send, robust=True)


class CommitBatch:
    """Keys collected during a transaction and handed, once, to `flush` after it commits.

    For data derived from committed changes (the search index, the deal facts): a thousand
    changes in one transaction cost one flush instead of a thousand. Outside a transaction
    the keys are flushed at once. A key added inside a savepoint that is later rolled back
    may still be flushed, so `flush` must recompute from the database (idempotent), never
    apply a delta. Keys keep the order they were first added in.
    """

    def __init__(self, flush: Callable[[list[Hashable]], None], *, using: str | None = None):
        self.flush = flush
        self.using = using
        self._attribute = f"_opportuna_commit_batch_{id(self)}"

    def add(self, *keys: Hashable) -> None:
        if not keys:
            return
        connection = transaction.get_connection(self.using)
        if not connection.in_atomic_block:
            self.flush(list(dict.fromkeys(keys)))
            return
        pending = connection.__dict__.get(self._attribute)
        if pending is None or not pending.is_current(connection):
            pending = _Pending(self.flush)
            pending.register(connection, self.using)
            connection.__dict__[self._attribute] = pending
        pending.keys.update(dict.fromkeys(keys))


class _Pending:
    """One transaction's keys and the on-commit callback that flushes them."""

    def __init__(self, flush: Callable[[list[Hashable]], None]) -> None:
        self.flush = flush
        self.keys: dict[Hashable, None] = {}
        self.done = False
        self.callbacks: list[Any] = []
        self.index = -1

    def register(self, connection: Any, using: str | None) -> None:
        transaction.on_commit(self.run, using=using, robust=True)
        self.callbacks = connection.run_on_commit
        self.index = len(self.callbacks) - 1

    def is_current(self, connection: Any) -> bool:
        """Still waiting for this transaction's commit: Django replaces the callback list
        when a transaction ends or a savepoint rolls back, so an unchanged list with our
        callback in place means the same transaction, and no rollback since."""
        callbacks = connection.run_on_commit
        return (
            not self.done
            and callbacks is self.callbacks
            and len(callbacks) > self.index
            and callbacks[self.index][1] == self.run
        )

    def run(self) -> None:
        self.done = True
        keys, self.keys = list(self.keys), {}
        if keys:
            self.flush(keys)


def transaction_cached(name: str, compute: Callable[[], Any], *, using: str | None = None) -> Any:
    """`compute()` once per transaction: what a listener would otherwise query per change.

    Computed again in the next transaction, after a savepoint rolls back, and on every call
    outside a transaction. Only for values the transaction itself does not change.
    """
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return compute()
    cache = connection.__dict__.setdefault("_opportuna_transaction_cache", {})
    marker = connection.run_on_commit  # replaced by Django when a transaction ends
    found = cache.get(name)
    if found is not None and found[0] is marker:
        return found[1]
    value = compute()
    cache[name] = (marker, value)
    return value


def transaction_cache_forget(name: str, *, using: str | None = None) -> None:
    """Drop a `transaction_cached` value, for when the transaction changes what it read."""
    connection = transaction.get_connection(using)
    connection.__dict__.get("_opportuna_transaction_cache", {}).pop(name, None)
