"""People and the account: users, roles, teams and their managers, the visibility policy."""

import pytest
from django.core.exceptions import PermissionDenied

from opportuna.accounts.models import Account, Role, Team, User, VisibilityPolicy
from opportuna.accounts.services import (
    AccountRuleError,
    account_update,
    team_create,
    team_set_managers,
    team_update,
    user_create,
    user_update,
)
from tests.factories import UserFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


# Users ----------------------------------------------------------------------------------


def test_admin_creates_a_salesperson_by_default(cast):
    user = user_create(actor=cast.admin, username=" anna ", password="s3cret!", team=cast.team_a)
    user.refresh_from_db()
    assert (user.username, user.role, user.team, user.is_staff) == (
        "anna",
        Role.SALESPERSON,
        cast.team_a,
        False,
    )
    assert user.check_password("s3cret!")


def test_user_created_as_admin_gets_the_admin_site(cast):
    user = user_create(actor=cast.admin, username="boss", role=Role.ADMIN)
    assert user.is_staff is True
    assert user.is_admin is True


def test_user_created_without_password_cannot_log_in(cast):
    user = user_create(actor=cast.admin, username="anna")
    assert user.has_usable_password() is False


def test_bootstrap_may_create_a_user_without_actor():
    assert user_create(actor=None, username="first", role=Role.ADMIN).is_admin


@pytest.mark.parametrize("who", ["owner", "manager"])
def test_only_admins_create_users(cast, who):
    with pytest.raises(PermissionDenied):
        user_create(actor=getattr(cast, who), username="anna")
    assert not User.objects.filter(username="anna").exists()


def test_user_create_refuses_an_unknown_role(cast):
    with pytest.raises(AccountRuleError) as caught:
        user_create(actor=cast.admin, username="anna", role="boss")
    assert caught.value.field == "role"


def test_user_create_refuses_a_taken_username(cast):
    with pytest.raises(AccountRuleError) as caught:
        user_create(actor=cast.admin, username="owner")
    assert caught.value.field == "username"
    assert User.objects.filter(username="owner").count() == 1


def test_user_create_refuses_an_invalid_email(cast):
    with pytest.raises(AccountRuleError) as caught:
        user_create(actor=cast.admin, username="anna", email="nope")
    assert caught.value.field == "email"


def test_user_may_change_own_profile(cast):
    user_update(user=cast.owner, actor=cast.owner, first_name="Anna", language="it")
    cast.owner.refresh_from_db()
    assert (cast.owner.first_name, cast.owner.language) == ("Anna", "it")


def test_user_cannot_change_own_team(cast):
    with pytest.raises(PermissionDenied):
        user_update(user=cast.owner, actor=cast.owner, team=cast.team_b)
    cast.owner.refresh_from_db()
    assert cast.owner.team == cast.team_a


def test_user_cannot_change_someone_elses_profile(cast):
    with pytest.raises(PermissionDenied):
        user_update(user=cast.teammate, actor=cast.manager, first_name="X")


def test_admin_changes_role_and_team(cast):
    user_update(user=cast.owner, actor=cast.admin, role=Role.MANAGER, team=cast.team_b)
    cast.owner.refresh_from_db()
    assert (cast.owner.role, cast.owner.team) == (Role.MANAGER, cast.team_b)


def test_promoting_to_admin_grants_the_admin_site_and_demoting_takes_it(cast):
    user_update(user=cast.owner, actor=cast.admin, role=Role.ADMIN)
    assert User.objects.get(pk=cast.owner.pk).is_staff is True
    user_update(user=cast.owner, actor=cast.admin, role=Role.SALESPERSON)
    assert User.objects.get(pk=cast.owner.pk).is_staff is False


def test_user_update_refuses_an_unknown_role(cast):
    with pytest.raises(AccountRuleError):
        user_update(user=cast.owner, actor=cast.admin, role="boss")
    assert User.objects.get(pk=cast.owner.pk).role == Role.SALESPERSON


def test_user_update_refuses_unknown_fields(cast):
    with pytest.raises(TypeError):
        user_update(user=cast.owner, actor=cast.admin, is_superuser=True)


def test_user_cannot_deactivate_themselves(cast):
    with pytest.raises(AccountRuleError):
        user_update(user=cast.admin, actor=cast.admin, is_active=False)
    assert User.objects.get(pk=cast.admin.pk).is_active is True


def test_admin_cannot_change_own_role(cast):
    with pytest.raises(AccountRuleError):
        user_update(user=cast.admin, actor=cast.admin, role=Role.SALESPERSON)
    assert User.objects.get(pk=cast.admin.pk).role == Role.ADMIN


def test_admin_can_deactivate_someone_else(cast):
    user_update(user=cast.owner, actor=cast.admin, is_active=False)
    assert User.objects.get(pk=cast.owner.pk).is_active is False


def test_demoted_manager_no_longer_manages_teams(cast):
    user_update(user=cast.manager, actor=cast.admin, role=Role.SALESPERSON)
    assert list(cast.team_a.managers.all()) == []


def test_manager_made_admin_keeps_managing_teams(cast):
    user_update(user=cast.manager, actor=cast.admin, role=Role.ADMIN)
    assert list(cast.team_a.managers.all()) == [cast.manager]


# Teams ----------------------------------------------------------------------------------


def test_admin_creates_a_team_with_managers(cast):
    team = team_create(actor=cast.admin, name=" Team C ", managers=[cast.manager, cast.admin])
    assert team.name == "Team C"
    assert set(team.managers.all()) == {cast.manager, cast.admin}


def test_team_managers_must_be_managers(cast):
    with pytest.raises(AccountRuleError) as caught:
        team_set_managers(team=cast.team_b, actor=cast.admin, managers=[cast.owner])
    assert caught.value.field == "managers"
    assert not cast.team_b.managers.exists()


def test_team_create_with_a_salesperson_as_manager_creates_nothing(cast):
    with pytest.raises(AccountRuleError):
        team_create(actor=cast.admin, name="Team C", managers=[cast.owner])
    assert not Team.objects.filter(name="Team C").exists()


def test_team_set_managers_replaces_the_managers(cast):
    team_set_managers(team=cast.team_a, actor=cast.admin, managers=[cast.admin])
    assert list(cast.team_a.managers.all()) == [cast.admin]


def test_team_name_must_be_unique(cast):
    with pytest.raises(AccountRuleError):
        team_update(team=cast.team_b, actor=cast.admin, name="Team A")
    assert Team.objects.get(pk=cast.team_b.pk).name == "Team B"


@pytest.mark.parametrize("who", ["owner", "manager"])
def test_only_admins_manage_teams(cast, who):
    actor = getattr(cast, who)
    with pytest.raises(PermissionDenied):
        team_create(actor=actor, name="Team C")
    with pytest.raises(PermissionDenied):
        team_set_managers(team=cast.team_a, actor=actor, managers=[])
    assert list(cast.team_a.managers.all()) == [cast.manager]


# The account ----------------------------------------------------------------------------


def test_account_update_sets_the_visibility_policy(cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    assert Account.load().visibility == VisibilityPolicy.TEAM


def test_account_update_refuses_an_unknown_policy(cast):
    with pytest.raises(AccountRuleError) as caught:
        account_update(actor=cast.admin, visibility="everyone")
    assert caught.value.field == "visibility"
    assert Account.load().visibility == VisibilityPolicy.OWN


def test_account_update_upper_cases_the_currency(cast):
    account_update(actor=cast.admin, currency=" chf ", name="ACME Sales")
    account = Account.load()
    assert (account.currency, account.name) == ("CHF", "ACME Sales")


@pytest.mark.parametrize("currency", ["EURO", "E1R", "", "€", "ÉUR"])
def test_account_update_refuses_a_bad_currency(cast, currency):
    with pytest.raises(AccountRuleError) as caught:
        account_update(actor=cast.admin, currency=currency)
    assert caught.value.field == "currency"
    assert Account.load().currency == "EUR"


@pytest.mark.parametrize("who", ["owner", "manager"])
def test_only_admins_change_the_account(cast, who):
    with pytest.raises(PermissionDenied):
        account_update(actor=getattr(cast, who), visibility=VisibilityPolicy.TEAM)
    assert Account.load().visibility == VisibilityPolicy.OWN


def test_inactive_admin_changes_nothing(cast):
    inactive = UserFactory(username="gone", role=Role.ADMIN, is_active=False)
    with pytest.raises(PermissionDenied):
        account_update(actor=inactive, visibility=VisibilityPolicy.TEAM)
