"""Users, teams and the caller's tokens over the API."""

import pytest

from opportuna.accounts.models import ApiToken, Team
from opportuna.accounts.tokens import api_token_authenticate, api_token_create
from tests.api.test_opportunities_api import Api
from tests.factories import TeamFactory, UserFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


def test_everyone_reads_the_users(cast):
    response = Api(cast.owner).get("/api/v1/users")

    assert response.status_code == 200
    usernames = {u["username"] for u in response.json()}
    assert {"owner", "teammate", "other", "manager", "admin"} <= usernames
    owner = next(u for u in response.json() if u["username"] == "owner")
    assert (owner["team"], owner["role"]) == (cast.team_a.pk, "salesperson")


def test_users_filter_active(cast):
    UserFactory(username="gone", is_active=False)

    active = Api(cast.owner).get("/api/v1/users", {"active": "true"}).json()
    inactive = Api(cast.owner).get("/api/v1/users", {"active": "false"}).json()

    assert "gone" not in {u["username"] for u in active}
    assert [u["username"] for u in inactive] == ["gone"]


def test_me_is_the_caller(cast):
    assert Api(cast.teammate).get("/api/v1/users/me").json()["username"] == "teammate"


def test_an_unknown_user_is_404(cast):
    assert Api(cast.owner).get("/api/v1/users/999999").status_code == 404


def test_teams_list_their_managers(cast):
    teams = {t["name"]: t for t in Api(cast.owner).get("/api/v1/teams").json()}

    assert teams["Team A"]["managers"] == [cast.manager.pk]
    assert teams["Team B"]["managers"] == []


def test_admin_creates_a_team_with_managers(cast):
    response = Api(cast.admin).post(
        "/api/v1/teams", {"name": "Team C", "managers": [cast.manager.pk]}
    )

    assert response.status_code == 201, response.json()
    assert list(Team.objects.get(name="Team C").managers.all()) == [cast.manager]


def test_salesperson_cannot_create_a_team(cast):
    response = Api(cast.owner).post("/api/v1/teams", {"name": "Team C"})

    assert response.status_code == 403
    assert not Team.objects.filter(name="Team C").exists()


def test_a_manager_must_have_the_manager_role(cast):
    response = Api(cast.admin).post("/api/v1/teams", {"name": "C", "managers": [cast.owner.pk]})

    assert response.status_code == 409
    assert response.json()["field"] == "managers"


def test_an_unknown_manager_is_422(cast):
    response = Api(cast.admin).post("/api/v1/teams", {"name": "C", "managers": [999999]})

    assert response.status_code == 422


def test_tokens_are_the_callers_own_without_their_secret(cast):
    api = Api(cast.owner)
    api_token_create(actor=cast.teammate, user=cast.teammate, name="not mine")

    response = api.get("/api/v1/tokens")

    assert [t["prefix"] for t in response.json()] == [ApiToken.objects.get(user=cast.owner).prefix]
    assert api.raw not in response.content.decode()
    assert "hash" not in response.json()[0]


def test_revoking_a_token_stops_it_at_once(cast, client):
    api = Api(cast.owner)
    spare, raw = api_token_create(actor=cast.owner, user=cast.owner, name="spare")

    response = api.post(f"/api/v1/tokens/{spare.pk}/revoke")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    refused = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401


def test_someone_elses_token_is_404(cast):
    theirs, _raw = api_token_create(actor=cast.teammate, user=cast.teammate)

    assert Api(cast.owner).post(f"/api/v1/tokens/{theirs.pk}/revoke").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


@pytest.mark.parametrize("count", [1, 30])
def test_users_and_teams_run_a_constant_number_of_queries(cast, count, django_assert_num_queries):
    for number in range(count):
        team = TeamFactory(name=f"Extra {number}")
        team.managers.add(cast.manager)
        UserFactory(username=f"extra{number}", team=team)
    api = Api(cast.owner)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the users.
    with django_assert_num_queries(2):
        users = api.get("/api/v1/users")
    # 1 token with its user, 2 the teams, 3 their managers.
    with django_assert_num_queries(3):
        teams = api.get("/api/v1/teams")

    assert len(users.json()) == 5 + count
    assert len(teams.json()) == 2 + count


@pytest.mark.parametrize("count", [1, 30])
def test_tokens_run_a_constant_number_of_queries(cast, count, django_assert_num_queries):
    for _ in range(count):
        api_token_create(actor=cast.owner, user=cast.owner)
    api = Api(cast.owner)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the tokens.
    with django_assert_num_queries(2):
        response = api.get("/api/v1/tokens")

    assert len(response.json()) == count + 1
