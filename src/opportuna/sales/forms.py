"""Forms of the opportunity page, the new-opportunity form and proposals.

Forms only read and check what people typed; every write goes through a service.
Choices come from lists the view already loaded, so rendering a form runs no query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Generic, TypeVar

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from opportuna.accounts.models import User
from opportuna.core.money import from_cents, to_cents
from opportuna.sales.fieldtext import clean_field_values, parse_text
from opportuna.sales.models import (
    ActivityType,
    Client,
    FieldDefinition,
    FieldKind,
    LostReason,
    Opportunity,
    Pipeline,
    Product,
    Step,
)
from opportuna.sales.selectors.opportunity import client_by_name, client_get

M = TypeVar("M", bound=models.Model)

DATE_INPUT = {"type": "date"}
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def date_widget() -> forms.DateInput:
    return forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d")


def datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT)


# Money and numbers as people type them ----------------------------------------------------

_SPACES = re.compile(r"[\s\u00a0\u202f']")
_CURRENCY = re.compile(r"^[A-Za-z€$£]+|[A-Za-z€$£]+$")


def parse_money(text: str) -> int:
    """Read "1234.56", "1234,56", "1.234,56", "1,234.56" or "€ 1 234" as integer cents.

    With both separators the last one marks the decimals. With one kind only, a separator
    followed by exactly three digits groups thousands ("1.234" is 1234: money has cents,
    not thousandths); otherwise it is the decimal mark. More than two decimals is an error.
    """
    value = _CURRENCY.sub("", _SPACES.sub("", text or ""))
    if not re.fullmatch(r"[+-]?[0-9.,]*[0-9][0-9.,]*", value):
        raise ValueError(text)
    if "." in value and "," in value:
        decimal_mark = "." if value.rfind(".") > value.rfind(",") else ","
        group = "," if decimal_mark == "." else "."
        whole, _mark, cents = value.rpartition(decimal_mark)
        if not re.fullmatch(rf"[+-]?[0-9]{{1,3}}(\{group}[0-9]{{3}})*", whole):
            raise ValueError(text)
        value = f"{whole.replace(group, '')}.{cents}"
    elif "." in value or "," in value:
        mark = "." if "." in value else ","
        parts = value.split(mark)
        if len(parts) > 2 or len(parts[-1]) == 3:
            if not re.fullmatch(rf"[+-]?[0-9]{{1,3}}(\{mark}[0-9]{{3}})+", value):
                raise ValueError(text)
            value = value.replace(mark, "")
        else:
            value = value.replace(",", ".")
    if "." in value and len(value.split(".")[1]) > 2:
        raise ValueError(text)
    return to_cents(value)


def cents_to_input(cents: int) -> str:
    return str(from_cents(cents))


class MoneyField(forms.Field):
    """An amount in currency units, typed the Italian or the English way; cleans to cents."""

    default_error_messages = {
        "invalid": _("Enter an amount, such as 1234.56 or 1.234,56."),
        "negative": _("An amount must be zero or more."),
    }
    max_length = 30

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 12}),
        )
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {**super().widget_attrs(widget), "maxlength": str(self.max_length)}

    def to_python(self, value: Any) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = "" if value is None else str(value).strip()
        if not text:
            return None
        try:
            if len(text) > self.max_length:
                raise ValueError(text)
            cents = parse_money(text)
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        if cents < 0:
            raise ValidationError(self.error_messages["negative"], code="negative")
        return cents

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return cents_to_input(value)
        return value


class DecimalInputField(forms.DecimalField):
    """A decimal that also takes a comma as the decimal mark ("33,33")."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "size": 6}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Decimal | None:
        if isinstance(value, str) and "," in value and "." not in value:
            value = value.replace(",", ".")
        return super().to_python(value)


class ObjectChoiceField(forms.ChoiceField, Generic[M]):
    """A select over objects already loaded by the view; cleans to the object."""

    def __init__(
        self,
        objects: Iterable[M],
        *,
        empty_label: Any = None,
        label_from: Any = str,
        **kwargs: Any,
    ) -> None:
        self.objects = {str(o.pk): o for o in objects}
        choices: list[tuple[str, Any]] = []
        if empty_label is not None or not kwargs.get("required", True):
            choices.append(("", empty_label or "—"))
        choices += [(key, label_from(o)) for key, o in self.objects.items()]
        super().__init__(choices=choices, **kwargs)

    def clean(self, value: Any) -> M | None:  # type: ignore[override]
        key = super().clean(value)
        return self.objects.get(str(key)) if key not in self.empty_values else None

    def prepare_value(self, value: Any) -> Any:
        return value.pk if isinstance(value, models.Model) else value


# Default fields ---------------------------------------------------------------------------


def default_field(definition: FieldDefinition, current: str = "") -> forms.Field:
    """One input per default field, by kind."""
    attrs: dict[str, Any] = {}
    widget: forms.Widget
    if definition.kind == FieldKind.EMAIL:
        widget = forms.EmailInput(attrs={"autocomplete": "off"})
    elif definition.kind == FieldKind.PHONE:
        widget = forms.TextInput(attrs={"type": "tel", "autocomplete": "off"})
    elif definition.kind == FieldKind.URL:
        widget = forms.URLInput(attrs={"autocomplete": "off"})
    elif definition.kind == FieldKind.NUMBER:
        # Text, not type=number: "1.234,56" is a valid number here and a browser would drop it.
        widget = forms.TextInput(attrs={"inputmode": "decimal"})
    elif definition.kind == FieldKind.DATE:
        widget = forms.DateInput(attrs=DATE_INPUT)
    elif definition.kind == FieldKind.CHOICE:
        options = [str(c) for c in definition.choices or []]
        if current and current not in options:
            options.append(current)
        widget = forms.Select(choices=[("", "—"), *((o, o) for o in options)])
    else:
        widget = forms.TextInput(attrs=attrs)
    return forms.CharField(
        label=definition.label, required=definition.required, max_length=1000, widget=widget
    )


class DefaultFieldsMixin:
    """Adds `field_<key>` inputs for the active default fields and cleans them together."""

    fields: dict[str, forms.Field]
    cleaned_data: dict[str, Any]
    initial: dict[str, Any]

    def add_default_fields(
        self, definitions: Sequence[FieldDefinition], values: Mapping[str, str]
    ) -> None:
        self.definitions = sorted(
            (d for d in definitions if d.is_active), key=lambda d: (d.position, d.pk)
        )
        for definition in self.definitions:
            name = f"field_{definition.key}"
            self.fields[name] = default_field(definition, str(values.get(definition.key, "")))
            self.initial.setdefault(name, values.get(definition.key, ""))

    def default_field_names(self) -> list[str]:
        return [f"field_{d.key}" for d in self.definitions]

    def default_bound_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.default_field_names()]  # type: ignore[index]

    def clean_default_fields(self) -> dict[str, str]:
        raw = {
            d.key: self.cleaned_data.get(f"field_{d.key}") or ""
            for d in self.definitions
            if f"field_{d.key}" in self.cleaned_data
        }
        try:
            return clean_field_values(raw, self.definitions)
        except ValidationError as exc:
            for key, errors in exc.error_dict.items():
                self.add_error(f"field_{key}", errors)  # type: ignore[attr-defined]
            return {}


# Client folder by name --------------------------------------------------------------------

_CLIENT_WITH_ID = re.compile(r"(.*?)\s*\(#(\d+)\)\s*")


class ClientNameMixin:
    """`client_name` resolves to an existing client folder, or names a new one."""

    user: User
    current_client: Client | None = None
    cleaned_data: dict[str, Any]

    def clean_client_name(self) -> str:
        name = (self.cleaned_data.get("client_name") or "").strip()
        self.client: Client | None = None
        self.new_client_name = ""
        if not name:
            return ""
        if match := _CLIENT_WITH_ID.fullmatch(name):
            found = client_get(user=self.user, pk=int(match[2]))
            if found is not None:
                self.client = found
                return name
            name = match[1]
        if (
            self.current_client is not None
            and self.current_client.name.casefold() == name.casefold()
        ):
            self.client = self.current_client
            return name
        matches = client_by_name(user=self.user, name=name)
        if len(matches) > 1:
            raise ValidationError(
                _("Several client folders are called “%(name)s”: pick one from the list."),
                params={"name": name},
                code="ambiguous",
            )
        if matches:
            self.client = matches[0]
        else:
            self.new_client_name = name[:200]
        return name


def client_input() -> forms.TextInput:
    return forms.TextInput(
        attrs={"list": "client-options", "autocomplete": "off", "spellcheck": "false"}
    )


def typeahead_attrs() -> dict[str, str]:
    """htmx fills the datalist with matching client folders while the name is typed."""
    return {
        "hx-get": reverse("sales:opportunity_client_options"),
        "hx-trigger": "input changed delay:250ms",
        "hx-target": "#client-options",
        "hx-swap": "innerHTML",
        "hx-sync": "this:replace",
    }


# Edit and create --------------------------------------------------------------------------


class OpportunityForm(ClientNameMixin, DefaultFieldsMixin, forms.Form):
    """Edit the header: submits the version it was read at (optimistic concurrency)."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    title = forms.CharField(label=_("Title"), max_length=200)
    client_name = forms.CharField(
        label=_("Client folder"),
        required=False,
        max_length=220,
        widget=client_input(),
        help_text=_("Type to search; a new name opens a new client folder."),
    )
    amount = MoneyField(label=_("Amount"))
    product = forms.ModelChoiceField(
        queryset=Product.objects.none(), required=False, label=_("Product")
    )
    expected_close_date = forms.DateField(
        label=_("Expected close"), required=False, widget=date_widget()
    )
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 6})
    )

    # Fields compared after a conflict, in the order the form shows them.
    COMPARED = ("title", "client", "amount", "product", "expected_close_date", "owner")

    def __init__(
        self,
        *args: Any,
        user: User,
        opportunity: Opportunity,
        definitions: Sequence[FieldDefinition],
        products: models.QuerySet[Product],
        owners: models.QuerySet[User] | None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("initial", self.initial_for(opportunity))
        super().__init__(*args, **kwargs)
        self.user = user
        self.current_client = opportunity.client
        self.fields["client_name"].widget.attrs.update(typeahead_attrs())
        self.fields["product"].queryset = products  # type: ignore[attr-defined]
        if owners is not None:
            self.fields["owner"] = forms.ModelChoiceField(
                queryset=owners, label=_("Owner"), empty_label=None
            )
        self.add_default_fields(definitions, opportunity.fields or {})
        # The description comes after the default fields, below the --- line.
        self.fields["description"] = self.fields.pop("description")

    @staticmethod
    def initial_for(opp: Opportunity) -> dict[str, Any]:
        return {
            "version": opp.version,
            "title": opp.title,
            "client_name": opp.client.name if opp.client else "",
            "amount": opp.amount,
            "product": opp.product_id,
            "expected_close_date": opp.expected_close_date,
            "owner": opp.owner_id,
            "description": opp.description,
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        cleaned["fields"] = self.clean_default_fields()
        return cleaned

    def values(self, existing_fields: Mapping[str, str]) -> dict[str, Any]:
        """The service's keyword arguments (without client, resolved by the view)."""
        data = self.cleaned_data
        kept = {
            key: value
            for key, value in existing_fields.items()
            if key not in {d.key for d in self.definitions} and key in self.all_definition_keys
        }
        values = {
            "title": data["title"],
            "amount": data["amount"],
            "product": data["product"],
            "expected_close_date": data["expected_close_date"],
            "description": data["description"],
            "fields": {**kept, **data["fields"]},
        }
        if "owner" in self.fields:
            values["owner"] = data["owner"]
        return values

    def add_default_fields(
        self, definitions: Sequence[FieldDefinition], values: Mapping[str, str]
    ) -> None:
        self.all_definition_keys = {d.key for d in definitions}
        super().add_default_fields(definitions, values)


class NewOpportunityForm(ClientNameMixin, DefaultFieldsMixin, forms.Form):
    """The quick form: title, client, amount, step, expected close, next action, fields."""

    lead_text = forms.CharField(
        label=_("Paste lead text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("“Label: value” lines, a line ---, then the description."),
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    client_name = forms.CharField(
        label=_("Client folder"),
        required=False,
        max_length=220,
        widget=client_input(),
        help_text=_("Type to search; a new name opens a new client folder."),
    )
    amount = MoneyField(label=_("Amount"), required=False)
    expected_close_date = forms.DateField(
        label=_("Expected close"), required=False, widget=date_widget()
    )
    next_action_at = forms.DateTimeField(
        label=_("Next action"),
        required=False,
        widget=datetime_widget(),
        help_text=_("Empty means now: it shows in your to-do list."),
    )
    next_action_note = forms.CharField(label=_("What to do next"), required=False, max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 5})
    )

    def __init__(
        self,
        *args: Any,
        user: User,
        pipelines: Sequence[tuple[Pipeline, Sequence[Step]]],
        definitions: Sequence[FieldDefinition],
        products: models.QuerySet[Product],
        owners: models.QuerySet[User] | None,
        only_pipeline: Pipeline | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.pipelines = {str(p.pk): p for p, _steps in pipelines}
        self.steps = {str(s.pk): s for _p, steps in pipelines for s in steps}
        self.fields["client_name"].widget.attrs.update(typeahead_attrs())
        self.fields["pipeline"] = ObjectChoiceField(
            [p for p, _steps in pipelines],
            label=_("Pipeline"),
            widget=forms.Select(
                attrs={
                    "hx-get": reverse("sales:opportunity_new_steps"),
                    "hx-trigger": "change",
                    "hx-target": "#step-field",
                    "hx-swap": "outerHTML",
                }
            ),
        )
        groups = [
            (p.name, [(str(s.pk), f"{s.name} ({s.probability}%)") for s in steps])
            for p, steps in pipelines
            if only_pipeline is None or p.pk == only_pipeline.pk
        ]
        self.fields["step"] = forms.ChoiceField(
            label=_("Step"),
            required=False,
            choices=[("", gettext("First step")), *groups],
        )
        self.fields["product"] = forms.ModelChoiceField(
            queryset=products, required=False, label=_("Product")
        )
        if owners is not None:
            self.fields["owner"] = forms.ModelChoiceField(
                queryset=owners, label=_("Owner"), initial=user.pk, empty_label=None
            )
        self.order_fields(
            [
                "lead_text",
                "title",
                "client_name",
                "amount",
                "pipeline",
                "step",
                "expected_close_date",
                "next_action_at",
                "next_action_note",
                "product",
                "owner",
            ]
        )
        self.add_default_fields(definitions, {})
        # The description comes after the default fields, below the --- line.
        self.fields["description"] = self.fields.pop("description")

    def clean_step(self) -> Step | None:
        key = self.cleaned_data.get("step")
        return self.steps.get(str(key)) if key else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        pipeline, step = cleaned.get("pipeline"), cleaned.get("step")
        if pipeline is not None and step is not None and step.pipeline_id != pipeline.pk:
            self.add_error("step", gettext("This step belongs to another pipeline."))
        cleaned["fields"] = self.clean_default_fields()
        return cleaned


# Paste a lead -----------------------------------------------------------------------------

# Labels of the form's own fields that a pasted text may use besides the default fields.
CORE_LABELS = {
    "title": ("title", "titolo", "opportunity", "opportunità"),
    "client_name": ("client", "cliente", "client folder", "cartella cliente", "company", "azienda"),
    "amount": ("amount", "importo", "valore", "value", "presunto valore"),
    "expected_close_date": (
        "expected close",
        "expected close date",
        "close date",
        "data di chiusura",
        "data di possibile chiusura",
    ),
    "next_action_note": ("next action", "prossima azione"),
}
_DMY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


@dataclass
class ParsedLead:
    initial: dict[str, Any]
    unknown: list[tuple[str, str]]
    recognised: int


def _read_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        pass
    if match := _DMY.fullmatch(value.strip()):
        day, month, year = (int(g) for g in match.groups())
        try:
            return date(year, month, day)
        except ValueError:
            return None
    return None


def parse_lead(text: str, definitions: Sequence[FieldDefinition]) -> ParsedLead:
    """Prefill values from a noCRM-style text: default fields, known labels, description.

    Values of default fields are put in their canonical form when valid, and kept as typed
    otherwise (the form then says what is wrong). Labels nobody knows are returned.
    """
    active = [d for d in definitions if d.is_active]
    parsed = parse_text(text, active)
    initial: dict[str, Any] = {}
    for key, raw in parsed.fields.items():
        definition = next(d for d in active if d.key == key)
        try:
            initial[f"field_{key}"] = clean_field_values({key: raw}, [definition]).get(key, raw)
        except ValidationError:
            initial[f"field_{key}"] = raw
    unknown = []
    aliases = {alias.casefold(): name for name, labels in CORE_LABELS.items() for alias in labels}
    for label, value in parsed.unknown:
        name = aliases.get(label.strip().casefold())
        if name is None or name in initial:
            unknown.append((label, value))
        elif name == "expected_close_date":
            when = _read_date(value)
            if when is None:
                unknown.append((label, value))
            else:
                initial[name] = when
        else:
            initial[name] = value
    if parsed.description.strip():
        initial["description"] = parsed.description.strip("\r\n")
    return ParsedLead(
        initial=initial, unknown=unknown, recognised=len(initial) - ("description" in initial)
    )


# Small actions of the page ----------------------------------------------------------------


class PageForm(forms.Form):
    """A form among many on one page: its element ids carry its slug, so labels stay unique."""

    slug = "form"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"id_{self.slug}_%s")
        super().__init__(*args, **kwargs)


class CommentForm(PageForm):
    slug = "comment"

    body = forms.CharField(
        label=_("Comment"), widget=forms.Textarea(attrs={"rows": 3}), max_length=10_000
    )
    pinned = forms.BooleanField(label=_("Pin on top"), required=False)

    def __init__(self, *args: Any, activity_types: Sequence[ActivityType], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["as_type"] = ObjectChoiceField(
            activity_types,
            required=False,
            empty_label=_("a comment"),
            label=_("Save as"),
            help_text=_("Or log it as an activity of this type."),
        )


class ActivityLogForm(PageForm):
    slug = "activity_log"

    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    done_at = forms.DateTimeField(
        label=_("When"), required=False, widget=datetime_widget(), help_text=_("Empty means now.")
    )

    def __init__(self, *args: Any, activity_types: Sequence[ActivityType], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"] = ObjectChoiceField(activity_types, label=_("Type"))
        self.order_fields(["type", "done_at", "note"])


class ActivityPlanForm(PageForm):
    slug = "activity_plan"

    due_at = forms.DateTimeField(label=_("Due"), widget=datetime_widget())
    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, activity_types: Sequence[ActivityType], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"] = ObjectChoiceField(activity_types, label=_("Type"))
        self.order_fields(["type", "due_at", "note"])


class NextActionForm(PageForm):
    slug = "next_action"

    at = forms.DateTimeField(label=_("When"), widget=datetime_widget())
    note = forms.CharField(label=_("What"), required=False, max_length=200)


class StandbyForm(PageForm):
    slug = "standby"

    until = forms.DateField(label=_("Until"), widget=date_widget())
    note = forms.CharField(label=_("Why"), required=False, max_length=200)


class MoveForm(PageForm):
    slug = "move"

    def __init__(self, *args: Any, steps: Sequence[Step], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["step"] = ObjectChoiceField(steps, label=_("Step"))


class ProbabilityForm(PageForm):
    slug = "probability"

    probability = forms.IntegerField(
        label=_("Probability (%)"), min_value=0, max_value=100, required=False
    )
    follow_step = forms.BooleanField(label=_("Follow the step's default"), required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("follow_step") and cleaned.get("probability") is None:
            self.add_error("probability", gettext("Give a probability or follow the step."))
        return cleaned


class WonForm(PageForm):
    slug = "won"

    won_amount = MoneyField(label=_("Won amount"))


class LostForm(PageForm):
    slug = "lost"

    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, reasons: Sequence[LostReason], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"] = ObjectChoiceField(
            reasons, label=_("Reason"), empty_label=_("Choose a reason")
        )
        self.order_fields(["reason", "note"])


class CancelForm(PageForm):
    slug = "cancel"

    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )


class ReopenForm(PageForm):
    slug = "reopen"

    next_action_at = forms.DateTimeField(
        label=_("Next action"),
        required=False,
        widget=datetime_widget(),
        help_text=_("Empty means now."),
    )


class ContactForm(PageForm):
    slug = "contact"

    name = forms.CharField(label=_("Name"), max_length=150)
    role = forms.CharField(label=_("Role"), max_length=100, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    phone = forms.CharField(
        label=_("Phone"),
        max_length=40,
        required=False,
        widget=forms.TextInput(attrs={"type": "tel"}),
    )


class TagForm(PageForm):
    slug = "tag"

    name = forms.CharField(label=_("Tag"), max_length=60)


class DuplicateForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    amount = MoneyField(label=_("Amount"))
    expected_close_date = forms.DateField(
        label=_("Expected close"), required=False, widget=date_widget()
    )
    next_action_at = forms.DateTimeField(
        label=_("Next action"),
        required=False,
        widget=datetime_widget(),
        help_text=_("Empty means now."),
    )

    def __init__(self, *args: Any, owners: models.QuerySet[User] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if owners is not None:
            self.fields["owner"] = forms.ModelChoiceField(
                queryset=owners, label=_("Owner"), empty_label=None
            )


# Proposals --------------------------------------------------------------------------------


class ProposalForm(forms.Form):
    scope = forms.CharField(
        label=_("Scope"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text=_("What the client gets: the project definition."),
    )
    valid_until = forms.DateField(label=_("Valid until"), required=False, widget=date_widget())


class ProposalLineForm(forms.Form):
    description = forms.CharField(label=_("Description"), max_length=300, required=False)
    quantity = DecimalInputField(
        label=_("Quantity"), max_digits=12, decimal_places=3, min_value=0, initial=1
    )
    unit_price = MoneyField(
        label=_("Unit price"), required=False, help_text=_("Empty: the product's list price.")
    )
    discount = DecimalInputField(
        label=_("Discount %"),
        max_digits=5,
        decimal_places=2,
        min_value=0,
        max_value=100,
        initial=0,
        required=False,
    )

    def __init__(self, *args: Any, products: Sequence[Product], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["product"] = ObjectChoiceField(
            products, required=False, label=_("Product"), empty_label="—"
        )
        self.order_fields(["product", "description", "quantity", "unit_price", "discount"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        missing = not cleaned.get("product") and not (cleaned.get("description") or "").strip()
        if missing and not self.errors:
            raise ValidationError(gettext("Choose a product or write a description."))
        return cleaned

    def line(self) -> dict[str, Any] | None:
        """The line for the service, or None for an empty or deleted row."""
        data = getattr(self, "cleaned_data", None)
        if not data or data.get("DELETE"):
            return None
        product = data.get("product")
        unit_price = data.get("unit_price")
        if unit_price is None:
            unit_price = product.unit_price if product else 0
        return {
            "product": product,
            "description": data.get("description") or "",
            "quantity": data.get("quantity") if data.get("quantity") is not None else Decimal(1),
            "unit_price": unit_price,
            "discount": data.get("discount") or Decimal(0),
        }


ProposalLineFormSet = forms.formset_factory(ProposalLineForm, extra=3, can_delete=True)
