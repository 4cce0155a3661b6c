"""Opportunities and what lives in them, read-only: the web app changes them through the
services, and the event log is append-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import linebreaksbr
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from opportuna.accounts.models import User
from opportuna.core.admin import ReadOnlyAdmin, ReadOnlyInline, with_sqlite_dates
from opportuna.sales.admin.money import money, with_currency
from opportuna.sales.fieldtext import render_text
from opportuna.sales.models import (
    Activity,
    Comment,
    Contact,
    FieldDefinition,
    Opportunity,
    OpportunityEvent,
    Proposal,
    ProposalLine,
    Step,
)
from opportuna.sales.selectors import visible_opportunities


def visible_children(request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Rows of an opportunity, narrowed to the opportunities the user may see."""
    user: User = request.user  # type: ignore[assignment]
    if user.is_admin:
        return queryset  # no subquery over a million opportunities for nothing
    return queryset.filter(opportunity__in=visible_opportunities(user).values("pk"))


def event_log_link(opportunity_id: int) -> str:
    url = reverse("admin:sales_opportunityevent_changelist")
    return format_html(
        '<a href="{}?opportunity__id__exact={}">{}</a>', url, opportunity_id, _("Event log")
    )


class ContactInline(ReadOnlyInline):
    model = Contact
    fields = ("position", "name", "role", "email", "phone")


class CommentInline(ReadOnlyInline):
    model = Comment
    fields = ("created_at", "author", "pinned", "body")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Comment]:
        return super().get_queryset(request).select_related("author")


class ActivityInline(ReadOnlyInline):
    model = Activity
    fields = ("type", "user", "due_at", "done_at", "note")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Activity]:
        return super().get_queryset(request).select_related("type", "user")


class ProposalInline(ReadOnlyInline):
    model = Proposal
    fields = ("number", "status", "proposal_total", "valid_until", "sent_at", "created_by")
    readonly_fields = ("proposal_total",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Proposal]:
        return with_currency(super().get_queryset(request).select_related("created_by"))

    @admin.display(description=_("total"))
    def proposal_total(self, proposal: Proposal) -> str:
        return money(proposal, proposal.total)


class StepFilter(admin.RelatedFieldListFilter):
    """Steps named with their pipeline: two pipelines may both have a "Lead"."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        steps = Step.objects.select_related("pipeline").order_by(
            "pipeline__position", "pipeline__name", "position"
        )
        return [(step.pk, f"{step.pipeline.name} › {step.name}") for step in steps]


@admin.register(Opportunity)
class OpportunityAdmin(ReadOnlyAdmin):
    list_display = (
        "title",
        "client",
        "owner",
        "step",
        "status",
        "amount_display",
        "probability_display",
        "expected_close_date",
        "next_action_at",
    )
    list_select_related = ("client", "owner", "step")
    list_filter = ("status", "pipeline", ("step", StepFilter), "owner", "tags", "product")
    search_fields = ("title", "client__name", "description")
    date_hierarchy = "expected_close_date"
    # The primary key follows creation and is indexed; "-created_at" would sort the table.
    ordering = ("-pk",)
    show_facets = admin.ShowFacets.NEVER
    # Never a dropdown of every client or opportunity, should these fields become editable.
    autocomplete_fields = ("client", "owner")
    raw_id_fields = ("duplicated_from",)
    inlines = (ContactInline, CommentInline, ActivityInline, ProposalInline)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "title",
                    "client",
                    "owner",
                    ("pipeline", "step"),
                    "status",
                    ("amount_display", "probability_display", "weighted_display"),
                    "product",
                    "tags",
                    "expected_close_date",
                    ("next_action_at", "next_action_note"),
                )
            },
        ),
        (_("Default fields and description"), {"fields": ("fields_display", "description")}),
        (
            _("Closing"),
            {"fields": ("closed_at", "won_amount_display", "lost_reason", "lost_note")},
        ),
        (
            _("Record"),
            {
                "fields": (
                    "event_log",
                    "duplicated_from",
                    "external_id",
                    ("created_at", "updated_at"),
                    "version",
                )
            },
        ),
    )
    readonly_fields = (
        "amount_display",
        "probability_display",
        "weighted_display",
        "won_amount_display",
        "fields_display",
        "event_log",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Opportunity]:
        queryset = visible_opportunities(request.user)  # type: ignore[arg-type]
        return with_sqlite_dates(with_currency(queryset))

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, opportunity: Opportunity) -> str:
        return money(opportunity, opportunity.amount)

    @admin.display(description=_("probability"), ordering="probability")
    def probability_display(self, opportunity: Opportunity) -> str:
        manual = _(" (set by hand)") if opportunity.probability_is_manual else ""
        return f"{opportunity.probability}%{manual}"

    @admin.display(description=_("weighted amount"))
    def weighted_display(self, opportunity: Opportunity) -> str:
        return money(opportunity, opportunity.weighted_amount)

    @admin.display(description=_("won amount"))
    def won_amount_display(self, opportunity: Opportunity) -> str:
        return money(opportunity, opportunity.won_amount)

    @admin.display(description=_("default fields"))
    def fields_display(self, opportunity: Opportunity) -> str:
        text = render_text(
            fields=opportunity.fields,
            description="",
            definitions=list(FieldDefinition.objects.all()),
        )
        head = text.splitlines()[:-1]  # the "Label: value" lines, without the --- line
        return linebreaksbr("\n".join(head), autoescape=True) if head else "-"

    @admin.display(description=_("event log"))
    def event_log(self, opportunity: Opportunity) -> str:
        return event_log_link(opportunity.pk)


class OpportunityChildAdmin(ReadOnlyAdmin):
    """Something that lives in an opportunity: seen only by who sees the opportunity."""

    show_facets = admin.ShowFacets.NEVER
    ordering = ("-pk",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return visible_children(request, super().get_queryset(request))


@admin.register(Contact)
class ContactAdmin(OpportunityChildAdmin):
    list_display = ("name", "role", "email", "phone", "opportunity")
    list_select_related = ("opportunity",)
    search_fields = ("name", "email", "phone")
    fields = ("opportunity", "position", "name", "role", "email", "phone")


@admin.register(Comment)
class CommentAdmin(OpportunityChildAdmin):
    list_display = ("__str__", "opportunity", "author", "pinned", "created_at")
    list_select_related = ("opportunity", "author")
    list_filter = ("pinned",)
    search_fields = ("body",)
    fields = ("opportunity", "author", "created_at", "pinned", "body")


@admin.register(Activity)
class ActivityAdmin(OpportunityChildAdmin):
    list_display = ("type", "opportunity", "user", "due_at", "done_at", "note_start")
    list_select_related = ("type", "opportunity", "user")
    list_filter = ("type",)
    search_fields = ("note",)
    fields = ("opportunity", "type", "user", "due_at", "done_at", "note", "created_at")

    @admin.display(description=_("note"))
    def note_start(self, activity: Activity) -> str:
        return activity.note[:60]


class ProposalLineInline(ReadOnlyInline):
    model = ProposalLine
    show_change_link = False
    fields = ("position", "product", "description", "quantity", "price", "discount", "line_total")
    readonly_fields = ("price", "line_total")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProposalLine]:
        return with_currency(super().get_queryset(request).select_related("product"))

    @admin.display(description=_("unit price"))
    def price(self, line: ProposalLine) -> str:
        return money(line, line.unit_price)

    @admin.display(description=_("line total"))
    def line_total(self, line: ProposalLine) -> str:
        return money(line, line.total)


@admin.register(Proposal)
class ProposalAdmin(OpportunityChildAdmin):
    list_display = ("__str__", "opportunity", "status", "proposal_total", "valid_until", "sent_at")
    list_select_related = ("opportunity",)
    list_filter = ("status",)
    search_fields = ("scope",)
    fields = (
        "opportunity",
        ("number", "status"),
        "proposal_total",
        "scope",
        "valid_until",
        ("sent_at", "decided_at"),
        ("created_by", "created_at"),
    )
    readonly_fields = ("proposal_total",)
    inlines = (ProposalLineInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Proposal]:
        return with_currency(super().get_queryset(request))

    @admin.display(description=_("total"), ordering="total")
    def proposal_total(self, proposal: Proposal) -> str:
        return money(proposal, proposal.total)


@admin.register(OpportunityEvent)
class OpportunityEventAdmin(OpportunityChildAdmin):
    """The append-only log: filter it by opportunity from the opportunity's page."""

    list_display = ("at", "kind", "opportunity", "actor", "changes")
    list_select_related = ("opportunity", "actor")
    list_filter = ("kind",)
    fields = ("opportunity", "at", "kind", "actor", "changes", "data")
