from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InsightsConfig(AppConfig):
    name = "opportuna.insights"
    label = "insights"
    verbose_name = _("Insights")

    def ready(self) -> None:
        from opportuna.core.announce import changes_recorded, past_changed
        from opportuna.insights import facts, openings, steps

        # Keep the closed-deal facts in step with every recorded change, in any process.
        changes_recorded.connect(facts.deal_facts_follow, dispatch_uid="opportuna.insights.facts")
        steps.connect()  # and the step visits
        # Stored month openings that a back-dated change (an import) makes out of date.
        past_changed.connect(
            openings.past_changed_follow, dispatch_uid="opportuna.insights.openings"
        )
        # And the owner the stored openings repeat.
        changes_recorded.connect(
            openings.openings_follow, dispatch_uid="opportuna.insights.openings.owners"
        )
