"""The accounts API: who works here (users, teams) and the caller's own API tokens.

Everyone signed in may read users and teams: opportunities, forecasts and filters name them
by id. Only admins create teams; users are managed on the settings screens (a password does
not belong in an API body). Tokens are the caller's own: another user's answers 404.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Status
from ninja.errors import ValidationError

from opportuna.accounts import services
from opportuna.accounts.models import ApiToken, Team, User
from opportuna.accounts.schemas import (
    MALFORMED,
    NOT_FOUND,
    READ_ERRORS,
    UNAUTHENTICATED,
    WRITE_ERRORS,
    ErrorOut,
    TeamIn,
    TeamOut,
    TokenOut,
    UserOut,
)
from opportuna.accounts.tokens import api_token_revoke

router = Router(tags=["people"])


def _actor(request: HttpRequest) -> User:
    return request.auth  # type: ignore[attr-defined,no-any-return]


# Reads: each one query ---------------------------------------------------------------------


def api_users(*, active: bool | None = None) -> QuerySet[User]:
    """Every user (inactive ones still own old opportunities), by name."""
    users = User.objects.order_by("first_name", "last_name", "username", "pk")
    return users if active is None else users.filter(is_active=active)


def api_teams() -> QuerySet[Team]:
    """Every team with its managers' ids (2 queries)."""
    return Team.objects.order_by("name", "pk").prefetch_related(
        Prefetch("managers", queryset=User.objects.only("pk"))
    )


def api_tokens(*, user: User) -> QuerySet[ApiToken]:
    """The caller's own tokens, newest first, revoked ones included."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


# Users and teams -------------------------------------------------------------------------


@router.get(
    "/users",
    response={200: list[UserOut], **READ_ERRORS},
    url_name="user_list",
    summary="Users, by name",
)
def user_list(request: HttpRequest, active: bool | None = None) -> list[User]:
    return list(api_users(active=active))


@router.get(
    "/users/me",
    response={200: UserOut, **UNAUTHENTICATED},
    url_name="user_me",
    summary="The caller",
)
def user_me(request: HttpRequest) -> User:
    return _actor(request)


@router.get(
    "/users/{user_id}",
    response={200: UserOut, **READ_ERRORS, **NOT_FOUND},
    url_name="user_get",
    summary="One user",
)
def user_detail(request: HttpRequest, user_id: int) -> User:
    return api_users().get(pk=user_id)


@router.get(
    "/teams",
    response={200: list[TeamOut], **UNAUTHENTICATED},
    url_name="team_list",
    summary="Teams with their managers",
)
def team_list(request: HttpRequest) -> list[Team]:
    return list(api_teams())


@router.post(
    "/teams",
    response={201: TeamOut, **WRITE_ERRORS},
    url_name="team_create",
    summary="Create a team (admins)",
)
def team_create(request: HttpRequest, payload: TeamIn) -> Status[Team]:
    managers = {user.pk: user for user in User.objects.filter(pk__in=payload.managers)}
    unknown = [pk for pk in payload.managers if pk not in managers]
    if unknown:
        raise ValidationError(
            [
                {
                    "type": "not_found",
                    "loc": ["body", "payload", "managers"],
                    "msg": _("No user with id %(id)s.") % {"id": unknown[0]},
                }
            ]
        )
    team = services.team_create(
        actor=_actor(request), name=payload.name, managers=managers.values()
    )
    return Status(201, team)


# Tokens ----------------------------------------------------------------------------------


@router.get(
    "/tokens",
    response={200: list[TokenOut], **UNAUTHENTICATED},
    url_name="token_list",
    summary="Your API tokens (never their secret)",
    tags=["tokens"],
)
def token_list(request: HttpRequest) -> list[ApiToken]:
    return list(api_tokens(user=_actor(request)))


@router.post(
    "/tokens/{token_id}/revoke",
    response={200: TokenOut, **UNAUTHENTICATED, 403: ErrorOut, **NOT_FOUND, **MALFORMED},
    url_name="token_revoke",
    summary="Revoke one of your API tokens at once",
    tags=["tokens"],
)
def token_revoke(request: HttpRequest, token_id: int) -> ApiToken:
    actor = _actor(request)
    token = api_tokens(user=actor).select_related("user").get(pk=token_id)
    return api_token_revoke(actor=actor, token=token)
