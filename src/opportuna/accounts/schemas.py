"""What the API says about people and tokens, and the error shapes every router shares.

The error schemas live here, in the lowest app with an API, so that `sales` and `insights`
routers can declare them without `accounts` ever importing `sales`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import ConfigDict, Field, model_validator

from opportuna.accounts.models import ApiToken, Role, Team, User

# Errors ----------------------------------------------------------------------------------


class ErrorOut(Schema):
    detail: str


class RuleErrorOut(Schema):
    detail: str
    field: str | None = Field(None, description="The input field the rule is about, if any.")


class ValidationErrorItem(Schema):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorOut(Schema):
    detail: list[ValidationErrorItem]


# Every status code an operation can answer, so the OpenAPI document is true.
UNAUTHENTICATED: dict[int, Any] = {401: ErrorOut}
MALFORMED: dict[int, Any] = {422: ValidationErrorOut}
NOT_FOUND: dict[int, Any] = {404: ErrorOut}
READ_ERRORS: dict[int, Any] = {**UNAUTHENTICATED, **MALFORMED}
WRITE_ERRORS: dict[int, Any] = {
    400: ErrorOut,  # a body that is not JSON
    **UNAUTHENTICATED,
    403: ErrorOut,  # not allowed, read-only token, or missing CSRF token on a session
    409: RuleErrorOut,
    **MALFORMED,
}


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class InSchema(Schema):
    """A request body: a misspelt field is an error, not silently ignored; no NUL characters
    (PostgreSQL cannot store them, so they are refused here on every database)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text may not contain NUL characters")
        return data


# People ----------------------------------------------------------------------------------


class UserOut(Schema):
    id: int
    username: str
    first_name: str
    last_name: str
    full_name: str
    email: str
    role: Role
    team: int | None
    is_active: bool

    @staticmethod
    def resolve_id(obj: User) -> int:
        return obj.pk

    @staticmethod
    def resolve_full_name(obj: User) -> str:
        return obj.get_full_name() or obj.username

    @staticmethod
    def resolve_team(obj: User) -> int | None:
        return obj.team_id


class TeamOut(Schema):
    id: int
    name: str
    managers: list[int]

    @staticmethod
    def resolve_id(obj: Team) -> int:
        return obj.pk

    @staticmethod
    def resolve_managers(obj: Team) -> list[int]:
        return sorted(manager.pk for manager in obj.managers.all())


class TeamIn(InSchema):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]
    managers: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        default_factory=list, max_length=100, description="User ids with the manager role."
    )


class TokenOut(Schema):
    id: int
    name: str
    prefix: str = Field(description="The public part of the token: opp_<prefix>_...")
    read_only: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @staticmethod
    def resolve_id(obj: ApiToken) -> int:
        return obj.pk
