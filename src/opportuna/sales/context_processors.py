from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

# (url name, label): the main navigation, in order. Screens not built yet are skipped.
NAVIGATION = [
    ("sales:todo", _("To-do")),
    ("sales:board", _("Pipeline")),
    ("sales:opportunity_list", _("Opportunities")),
    ("sales:client_list", _("Clients")),
    ("insights:forecast", _("Forecast")),
    ("sales:settings", _("Settings")),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The main navigation links; the current one is marked for screen readers and styles."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    links = []
    for name, label in NAVIGATION:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        active = request.path == url or (url != "/" and request.path.startswith(url))
        links.append({"url": url, "label": label, "active": active})
    return {"nav_links": links}
