"""Background tasks of the sales app (django-tasks): run at once with the default backend,
queued for `opportuna worker` with OPPORTUNA_TASKS_BACKEND=django_tasks_db.DatabaseBackend."""

from __future__ import annotations

from django_tasks import task

from opportuna.sales import reminders


@task()
def send_reminder_digests(username: str | None = None) -> int:
    """Send today's reminder digests (to one user when named); returns how many were sent."""
    return len(reminders.send_reminder_digests(username=username).sent)
