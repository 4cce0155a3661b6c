from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class IntegrationsConfig(AppConfig):
    name = "opportuna.integrations"
    label = "integrations"
    verbose_name = _("Integrations")

    def ready(self) -> None:
        from opportuna.core.announce import changes_recorded
        from opportuna.integrations import webhooks

        # Inside the service's transaction: the outbox row commits or rolls back with it.
        changes_recorded.connect(webhooks.record_outbox, dispatch_uid="integrations.webhooks")
        # The outbox reads the endpoints once per transaction; a change to them in the same
        # transaction is read again.
        endpoint = self.get_model("WebhookEndpoint")
        for signal in (post_save, post_delete):
            signal.connect(webhooks.endpoints_changed, sender=endpoint, dispatch_uid="webhooks")
