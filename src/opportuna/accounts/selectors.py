"""Reads about people: who manages whom. `accounts` never imports `sales`."""

from django.db.models import Exists, Q, QuerySet

from opportuna.accounts.models import Account, Role, Team, User, VisibilityPolicy


def _visible_users(user: User) -> Q | None:
    """The Q over users whose records `user` may see; None means everyone."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Q(pk__in=[])
    if user.is_admin:
        return None
    if user.role == Role.MANAGER:
        managed = Team.objects.filter(managers=user).values("id")
        return Q(pk=user.pk) | Q(team_id__in=managed)
    if user.team_id:
        team_policy = Exists(Account.objects.filter(visibility=VisibilityPolicy.TEAM))
        return Q(pk=user.pk) | (Q(team_id=user.team_id) & Q(team_policy))
    return Q(pk=user.pk)


def visible_owner_filter(user: User, *, prefix: str = "owner") -> Q | None:
    """The Q over owners whose records `user` may see; None means everything. `prefix`
    names the owner field of the records; "" makes it a Q over the users themselves (the
    owners whose records `user` may see).

    An inactive or anonymous user sees nothing (an always-false Q). Anyone else but an admin
    sees the records of a few users, said as `owner IN (those users)`, not as a join with
    the users: given that join, SQLite may read the users first and every record of each
    through an owner index, row by row from the table, instead of the index a query means
    (the pipeline changed since a date, a month's openings); the IN keeps that choice its
    own and is checked against a small list. The policy and the teams are read inside the
    same query, so the door costs no extra round trip.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Q(pk__in=[])
    users = _visible_users(user)
    if users is None or not prefix:
        return users
    if users == Q(pk=user.pk):  # their own: no list to read
        return Q(**{prefix: user.pk})
    return Q(**{f"{prefix}__in": User.objects.filter(users).values("pk")})


def visible_owner_ids(
    user: User, *, owner: int | None = None, team: int | None = None
) -> QuerySet[User]:
    """The ids (`values("pk")`) of the users whose records `user` may see, narrowed to one
    `owner` or the members of one `team` when given: for rows that repeat their record's
    owner, to be chosen by `owner IN` them (see `visible_owner_filter`)."""
    users = User.objects.order_by()
    policy = _visible_users(user)
    if policy is not None:
        users = users.filter(policy)
    if owner is not None:
        users = users.filter(pk=owner)
    if team is not None:
        users = users.filter(team_id=team)
    return users.values("pk")


def team_members(team: int) -> QuerySet[User]:
    """The ids (`values("pk")`) of a team's members, for a team filter said as
    `owner IN (team_members(team))`: not a join with the users, for the reason
    `visible_owner_filter` gives."""
    return User.objects.filter(team_id=team).order_by().values("pk")


def users_managed_by(user: User) -> QuerySet[User]:
    """Users whose work `user` may change: everyone for admins, their teams for managers."""
    if user.is_admin:
        return User.objects.all()
    if user.role == Role.MANAGER and user.is_active:
        managed = Team.objects.filter(managers=user).values("id")
        return User.objects.filter(Q(pk=user.pk) | Q(team_id__in=managed))
    return User.objects.filter(pk=user.pk)
