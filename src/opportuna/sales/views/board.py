"""Pipeline board: one column per step, drag (or "move to") a card, totals per column, filters.

The URL holds the pipeline and the filters, so a board can be shared and the back button
works. Columns load 25 cards at a time with a keyset cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from opportuna.accounts.models import Account, User
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Client, Opportunity, Pipeline, Step
from opportuna.sales.selectors import visible_clients, visible_opportunities
from opportuna.sales.selectors.board import (
    EMPTY_TOTALS,
    BoardFilters,
    ColumnTotals,
    Cursor,
    Page,
    board_card,
    board_column_page,
    board_filter_choices,
    board_first_pages,
    board_pipelines,
    board_step,
    board_steps,
    board_totals,
)
from opportuna.sales.services import opportunity_move


@dataclass(frozen=True)
class Column:
    step: Step
    totals: ColumnTotals
    page: Page
    more_url: str


def _query(pipeline: Pipeline | int, filters: BoardFilters, **extra: str) -> str:
    """The board's query string: pipeline first, then the filters, then `extra`."""
    pipeline_id = pipeline if isinstance(pipeline, int) else pipeline.pk
    return urlencode({"pipeline": pipeline_id, **filters.as_query(), **extra})


def _more_url(step: Step, filters: BoardFilters, cursor: Cursor | None) -> str:
    if cursor is None:
        return ""
    query = _query(step.pipeline_id, filters, step=str(step.pk), after=str(cursor))
    return f"{reverse('sales:board_column')}?{query}"


def _chosen_pipeline(request: HttpRequest, pipelines: list[Pipeline]) -> Pipeline | None:
    """The pipeline in the URL (404 if unknown), else the first active one."""
    raw = request.GET.get("pipeline", "")
    if not raw:
        return pipelines[0] if pipelines else None
    if not raw.isdigit():
        raise Http404
    for pipeline in pipelines:
        if pipeline.pk == int(raw):
            return pipeline
    # An inactive pipeline still shows its open opportunities when asked for by id.
    return get_object_or_404(Pipeline, pk=int(raw))


def _wants_partial(request: HttpRequest) -> bool:
    # A history restore needs the whole page, even though htmx asks for it.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _columns_context(
    *, user: User, pipeline: Pipeline, steps: list[Step], filters: BoardFilters
) -> dict[str, Any]:
    """The columns with their totals (1 aggregate) and first cards (1 query + 1 for tags)."""
    totals = board_totals(user=user, pipeline=pipeline, filters=filters)
    pages = board_first_pages(user=user, pipeline=pipeline, steps=steps, filters=filters)
    columns = [
        Column(
            step,
            totals.get(step.pk, EMPTY_TOTALS),
            pages[step.pk],
            _more_url(step, filters, pages[step.pk].next),
        )
        for step in steps
    ]
    return {
        "columns": columns,
        "grand": ColumnTotals(
            sum(c.totals.count for c in columns),
            sum(c.totals.amount for c in columns),
            sum(c.totals.weighted for c in columns),
        ),
    }


def _common(pipeline: Pipeline, steps: list[Step], filters: BoardFilters) -> dict[str, Any]:
    return {
        "pipeline": pipeline,
        "steps": steps,
        "filters": filters,
        "board_query": _query(pipeline, filters),
        "now": timezone.now(),
        "currency": Account.load().currency,  # 1 query
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def board(request: HttpRequest) -> HttpResponse:
    """The board of one pipeline; htmx filter changes get the columns only."""
    user = request.user
    pipelines = board_pipelines()  # 1 query
    pipeline = _chosen_pipeline(request, pipelines)
    filters = BoardFilters.from_query(request.GET)
    if pipeline is None:
        return render(request, "sales/board.html", {"pipelines": [], "filters": filters})
    steps = board_steps(pipeline=pipeline)  # 1 query
    context = {
        **_common(pipeline, steps, filters),
        **_columns_context(user=user, pipeline=pipeline, steps=steps, filters=filters),
        "pipelines": pipelines,
    }
    if _wants_partial(request):
        return render(request, "sales/board.html#board-body", context)
    client: Client | None = None
    if filters.client is not None:
        client = visible_clients(user).filter(pk=filters.client).first()  # 1 query, if asked
    context.update({"choices": board_filter_choices(user=user), "client": client})
    return render(request, "sales/board.html", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def board_column(request: HttpRequest) -> HttpResponse:
    """The next cards of one column after a keyset cursor; a plain page without htmx."""
    raw_step = request.GET.get("step", "")
    if not raw_step.isdigit():
        return HttpResponseBadRequest(_("Which step?"))
    try:
        step = board_step(pk=int(raw_step))  # 1 query
    except Step.DoesNotExist:
        raise Http404 from None
    try:
        cursor = Cursor.parse(request.GET["after"]) if request.GET.get("after") else None
    except ValueError:
        return HttpResponseBadRequest(_("Bad cursor."))
    filters = BoardFilters.from_query(request.GET)
    page = board_column_page(user=request.user, step=step, filters=filters, cursor=cursor)
    steps = board_steps(pipeline=step.pipeline)  # 1 query: the "move to" choices
    context = {
        **_common(step.pipeline, steps, filters),
        "step": step,
        "page": page,
        "more_url": _more_url(step, filters, page.next),
    }
    if _wants_partial(request):
        return render(request, "sales/board.html#column-cards", context)
    return render(request, "sales/board_column.html", context)


@login_required
@require_POST
@vary_on_headers("HX-Request")
def board_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Move a card to another step; the filters of the board come along in the query string.

    htmx gets the card for its new column and every column's fresh totals (out of band);
    a plain form gets redirected back to the board with the same filters.
    """
    user = request.user
    opportunity = get_object_or_404(visible_opportunities(user), pk=pk)
    filters = BoardFilters.from_query(request.GET)
    raw_step = request.POST.get("step", "")
    step = Step.objects.filter(pk=int(raw_step)).first() if raw_step.isdigit() else None
    error = ""
    if step is None:
        error = _("Choose the step to move it to.")
    else:
        try:
            # PermissionDenied (a teammate who may only look) becomes a 403.
            opportunity = opportunity_move(opportunity=opportunity, step=step, actor=user)
        except SalesRuleError as exc:
            error = str(exc.message)
    if not _wants_partial(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(
                request,
                _("“%(title)s” moved to %(step)s.")
                % {"title": opportunity.title, "step": step.name if step else ""},
            )
        board_url = reverse("sales:board")
        return redirect(f"{board_url}?{_query(opportunity.pipeline_id, filters)}")
    return _move_response(request, opportunity, filters, error)


def _move_response(
    request: HttpRequest, opportunity: Opportunity, filters: BoardFilters, error: str
) -> HttpResponse:
    user = request.user
    try:
        card = board_card(user=user, pk=opportunity.pk)  # 1 query + 1 for its tags
    except Opportunity.DoesNotExist:
        raise Http404 from None
    pipeline = Pipeline(pk=card.pipeline_id)
    steps = board_steps(pipeline=pipeline)  # 1 query
    context = {**_common(pipeline, steps, filters), "opp": card, "move_error": error}
    if error:
        return render(request, "sales/board.html#card", context, status=422)
    totals = board_totals(user=user, pipeline=pipeline, filters=filters)  # 1 aggregate
    context["columns"] = [
        Column(step, totals.get(step.pk, EMPTY_TOTALS), Page([], None), "") for step in steps
    ]
    context["grand"] = ColumnTotals(
        sum(c.totals.count for c in context["columns"]),
        sum(c.totals.amount for c in context["columns"]),
        sum(c.totals.weighted for c in context["columns"]),
    )
    context["moved"] = True
    response = render(request, "sales/board.html#moved", context)
    response["HX-Trigger"] = "opportunityMoved"
    return response


urlpatterns = [
    path("board/", board, name="board"),
    path("board/column/", board_column, name="board_column"),
    path("board/move/<int:pk>/", board_move, name="board_move"),
]
