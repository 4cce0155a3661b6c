"""What every sales endpoint shares: the caller, ids to objects, ETags, and declared errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.db import models
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Header
from ninja.errors import HttpError, ValidationError

from opportuna.accounts.models import User
from opportuna.accounts.schemas import (
    MALFORMED,
    NOT_FOUND,
    READ_ERRORS,
    UNAUTHENTICATED,
    WRITE_ERRORS,
    ErrorOut,
    RuleErrorOut,
)
from opportuna.sales.schemas import ConflictOut

M = TypeVar("M", bound=models.Model)

__all__ = [
    "MALFORMED",
    "NOT_FOUND",
    "READ_ERRORS",
    "UNAUTHENTICATED",
    "WRITE_ERRORS",
]

# A write on something with an id in the path: it may not exist, and may be stale.
ACTION_ERRORS: dict[int, Any] = {**WRITE_ERRORS, **NOT_FOUND, 412: ConflictOut}
# A POST or DELETE without a body on something with an id in the path.
COMMAND_ERRORS: dict[int, Any] = {**UNAUTHENTICATED, 403: ErrorOut, **NOT_FOUND, **MALFORMED}
# The same, when a sales rule may refuse it.
RULED_COMMAND_ERRORS: dict[int, Any] = {**COMMAND_ERRORS, 409: RuleErrorOut}
# A write on something with an id in the path, without If-Match.
TARGET_ERRORS: dict[int, Any] = {**WRITE_ERRORS, **NOT_FOUND}
# An update: If-Match is required.
UPDATE_ERRORS: dict[int, Any] = {**ACTION_ERRORS, 428: ErrorOut}
# A read of one object by id.
GET_ERRORS: dict[int, Any] = {**READ_ERRORS, **NOT_FOUND}

ETAG_HEADER = {
    "headers": {
        "ETag": {
            "description": "Send it back in If-Match to change this object.",
            "schema": {"type": "string"},
        }
    }
}
CREATED_HEADERS = {
    "headers": {
        **ETAG_HEADER["headers"],
        "Location": {"description": "The new object's URL.", "schema": {"type": "string"}},
    }
}
IF_MATCH_OPTIONAL = (
    "Optional: the ETag of your last read. When given and stale, the answer is 412 and "
    "nothing changes."
)
IF_MATCH_REQUIRED = (
    "Required: the ETag of your last read. Without it the answer is 428; when stale, 412 and "
    "nothing changes."
)
IfMatch = Header(None, alias="If-Match", description=IF_MATCH_OPTIONAL)
IfMatchRequired = Header(None, alias="If-Match", description=IF_MATCH_REQUIRED)
_VERSION_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,18})"\s*')
_ANY_ETAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*')


def actor(request: HttpRequest) -> User:
    return request.auth  # type: ignore[attr-defined,no-any-return]


# Ids in the body -------------------------------------------------------------------------


def invalid(loc: Sequence[str | int], message: str, kind: str = "value_error") -> ValidationError:
    """A 422 naming where in the request the problem is."""
    return ValidationError([{"type": kind, "loc": list(loc), "msg": message}])


def _unknown(model: type[models.Model], pk: int) -> str:
    return _("No %(model)s with id %(id)s.") % {"model": model._meta.verbose_name, "id": pk}


def ref(queryset: models.QuerySet[M], pk: int, *field: str | int) -> M:
    """The object `pk` names in the body, or a 422 naming the field (path in the body)."""
    try:
        return queryset.get(pk=pk)
    except queryset.model.DoesNotExist as exc:
        loc = ["body", "payload", *field]
        raise invalid(loc, _unknown(queryset.model, pk), "not_found") from exc


def maybe_ref(queryset: models.QuerySet[M], pk: int | None, *field: str | int) -> M | None:
    return None if pk is None else ref(queryset, pk, *field)


def refs(queryset: models.QuerySet[M], pks: Iterable[int], *field: str | int) -> list[M]:
    """The objects named by a list of ids, in that order, in one query; 422 for an unknown one."""
    wanted = list(pks)
    found = queryset.in_bulk(wanted)
    for index, pk in enumerate(wanted):
        if pk not in found:
            loc = ["body", "payload", *field, index]
            raise invalid(loc, _unknown(queryset.model, pk), "not_found")
    return [found[pk] for pk in wanted]


def cursor_error() -> ValidationError:
    return invalid(["query", "cursor"], _("Invalid cursor."))


# Opportunity versions: W/"<version>" ------------------------------------------------------


def optional_version(if_match: str | None) -> int | None:
    """The version an If-Match names; None without one; 412 when it is not one ETag."""
    if if_match is None or not if_match.strip():
        return None
    match = _VERSION_ETAG.fullmatch(if_match)
    if match is None:
        raise HttpError(412, _('If-Match must be one ETag from a read, like W/"3".'))
    return int(match.group(1))


def required_version(if_match: str | None) -> int:
    version = optional_version(if_match)
    if version is None:
        raise HttpError(428, _("Send If-Match with the ETag of your last read."))
    return version


def with_etag(response: HttpResponse, obj: Any) -> Any:
    """Set the ETag of an opportunity (its version) or of another object (its content)."""
    version = getattr(obj, "version", None)
    response["ETag"] = f'W/"{version}"' if isinstance(version, int) else content_etag(obj)
    return obj


# Objects without a version: the ETag is a digest of what the API shows -------------------

CONTENT_FIELDS: dict[str, tuple[str, ...]] = {
    "Client": (
        "name",
        "vat_number",
        "email",
        "phone",
        "website",
        "address",
        "city",
        "country",
        "notes",
        "external_id",
    ),
    "Contact": ("name", "role", "email", "phone", "position"),
}


def content_etag(obj: models.Model) -> str:
    values = [getattr(obj, name) for name in CONTENT_FIELDS[type(obj).__name__]]
    digest = hashlib.sha256(json.dumps([obj.pk, *values], default=str).encode()).hexdigest()
    return f'W/"{digest[:20]}"'


def check_content_etag(obj: models.Model, if_match: str | None, *, required: bool) -> None:
    """428 without If-Match (when required), 412 when it does not match `obj` as it is now."""
    if if_match is None or not if_match.strip():
        if required:
            raise HttpError(428, _("Send If-Match with the ETag of your last read."))
        return
    match = _ANY_ETAG.fullmatch(if_match)
    if match is None:
        raise HttpError(412, _("If-Match must be one ETag from a read."))
    if f'W/"{match.group(1)}"' != content_etag(obj):
        raise HttpError(412, _("Someone else changed this since you read it."))
