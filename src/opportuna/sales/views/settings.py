"""Settings: the index of sections; each section's views live in a `settings_*` module.

Admins configure everything; managers only read their teams' users; salespeople get 403.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from opportuna.accounts.models import Account
from opportuna.sales.views import (
    settings_catalogues,
    settings_people,
    settings_pipelines,
)
from opportuna.sales.views.settings_common import section_links


@login_required
@require_GET
def settings_index(request: HttpRequest) -> HttpResponse:
    """The settings sections an admin may open; a manager gets the one they may read."""
    user = request.user
    if user.is_admin:
        context = {"sections": section_links(), "account": Account.load()}
    elif user.is_manager:
        context = {
            "sections": [
                {
                    "url": reverse("sales:settings_users"),
                    "title": _("Your team's users"),
                    "description": _("Who is in the teams you manage (read-only)."),
                }
            ],
            "account": None,
        }
    else:
        raise PermissionDenied(_("Only admins and managers can open the settings."))
    return render(request, "sales/settings.html", context)


urlpatterns = [
    path("settings/", settings_index, name="settings"),
    *settings_pipelines.urlpatterns,
    *settings_catalogues.urlpatterns,
    *settings_people.urlpatterns,
]
