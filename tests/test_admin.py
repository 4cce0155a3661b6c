"""The Django admin: shows the whole account, writes only through services, reads by visibility."""

from datetime import date

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportuna.accounts.models import Account, Role, Team, User
from opportuna.accounts.tokens import api_token_create
from opportuna.core.admin import with_sqlite_dates
from opportuna.sales import services
from opportuna.sales.models import (
    ActivityType,
    Client,
    Contact,
    EventKind,
    FieldDefinition,
    Opportunity,
    OpportunityEvent,
    Product,
    Step,
    Tag,
)
from tests.factories import (
    ClientFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    TagFactory,
    TeamFactory,
    UserFactory,
    activity_type,
)

pytestmark = pytest.mark.django_db


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def account_data(admin_user, settings):
    """At least one row of every registered model, written the way the app writes them."""
    from opportuna.integrations.services import webhook_endpoint_create

    settings.WEBHOOK_ALLOW_PRIVATE = True  # port 9 of this machine: nothing is ever sent
    webhook_endpoint_create(
        actor=admin_user, url="http://127.0.0.1:9/hook", event_types=["comment.added"]
    )
    team = TeamFactory()
    seller = UserFactory(team=team)
    product = ProductFactory()
    tag = TagFactory()
    LostReasonFactory()
    services.field_definition_create(actor=admin_user, label="Budget", kind="number")
    opportunity = OpportunityFactory(
        owner=seller,
        client=ClientFactory(),
        product=product,
        fields={"budget": "1000"},
        expected_close_date=date(2026, 6, 30),
    )
    services.tag_add(opportunity=opportunity, actor=admin_user, tag=tag)
    services.contact_add(opportunity=opportunity, actor=admin_user, name="Anna Rossi", role="CTO")
    services.comment_add(opportunity=opportunity, actor=admin_user, body="Call back", pinned=True)
    services.activity_log(
        opportunity=opportunity, actor=admin_user, type=activity_type("call"), note="First call"
    )
    services.proposal_create(
        opportunity=opportunity, actor=admin_user, scope="Setup", lines=[{"product": product}]
    )
    api_token_create(actor=admin_user, user=seller, name="Zapier")
    from opportuna.insights.services import target_set

    target_set(actor=admin_user, period_key="2026-06", amount=50_000_00, team=team)
    return opportunity


def test_every_registered_model_has_a_changelist_and_a_change_page(admin_client, account_data):
    for model in admin.site._registry:
        response = admin_client.get(url(model, "changelist"))
        assert response.status_code == 200, model
        if not model.__module__.startswith("opportuna."):
            continue  # third-party admins (task results) have no rows in this dataset
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"no {model.__name__} in the dataset"
        response = admin_client.get(url(model, "change", obj.pk))
        assert response.status_code == 200, model


def test_money_is_shown_in_currency_units(admin_client, account_data):
    response = admin_client.get(url(Opportunity, "changelist"))
    assert "1,000.00 EUR" in response.content.decode()


def _opportunity_changelist_queries(client, count):
    for _ in range(count):
        OpportunityFactory(client=ClientFactory(), expected_close_date=date(2026, 3, 1))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(Opportunity, "changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == Opportunity.objects.count()
    return [q["sql"] for q in queries.captured_queries]


def test_opportunity_changelist_runs_the_same_queries_for_1_and_30_rows(admin_client):
    one = _opportunity_changelist_queries(admin_client, 1)
    thirty = _opportunity_changelist_queries(admin_client, 29)
    assert len(one) == len(thirty), "\n".join(thirty)


def test_date_hierarchy_offers_the_years_and_months_that_have_opportunities(admin_client):
    for day in (date(2025, 11, 3), date(2025, 12, 24), date(2026, 1, 15)):
        OpportunityFactory(expected_close_date=day)
    OpportunityFactory(expected_close_date=None)

    page = admin_client.get(url(Opportunity, "changelist")).content.decode()
    assert "expected_close_date__year=2025" in page
    assert "expected_close_date__year=2026" in page

    queryset = Opportunity.objects.all()
    for kind in ("year", "month", "day"):
        native = with_sqlite_dates(queryset).dates("expected_close_date", kind, order="DESC")
        assert list(native) == list(queryset.dates("expected_close_date", kind, order="DESC"))


def test_saving_a_step_goes_through_step_update(admin_client, admin_user):
    following = OpportunityFactory()
    step = following.step
    by_hand = OpportunityFactory(pipeline=following.pipeline, probability=5)
    Opportunity.objects.filter(pk=by_hand.pk).update(probability_is_manual=True)

    response = admin_client.post(
        url(Step, "change", step.pk), {"name": step.name, "probability": "60", "rot_days": ""}
    )

    assert response.status_code == 302
    following.refresh_from_db()
    assert following.probability == 60
    event = OpportunityEvent.objects.get(opportunity=following, kind=EventKind.PROBABILITY)
    assert event.actor == admin_user
    assert event.changes == {"probability": [10, 60]}
    by_hand.refresh_from_db()
    assert by_hand.probability == 5


def test_an_impossible_probability_is_a_form_error(admin_client):
    step = PipelineFactory().steps.first()

    response = admin_client.post(
        url(Step, "change", step.pk), {"name": step.name, "probability": "150", "rot_days": ""}
    )

    assert response.status_code == 200
    assert "probability" in response.context["adminform"].form.errors
    step.refresh_from_db()
    assert step.probability == 10


def test_a_service_refusal_is_a_form_error_and_writes_nothing(admin_client):
    data = {
        "label": "Budget: EUR",
        "key": "",
        "kind": "text",
        "choices": "",
        "position": "1",
        "is_active": "on",
    }

    response = admin_client.post(url(FieldDefinition, "add"), data)

    assert response.status_code == 200
    assert "cannot contain" in str(response.context["adminform"].form.errors["label"])
    assert not FieldDefinition.objects.exists()


def test_a_choice_field_without_choices_is_refused_on_the_choices_field(admin_client):
    data = {
        "label": "Size",
        "key": "",
        "kind": "choice",
        "choices": " \n",
        "position": "1",
        "is_active": "on",
    }

    response = admin_client.post(url(FieldDefinition, "add"), data)

    assert response.status_code == 200
    assert "choices" in response.context["adminform"].form.errors


def test_a_default_field_is_created_by_the_service(admin_client):
    data = {
        "label": "Size",
        "key": "",
        "kind": "choice",
        "choices": "S\r\nM\r\nL",
        "position": "1",
        "is_active": "on",
    }

    response = admin_client.post(url(FieldDefinition, "add"), data)

    assert response.status_code == 302
    definition = FieldDefinition.objects.get()
    assert (definition.key, definition.choices) == ("size", ["S", "M", "L"])


def test_product_price_is_typed_in_currency_units(admin_client):
    response = admin_client.post(
        url(Product, "add"), {"name": "Licence", "unit_price": "12.50", "is_active": "on"}
    )

    assert response.status_code == 302
    product = Product.objects.get(name="Licence")
    assert product.unit_price == 1250
    page = admin_client.get(url(Product, "change", product.pk)).content.decode()
    assert 'value="12.50"' in page


def test_a_step_with_opportunities_is_not_deleted(admin_client):
    step = OpportunityFactory().step

    response = admin_client.post(url(Step, "delete", step.pk), {"post": "yes"})

    assert response.status_code == 200  # the confirmation page, saying why not
    assert Step.objects.filter(pk=step.pk).exists()


def test_an_empty_step_is_deleted_through_step_delete(admin_client):
    step = PipelineFactory().steps.last()

    response = admin_client.post(url(Step, "delete", step.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Step.objects.filter(pk=step.pk).exists()


def test_a_tag_in_use_is_not_deleted_and_an_unused_one_is(admin_client, account_data):
    used = account_data.tags.get()
    unused = TagFactory()

    admin_client.post(url(Tag, "delete", used.pk), {"post": "yes"})
    response = admin_client.post(url(Tag, "delete", unused.pk), {"post": "yes"})

    assert response.status_code == 302
    assert list(Tag.objects.all()) == [used]


def test_an_activity_type_key_is_made_by_the_service(admin_client):
    data = {"name": "Trade fair", "key": "", "position": "9", "is_active": "on"}

    response = admin_client.post(url(ActivityType, "add"), data)

    assert response.status_code == 302
    assert ActivityType.objects.get(name="Trade fair").key == "trade_fair"


def test_a_client_folder_is_opened_through_client_create(admin_client):
    response = admin_client.post(url(Client, "add"), {"name": "  Rossi SpA  ", "country": "IT"})

    assert response.status_code == 302
    assert Client.objects.get().name == "Rossi SpA"


def test_the_event_log_link_lists_one_opportunitys_events(admin_client, account_data):
    other = OpportunityFactory()
    services.comment_add(opportunity=other, actor=other.owner, body="Elsewhere")
    page = admin_client.get(url(Opportunity, "change", account_data.pk)).content.decode()
    link = f"{url(OpportunityEvent, 'changelist')}?opportunity__id__exact={account_data.pk}"
    assert link in page

    response = admin_client.get(link)

    events = response.context["cl"].result_list
    assert events and {e.opportunity_id for e in events} == {account_data.pk}


def test_opportunities_are_read_only(admin_client, account_data):
    pk = account_data.pk
    assert admin_client.post(url(Opportunity, "change", pk), {"title": "New"}).status_code == 403
    assert admin_client.get(url(Opportunity, "add")).status_code == 403
    assert admin_client.post(url(Opportunity, "add"), {"title": "New"}).status_code == 403
    assert admin_client.post(url(Opportunity, "delete", pk), {"post": "yes"}).status_code == 403
    account_data.refresh_from_db()
    assert account_data.title != "New"


def test_the_event_log_is_never_changed_or_deleted(admin_client, account_data):
    event = OpportunityEvent.objects.first()
    assert admin_client.post(url(OpportunityEvent, "change", event.pk), {}).status_code == 403
    response = admin_client.post(url(OpportunityEvent, "delete", event.pk), {"post": "yes"})
    assert response.status_code == 403


def test_the_account_cannot_be_added_twice_or_deleted(admin_client):
    account = Account.load()
    assert admin_client.get(url(Account, "add")).status_code == 403
    assert admin_client.post(url(Account, "delete", account.pk), {"post": "yes"}).status_code == 403


def test_an_account_change_goes_through_account_update(admin_client):
    data = {"name": "ACME", "currency": "usd", "visibility": "team"}

    response = admin_client.post(url(Account, "change", 1), data)

    assert response.status_code == 302
    assert (Account.load().currency, Account.load().visibility) == ("USD", "team")


def test_a_user_created_in_the_admin_gets_the_role_from_user_create(admin_client):
    team = TeamFactory()
    data = {
        "username": "giulia",
        "usable_password": "true",
        "password1": "a-Long-pass-phrase-42",
        "password2": "a-Long-pass-phrase-42",
        "first_name": "Giulia",
        "role": Role.ADMIN,
        "team": team.pk,
        "language": "it",
    }

    response = admin_client.post(url(User, "add"), data)

    assert response.status_code == 302
    user = User.objects.get(username="giulia")
    assert (user.role, user.team, user.language, user.is_staff) == (Role.ADMIN, team, "it", True)
    assert user.check_password("a-Long-pass-phrase-42")


def test_a_user_change_goes_through_user_update(admin_client):
    user = UserFactory(role=Role.SALESPERSON)
    data = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "language": "",
        "role": Role.MANAGER,
        "team": "",
        "is_active": "on",
    }

    response = admin_client.post(url(User, "change", user.pk), data)

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.role == Role.MANAGER


def test_you_cannot_deactivate_yourself_in_the_admin(admin_client, admin_user):
    data = {
        "first_name": "",
        "last_name": "",
        "email": admin_user.email,
        "language": "",
        "role": admin_user.role,
        "team": "",
    }

    response = admin_client.post(url(User, "change", admin_user.pk), data)

    assert response.status_code == 200
    assert "deactivate yourself" in str(response.context["adminform"].form.non_field_errors())
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_team_managers_are_set_through_team_set_managers(admin_client):
    manager = UserFactory(role=Role.MANAGER)

    response = admin_client.post(url(Team, "add"), {"name": "North", "managers": [manager.pk]})

    assert response.status_code == 302
    assert list(Team.objects.get(name="North").managers.all()) == [manager]


def test_staff_salesperson_sees_only_visible_opportunities(client):
    seller = UserFactory(role=Role.SALESPERSON, is_staff=True)
    seller.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    mine = OpportunityFactory(owner=seller)
    other = OpportunityFactory()
    services.contact_add(opportunity=other, actor=other.owner, name="Hidden Person")
    client.force_login(seller)

    response = client.get(url(Opportunity, "changelist"))

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [mine]
    assert client.get(url(Opportunity, "change", other.pk)).status_code == 302  # "not found"
    contacts = client.get(url(Contact, "changelist"))
    assert "Hidden Person" not in contacts.content.decode()


def test_staff_salesperson_cannot_change_configuration(client):
    seller = UserFactory(role=Role.SALESPERSON, is_staff=True)
    step = PipelineFactory().steps.first()
    client.force_login(seller)

    assert client.get(url(Step, "change", step.pk)).status_code == 200  # to look
    response = client.post(url(Step, "change", step.pk), {"name": "X", "probability": "1"})
    assert response.status_code == 403
