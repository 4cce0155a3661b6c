"""Announcing changes: the plain hook that webhooks and notifications use.

A service calls `announce(kind, ...)` inside its transaction. Listeners connected to
`change_announced` run only once the transaction commits, and never for a rolled-back change.
Listeners connected to `change_recorded` run at once, inside the transaction, for work that
must commit or roll back with the change (the webhook outbox); an error there fails the change.
"""

from typing import Any

from django.db import transaction
from django.dispatch import Signal

# Both sent with: kind (str, e.g. "opportunity.moved"), actor_id, object_id, data (dict).
change_announced = Signal()
change_recorded = Signal()


def announce(kind: str, *, actor_id: int | None, object_id: int, data: dict[str, Any]) -> None:
    change_recorded.send(sender=None, kind=kind, actor_id=actor_id, object_id=object_id, data=data)

    def send() -> None:
        change_announced.send(
            sender=None, kind=kind, actor_id=actor_id, object_id=object_id, data=data
        )

    transaction.on_commit(send, robust=True)
