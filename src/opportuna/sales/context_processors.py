from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

# (url name, label): the main navigation, in order. Screens not built yet are skipped.
NAVIGATION = [
    ("sales:todo", _("To-do")),
    ("sales:board", _("Pipeline")),
    ("sales:opportunity_list", _("Opportunities")),
    ("sales:client_list", _("Clients")),
    ("insights:forecast", _("Forecast")),
    ("insights:statistics", _("Statistics")),
    ("sales:settings", _("Settings")),
]


def navigation(request: HttpRequest) -> dict[str, Any]:
    """The main navigation links; the current one is marked for screen readers and styles."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    links = []
    for name, label in NAVIGATION:
        if name == "sales:settings" and not (user.is_admin or user.is_manager):
            continue  # salespeople have no settings to open (the page answers 403)
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        active = request.path == url or (url != "/" and request.path.startswith(url))
        link: dict[str, Any] = {"url": url, "label": label, "active": active}
        if name == "sales:todo":
            link["count"] = _due_count(user)
        links.append(link)
    return {"nav_links": links}


def _due_count(user: Any) -> SimpleLazyObject:
    """My overdue and today's next actions; one COUNT, run only if a template shows it."""
    from opportuna.sales.selectors.todo import todo_due_count

    return SimpleLazyObject(lambda: todo_due_count(user=user))
