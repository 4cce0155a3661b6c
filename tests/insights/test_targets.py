"""Targets: who may set them, one per period and subject, who may read them, and the form."""

from datetime import date

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.urls import reverse

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.insights.models import Target, parse_period_key
from opportuna.insights.selectors import TargetScope, visible_targets
from opportuna.insights.services import InsightsRuleError, target_delete, target_set
from tests.factories import UserFactory, make_cast

pytestmark = pytest.mark.django_db

TARGET_URL = reverse("insights:forecast_target")
PAGE = reverse("insights:forecast")
MONTH_VIEW = "period=month&start=2026-11-01&periods=2"


@pytest.fixture
def cast():
    return make_cast()


# Period keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,kind,first",
    [
        ("2026-11", "month", date(2026, 11, 1)),
        ("2026-Q4", "quarter", date(2026, 10, 1)),
        ("2026", "year", date(2026, 1, 1)),
    ],
)
def test_period_keys_name_their_kind_and_first_day(key, kind, first):
    assert parse_period_key(key) == (kind, first)


@pytest.mark.parametrize("key", ["2026-13", "2026-Q5", "26", "2026-1", "", "0000"])
def test_bad_period_keys_are_refused(key):
    with pytest.raises(ValueError):
        parse_period_key(key)


# Who may set a target -----------------------------------------------------------------------


def test_admin_sets_the_company_target(cast):
    target = target_set(actor=cast.admin, period_key="2026-11", amount=50_000_00)
    assert (target.period_kind, target.team, target.user) == ("month", None, None)
    assert target.set_by == cast.admin


def test_manager_may_not_set_the_company_target(cast):
    with pytest.raises(PermissionDenied):
        target_set(actor=cast.manager, period_key="2026", amount=1)


def test_manager_sets_targets_for_their_team_and_its_people(cast):
    target_set(actor=cast.manager, period_key="2026-Q4", amount=1_00, team=cast.team_a)
    target_set(actor=cast.manager, period_key="2026-Q4", amount=2_00, user=cast.owner)
    assert Target.objects.count() == 2


@pytest.mark.parametrize("subject", ["team_b", "other"])
def test_manager_may_not_set_targets_for_another_team_or_its_people(cast, subject):
    kwargs = {"team": cast.team_b} if subject == "team_b" else {"user": cast.other}
    with pytest.raises(PermissionDenied):
        target_set(actor=cast.manager, period_key="2026-Q4", amount=1_00, **kwargs)


def test_salesperson_may_not_set_even_their_own_target(cast):
    with pytest.raises(PermissionDenied):
        target_set(actor=cast.owner, period_key="2026-11", amount=1_00, user=cast.owner)


def test_inactive_admin_may_not_set_targets(cast):
    cast.admin.is_active = False
    with pytest.raises(PermissionDenied):
        target_set(actor=cast.admin, period_key="2026-11", amount=1_00)


def test_setting_again_replaces_the_amount(cast):
    first = target_set(actor=cast.admin, period_key="2026-11", amount=1_00, user=cast.owner)
    second = target_set(actor=cast.manager, period_key="2026-11", amount=9_00, user=cast.owner)
    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.amount, second.set_by) == (9_00, cast.manager)
    assert Target.objects.count() == 1


def test_same_period_different_subjects_are_different_targets(cast):
    target_set(actor=cast.admin, period_key="2026-11", amount=1_00)
    target_set(actor=cast.admin, period_key="2026-11", amount=2_00, team=cast.team_a)
    target_set(actor=cast.admin, period_key="2026-11", amount=3_00, user=cast.owner)
    target_set(actor=cast.admin, period_key="2026-12", amount=4_00)
    assert Target.objects.count() == 4


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"period_key": "2026-11", "amount": -1}, "amount"),
        ({"period_key": "November", "amount": 1}, "period"),
        ({"period_key": "2026-11", "amount": 10**16}, "amount"),
    ],
)
def test_broken_rules_are_domain_errors_naming_the_field(cast, kwargs, field):
    with pytest.raises(InsightsRuleError) as error:
        target_set(actor=cast.admin, **kwargs)
    assert error.value.field == field


def test_a_target_is_for_a_team_or_a_user_not_both(cast):
    with pytest.raises(InsightsRuleError):
        target_set(
            actor=cast.admin, period_key="2026-11", amount=1, team=cast.team_a, user=cast.owner
        )


def test_database_keeps_one_company_target_per_period(cast):
    Target.objects.create(period_kind="month", period_key="2026-11", amount=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Target.objects.create(period_kind="month", period_key="2026-11", amount=2)


def test_database_refuses_a_target_for_a_team_and_a_user(cast):
    with pytest.raises(IntegrityError), transaction.atomic():
        Target.objects.create(
            period_kind="month", period_key="2026-11", amount=1, team=cast.team_a, user=cast.owner
        )


def test_delete_follows_the_same_rights(cast):
    target = target_set(actor=cast.admin, period_key="2026-11", amount=1_00, team=cast.team_b)
    with pytest.raises(PermissionDenied):
        target_delete(actor=cast.manager, target=target)
    target_delete(actor=cast.admin, target=target)
    assert not Target.objects.exists()


# Who may read a target ------------------------------------------------------------------------


def _all_targets(cast):
    return {
        "company": target_set(actor=cast.admin, period_key="2026", amount=1),
        "team_a": target_set(actor=cast.admin, period_key="2026", amount=2, team=cast.team_a),
        "team_b": target_set(actor=cast.admin, period_key="2026", amount=3, team=cast.team_b),
        "owner": target_set(actor=cast.admin, period_key="2026", amount=4, user=cast.owner),
        "teammate": target_set(actor=cast.admin, period_key="2026", amount=5, user=cast.teammate),
        "other": target_set(actor=cast.admin, period_key="2026", amount=6, user=cast.other),
    }


def _visible(cast, who):
    targets = _all_targets(cast)
    seen = set(visible_targets(user=getattr(cast, who)))
    return {name for name, target in targets.items() if target in seen}


def test_salesperson_reads_company_own_team_and_own_targets(cast):
    assert _visible(cast, "owner") == {"company", "team_a", "owner"}


def test_salesperson_reads_teammates_targets_under_the_team_policy(cast):
    Account.objects.update_or_create(pk=1, defaults={"visibility": VisibilityPolicy.TEAM})
    assert _visible(cast, "owner") == {"company", "team_a", "owner", "teammate"}


def test_manager_reads_their_teams_and_its_people_targets(cast):
    assert _visible(cast, "manager") == {"company", "team_a", "owner", "teammate"}


def test_admin_reads_every_target(cast):
    assert _visible(cast, "admin") == {"company", "team_a", "team_b", "owner", "teammate", "other"}


# The form on the forecast page --------------------------------------------------------------


def post_target(client, **data):
    data.setdefault("return_query", MONTH_VIEW)
    data.setdefault("action", "set")
    return client.post(TARGET_URL, data)


def test_admin_sets_a_target_with_the_form_and_comes_back_to_the_same_view(client, cast):
    client.force_login(cast.admin)
    response = post_target(client, period="2026-12", scope="company", amount="12500.50")
    assert response.status_code == 302
    assert response.url == f"{PAGE}?{MONTH_VIEW}#target-form"
    target = Target.objects.get()
    assert (target.period_key, target.amount, target.team, target.user) == (
        "2026-12",
        12_500_50,
        None,
        None,
    )


def test_form_reads_amounts_written_the_italian_way(client, cast):
    cast.admin.language = "it"
    cast.admin.save()
    client.force_login(cast.admin)
    client.cookies["django_language"] = "it"
    response = client.post(
        TARGET_URL,
        {
            "return_query": MONTH_VIEW,
            "action": "set",
            "period": "2026-11",
            "scope": "company",
            "amount": "1.234,50",
        },
        HTTP_ACCEPT_LANGUAGE="it",
    )
    assert response.status_code == 302
    assert Target.objects.get().amount == 1_234_50


def test_form_removes_a_target(client, cast):
    target_set(actor=cast.admin, period_key="2026-11", amount=5_00, user=cast.owner)
    client.force_login(cast.manager)
    response = post_target(client, period="2026-11", scope=f"user:{cast.owner.pk}", action="delete")
    assert response.status_code == 302
    assert not Target.objects.exists()


def test_manager_cannot_choose_a_subject_outside_their_teams(client, cast):
    client.force_login(cast.manager)
    response = post_target(client, period="2026-11", scope=f"team:{cast.team_b.pk}", amount="1")
    assert response.status_code == 422
    assert 'id="target-form"' in response.content.decode()
    assert not Target.objects.exists()


def test_form_refuses_a_period_outside_the_view(client, cast):
    client.force_login(cast.admin)
    response = post_target(client, period="2031-01", scope="company", amount="1")
    assert response.status_code == 422
    assert not Target.objects.exists()


def test_form_without_an_amount_says_so(client, cast):
    client.force_login(cast.admin)
    response = post_target(client, period="2026-11", scope="company", amount="")
    assert response.status_code == 422
    assert "Type the target amount." in response.content.decode()


def test_salesperson_posting_the_form_is_refused(client, cast):
    client.force_login(cast.owner)
    response = post_target(client, period="2026-11", scope=f"user:{cast.owner.pk}", amount="1")
    assert response.status_code == 403
    assert not Target.objects.exists()


def test_anonymous_posting_the_form_is_sent_to_login(client):
    response = post_target(client, period="2026-11", scope="company", amount="1")
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_salesperson_sees_no_target_form(client, cast):
    client.force_login(cast.owner)
    assert 'id="target-form"' not in client.get(f"{PAGE}?{MONTH_VIEW}").content.decode()


def test_set_link_prefills_the_form_with_period_and_subject(client, cast):
    client.force_login(cast.admin)
    html = client.get(
        f"{PAGE}?{MONTH_VIEW}&target_period=2026-12&target_scope=user:{cast.owner.pk}"
    ).content.decode()
    assert '<option value="2026-12" selected>' in html
    assert f'<option value="user:{cast.owner.pk}" selected>' in html


def test_scope_keys_read_back():
    assert TargetScope.parse("company") == TargetScope("company")
    assert TargetScope.parse("team:3") == TargetScope("team", 3)
    assert TargetScope.parse("user:x") is None
    assert TargetScope.parse("company:1") is None
    assert TargetScope("user", 5).key == "user:5"


def test_a_new_user_has_no_rights_over_targets(cast):
    newcomer = UserFactory(username="newcomer")
    with pytest.raises(PermissionDenied):
        target_set(actor=newcomer, period_key="2026-11", amount=1, user=newcomer)
