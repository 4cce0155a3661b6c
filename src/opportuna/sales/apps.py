from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SalesConfig(AppConfig):
    name = "opportuna.sales"
    label = "sales"
    verbose_name = _("Sales")

    def ready(self) -> None:
        # Keep the search index in step with every announced change, in any process.
        from opportuna.sales import search  # noqa: F401
