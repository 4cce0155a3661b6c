"""Targets in the Django admin: every save and delete is a call to the insights services."""

import pytest
from django.urls import reverse

from opportuna.accounts.models import Role
from opportuna.insights.models import Target
from opportuna.insights.services import target_set
from tests.factories import UserFactory, make_cast

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:insights_target_changelist")
ADD = reverse("admin:insights_target_add")


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def boss(cast):
    # An admin by role, with the staff flag user_create gives admins (the factory does not).
    return UserFactory(username="boss", role=Role.ADMIN, is_staff=True)


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def change_url(target):
    return reverse("admin:insights_target_change", args=[target.pk])


def test_an_admin_adds_a_team_target_in_currency_units(admin_client, cast, boss):
    response = admin_client.post(
        ADD, {"period_key": "2026-Q4", "team": cast.team_a.pk, "user": "", "amount": "1234.56"}
    )

    assert response.status_code == 302
    target = Target.objects.get()
    assert (target.period_kind, target.period_key, target.team, target.user) == (
        "quarter",
        "2026-Q4",
        cast.team_a,
        None,
    )
    assert target.amount == 1234_56
    assert target.set_by == boss


def test_the_services_refusal_is_shown_on_the_form(admin_client, cast):
    response = admin_client.post(ADD, {"period_key": "2026-13", "amount": "10"})

    assert response.status_code == 200
    assert "Choose a month, quarter or year." in response.content.decode()
    assert not Target.objects.exists()


def test_a_change_moves_the_amount_only(admin_client, cast, boss):
    target = target_set(actor=cast.admin, period_key="2026-11", amount=100_00, user=cast.owner)

    response = admin_client.post(
        change_url(target), {"period_key": "2027-01", "user": "", "amount": "250"}
    )

    assert response.status_code == 302
    target.refresh_from_db()
    assert (target.period_key, target.user, target.amount) == ("2026-11", cast.owner, 250_00)
    assert target.set_by == boss
    assert Target.objects.count() == 1


def test_an_admin_deletes_a_target(admin_client, cast):
    target = target_set(actor=cast.admin, period_key="2026", amount=1_000_000_00)

    response = admin_client.post(
        reverse("admin:insights_target_delete", args=[target.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Target.objects.exists()


def test_the_list_shows_each_target_for_whom_and_in_the_currency(admin_client, cast):
    target_set(actor=cast.admin, period_key="2026-11", amount=500_00)
    target_set(actor=cast.admin, period_key="2026-11", amount=300_00, team=cast.team_b)

    html = admin_client.get(CHANGELIST).content.decode()

    assert "the company" in html and "Team B" in html
    assert "500.00 EUR" in html and "300.00 EUR" in html


def test_a_staff_salesperson_may_look_but_not_set(client, cast):
    target = target_set(actor=cast.admin, period_key="2026-11", amount=500_00)
    client.force_login(UserFactory(username="staffer", is_staff=True, team=cast.team_a))

    assert client.get(CHANGELIST).status_code == 200
    assert client.get(ADD).status_code == 403
    response = client.post(change_url(target), {"amount": "1"})
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.amount == 500_00
