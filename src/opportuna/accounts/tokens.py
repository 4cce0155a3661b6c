"""Personal API tokens: create, revoke, and authenticate a bearer token.

A token reads `opp_<prefix>_<secret>`. Only its SHA-256 is stored: the secret is 256 random
bits, so a fast hash is enough (nothing to brute-force), and the public prefix finds the row
without scanning. The full token is returned once, by `api_token_create`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from opportuna.accounts.models import ApiToken, User
from opportuna.accounts.services import AccountRuleError

TOKEN_PREFIX = "opp"  # noqa: S105 (a public marker that makes tokens easy to spot, not a secret)
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _split(raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed token, else None."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 8 or not parts[2]:
        return None
    return parts[1], parts[2]


def _may_manage(actor: User | None, user: User) -> None:
    if actor is None:
        return
    if not actor.is_active or not (actor.pk == user.pk or actor.is_admin):
        raise PermissionDenied(_("You can only manage your own API tokens."))


def api_token_create(
    *,
    actor: User | None,
    user: User,
    name: str = "",
    read_only: bool = False,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user` and its full text, shown only now; `actor=None` for commands."""
    _may_manage(actor, user)
    if not user.is_active:
        raise AccountRuleError(_("A deactivated user cannot get an API token."), field="user")
    name = name.strip()
    if len(name) > 100:
        raise AccountRuleError(_("The name is too long (100 characters at most)."), field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise AccountRuleError(_("The expiry must be in the future."), field="expires_at")
    # 8 hex characters: a clash is rare, and the unique index turns it into a retry.
    for _attempt in range(5):
        prefix = secrets.token_hex(4)
        raw = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    hash=token_hash(raw),
                    read_only=read_only,
                    expires_at=expires_at,
                )
        except IntegrityError:
            continue
        return token, raw
    raise RuntimeError("could not find a free token prefix")


@transaction.atomic
def api_token_revoke(*, actor: User | None, token: ApiToken) -> ApiToken:
    """Revoke a token at once; revoking it again keeps the first revocation time."""
    _may_manage(actor, token.user)
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_authenticate(raw: str, *, now: datetime | None = None) -> ApiToken | None:
    """The usable token `raw` stands for, with its active user loaded; None otherwise."""
    parts = _split(raw)
    if parts is None:
        return None
    prefix, _secret = parts
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.hash, token_hash(raw.strip())):
        return None
    now = now or timezone.now()
    if not token.is_usable_at(now) or not token.user.is_active:
        return None
    threshold = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at <= threshold:
        # Conditional, so concurrent requests write at most once a minute between them.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=threshold)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
