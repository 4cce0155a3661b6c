"""The new-opportunity form: quick fields, default fields, pasted lead text, type-ahead."""

from datetime import date

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from opportuna.sales.forms import parse_money
from opportuna.sales.models import Client, EventKind, FieldKind, Opportunity
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    PipelineFactory,
    UserFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

NEW = "/o/new/"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def owner_client(client, cast):
    client.force_login(cast.owner)
    return client


@pytest.fixture
def fields():
    return {
        "name": FieldDefinitionFactory(label="Contact name", key="contact_name", position=1),
        "email": FieldDefinitionFactory(
            label="Contact email", key="contact_email", kind=FieldKind.EMAIL, position=2
        ),
        "budget": FieldDefinitionFactory(
            label="Budget", key="budget", kind=FieldKind.NUMBER, position=3
        ),
        "source": FieldDefinitionFactory(
            label="Source",
            key="source",
            kind=FieldKind.CHOICE,
            choices=["Fair", "Web"],
            position=4,
        ),
    }


def create_data(cast, **changes):
    data = {
        "create": "1",
        "title": "Forklifts for Bianchi",
        "client_name": "",
        "amount": "",
        "pipeline": cast.pipeline.pk,
        "step": "",
        "expected_close_date": "",
        "next_action_at": "",
        "next_action_note": "",
        "product": "",
        "description": "",
    }
    data.update(changes)
    return data


def test_url_is_the_agreed_one():
    assert reverse("sales:opportunity_new") == NEW


def test_anonymous_is_sent_to_login(client):
    response = client.get(NEW)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_form_shows_quick_fields_and_default_fields(owner_client, cast, fields):
    html = owner_client.get(NEW).content.decode()
    for name in (
        "title",
        "client_name",
        "amount",
        "pipeline",
        "step",
        "expected_close_date",
        "next_action_at",
        "lead_text",
        "field_contact_email",
        "field_budget",
    ):
        assert f'name="{name}"' in html, name
    assert 'type="email" name="field_contact_email"' in html
    assert '<option value="Fair">Fair</option>' in html
    assert (
        html.index('name="field_budget"')
        < html.index('class="separator"')
        < html.index('name="description"')
    )
    assert 'list="client-options"' in html


def test_create_redirects_to_the_new_page(owner_client, cast, fields):
    demo = cast.pipeline.steps.get(name="Demo")
    response = owner_client.post(
        NEW,
        create_data(
            cast,
            amount="25.000",
            step=demo.pk,
            expected_close_date="2026-09-30",
            next_action_note="Send the brochure",
            field_contact_email="anna@bianchi.it",
            field_budget="30.000,50",
            field_source="web",
            description="Met at the fair",
        ),
    )
    opp = Opportunity.objects.get()
    assert response.status_code == 302
    assert response.url == f"/o/{opp.pk}/"
    assert (opp.title, opp.amount, opp.step, opp.owner) == (
        "Forklifts for Bianchi",
        25_000_00,
        demo,
        cast.owner,
    )
    assert opp.expected_close_date == date(2026, 9, 30)
    assert opp.fields == {"contact_email": "anna@bianchi.it", "budget": "30000.5", "source": "Web"}
    assert opp.events.get().kind == EventKind.CREATED


def test_typing_a_new_client_name_opens_a_client_folder(owner_client, cast):
    owner_client.post(NEW, create_data(cast, client_name="Bianchi Carrelli"))
    assert Opportunity.objects.get().client == Client.objects.get(name="Bianchi Carrelli")


def test_an_existing_client_is_picked_by_name(owner_client, cast):
    existing = ClientFactory(name="Bianchi Carrelli")
    owner_client.post(NEW, create_data(cast, client_name="bianchi carrelli"))
    assert Opportunity.objects.get().client == existing
    assert Client.objects.count() == 1


def test_client_query_parameter_prefills_the_client(owner_client, cast):
    existing = ClientFactory(name="Verdi SpA")
    html = owner_client.get(NEW, {"client": existing.pk}).content.decode()
    assert 'value="Verdi SpA"' in html


def test_validation_errors_are_shown_and_nothing_is_created(owner_client, cast, fields):
    response = owner_client.post(
        NEW, create_data(cast, title="", amount="abc", field_contact_email="nope")
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "This field is required." in html
    assert "Enter an amount" in html
    assert "Enter a valid email address." in html
    assert not Opportunity.objects.exists()
    assert not Client.objects.exists()


def test_step_of_another_pipeline_is_refused(owner_client, cast):
    other = PipelineFactory(name="Service").steps.first()
    response = owner_client.post(NEW, create_data(cast, step=other.pk))
    assert response.status_code == 422
    assert "another pipeline" in response.content.decode()
    assert not Opportunity.objects.exists()


LEAD = """Contact name: Anna Bianchi
Contact email: anna@BIANCHI.it
Budget: 1.234,50
Title: Forklift fleet
Client: Bianchi Carrelli
Amount: 18.000
Referrer: Marco
just a loose line
---
Wants 12 forklifts by spring.
Call after 10."""


def test_pasted_text_fills_the_form_and_reports_unknown_labels(owner_client, cast, fields):
    response = owner_client.post(NEW, {"parse": "1", "lead_text": LEAD, "title": "typed"})
    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["field_contact_name"] == "Anna Bianchi"
    assert form.initial["field_contact_email"] == "anna@bianchi.it"
    assert form.initial["field_budget"] == "1234.5"
    assert form.initial["title"] == "Forklift fleet"
    assert form.initial["client_name"] == "Bianchi Carrelli"
    assert form.initial["amount"] == "18.000"
    assert form.initial["description"] == "Wants 12 forklifts by spring.\nCall after 10."
    html = response.content.decode()
    assert "<strong>Referrer</strong>: Marco" in html
    assert "just a loose line" in html
    assert 'value="Anna Bianchi"' in html
    assert not form.is_bound  # no errors shown before the user confirms
    assert not Opportunity.objects.exists()


def test_pasted_text_keeps_what_was_typed_when_it_says_nothing_about_it(owner_client, cast, fields):
    response = owner_client.post(
        NEW, {"parse": "1", "lead_text": "Budget: 10\n---\nnotes", "title": "Typed title"}
    )
    form = response.context["form"]
    assert form.initial["title"] == "Typed title"
    assert form.initial["field_budget"] == "10"


def test_pasted_then_created(owner_client, cast, fields):
    parsed = owner_client.post(NEW, {"parse": "1", "lead_text": LEAD}).context["form"].initial
    data = create_data(cast, **{k: v for k, v in parsed.items() if k != "pipeline"})
    response = owner_client.post(NEW, data)
    assert response.status_code == 302
    opp = Opportunity.objects.get()
    assert opp.amount == 18_000_00
    assert opp.client.name == "Bianchi Carrelli"
    assert opp.fields["contact_name"] == "Anna Bianchi"
    assert opp.description.startswith("Wants 12 forklifts")


def test_client_type_ahead_returns_matching_options(owner_client):
    ClientFactory(name="Bianchi Carrelli", city="Milano")
    ClientFactory(name="Rossi Bianchi")
    ClientFactory(name="Verdi SpA")
    response = owner_client.get(
        reverse("sales:opportunity_client_options"), {"client_name": "bian"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert '<option value="Bianchi Carrelli">Milano</option>' in html
    assert 'value="Rossi Bianchi"' in html
    assert "Verdi" not in html
    assert html.index("Bianchi Carrelli") < html.index("Rossi Bianchi")  # prefix first


def test_type_ahead_tells_twins_apart(owner_client):
    first = ClientFactory(name="Twin")
    second = ClientFactory(name="Twin")
    html = owner_client.get(
        reverse("sales:opportunity_client_options"), {"q": "twin"}
    ).content.decode()
    assert f"Twin (#{first.pk})" in html and f"Twin (#{second.pk})" in html


def test_type_ahead_escapes_names(owner_client):
    ClientFactory(name='<script>alert("x")</script>')
    html = owner_client.get(
        reverse("sales:opportunity_client_options"), {"q": "script"}
    ).content.decode()
    assert "<script>" not in html


def test_type_ahead_needs_login(client):
    response = client.get(reverse("sales:opportunity_client_options"), {"q": "a"})
    assert response.status_code == 302


def test_type_ahead_runs_two_queries_at_most(owner_client, django_assert_max_num_queries):
    for i in range(30):
        ClientFactory(name=f"Client {i}")
    # session, user, names starting with the text, names containing it.
    with django_assert_max_num_queries(4):
        owner_client.get(reverse("sales:opportunity_client_options"), {"q": "1"})


def test_steps_follow_the_chosen_pipeline(owner_client, cast):
    service = PipelineFactory(name="Service", steps=[("Call", 20), ("Offer", 60)])
    response = owner_client.get(reverse("sales:opportunity_new_steps"), {"pipeline": service.pk})
    html = response.content.decode()
    assert 'id="step-field"' in html
    assert "Offer (60%)" in html
    assert "Qualified" not in html


def test_manager_can_give_it_to_someone_they_manage(client, cast):
    client.force_login(cast.manager)
    client.post(NEW, create_data(cast, owner=cast.teammate.pk))
    assert Opportunity.objects.get().owner == cast.teammate


def test_manager_cannot_give_it_to_someone_outside(client, cast):
    client.force_login(cast.manager)
    response = client.post(NEW, create_data(cast, owner=cast.other.pk))
    assert response.status_code == 422
    assert not Opportunity.objects.exists()


def test_title_is_escaped_when_the_form_comes_back(owner_client, cast):
    response = owner_client.post(
        NEW, create_data(cast, title="<script>alert(1)</script>", amount="x")
    )
    html = response.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_csrf_token_is_required(cast):
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    assert browser.post(NEW, create_data(cast)).status_code == 403
    assert not Opportunity.objects.exists()


def test_no_pipeline_yet_says_so(client):
    client.force_login(UserFactory())
    response = client.get(NEW)
    assert "There is no pipeline yet" in response.content.decode()


@pytest.mark.parametrize(
    ("typed", "cents"),
    [
        ("1234", 1234_00),
        ("1234.5", 1234_50),
        ("1234,56", 1234_56),
        ("1.234,56", 1234_56),
        ("1,234.56", 1234_56),
        ("1.234", 1234_00),
        ("1.234.567", 1234567_00),
        ("€ 1 234,00", 1234_00),
        ("0,5", 50),
    ],
)
def test_money_is_read_the_italian_and_the_english_way(typed, cents):
    assert parse_money(typed) == cents


@pytest.mark.parametrize("typed", ["abc", "1,2,3", "12.345,6.7", "1.2345", "1,234,56", ""])
def test_money_that_cannot_be_read_is_refused(typed):
    with pytest.raises(ValueError):
        parse_money(typed)
