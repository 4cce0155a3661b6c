from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InsightsConfig(AppConfig):
    name = "opportuna.insights"
    label = "insights"
    verbose_name = _("Insights")

    def ready(self) -> None:
        from opportuna.core.announce import changes_recorded
        from opportuna.insights import facts, steps

        # Keep the closed-deal facts in step with every recorded change, in any process.
        changes_recorded.connect(facts.deal_facts_follow, dispatch_uid="opportuna.insights.facts")
        steps.connect()  # and the step visits
