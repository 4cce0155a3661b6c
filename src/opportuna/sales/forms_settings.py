"""Forms of the settings screens. They read and check input; the views call the services.

Catalogue forms are model forms over an instance the view then hands to its `*_save`
service; nothing here calls `save()`.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from opportuna.accounts.models import Role, Team, User, VisibilityPolicy
from opportuna.sales.forms import MoneyField
from opportuna.sales.models import ActivityType, FieldKind, LostReason, Product, Tag


def probability_field(**kwargs: Any) -> forms.IntegerField:
    return forms.IntegerField(
        label=_("Default probability (%)"),
        min_value=0,
        max_value=100,
        widget=forms.NumberInput(attrs={"size": 4, "inputmode": "numeric"}),
        **kwargs,
    )


def row_auto_id(name: str, pk: Any) -> str:
    """Many forms of one kind on a page (one per row): ids stay unique, names stay plain."""
    return f"id_{name}{pk or 'new'}_%s"


# Pipelines and steps --------------------------------------------------------------------


class PipelineCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    steps = forms.CharField(
        label=_("Steps"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Lead: 10\nQualified: 25"}),
        help_text=_(
            "One step per line, in order, as “name: default probability”, e.g. “Lead: 10”. "
            "You can add steps later too."
        ),
    )

    def clean_steps(self) -> list[tuple[str, int]]:
        steps: list[tuple[str, int]] = []
        names: set[str] = set()
        for number, line in enumerate(self.cleaned_data["steps"].splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, probability = line.rpartition(":")
            name = name.strip()
            if not colon or not name or not re.fullmatch(r"\s*\d{1,3}\s*%?\s*", probability):
                raise forms.ValidationError(
                    _("Line %(number)d: write “name: probability”, e.g. “Lead: 10”."),
                    params={"number": number},
                )
            value = int(probability.strip().rstrip("%"))
            if value > 100:
                raise forms.ValidationError(
                    _("Line %(number)d: the probability must be between 0 and 100."),
                    params={"number": number},
                )
            if name.casefold() in names:
                raise forms.ValidationError(
                    _("Line %(number)d: “%(name)s” is listed twice."),
                    params={"number": number, "name": name},
                )
            names.add(name.casefold())
            steps.append((name, value))
        return steps


class PipelineForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    is_active = forms.BooleanField(
        label=_("Active"),
        required=False,
        help_text=_("An inactive pipeline keeps its opportunities but takes no new ones."),
    )


class StepForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    probability = probability_field()
    rot_days = forms.IntegerField(
        label=_("Days before rotting"),
        required=False,
        min_value=1,
        max_value=3650,
        widget=forms.NumberInput(attrs={"size": 4, "inputmode": "numeric"}),
        help_text=_("Empty: never."),
    )


class StepCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    probability = probability_field()


# Default fields -------------------------------------------------------------------------


class FieldDefinitionForm(forms.Form):
    label = forms.CharField(label=_("Label"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=FieldKind.choices, initial=FieldKind.TEXT)
    choices = forms.CharField(
        label=_("Choices"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("For a choice field: one allowed value per line."),
    )
    required = forms.BooleanField(label=_("Required"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.initial.get("choices"), list):
            self.initial["choices"] = "\n".join(str(c) for c in self.initial["choices"])

    def clean_choices(self) -> list[str]:
        lines = self.cleaned_data["choices"].splitlines()
        return [line.strip() for line in lines if line.strip()]


class FieldDefinitionEditForm(FieldDefinitionForm):
    is_active = forms.BooleanField(
        label=_("Active"),
        required=False,
        help_text=_("An inactive field is no longer shown or asked for; stored values stay."),
    )


# Catalogues -----------------------------------------------------------------------------


class ActivityTypeForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ActivityType
        fields = ("name", "position", "is_active")


class LostReasonForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = LostReason
        fields = ("name", "position", "is_active")


class ProductForm(forms.ModelForm):  # type: ignore[type-arg]
    unit_price = MoneyField(label=_("List price"), required=True)

    class Meta:
        model = Product
        fields = ("name", "unit_price", "is_active")


COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class TagForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Tag
        fields = ("name", "colour")
        widgets = {"colour": forms.TextInput(attrs={"type": "color"})}

    def clean_colour(self) -> str:
        colour = self.cleaned_data["colour"].strip()
        if not COLOUR.match(colour):
            raise forms.ValidationError(_("Pick a colour, such as #2457c5."))
        return colour.lower()


# People and the account -----------------------------------------------------------------


def language_choices() -> list[tuple[str, Any]]:
    return [("", _("Follow the browser")), *settings.LANGUAGES]


class TeamChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            queryset=Team.objects.order_by("name"),
            required=False,
            empty_label=_("No team"),
            label=_("Team"),
            **kwargs,
        )


class UserForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(
        label=_("Role"),
        choices=Role.choices,
        help_text=_(
            "Admins configure everything and see all opportunities; managers see and change "
            "their teams' opportunities; salespeople sell."
        ),
    )
    team = TeamChoiceField()
    language = forms.ChoiceField(label=_("Language"), choices=language_choices, required=False)
    is_active = forms.BooleanField(
        label=_("Active"),
        required=False,
        help_text=_("A deactivated user cannot log in; their opportunities stay."),
    )


class UserCreateForm(UserForm):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_("What they log in with. Letters, digits and @/./+/-/_ only."),
    )
    password1 = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Optional. Empty: the user cannot log in until a password is set in the admin."
        ),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    field_order = ["username", "first_name", "last_name", "email", "role", "team", "language"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["is_active"]  # a new user is active

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1", ""), cleaned.get("password2", "")
        if first or second:
            if first != second:
                self.add_error("password2", _("The two passwords differ."))
            else:
                candidate = User(
                    username=cleaned.get("username", ""),
                    email=cleaned.get("email", ""),
                    first_name=cleaned.get("first_name", ""),
                    last_name=cleaned.get("last_name", ""),
                )
                try:
                    password_validation.validate_password(first, candidate)
                except forms.ValidationError as error:
                    self.add_error("password1", error)
        return cleaned


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    managers = forms.ModelMultipleChoiceField(
        label=_("Managers"),
        queryset=User.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Managers see and change every opportunity of this team's members."),
    )

    def __init__(self, *args: Any, managers: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["managers"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = managers


class AccountForm(forms.Form):
    name = forms.CharField(label=_("Account name"), max_length=100)
    currency = forms.CharField(
        label=_("Currency"),
        min_length=3,
        max_length=3,
        widget=forms.TextInput(attrs={"size": 4, "autocapitalize": "characters"}),
        help_text=_("Three-letter ISO 4217 code, e.g. EUR. Amounts are not converted."),
    )
    visibility = forms.ChoiceField(
        label=_("Visibility policy"),
        choices=VisibilityPolicy.choices,
        widget=forms.RadioSelect,
    )
