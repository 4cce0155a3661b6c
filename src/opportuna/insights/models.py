"""Insights keep little of their own: the sales targets the forecast is compared with, and
two derived tables that the statistics read instead of walking the event log every time:
the facts of each closed deal and the pipeline at the start of each past month. Both are
rebuilt from the log (`opportuna rebuild_insights`) and may be dropped at any time."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from opportuna.accounts.models import Team


class PeriodKind(models.TextChoices):
    MONTH = "month", _("Month")
    QUARTER = "quarter", _("Quarter")
    YEAR = "year", _("Year")


_KEY_PATTERNS = {
    PeriodKind.MONTH: re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$"),
    PeriodKind.QUARTER: re.compile(r"^(\d{4})-Q([1-4])$"),
    PeriodKind.YEAR: re.compile(r"^(\d{4})$"),
}


def parse_period_key(key: str) -> tuple[str, date]:
    """The kind and first day of a period key ("2026-11", "2026-Q4", "2026"); ValueError else."""
    for kind, pattern in _KEY_PATTERNS.items():
        found = pattern.match(key or "")
        if found:
            year = int(found.group(1))
            if year < 1:
                break
            if kind == PeriodKind.MONTH:
                return kind.value, date(year, int(found.group(2)), 1)
            if kind == PeriodKind.QUARTER:
                return kind.value, date(year, (int(found.group(2)) - 1) * 3 + 1, 1)
            return kind.value, date(year, 1, 1)
    raise ValueError(f"not a period key (2026-11, 2026-Q4 or 2026): {key!r}")


class TargetQuerySet(models.QuerySet["Target"]):
    def for_periods(self, keys: list[str]) -> TargetQuerySet:
        return self.filter(period_key__in=keys)


class Target(models.Model):
    """How much should be won in one period by a team, a user, or (neither) the company."""

    period_kind = models.CharField(_("period"), max_length=7, choices=PeriodKind.choices)
    period_key = models.CharField(
        _("period key"), max_length=7, help_text=_("2026-11, 2026-Q4 or 2026.")
    )
    team = models.ForeignKey(
        Team,
        verbose_name=_("team"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    amount = models.BigIntegerField(_("target (cents)"))
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("set by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = TargetQuerySet.as_manager()

    class Meta:
        ordering = ["period_key", "pk"]
        verbose_name = _("target")
        verbose_name_plural = _("targets")
        constraints = [
            models.CheckConstraint(
                condition=Q(team__isnull=True) | Q(user__isnull=True),
                name="target_team_or_user",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="target_amount_positive"),
            models.CheckConstraint(
                condition=Q(period_kind__in=PeriodKind.values), name="target_period_kind_valid"
            ),
            # One target per period and subject. NULLs never collide in a unique index, so
            # each subject (company, team, user) has its own partial constraint.
            models.UniqueConstraint(
                fields=["period_key"],
                condition=Q(team__isnull=True, user__isnull=True),
                name="target_unique_company",
            ),
            models.UniqueConstraint(
                fields=["period_key", "team"],
                condition=Q(team__isnull=False),
                name="target_unique_team",
            ),
            models.UniqueConstraint(
                fields=["period_key", "user"],
                condition=Q(user__isnull=False),
                name="target_unique_user",
            ),
        ]
        indexes = [
            # Forecast page: the targets of the shown periods (`for_periods`).
            models.Index(fields=["period_key"], name="target_period_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.period_key}: {self.amount}"

    @property
    def is_company(self) -> bool:
        return self.team_id is None and self.user_id is None


def repeated_owner(**options: Any) -> models.ForeignKey[Any]:
    """A derived row's copy of its opportunity's owner, so that a view narrowed by owners
    only (a manager's, a salesperson's, one owner's or one team's) chooses the rows by it,
    `owner_id IN` a few users, instead of matching each with the visible opportunities.
    Kept in step when an edit changes the owner; null only on a row written around the
    services (`opportuna rebuild_insights` writes it again). Not indexed alone: each model's
    indexes hold it where its readers need it."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        **options,
    )


class DealFacts(models.Model):
    """What had happened by the time a closed opportunity closed; one row per won or lost deal.

    Derived from the activities and the event log, kept in step by `insights.facts` after
    each committed change, so the behaviour analysis and the calibration read one narrow row
    per deal instead of walking every activity.
    """

    opportunity = models.OneToOneField(
        "sales.Opportunity",
        verbose_name=_("opportunity"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="+",
    )
    won = models.BooleanField(_("won"))
    closed_at = models.DateTimeField(_("closed"))
    # Every deal's, or some owners' facts are grouped alone for the behaviour analysis and
    # the calibration; kept in step by `insights.facts` (migration 0011 filled older rows).
    owner = repeated_owner(verbose_name=_("owner"))  # deal_facts_owner_idx serves it
    # Visits done before the first demo; None when there was no demo before closing.
    visits_before_demo = models.PositiveSmallIntegerField(null=True, blank=True)
    # Whole days from creation to the first activity; None without any activity.
    days_to_first_activity = models.PositiveIntegerField(null=True, blank=True)
    # The probability the deal carried DAYS_BEFORE days before closing (or at creation if
    # it closed sooner); its current one when the log does not say (it cannot change while
    # the deal is closed). Null only on a row written around the services.
    probability_before = models.PositiveSmallIntegerField(null=True, blank=True)
    # The activity types it had before closing with their counts, 3 standing for 3 or more:
    # "type id:count" by type id, comma-separated ("" without any). The behaviour analysis
    # groups by it, so it reads one row per deal; the exact counts are in DealActivityCount.
    activity_profile = models.TextField(blank=True, default="")
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("deal facts")
        verbose_name_plural = _("deal facts")
        indexes = [
            # The behaviour analysis over every deal, or those of some owners
            # (`analysis.behaviour_analysis`): the patterns in the order it groups them, with
            # the outcome and the owner, read from this index alone without sorting.
            models.Index(
                fields=[
                    "visits_before_demo",
                    "days_to_first_activity",
                    "activity_profile",
                    "won",
                    "owner",
                ],
                name="deal_facts_pattern_idx",
            ),
            # The calibration of every deal or of some owners'
            # (`analysis.probability_calibration`): the deals per owner and probability
            # carried, with the outcome, counted from this index alone in its order.
            models.Index(
                fields=["owner", "probability_before", "won"], name="deal_facts_owner_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.opportunity_id}"


class DealActivityCount(models.Model):
    """How many activities of one type a closed deal had before closing (only types > 0).

    Each row repeats its deal's outcome, close time and owner (its `DealFacts`' `won`,
    `closed_at` and `owner`, written with them), so the activities per won and lost deal
    closed in a range, of every deal or of some owners', are summed from one range of an
    index, without joining the facts or the deals.
    """

    opportunity = models.ForeignKey(
        "sales.Opportunity", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    type = models.ForeignKey("sales.ActivityType", on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField()
    won = models.BooleanField(_("won"))
    closed_at = models.DateTimeField(_("closed"))
    # Kept in step with the facts (migration 0014 filled older rows).
    owner = repeated_owner()  # deal_activity_outcome_idx holds it

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["opportunity", "type"], name="deal_activity_count_unique"
            ),
        ]
        indexes = [
            # Activities per won and lost deal closed in a range
            # (`statistics.activities_per_outcome`): each outcome's and type's range summed
            # from this index alone (the opportunity for deals narrowed by a pipeline or a
            # product, the owner for those narrowed by owners only).
            models.Index(
                fields=["won", "type", "closed_at", "count", "opportunity", "owner"],
                name="deal_activity_outcome_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.opportunity_id}: {self.count}"


class ForecastMonth(models.Model):
    """A past or current month whose opening pipeline is stored in `ForecastOpening`."""

    month = models.DateField(_("month"), primary_key=True)  # its first day
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["month"]

    def __str__(self) -> str:
        return self.month.isoformat()


class ForecastOpening(models.Model):
    """An opportunity that, at the first instant of `month`, was open and expected to close
    in that month, with the amount and probability it carried then: what the forecast said.

    It repeats the opportunity's owner of today (`repeated_owner`: who may see it, and the
    owner and team filters, are today's), kept in step by `insights.openings` (migration
    0015 filled older rows)."""

    month = models.DateField(_("month"))
    opportunity = models.ForeignKey(
        "sales.Opportunity", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    owner = repeated_owner()  # forecast_opening_owner_idx holds it
    amount = models.BigIntegerField()
    probability = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "opportunity"], name="forecast_opening_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["opportunity"], name="forecast_opening_opp_idx"),
            # Forecast versus actual (`history._said`): the months' openings summed from
            # this index alone, every one's or those of some owners.
            models.Index(
                fields=["month", "owner", "amount", "probability"],
                name="forecast_opening_owner_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.month.isoformat()} #{self.opportunity_id}"


class StepVisit(models.Model):
    """One stay of an opportunity on a step: from the event that put it there (its creation
    or a move) to the next move or close; what the step funnel and the time in step read.

    Derived from the event log and the opportunity, kept in step by `insights.steps` after
    each committed change. The step ids are the log's own, without a constraint: a deleted
    step's visits stay, and the funnel's joins with the steps drop them, as they drop the
    log's entries.
    """

    opportunity = models.ForeignKey(
        "sales.Opportunity", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The opportunity's creation (which never changes): the funnel follows the opportunities
    # created in its range, and finds their visits by this without reading the opportunities.
    opened_at = models.DateTimeField()
    # For the funnel; kept in step by `insights.steps` (migration 0013 filled older rows).
    owner = repeated_owner()  # step_visit_tally_idx holds it
    step = models.ForeignKey(
        "sales.Step",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    entered_at = models.DateTimeField()
    # The next move or close, and what it was (an EventKind: moved, won, lost, cancelled);
    # None and "" while the stay lasts.
    left_at = models.DateTimeField(null=True, blank=True)
    left_by = models.CharField(max_length=30, blank=True)
    # left_at - entered_at in days, as the database computes it (see `insights.steps`).
    days = models.FloatField(null=True, blank=True)
    # Where the next move went; None when the stay ended otherwise.
    next_step = models.ForeignKey(
        "sales.Step",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    # The opportunity is open and on this step now.
    current = models.BooleanField(default=False)
    # The opportunity entered this step more than once (the funnel counts it once).
    again = models.BooleanField(default=False)
    # What the funnel counts times in step by to find their quartiles without sorting them
    # all: `days` in quarters of a day, made an integer by the database, or, while the stay
    # lasts, its start's quarter-days since `statistics.DAYS_FROM` (a later start has waited
    # less); see `insights.steps.BINS_PER_DAY`.
    bin = models.BigIntegerField()
    # The probability the opportunity carried when it entered the step, as the event log
    # tells it (see `insights.steps`): what the calibration "at a step" reads. None on rows
    # written before the column existed, until `opportuna rebuild_insights` fills them.
    probability = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            # Recomputing one opportunity's visits; the stay covering a past date (the
            # pipeline as of then, `history._stay_step`), from this index alone.
            models.Index(
                fields=["opportunity", "entered_at", "left_at", "step"],
                name="step_visit_opp_idx",
            ),
            # The funnel: the visits of the opportunities created in its range, ...
            models.Index(fields=["opened_at"], name="step_visit_opened_idx"),
            # ... on SQLite, every visit in the order the funnel groups them, so that they
            # are counted without sorting (`statistics._step_visits`), with the owner last,
            # so that a view narrowed by owners chooses them from the index alone, ...
            models.Index(
                fields=[
                    "step",
                    "left_by",
                    "bin",
                    "again",
                    "next_step",
                    "current",
                    "opened_at",
                    "owner",
                ],
                name="step_visit_tally_idx",
            ),
            # ... those of a step entered more than once, ...
            models.Index(
                fields=["opened_at"], condition=Q(again=True), name="step_visit_again_idx"
            ),
            # ... and the times in the few bins that hold its quartiles.
            models.Index(fields=["step", "bin"], name="step_visit_bin_idx"),
            # The calibration at a step (`analysis._visited_probability_sql`): the visits of
            # one step in opportunity order (merged with the closed opportunities in id
            # order), with all it reads, the id for an earlier visit's tie, from this index
            # alone.
            models.Index(
                fields=["step", "opportunity", "entered_at", "probability", "again", "id"],
                name="step_visit_calibration_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.opportunity_id} step {self.step_id}"
