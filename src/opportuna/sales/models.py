"""The sales domain: an opportunity and everything that lives in it."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.db.models.fields.json import HasKey
from django.utils.translation import gettext_lazy as _

from opportuna.core.money import weighted_cents


class Status(models.TextChoices):
    TODO = "todo", _("To do")
    STANDBY = "standby", _("Standby")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_STATUSES = (Status.TODO, Status.STANDBY)
CLOSED_STATUSES = (Status.WON, Status.LOST, Status.CANCELLED)


class Client(models.Model):
    """A client folder: the end customer whose opportunities it groups."""

    name = models.CharField(_("name"), max_length=200)
    vat_number = models.CharField(_("VAT number"), max_length=40, blank=True)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    website = models.URLField(_("website"), blank=True)
    address = models.CharField(_("address"), max_length=250, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=100, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    external_id = models.CharField(_("external id"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("client folder")
        verbose_name_plural = _("client folders")
        indexes = [
            # Client list and type-ahead search by name.
            models.Index(fields=["name"], name="client_name_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class Pipeline(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")

    def __str__(self) -> str:
        return self.name


class Step(models.Model):
    """An ordered stage of a pipeline, with the probability its opportunities start from."""

    pipeline = models.ForeignKey(
        Pipeline, verbose_name=_("pipeline"), on_delete=models.CASCADE, related_name="steps"
    )
    name = models.CharField(_("name"), max_length=100)
    position = models.PositiveIntegerField(_("position"), default=0)
    probability = models.PositiveSmallIntegerField(
        _("default probability"), default=10, help_text=_("Percent, 0 to 100.")
    )
    rot_days = models.PositiveIntegerField(
        _("days before rotting"),
        null=True,
        blank=True,
        help_text=_("An open opportunity with no activity for longer is flagged."),
    )

    class Meta:
        ordering = ["pipeline", "position", "pk"]
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "name"], name="step_unique_name"),
            models.CheckConstraint(
                condition=Q(probability__gte=0, probability__lte=100),
                name="step_probability_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.probability}%)"


class FieldKind(models.TextChoices):
    TEXT = "text", _("Text")
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")
    URL = "url", _("URL")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    CHOICE = "choice", _("Choice")


class FieldDefinition(models.Model):
    """A default field an admin defines; values live in `Opportunity.fields` under `key`."""

    label = models.CharField(_("label"), max_length=100, unique=True)
    key = models.SlugField(_("key"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=10, choices=FieldKind.choices, default="text")
    choices = models.JSONField(
        _("choices"), default=list, blank=True, help_text=_("Allowed values for a choice field.")
    )
    required = models.BooleanField(_("required"), default=False)
    position = models.PositiveIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = _("default field")
        verbose_name_plural = _("default fields")

    def __str__(self) -> str:
        return self.label


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=60, unique=True)
    colour = models.CharField(_("colour"), max_length=7, default="#6b7280")

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A type of product or service being sold."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    unit_price = models.BigIntegerField(
        _("list price (cents)"), default=0, help_text=_("In minor units of the account currency.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="product_price_positive")
        ]

    def __str__(self) -> str:
        return self.name


class LostReason(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("lost reason")
        verbose_name_plural = _("lost reasons")

    def __str__(self) -> str:
        return self.name


class ActivityType(models.Model):
    """Call, visit, demo, information request, proposal sent, email, ..."""

    PROPOSAL_SENT = "proposal_sent"

    name = models.CharField(_("name"), max_length=60, unique=True)
    key = models.SlugField(_("key"), max_length=60, unique=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "name"]
        verbose_name = _("activity type")
        verbose_name_plural = _("activity types")

    def __str__(self) -> str:
        return self.name


def weighted_expression(amount: str = "amount", probability: str = "probability") -> Any:
    """`core.money.weighted_cents` in SQL: amount x probability / 100 rounded half-up, in
    integers only, so every sum of it agrees to the cent on SQLite and PostgreSQL."""
    return (F(amount) * F(probability) + 50) / 100


class OpportunityQuerySet(models.QuerySet["Opportunity"]):
    def open(self) -> OpportunityQuerySet:
        """Open, said twice: by status, and by a next action being set, which is true exactly
        of open ones (check constraints). The second reaches SQLite as literal SQL, unlike
        `status IN (%s, %s)`, so the partial indexes on open ones (to-do list, board) can
        serve the query: SQLite uses a partial index only when a query repeats its condition
        literally."""
        return self.filter(status__in=OPEN_STATUSES, next_action_at__isnull=False)

    def closed(self) -> OpportunityQuerySet:
        return self.filter(status__in=CLOSED_STATUSES)

    def won(self) -> OpportunityQuerySet:
        return self.filter(status=Status.WON)

    def lost(self) -> OpportunityQuerySet:
        return self.filter(status=Status.LOST)

    def closing_between(self, start: date, end: date) -> OpportunityQuerySet:
        return self.filter(expected_close_date__gte=start, expected_close_date__lte=end)

    def with_card_relations(self) -> OpportunityQuerySet:
        return self.select_related("client", "owner", "step", "product").prefetch_related("tags")

    def with_weighted_amount(self) -> OpportunityQuerySet:
        """Annotate `weighted`: won amount if won, 0 if lost or cancelled, else amount x p / 100.

        Integer arithmetic, rounded half-up: the same as `core.money.weighted_cents`, so the
        sum agrees to the cent on SQLite and PostgreSQL.
        """
        return self.annotate(
            weighted=Case(
                When(status=Status.WON, then=F("won_amount")),
                When(status__in=OPEN_STATUSES, then=weighted_expression()),
                default=Value(0),
                output_field=models.BigIntegerField(),
            )
        )


class Opportunity(models.Model):
    """One real potential sale, from first interest to won or lost."""

    title = models.CharField(_("title"), max_length=200)
    client = models.ForeignKey(
        Client,
        verbose_name=_("client folder"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="opportunities",
        db_index=False,  # opp_client_idx (client, status) serves it
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        on_delete=models.PROTECT,
        related_name="opportunities",
        db_index=False,  # opp_owner_created_idx (owner, created_at) serves it
    )
    pipeline = models.ForeignKey(
        Pipeline, verbose_name=_("pipeline"), on_delete=models.PROTECT, related_name="+"
    )
    step = models.ForeignKey(
        Step, verbose_name=_("step"), on_delete=models.PROTECT, related_name="opportunities"
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.TODO
    )
    amount = models.BigIntegerField(_("amount (cents)"), default=0)
    won_amount = models.BigIntegerField(_("won amount (cents)"), null=True, blank=True)
    probability = models.PositiveSmallIntegerField(_("probability"), default=0)
    probability_is_manual = models.BooleanField(
        _("probability set by hand"),
        default=False,
        help_text=_("When off, the probability follows the step's default."),
    )
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="opportunities",
        db_index=False,  # opp_product_idx, without the rows that have none
    )
    expected_close_date = models.DateField(_("expected close date"), null=True, blank=True)
    next_action_at = models.DateTimeField(
        _("next action"),
        null=True,
        blank=True,
        help_text=_("When the next action is due; while on standby, when it comes back."),
    )
    next_action_note = models.CharField(_("next action note"), max_length=200, blank=True)
    tags = models.ManyToManyField(Tag, verbose_name=_("tags"), blank=True, related_name="+")
    fields = models.JSONField(_("default fields"), default=dict, blank=True)
    description = models.TextField(_("description"), blank=True)
    lost_reason = models.ForeignKey(
        LostReason,
        verbose_name=_("lost reason"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="opportunities",
        db_index=False,  # opp_lost_reason_idx, without the rows that have none
    )
    lost_note = models.TextField(_("lost note"), blank=True)
    duplicated_from = models.ForeignKey(
        "self",
        verbose_name=_("duplicated from"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="duplicates",
        db_index=False,  # opp_duplicated_from_idx, without the rows that have none
    )
    external_id = models.CharField(_("external id"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1)

    objects = OpportunityQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("opportunity")
        verbose_name_plural = _("opportunities")
        constraints = [
            models.CheckConstraint(
                condition=Q(probability__gte=0, probability__lte=100),
                name="opportunity_probability_range",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="opportunity_amount_positive"),
            models.CheckConstraint(
                condition=Q(won_amount__isnull=True) | Q(won_amount__gte=0),
                name="opportunity_won_amount_positive",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in Status]),
                name="opportunity_status_valid",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status__in=[s.value for s in CLOSED_STATUSES], closed_at__isnull=False)
                    | Q(status__in=[s.value for s in OPEN_STATUSES], closed_at__isnull=True)
                ),
                name="opportunity_closed_iff_closed_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.WON) | Q(won_amount__isnull=False),
                name="opportunity_won_has_won_amount",
            ),
            models.CheckConstraint(
                condition=~Q(status=Status.LOST) | Q(lost_reason__isnull=False),
                name="opportunity_lost_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[s.value for s in OPEN_STATUSES])
                | Q(next_action_at__isnull=False),
                name="opportunity_open_has_next_action",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=[s.value for s in CLOSED_STATUSES])
                | Q(next_action_at__isnull=True),
                name="opportunity_closed_has_no_next_action",
            ),
        ]
        indexes = [
            # To-do list: my open opportunities by next action time.
            # The condition is "next action set" (true exactly for open ones) rather than
            # a status list: SQLite only uses a partial index when the query repeats its
            # condition literally, and Django sends status lists as parameters.
            models.Index(
                fields=["owner", "next_action_at"],
                condition=Q(next_action_at__isnull=False),
                name="opp_todo_idx",
            ),
            # Board: one column = open opportunities of a step, keyset by (next action, id).
            # With the times, money and owner (who may see it) after them, the open pipeline
            # per step (today's, and the part of a past date's not changed since) is summed
            # from this index alone.
            models.Index(
                fields=[
                    "step",
                    "next_action_at",
                    "id",
                    "updated_at",
                    "created_at",
                    "amount",
                    "probability",
                    "owner",
                ],
                condition=Q(next_action_at__isnull=False),
                name="opp_board_idx",
            ),
            # Forecast of open opportunities by expected close date. With the amount,
            # probability and owner (who may see it), a period's open ones are summed from
            # one range of the index alone (insights.selectors._branched_sums); with the id
            # too, its largest deals are ranked from it (_largest_lumps).
            models.Index(
                fields=["status", "expected_close_date", "amount", "probability", "owner", "id"],
                name="opp_forecast_idx",
            ),
            # Forecast of won and lost opportunities by close time, from the index alone too;
            # closed deals in a date range (statistics). Every query it serves compares the
            # close time, which implies the condition: open deals (most rows, and every row
            # an import creates open) cost no write to it.
            models.Index(
                fields=["status", "closed_at", "won_amount", "amount", "owner"],
                condition=Q(closed_at__isnull=False),
                name="opp_closed_idx",
            ),
            # Statistics of the deals closed in a date range (win rates, sales cycle, lost
            # reasons): every column they read, so a range is answered from this index
            # alone, which is much smaller than the table (the condition keeps open deals
            # out; a closed_at comparison implies it on SQLite and PostgreSQL). Led by the
            # status as opp_closed_idx is, or SQLite prefers that one for a status and a
            # range and reads the table for the rest.
            models.Index(
                fields=[
                    "status",
                    "closed_at",
                    "owner",
                    "product",
                    "pipeline",
                    "created_at",
                    "amount",
                    "won_amount",
                    "lost_reason",
                ],
                condition=Q(closed_at__isnull=False),
                name="opp_closed_stats_idx",
            ),
            # Calibration: the won and lost deals in id order, merged with the step's stored
            # visits or the deals' facts (`insights.analysis`), from the index alone. Closed
            # said as a close time, which a query can repeat literally (SQLite uses a partial
            # index only then; statuses travel as parameters): cancelled deals are in too.
            models.Index(
                fields=["id", "owner", "closed_at", "probability", "status"],
                condition=Q(closed_at__isnull=False),
                name="opp_outcome_idx",
            ),
            models.Index(fields=["client", "status"], name="opp_client_idx"),
            # Opportunity list, default order (newest first) and keyset pages.
            models.Index(fields=["created_at", "id"], name="opp_created_idx"),
            # A salesperson's own list, newest first.
            models.Index(fields=["owner", "created_at"], name="opp_owner_created_idx"),
            # Opportunity list sorted by amount.
            models.Index(fields=["amount", "id"], name="opp_amount_idx"),
            # Pipeline as of a past date: the opportunities changed since D and created by
            # then, with what it reads of them and the owner (who may see it), from this
            # index alone; API sync filter.
            models.Index(
                fields=[
                    "updated_at",
                    "created_at",
                    "id",
                    "status",
                    "step",
                    "amount",
                    "probability",
                    "owner",
                ],
                name="opp_updated_idx",
            ),
            models.Index(fields=["external_id"], name="opp_external_id_idx"),
            # Foreign keys most opportunities leave empty: only the rows that have one are
            # indexed (a lookup by a value implies it is not null, so these serve it).
            models.Index(
                fields=["product"], condition=Q(product__isnull=False), name="opp_product_idx"
            ),
            models.Index(
                fields=["lost_reason"],
                condition=Q(lost_reason__isnull=False),
                name="opp_lost_reason_idx",
            ),
            models.Index(
                fields=["duplicated_from"],
                condition=Q(duplicated_from__isnull=False),
                name="opp_duplicated_from_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def weighted_amount(self) -> int:
        if self.status == Status.WON:
            return self.won_amount or 0
        if self.is_open:
            return weighted_cents(self.amount, self.probability)
        return 0


class Contact(models.Model):
    """A person involved in this sale; the first by position is the main contact."""

    opportunity = models.ForeignKey(
        Opportunity,
        verbose_name=_("opportunity"),
        on_delete=models.CASCADE,
        related_name="contacts",
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    name = models.CharField(_("name"), max_length=150)
    role = models.CharField(_("role"), max_length=100, blank=True)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)

    class Meta:
        ordering = ["opportunity", "position", "pk"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return self.name


class Comment(models.Model):
    opportunity = models.ForeignKey(
        Opportunity,
        verbose_name=_("opportunity"),
        on_delete=models.CASCADE,
        related_name="comments",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("author"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    body = models.TextField(_("comment"))
    pinned = models.BooleanField(_("pinned"), default=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    edited_at = models.DateTimeField(_("edited"), null=True, blank=True)

    class Meta:
        ordering = ["-pinned", "-created_at", "-pk"]
        verbose_name = _("comment")
        verbose_name_plural = _("comments")
        indexes = [models.Index(fields=["opportunity", "created_at"], name="comment_timeline_idx")]

    def __str__(self) -> str:
        return self.body[:60]


class ActivityQuerySet(models.QuerySet["Activity"]):
    def done(self) -> ActivityQuerySet:
        return self.filter(done_at__isnull=False)

    def planned(self) -> ActivityQuerySet:
        return self.filter(done_at__isnull=True)


class Activity(models.Model):
    """What a salesperson did (done_at) or plans to do (due_at only) on an opportunity."""

    opportunity = models.ForeignKey(
        Opportunity,
        verbose_name=_("opportunity"),
        on_delete=models.CASCADE,
        related_name="activities",
    )
    type = models.ForeignKey(
        ActivityType, verbose_name=_("type"), on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.PROTECT,
        related_name="activities",
    )
    # The opportunity's owner, repeated so that a view narrowed by owners (a manager's team)
    # keeps activities by `opportunity_owner IN (a few users)` read from the indexes below,
    # instead of matching each with the visible opportunities. `save` fills it; an owner
    # change updates it (`services.opportunities.opportunity_update`).
    opportunity_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("opportunity owner"),
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        editable=False,
    )
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    done_at = models.DateTimeField(_("done"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        ordering = ["-done_at", "-due_at", "-pk"]
        verbose_name = _("activity")
        verbose_name_plural = _("activities")
        constraints = [
            models.CheckConstraint(
                condition=Q(done_at__isnull=False) | Q(due_at__isnull=False),
                name="activity_done_or_due",
            ),
        ]
        indexes = [
            # Timeline of an opportunity and behaviour analysis (activities before closing).
            models.Index(fields=["opportunity", "done_at"], name="activity_timeline_idx"),
            # To-do list: my planned activities, soonest first (the few not done yet).
            models.Index(
                fields=["user", "due_at", "id"],
                condition=Q(done_at__isnull=True),
                name="activity_planned_idx",
            ),
            # Activity report on SQLite: each person's activities of a type done in a week
            # counted from this index alone (the opportunity or its owner for a narrowed set
            # of deals).
            models.Index(
                fields=["user", "type", "done_at", "opportunity", "opportunity_owner"],
                condition=Q(done_at__isnull=False),
                name="activity_user_type_idx",
            ),
            # Activity report on PostgreSQL: the activities done in a date range, per
            # salesperson, week and type, from this index alone (the opportunity or its
            # owner for a narrowed set of deals).
            models.Index(
                fields=["done_at", "user", "type", "opportunity", "opportunity_owner"],
                condition=Q(done_at__isnull=False),
                name="activity_done_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type_id}: {self.note[:40]}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.opportunity_owner_id is None:
            self.opportunity_owner_id = self.opportunity.owner_id
        super().save(*args, **kwargs)

    @property
    def is_planned(self) -> bool:
        return self.done_at is None


class ProposalStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SENT = "sent", _("Sent")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")


class Proposal(models.Model):
    """Project definition and priced offer; each revision is a new numbered version."""

    opportunity = models.ForeignKey(
        Opportunity,
        verbose_name=_("opportunity"),
        on_delete=models.CASCADE,
        related_name="proposals",
    )
    number = models.PositiveIntegerField(_("version"))
    scope = models.TextField(_("scope"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.DRAFT
    )
    total = models.BigIntegerField(_("total (cents)"), default=0)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["opportunity", "-number"]
        verbose_name = _("proposal")
        verbose_name_plural = _("proposals")
        constraints = [
            models.UniqueConstraint(
                fields=["opportunity", "number"], name="proposal_unique_number"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(sent_at__isnull=False),
                name="proposal_sent_has_sent_at",
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.number}"


class ProposalLine(models.Model):
    proposal = models.ForeignKey(
        Proposal, verbose_name=_("proposal"), on_delete=models.CASCADE, related_name="lines"
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    product = models.ForeignKey(
        Product,
        verbose_name=_("product"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    description = models.CharField(_("description"), max_length=300, blank=True)
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=3, default=1)
    unit_price = models.BigIntegerField(_("unit price (cents)"), default=0)
    discount = models.DecimalField(_("discount %"), max_digits=5, decimal_places=2, default=0)
    total = models.BigIntegerField(_("line total (cents)"), default=0)

    class Meta:
        ordering = ["proposal", "position", "pk"]
        verbose_name = _("proposal line")
        verbose_name_plural = _("proposal lines")
        constraints = [
            models.CheckConstraint(
                condition=Q(discount__gte=0, discount__lte=100), name="line_discount_range"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="line_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="line_price_positive"),
        ]

    def __str__(self) -> str:
        return self.description


class EventKind(models.TextChoices):
    CREATED = "created", _("Created")
    UPDATED = "updated", _("Updated")
    MOVED = "moved", _("Moved")
    PROBABILITY = "probability", _("Probability changed")
    NEXT_ACTION = "next_action", _("Next action planned")
    STANDBY = "standby", _("Put on standby")
    WON = "won", _("Won")
    LOST = "lost", _("Lost")
    CANCELLED = "cancelled", _("Cancelled")
    REOPENED = "reopened", _("Reopened")
    DUPLICATED = "duplicated", _("Duplicated")
    COMMENT_ADDED = "comment_added", _("Comment added")
    COMMENT_PINNED = "comment_pinned", _("Comment pinned")
    COMMENT_UNPINNED = "comment_unpinned", _("Comment unpinned")
    COMMENT_EDITED = "comment_edited", _("Comment edited")
    COMMENT_DELETED = "comment_deleted", _("Comment deleted")
    ACTIVITY_LOGGED = "activity_logged", _("Activity logged")
    ACTIVITY_PLANNED = "activity_planned", _("Activity planned")
    ACTIVITY_COMPLETED = "activity_completed", _("Activity completed")
    CONTACT_ADDED = "contact_added", _("Contact added")
    CONTACT_UPDATED = "contact_updated", _("Contact updated")
    CONTACT_REMOVED = "contact_removed", _("Contact removed")
    CONTACTS_REORDERED = "contacts_reordered", _("Contacts reordered")
    TAG_ADDED = "tag_added", _("Tag added")
    TAG_REMOVED = "tag_removed", _("Tag removed")
    PROPOSAL_CREATED = "proposal_created", _("Proposal created")
    PROPOSAL_SENT = "proposal_sent", _("Proposal sent")
    PROPOSAL_ACCEPTED = "proposal_accepted", _("Proposal accepted")
    PROPOSAL_DECLINED = "proposal_declined", _("Proposal declined")
    CLIENT_CHANGED = "client_changed", _("Client folder changed")


class ChangesKey(HasKey):
    """`changes__has_key` with the key written into the SQL on SQLite, where Django passes it
    as a parameter: SQLite uses a partial index only for a query that repeats the index's
    condition with the same literal values (`history_amount_idx`, `history_probability_idx`),
    so with a parameter it walked every later event of an opportunity instead of seeking the
    first that changes the field. It is the log's own `has_key` (registered on
    `OpportunityEvent.changes` below), so every `changes__has_key` is written so. Keys are
    field names from code; they are quoted all the same."""

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        parts, params = [], []
        for lhs_sql, lhs_params, path in self._as_sql_parts(compiler, connection):
            literal = "'" + path.replace("'", "''").replace("%", "%%") + "'"
            parts.append(f"JSON_TYPE({lhs_sql}, {literal}) IS NOT NULL")
            params.extend(lhs_params)
        return self._combine_sql_parts(parts), tuple(params)


class OpportunityEvent(models.Model):
    """Append-only memory: who changed what on an opportunity, when, before -> after.

    `changes` maps a field name to [before, after] (JSON values: ids, cents, ISO dates);
    `data` carries what the kind needs besides (comment id, activity type, ...).
    """

    opportunity = models.ForeignKey(
        Opportunity,
        verbose_name=_("opportunity"),
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # event_timeline_idx (opportunity, at) serves it
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    at = models.DateTimeField(_("at"), db_index=False)
    kind = models.CharField(_("kind"), max_length=30, choices=EventKind.choices)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("opportunity event")
        verbose_name_plural = _("opportunity events")
        indexes = [
            # Timeline of one opportunity; pipeline-as-of rebuilds per opportunity.
            models.Index(fields=["opportunity", "at"], name="event_timeline_idx"),
            # The pipeline on a past date: the first change of the amount or the probability
            # after that date, per opportunity (`insights.history`). Most changed deals
            # changed their probability since (it follows the step), so its index holds the
            # changes too and answers alone, without reading the log row by row (at 1M, those
            # lookups 0.37 -> 0.21 s on SQLite, 0.36 -> 0.27 s on PostgreSQL; the index is
            # 4 times as large, 350 MB there). Events carrying a probability are small
            # (a move, a probability set by hand or by its step's default): an index row has
            # to fit in a third of a page on PostgreSQL. An amount comes with any edit, a long
            # description included, so its index holds no more than the keys.
            models.Index(
                fields=["opportunity", "at"],
                condition=Q(changes__has_key="amount"),
                name="history_amount_idx",
            ),
            models.Index(
                fields=["opportunity", "at", "changes"],
                condition=Q(changes__has_key="probability"),
                name="history_probability_idx",
            ),
            # Step conversion and time in step: all moves in a period.
            models.Index(fields=["kind", "at"], name="event_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("OpportunityEvent is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("OpportunityEvent is append-only")


# Any query asking the log for events that change a field can use the partial indexes above.
OpportunityEvent._meta.get_field("changes").register_lookup(ChangesKey)
