"""Writes of insights: sales targets. Admins set any; managers their teams and their people."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.translation import gettext as _

from opportuna.accounts.models import Team, User
from opportuna.accounts.selectors import users_managed_by
from opportuna.insights.models import Target, parse_period_key

# A target above this (in cents) is a typing mistake, and would not fit a spreadsheet cell.
MAX_TARGET_CENTS = 10**15


class InsightsRuleError(Exception):
    """A rule about targets was broken; the message is for users."""

    def __init__(self, message: Any, *, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        self.field = field


def can_set_target(actor: User, *, team: Team | None = None, user: User | None = None) -> bool:
    """Admins: any target. Managers: their teams' and their people's. Nobody else."""
    if not actor.is_active:
        return False
    if actor.is_admin:
        return True
    if not actor.is_manager or (team is None and user is None):
        return False  # the company's target is for admins only
    if team is not None:
        return actor.managed_teams.filter(pk=team.pk).exists()
    assert user is not None
    return users_managed_by(actor).filter(pk=user.pk).exists()


def _check(actor: User, team: Team | None, user: User | None) -> None:
    if team is not None and user is not None:
        raise InsightsRuleError(_("A target is for a team or a person, not both."), field="scope")
    if not can_set_target(actor, team=team, user=user):
        raise PermissionDenied(_("You may not set this target."))


@transaction.atomic
def target_set(
    *,
    actor: User,
    period_key: str,
    amount: int,
    team: Team | None = None,
    user: User | None = None,
) -> Target:
    """Set (create or replace) the target of one period for a team, a user or the company."""
    _check(actor, team, user)
    try:
        kind, _first_day = parse_period_key(period_key)
    except ValueError:
        raise InsightsRuleError(_("Choose a month, quarter or year."), field="period") from None
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount is integer cents")
    if amount < 0:
        raise InsightsRuleError(_("A target cannot be negative."), field="amount")
    if amount > MAX_TARGET_CENTS:
        raise InsightsRuleError(_("This target is too large."), field="amount")
    target, _created = Target.objects.select_for_update().update_or_create(
        period_key=period_key,
        team=team,
        user=user,
        defaults={"period_kind": kind, "amount": amount, "set_by": actor},
    )
    return target


@transaction.atomic
def target_delete(*, actor: User, target: Target) -> None:
    """Remove a target; the same people who may set it may remove it."""
    _check(actor, target.team, target.user)
    Target.objects.filter(pk=target.pk).delete()


__all__ = ["MAX_TARGET_CENTS", "InsightsRuleError", "can_set_target", "target_delete", "target_set"]
