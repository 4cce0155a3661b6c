"""What the settings views share: the admin gate, refusals as form errors, the sections."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

View = Callable[..., HttpResponse]

# (url name, catalogue kind or "", title, what it holds): the settings index and the side
# navigation, in order.
SECTIONS: list[tuple[str, str, Any, Any]] = [
    (
        "sales:settings_pipelines",
        "",
        gettext_lazy("Pipelines and steps"),
        gettext_lazy("The stages an opportunity goes through and their default probability."),
    ),
    (
        "sales:settings_fields",
        "",
        gettext_lazy("Default fields"),
        gettext_lazy("The structured block shown above the description of every opportunity."),
    ),
    (
        "sales:settings_catalogue",
        "activity-types",
        gettext_lazy("Activity types"),
        gettext_lazy("Calls, visits, demos…: what salespeople log."),
    ),
    (
        "sales:settings_catalogue",
        "lost-reasons",
        gettext_lazy("Lost reasons"),
        gettext_lazy("Why an opportunity was lost, as a closed list."),
    ),
    (
        "sales:settings_catalogue",
        "products",
        gettext_lazy("Products"),
        gettext_lazy("The products and services you sell, with their list price."),
    ),
    (
        "sales:settings_catalogue",
        "tags",
        gettext_lazy("Tags"),
        gettext_lazy("Free labels and their colour."),
    ),
    (
        "sales:settings_users",
        "",
        gettext_lazy("Users"),
        gettext_lazy("Who logs in, their role and team."),
    ),
    (
        "sales:settings_teams",
        "",
        gettext_lazy("Teams"),
        gettext_lazy("Teams and who manages them."),
    ),
    (
        "sales:settings_account",
        "",
        gettext_lazy("Account"),
        gettext_lazy("Name, currency and who sees which opportunities."),
    ),
]


def section_links(current: str = "") -> list[dict[str, Any]]:
    """The settings sections as links; `current` is the url name or catalogue kind shown."""
    links = []
    for name, kind, title, description in SECTIONS:
        url = reverse(name, kwargs={"kind": kind} if kind else None)
        key = kind or name.removeprefix("sales:")
        links.append(
            {"url": url, "title": title, "description": description, "current": key == current}
        )
    return links


def admin_required(view: View) -> View:
    """Only an admin passes (403 otherwise); put it under `login_required`."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_admin:
            raise PermissionDenied(_("Only an admin can change the settings."))
        return view(request, *args, **kwargs)

    return wrapper


def render_settings(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    current: str = "",
) -> HttpResponse:
    """Render a settings page with the sections' side navigation (none in partials)."""
    nav = section_links(current) if request.user.is_admin and "#" not in template else []
    return render(request, template, {**context, "settings_nav": nav}, status=status)


def refuse(form: forms.Form, error: Exception) -> None:
    """Show a service's refusal on the form: on its field when it names one of the form's."""
    field = getattr(error, "field", None)
    form.add_error(field if field in form.fields else None, str(error))
