"""Writes on people and the account: users, teams, roles and the visibility policy (admins)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from opportuna.accounts.models import Account, Role, Team, User, VisibilityPolicy


class AccountRuleError(Exception):
    """A rule about people or the account was broken; the message is for users."""

    def __init__(self, message: Any, *, field: str | None = None) -> None:
        super().__init__(str(message))
        self.field = field


def _require_admin(actor: User) -> None:
    if not actor.is_admin:
        raise PermissionDenied(_("Only an admin can manage users, teams and the account."))


def _validated_save(instance: Any) -> Any:
    try:
        instance.full_clean(exclude=["password"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise AccountRuleError(" ".join(messages), field=field) from exc
    instance.save()
    return instance


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    username: str,
    password: str | None = None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    role: str = Role.SALESPERSON,
    team: Team | None = None,
    language: str = "",
) -> User:
    """Create a user; `actor=None` only for bootstrap commands (demo, first admin)."""
    if actor is not None:
        _require_admin(actor)
    if role not in Role.values:
        raise AccountRuleError(_("Unknown role."), field="role")
    user = User(
        username=username.strip(),
        email=email.strip(),
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        role=role,
        team=team,
        language=language,
        is_staff=role == Role.ADMIN,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    return _validated_save(user)


@transaction.atomic
def user_update(*, user: User, actor: User, **values: Any) -> User:
    """Change a user's name, email, role, team, language or active flag."""
    allowed = {"email", "first_name", "last_name", "role", "team", "language", "is_active"}
    unknown = set(values) - allowed
    if unknown:
        raise TypeError(f"user_update cannot change {sorted(unknown)}")
    own_profile_fields = {"first_name", "last_name", "email", "language"}
    if not (actor.pk == user.pk and set(values) <= own_profile_fields):
        _require_admin(actor)
    if values.get("role", user.role) not in Role.values:
        raise AccountRuleError(_("Unknown role."), field="role")
    if actor.pk == user.pk and (
        values.get("is_active") is False or values.get("role", user.role) != user.role
    ):
        raise AccountRuleError(_("You cannot deactivate yourself or change your own role."))
    for key, value in values.items():
        setattr(user, key, value)
    user.is_staff = user.role == Role.ADMIN or user.is_superuser
    user = _validated_save(user)
    if user.role not in (Role.MANAGER, Role.ADMIN):
        # A team's managers must have the manager or admin role (see team_set_managers).
        user.managed_teams.clear()
    return user


@transaction.atomic
def team_create(*, actor: User, name: str, managers: Iterable[User] = ()) -> Team:
    """Create a team, optionally with its managers."""
    _require_admin(actor)
    team = _validated_save(Team(name=name.strip()))
    team_set_managers(team=team, actor=actor, managers=managers)
    return team


@transaction.atomic
def team_update(*, team: Team, actor: User, name: str) -> Team:
    """Rename a team."""
    _require_admin(actor)
    team.name = name.strip()
    return _validated_save(team)


@transaction.atomic
def team_set_managers(*, team: Team, actor: User, managers: Iterable[User]) -> Team:
    """Set who manages a team; each must have the manager or admin role."""
    _require_admin(actor)
    managers = list(managers)
    for manager in managers:
        if manager.role not in (Role.MANAGER, Role.ADMIN):
            raise AccountRuleError(
                _("%(user)s is not a manager.") % {"user": manager}, field="managers"
            )
    team.managers.set(managers)
    return team


@transaction.atomic
def account_update(
    *,
    actor: User,
    name: str | None = None,
    currency: str | None = None,
    visibility: str | None = None,
) -> Account:
    """Change the account's name, currency or visibility policy."""
    _require_admin(actor)
    account = Account.load()
    if name is not None:
        account.name = name.strip()
    if currency is not None:
        account.currency = currency.strip().upper()
        if not (
            len(account.currency) == 3 and account.currency.isascii() and account.currency.isalpha()
        ):
            raise AccountRuleError(_("Use a three-letter ISO currency code."), field="currency")
    if visibility is not None:
        if visibility not in VisibilityPolicy.values:
            raise AccountRuleError(_("Unknown visibility policy."), field="visibility")
        account.visibility = visibility
    return _validated_save(account)
