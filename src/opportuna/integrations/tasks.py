"""Background tasks of the integrations app (run by `opportuna db_worker` in production)."""

from django_tasks import task

from opportuna.integrations import webhooks


@task()
def deliver_webhook(delivery_id: int, attempts: int) -> str:
    """One attempt at a webhook delivery; a passing failure schedules the next one."""
    return webhooks.deliver(delivery_id=delivery_id, attempts=attempts)
