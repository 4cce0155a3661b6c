"""The REST API under /api/v1/: authentication, error mapping, and each app's router.

Two ways in: a personal token (`Authorization: Bearer opp_...`) for scripts and integrations,
or the browser session for the pages' own calls, where unsafe methods need the CSRF token.
Errors keep one shape, `{"detail": ...}`: 401 unauthenticated, 403 not allowed (or a read-only
token writing, or CSRF), 404 unknown or outside the caller's view, 409 a sales rule, 412 a
stale or unreadable If-Match, 428 a missing If-Match, 422 a malformed request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI
from ninja.operation import Operation
from ninja.security import APIKeyCookie, HttpBearer

from opportuna.accounts.api import router as accounts_router
from opportuna.accounts.models import User
from opportuna.accounts.services import AccountRuleError
from opportuna.accounts.tokens import api_token_authenticate
from opportuna.insights.api import router as insights_router
from opportuna.sales.api import router as sales_router
from opportuna.sales.errors import ConflictError, SalesRuleError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BearerTokenAuth(HttpBearer):
    """A personal API token; a read-only one is refused (403) on anything but a read."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        api_token = api_token_authenticate(token)
        if api_token is None:
            return None
        if api_token.read_only and request.method not in SAFE_METHODS:
            raise PermissionDenied(_("This API token is read-only."))
        request.user = api_token.user
        return api_token.user


class SessionCsrfAuth(APIKeyCookie):
    """The logged-in browser session; unsafe methods must carry the CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __call__(self, request: HttpRequest) -> User | None:
        # A request that sends a token is judged by the token alone: no fallback, and a
        # bad token answers 401 rather than a confusing CSRF failure.
        if "HTTP_AUTHORIZATION" in request.META:
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_active:
            return None
        return super().__call__(request)  # checks CSRF, then authenticate()

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        return request.user  # type: ignore[return-value]


class OpportunaAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # View names are unique across the routers (`opportunity_list`, ...): short ids
        # make short method names in generated clients.
        return operation.view_func.__name__


api = OpportunaAPI(
    title="Opportuna API",
    version="1",
    description=(
        "Opportunities and what lives in them (contacts, comments, activities, proposals, "
        "tags, the event log), client folders, pipelines, catalogues, people and the "
        "forecast. Authenticate with a personal token (`opportuna create_token --user NAME`) "
        "sent as `Authorization: Bearer <token>`. Amounts are decimal strings in the account "
        "currency. Lists are keyset-paginated: follow `next_cursor`. Updates (PATCH) need "
        "`If-Match` with the ETag of a read (428 without, 412 when stale). 404: unknown or "
        "outside your view; 409: a sales rule; 422: a malformed request, with field details."
    ),
    urls_namespace="api",
    auth=[BearerTokenAuth(), SessionCsrfAuth()],
)


def _error(request: HttpRequest, status: int, detail: Any, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"detail": str(detail), **extra}, status=status)


@api.exception_handler(ObjectDoesNotExist)
def _not_found(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
    return _error(request, 404, _("Not found."))


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return _error(request, 403, str(exc) or _("You are not allowed to do this."))


@api.exception_handler(SalesRuleError)
def _sales_rule(request: HttpRequest, exc: SalesRuleError) -> HttpResponse:
    return _error(request, 409, exc.message, field=exc.field)


@api.exception_handler(ConflictError)
def _conflict(request: HttpRequest, exc: ConflictError) -> HttpResponse:
    return _error(request, 412, exc.message, current_version=exc.current_version)


@api.exception_handler(AccountRuleError)
def _account_rule(request: HttpRequest, exc: AccountRuleError) -> HttpResponse:
    return _error(request, 409, exc, field=exc.field)


api.add_router("/", sales_router)
api.add_router("/", accounts_router)
api.add_router("/", insights_router)
