"""Who sees which opportunity: `visible_opportunities(user)` and the services behind it.

Something a user may not see does not exist for them: the services raise
`Opportunity.DoesNotExist` (the 404 path), never PermissionDenied.
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from opportuna.accounts.models import Role, User, VisibilityPolicy
from opportuna.accounts.selectors import visible_owner_filter
from opportuna.accounts.services import account_update, user_update
from opportuna.insights.selectors import ForecastFilters
from opportuna.sales.models import Opportunity
from opportuna.sales.selectors import (
    can_edit_opportunity,
    opportunity_get,
    opportunity_list,
    visible_opportunities,
)
from opportuna.sales.selectors.api import OpportunityFilters, api_opportunities
from opportuna.sales.selectors.board import BoardFilters
from opportuna.sales.selectors.opportunity_list import ListFilters
from opportuna.sales.services import (
    activity_log,
    comment_add,
    opportunity_move,
    opportunity_update,
)
from tests.factories import OpportunityFactory, UserFactory, activity_type, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opps(cast):
    """One opportunity per seller of the cast, by owner's name."""
    return {
        who: OpportunityFactory(owner=getattr(cast, who), pipeline=cast.pipeline)
        for who in ("owner", "teammate", "other", "manager", "admin")
    }


@pytest.fixture
def team_policy(cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)


def seen_by(user, opps):
    by_pk = {opp.pk: who for who, opp in opps.items()}
    return {by_pk[pk] for pk in visible_opportunities(user).values_list("pk", flat=True)}


# The queryset ---------------------------------------------------------------------------


def test_salesperson_sees_only_own_under_own_policy(cast, opps):
    assert seen_by(cast.owner, opps) == {"owner"}


def test_salesperson_sees_whole_team_under_team_policy(cast, opps, team_policy):
    # The manager is a member of team A too.
    assert seen_by(cast.owner, opps) == {"owner", "teammate", "manager"}


def test_salesperson_cannot_see_other_team_under_team_policy(cast, opps, team_policy):
    assert opps["other"] not in visible_opportunities(cast.owner)
    assert seen_by(cast.other, opps) == {"other"}


def test_salesperson_without_team_sees_only_own_under_team_policy(cast, opps, team_policy):
    loner = UserFactory(username="loner")
    mine = OpportunityFactory(owner=loner, pipeline=cast.pipeline)
    assert list(visible_opportunities(loner)) == [mine]


def test_manager_sees_managed_teams_and_own(cast, opps):
    assert seen_by(cast.manager, opps) == {"owner", "teammate", "manager"}


def test_manager_sees_every_team_they_manage(cast, opps):
    cast.team_b.managers.add(cast.manager)
    assert seen_by(cast.manager, opps) == {"owner", "teammate", "other", "manager"}


def test_manager_of_no_team_sees_only_own(cast, opps):
    cast.team_a.managers.clear()
    assert seen_by(cast.manager, opps) == {"manager"}


def test_admin_sees_everything(cast, opps):
    assert seen_by(cast.admin, opps) == set(opps)


def test_superuser_sees_everything_whatever_the_role(cast, opps):
    root = UserFactory(username="root", is_superuser=True)
    assert seen_by(root, opps) == set(opps)


@pytest.mark.parametrize("who", ["owner", "manager", "admin"])
def test_inactive_user_sees_nothing(cast, opps, team_policy, who):
    user = getattr(cast, who)
    user.is_active = False
    user.save()
    assert not visible_opportunities(user).exists()


def test_anonymous_user_sees_nothing(opps):
    assert not visible_opportunities(AnonymousUser()).exists()


def test_salesperson_moved_to_another_team_sees_that_team(cast, opps, team_policy):
    user_update(user=cast.teammate, actor=cast.admin, team=cast.team_b)
    assert seen_by(cast.teammate, opps) == {"teammate", "other"}


def test_demoted_manager_sees_only_own(cast, opps):
    user_update(user=cast.manager, actor=cast.admin, role=Role.SALESPERSON, team=None)
    assert seen_by(cast.manager, opps) == {"manager"}


# One query, whatever the number of rows -------------------------------------------------


def many(cast, count):
    for who in ("owner", "teammate", "other"):
        for _ in range(count):
            OpportunityFactory(owner=getattr(cast, who), pipeline=cast.pipeline)


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize(
    ("who", "policy"),
    [
        ("owner", VisibilityPolicy.OWN),
        ("owner", VisibilityPolicy.TEAM),
        ("manager", VisibilityPolicy.OWN),
        ("admin", VisibilityPolicy.OWN),
    ],
)
def test_visible_opportunities_runs_one_query(cast, django_assert_num_queries, count, who, policy):
    many(cast, count)
    account_update(actor=cast.admin, visibility=policy)
    user = getattr(cast, who)
    with django_assert_num_queries(1):
        # 1: the opportunities, with the owner filter and the policy inside the same SQL.
        rows = list(visible_opportunities(user))
    assert len(rows) >= count


@pytest.mark.parametrize("policy", [VisibilityPolicy.OWN, VisibilityPolicy.TEAM])
@pytest.mark.parametrize("who", ["owner", "teammate", "other", "manager", "admin"])
def test_the_owner_filter_over_users_names_the_owners_of_the_visible_opportunities(
    cast, opps, who, policy
):
    account_update(actor=cast.admin, visibility=policy)
    user = getattr(cast, who)
    users = visible_owner_filter(user, prefix="")
    named = User.objects.filter(users) if users is not None else User.objects.all()
    owners = set(visible_opportunities(user).values_list("owner_id", flat=True))
    assert set(named.values_list("pk", flat=True)) == owners
    # An inactive user sees nothing, whichever side the filter is put on.
    user.is_active = False
    assert not User.objects.filter(visible_owner_filter(user, prefix="")).exists()


@pytest.mark.parametrize("who", ["owner", "manager"])
def test_the_door_names_the_owners_without_joining_the_users(cast, who):
    # Joined with the users, SQLite may read them first and every opportunity of each by
    # the owner index, from the table, instead of the index a query is written for.
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    sql = str(visible_opportunities(getattr(cast, who)).query)
    assert " JOIN " not in sql.split(" WHERE ")[0]
    assert '"owner_id" IN (SELECT' in sql


@pytest.mark.parametrize("where", ["board", "list", "api", "forecast"])
def test_team_filters_name_the_members_without_joining_the_users(cast, where):
    # For the door's reason (above); the statistics' filters are held in their own tests.
    team = cast.team_a.pk
    narrowed = {
        "board": lambda: BoardFilters(team=team).apply(Opportunity.objects.all(), user=cast.admin),
        "list": lambda: opportunity_list._filtered(cast.admin, ListFilters(team=team)),
        "api": lambda: api_opportunities(user=cast.admin, filters=OpportunityFilters(team=team)),
        "forecast": lambda: ForecastFilters(team=team).apply(Opportunity.objects.all()),
    }[where]()
    sql = str(narrowed.values("pk").query)
    assert " JOIN " not in sql
    assert '"owner_id" IN (SELECT' in sql


def test_visible_opportunities_reads_the_policy_at_query_time(cast, opps):
    queryset = visible_opportunities(cast.owner)
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    assert {o.owner_id for o in queryset} == {cast.owner.pk, cast.teammate.pk, cast.manager.pk}


def test_opportunity_get_of_an_invisible_opportunity_does_not_exist(cast, opps):
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_get(user=cast.owner, pk=opps["other"].pk)
    assert opportunity_get(user=cast.owner, pk=opps["owner"].pk) == opps["owner"]


# Services: outside your view, the opportunity does not exist -----------------------------


@pytest.mark.parametrize("who", ["teammate", "other"])
def test_salesperson_cannot_reach_others_opportunity_through_services(cast, opps, who):
    target = opps["owner"]
    actor = getattr(cast, who)
    with pytest.raises(Opportunity.DoesNotExist):
        comment_add(opportunity=target, actor=actor, body="Hi")
    with pytest.raises(Opportunity.DoesNotExist):
        activity_log(opportunity=target, actor=actor, type=activity_type("call"))
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_update(opportunity=target, actor=actor, version=target.version, title="X")


def test_other_team_cannot_reach_through_services_under_team_policy(cast, opps, team_policy):
    step = cast.pipeline.steps.last()
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_move(opportunity=opps["owner"], step=step, actor=cast.other)
    with pytest.raises(Opportunity.DoesNotExist):
        comment_add(opportunity=opps["owner"].pk, actor=cast.other, body="Hi")


def test_manager_cannot_reach_other_team_through_services(cast, opps):
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_move(
            opportunity=opps["other"], step=cast.pipeline.steps.last(), actor=cast.manager
        )


def test_manager_may_edit_managed_teams_opportunities(cast, opps):
    step = cast.pipeline.steps.last()
    opportunity_move(opportunity=opps["teammate"], step=step, actor=cast.manager)
    assert Opportunity.objects.get(pk=opps["teammate"].pk).step == step


def test_admin_may_edit_any_opportunity(cast, opps):
    opportunity_update(
        opportunity=opps["other"], actor=cast.admin, version=opps["other"].version, title="X"
    )
    assert Opportunity.objects.get(pk=opps["other"].pk).title == "X"


def test_teammate_under_team_policy_sees_but_cannot_edit(cast, opps, team_policy):
    target = opps["owner"]
    comment_add(opportunity=target, actor=cast.teammate, body="I know them")
    with pytest.raises(PermissionDenied):
        opportunity_update(opportunity=target, actor=cast.teammate, version=1, title="X")


def test_inactive_user_cannot_use_services(cast, opps):
    cast.owner.is_active = False
    cast.owner.save()
    with pytest.raises(PermissionDenied):
        comment_add(opportunity=opps["owner"], actor=cast.owner, body="Hi")


# Who may edit ---------------------------------------------------------------------------


def test_can_edit_opportunity_matrix(cast, opps, team_policy):
    target = opps["owner"]
    allowed = {
        who: can_edit_opportunity(getattr(cast, who), target)
        for who in ("owner", "teammate", "other", "manager", "admin")
    }
    assert allowed == {
        "owner": True,
        "teammate": False,
        "other": False,
        "manager": True,
        "admin": True,
    }


def test_deactivated_owner_cannot_edit_own_opportunity(cast, opps):
    cast.owner.is_active = False
    cast.owner.last_login = timezone.now()
    cast.owner.save()
    assert can_edit_opportunity(cast.owner, opps["owner"]) is False
