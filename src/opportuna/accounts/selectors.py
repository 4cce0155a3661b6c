"""Reads about people: who manages whom. `accounts` never imports `sales`."""

from django.db.models import Exists, Q, QuerySet

from opportuna.accounts.models import Account, Role, Team, User, VisibilityPolicy


def visible_owner_filter(user: User, *, prefix: str = "owner") -> Q | None:
    """The Q over owners whose records `user` may see; None means everything. `prefix`
    names the owner field of the records; "" makes it a Q over the users themselves (the
    owners whose records `user` may see).

    An inactive or anonymous user sees nothing (an always-false Q).
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Q(pk__in=[])
    if user.is_admin:
        return None
    owner = prefix or "pk"
    team = f"{prefix}__team_id" if prefix else "team_id"
    if user.role == Role.MANAGER:
        managed = Team.objects.filter(managers=user).values("id")
        return Q(**{owner: user.pk}) | Q(**{f"{team}__in": managed})
    if user.team_id:
        # The policy is read inside the same query, so the door costs no extra round trip.
        team_policy = Exists(Account.objects.filter(visibility=VisibilityPolicy.TEAM))
        return Q(**{owner: user.pk}) | (Q(**{team: user.team_id}) & Q(team_policy))
    return Q(**{owner: user.pk})


def users_managed_by(user: User) -> QuerySet[User]:
    """Users whose work `user` may change: everyone for admins, their teams for managers."""
    if user.is_admin:
        return User.objects.all()
    if user.role == Role.MANAGER and user.is_active:
        managed = Team.objects.filter(managers=user).values("id")
        return User.objects.filter(Q(pk=user.pk) | Q(team_id__in=managed))
    return User.objects.filter(pk=user.pk)
