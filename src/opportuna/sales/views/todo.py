from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path


@login_required
def todo(request: HttpRequest) -> HttpResponse:
    """Home: my next actions, overdue first (placeholder until the to-do screen lands)."""
    return render(request, "sales/todo.html", {})


urlpatterns = [path("", todo, name="todo")]
