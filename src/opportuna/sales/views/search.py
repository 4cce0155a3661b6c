"""Search: one box over titles, client folders, descriptions, fields, contacts and comments."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import urlencode
from django.views.decorators.vary import vary_on_headers

from opportuna.sales.selectors.search import GROUP_LIMIT, search_everything
from opportuna.sales.views.opportunity_list import opportunity_url

MAX_QUERY = 200


@login_required
@vary_on_headers("HX-Request")
def search(request: HttpRequest) -> HttpResponse:
    """Grouped results for `?q=`, only what the user may see; htmx gets the results alone."""
    text = request.GET.get("q", "").strip()[:MAX_QUERY]
    results = search_everything(user=request.user, text=text)  # type: ignore[arg-type]
    for hit in [*results.titles, *results.elsewhere]:
        hit.url = opportunity_url(hit.pk)  # type: ignore[attr-defined]
    context = {
        "text": text,
        "results": results,
        "group_limit": GROUP_LIMIT,
        "list_url": f"{reverse('sales:opportunity_list')}?{urlencode({'q': text})}",
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "sales/search.html#results", context)
    return render(request, "sales/search.html", context)


urlpatterns = [path("search/", search, name="search")]
