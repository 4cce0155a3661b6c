from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    name = "opportuna.integrations"
    label = "integrations"
    verbose_name = _("Integrations")

    def ready(self) -> None:
        from opportuna.core.announce import change_recorded
        from opportuna.integrations import webhooks

        # Inside the service's transaction: the outbox row commits or rolls back with it.
        change_recorded.connect(webhooks.record_outbox, dispatch_uid="integrations.webhooks")
