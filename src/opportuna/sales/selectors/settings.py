"""Reads for the settings screens: the account's configuration, its people and teams.

Configuration is the same for everyone (only admins reach these pages), so these read the
tables directly; the one read that depends on who asks is `settings_users`.
Each returns rows ready to show, in a constant number of queries whatever their number.
"""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from opportuna.accounts.models import Role, Team, User
from opportuna.accounts.selectors import users_managed_by
from opportuna.sales.models import (
    OPEN_STATUSES,
    ActivityType,
    FieldDefinition,
    LostReason,
    Pipeline,
    Product,
    Step,
    Tag,
)


def settings_pipelines(*, user: User) -> QuerySet[Pipeline]:
    """Every pipeline, active or not, with its steps in order (2 queries)."""
    steps = Step.objects.order_by("position", "pk")
    return Pipeline.objects.order_by("position", "name").prefetch_related(
        Prefetch("steps", queryset=steps)
    )


def settings_pipeline_get(*, user: User, pk: int) -> Pipeline:
    """One pipeline; DoesNotExist (404) otherwise."""
    return Pipeline.objects.get(pk=pk)


def settings_steps(*, user: User, pipeline: Pipeline) -> list[Step]:
    """A pipeline's steps in order, each with how many opportunities it holds (1 query).

    The counts are about the step itself (a step holding any opportunity cannot be deleted),
    not about what someone may see: only admins, who see everything, read them.
    """
    return list(
        pipeline.steps.order_by("position", "pk").annotate(
            opportunity_count=Count("opportunities"),
            open_count=Count("opportunities", filter=Q(opportunities__status__in=OPEN_STATUSES)),
        )
    )


def settings_step_get(*, user: User, pk: int) -> Step:
    """One step with its pipeline and opportunity count; DoesNotExist (404) otherwise."""
    return (
        Step.objects.select_related("pipeline")
        .annotate(opportunity_count=Count("opportunities"))
        .get(pk=pk)
    )


def settings_field_definitions(*, user: User) -> list[FieldDefinition]:
    """Every default field, active or not, in the order they show on an opportunity."""
    return list(FieldDefinition.objects.order_by("position", "pk"))


def settings_activity_types(*, user: User) -> QuerySet[ActivityType]:
    return ActivityType.objects.order_by("position", "name")


def settings_lost_reasons(*, user: User) -> QuerySet[LostReason]:
    return LostReason.objects.order_by("position", "name")


def settings_products(*, user: User) -> QuerySet[Product]:
    return Product.objects.order_by("name")


def settings_tags(*, user: User) -> QuerySet[Tag]:
    return Tag.objects.order_by("name")


def settings_users(*, user: User) -> QuerySet[User]:
    """The users `user` may look at here: everyone for admins, a manager's teams for managers.

    Each with its team (1 query).
    """
    if user.is_admin:
        users = User.objects.all()
    elif user.is_manager:
        managed = Team.objects.filter(managers=user).values("id")
        users = users_managed_by(user).filter(team_id__in=managed)
    else:
        users = User.objects.none()
    return users.select_related("team").order_by(
        "-is_active", "first_name", "last_name", "username"
    )


def settings_user_get(*, user: User, pk: int) -> User:
    """One user with their team and managed teams (2 queries); DoesNotExist (404) otherwise."""
    return User.objects.select_related("team").prefetch_related("managed_teams").get(pk=pk)


def settings_teams(*, user: User) -> QuerySet[Team]:
    """Every team with its member count and managers (2 queries)."""
    return (
        Team.objects.order_by("name")
        .annotate(member_count=Count("members", distinct=True))
        .prefetch_related(Prefetch("managers", queryset=User.objects.order_by("username")))
    )


def settings_team_get(*, user: User, pk: int) -> Team:
    """One team with its managers and members (3 queries); DoesNotExist (404) otherwise."""
    return Team.objects.prefetch_related(
        Prefetch("managers", queryset=User.objects.order_by("username")),
        Prefetch("members", queryset=User.objects.order_by("first_name", "last_name", "username")),
    ).get(pk=pk)


def settings_possible_managers(*, user: User) -> QuerySet[User]:
    """Who may manage a team: active users with the manager or admin role."""
    return User.objects.filter(role__in=[Role.MANAGER, Role.ADMIN], is_active=True).order_by(
        "first_name", "last_name", "username"
    )
