"""Settings: admins configure pipelines, fields, catalogues, users, teams and the account
through the services; managers read their teams' users; salespeople are refused."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from opportuna.accounts.models import Account, Role, Team, User, VisibilityPolicy
from opportuna.sales.models import (
    ActivityType,
    EventKind,
    FieldDefinition,
    FieldKind,
    LostReason,
    OpportunityEvent,
    Pipeline,
    Product,
    Step,
    Tag,
)
from opportuna.sales.selectors import visible_opportunities
from tests.factories import (
    FieldDefinitionFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    TagFactory,
    TeamFactory,
    UserFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
XSS = "<script>alert(1)</script>"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def admin_client(client, cast):
    client.force_login(cast.admin)
    return client


def step_named(pipeline, name):
    return pipeline.steps.get(name=name)


def step_order(pipeline):
    return list(pipeline.steps.order_by("position", "pk").values_list("name", flat=True))


def text(response):
    return response.content.decode()


def get_pages(cast):
    step = cast.pipeline.steps.order_by("position").first()
    field = FieldDefinitionFactory()
    return [
        reverse("sales:settings"),
        reverse("sales:settings_pipelines"),
        reverse("sales:settings_pipeline", args=[cast.pipeline.pk]),
        reverse("sales:settings_step_delete", args=[step.pk]),
        reverse("sales:settings_fields"),
        reverse("sales:settings_field", args=[field.pk]),
        *(
            reverse("sales:settings_catalogue", kwargs={"kind": kind})
            for kind in ("activity-types", "lost-reasons", "products", "tags")
        ),
        reverse("sales:settings_users"),
        reverse("sales:settings_user_create"),
        reverse("sales:settings_user", args=[cast.owner.pk]),
        reverse("sales:settings_teams"),
        reverse("sales:settings_team", args=[cast.team_a.pk]),
        reverse("sales:settings_account"),
    ]


def post_actions(cast):
    """Every settings write, with data an admin's request would carry."""
    step = cast.pipeline.steps.order_by("position").first()
    field = FieldDefinitionFactory()
    tag = TagFactory(name="vip")
    return [
        (reverse("sales:settings_pipeline_create"), {"name": "New", "steps": "Lead: 10"}),
        (
            reverse("sales:settings_pipeline_update", args=[cast.pipeline.pk]),
            {"name": "Renamed", "is_active": "on"},
        ),
        (
            reverse("sales:settings_step_create", args=[cast.pipeline.pk]),
            {"name": "Won?", "probability": "90"},
        ),
        (
            reverse("sales:settings_step_update", args=[step.pk]),
            {"name": step.name, "probability": "55"},
        ),
        (
            reverse("sales:settings_step_move", args=[cast.pipeline.pk]),
            {"step": step.pk, "direction": "down"},
        ),
        (reverse("sales:settings_step_delete", args=[step.pk]), {}),
        (reverse("sales:settings_field_create"), {"label": "Budget", "kind": "number"}),
        (reverse("sales:settings_field", args=[field.pk]), {"label": "X", "kind": "text"}),
        (reverse("sales:settings_field_move", args=[field.pk]), {"direction": "up"}),
        (
            reverse("sales:settings_catalogue_create", kwargs={"kind": "tags"}),
            {"name": "new", "colour": "#000000"},
        ),
        (
            reverse("sales:settings_catalogue_update", kwargs={"kind": "tags", "pk": tag.pk}),
            {"name": "vip", "colour": "#ff0000"},
        ),
        (
            reverse("sales:settings_catalogue_create", kwargs={"kind": "products"}),
            {"name": "P", "unit_price": "10", "is_active": "on"},
        ),
        (
            reverse("sales:settings_user_create"),
            {"username": "newbie", "role": "salesperson"},
        ),
        (
            reverse("sales:settings_user", args=[cast.teammate.pk]),
            {"role": "admin", "is_active": "on"},
        ),
        (reverse("sales:settings_team_create"), {"name": "Team C"}),
        (reverse("sales:settings_team", args=[cast.team_a.pk]), {"name": "Renamed team"}),
        (
            reverse("sales:settings_account"),
            {"name": "Mine", "currency": "USD", "visibility": "team"},
        ),
    ]


def config_snapshot():
    """Everything the settings write, to prove a refused request changed nothing."""
    return (
        list(Pipeline.objects.values_list("name", "is_active")),
        list(Step.objects.values_list("name", "probability", "position")),
        list(FieldDefinition.objects.values_list("label", "kind", "position")),
        list(Tag.objects.values_list("name", "colour")),
        list(Product.objects.values_list("name")),
        list(User.objects.values_list("username", "role", "is_active")),
        list(Team.objects.values_list("name")),
        Account.objects.values_list("name", "currency", "visibility").get(),
    )


# Who may come in ------------------------------------------------------------------------


def test_url_names_and_paths(cast):
    assert reverse("sales:settings") == "/settings/"
    assert reverse("sales:settings_pipelines") == "/settings/pipelines/"
    assert reverse("sales:settings_catalogue", kwargs={"kind": "tags"}) == "/settings/tags/"


def test_anonymous_is_sent_to_login(client, cast):
    for url in get_pages(cast):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("accounts:login")), url
    for url, data in post_actions(cast):
        response = client.post(url, data)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("accounts:login")), url


def test_admin_opens_every_page(admin_client, cast):
    for url in get_pages(cast):
        assert admin_client.get(url).status_code == 200, url


def test_salesperson_gets_403_on_every_page(client, cast):
    client.force_login(cast.owner)
    for url in get_pages(cast):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize("who", ["owner", "manager"])
def test_non_admins_get_403_on_every_settings_post_and_nothing_changes(client, cast, who):
    actions = post_actions(cast)
    before = config_snapshot()
    client.force_login(getattr(cast, who))
    for url, data in actions:
        assert client.post(url, data).status_code == 403, url
        assert client.post(url, data, **HTMX).status_code == 403, url
    assert config_snapshot() == before


def test_settings_link_is_hidden_from_salespeople(client, cast):
    client.force_login(cast.owner)
    assert 'href="/settings/"' not in text(client.get("/"))
    for user in (cast.manager, cast.admin):
        client.force_login(user)
        assert 'href="/settings/"' in text(client.get("/"))


def test_unknown_objects_are_404(admin_client):
    for url in [
        "/settings/pipelines/999999/",
        "/settings/steps/999999/delete/",
        "/settings/fields/999999/",
        "/settings/users/999999/",
        "/settings/teams/999999/",
        "/settings/colours/",
    ]:
        assert admin_client.get(url).status_code == 404, url
    for url, data in [
        ("/settings/tags/999999/", {"name": "x", "colour": "#000000"}),
        ("/settings/steps/999999/edit/", {"name": "x", "probability": "10"}),
        ("/settings/pipelines/999999/steps/new/", {"name": "x", "probability": "10"}),
        ("/settings/pipelines/999999/steps/move/", {"step": "1", "direction": "up"}),
        ("/settings/fields/999999/move/", {"direction": "up"}),
    ]:
        assert admin_client.post(url, data).status_code == 404, url
        assert admin_client.post(url, data, **HTMX).status_code == 404, url


def test_a_post_without_the_csrf_token_is_refused(cast):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(cast.admin)
    response = browser.post(
        reverse("sales:settings_account"),
        {"name": "Hacked", "currency": "USD", "visibility": "team"},
    )
    assert response.status_code == 403
    assert Account.load().name != "Hacked"


def test_index_lists_sections_for_admins_and_only_users_for_managers(client, cast):
    client.force_login(cast.admin)
    html = text(client.get("/settings/"))
    for url in ("/settings/pipelines/", "/settings/tags/", "/settings/account/"):
        assert f'href="{url}"' in html
    client.force_login(cast.manager)
    html = text(client.get("/settings/"))
    assert 'href="/settings/users/"' in html
    assert 'href="/settings/pipelines/"' not in html
    assert 'href="/settings/account/"' not in html


# Pipelines and steps --------------------------------------------------------------------


def test_admin_creates_a_pipeline_with_steps(admin_client):
    response = admin_client.post(
        reverse("sales:settings_pipeline_create"),
        {"name": "Enterprise", "steps": "Lead: 10\n\nDemo: 40%\nProposal: 70\n"},
    )
    pipeline = Pipeline.objects.get(name="Enterprise")
    assert response.status_code == 302
    assert response.url == reverse("sales:settings_pipeline", args=[pipeline.pk])
    assert list(
        pipeline.steps.order_by("position").values_list("name", "probability", "position")
    ) == [("Lead", 10, 0), ("Demo", 40, 1), ("Proposal", 70, 2)]
    html = text(admin_client.get(response.url))
    assert "Pipeline “Enterprise” created." in html
    assert html.index('value="Lead"') < html.index('value="Demo"') < html.index('value="Proposal"')


@pytest.mark.parametrize(
    "steps,message",
    [
        ("Lead 10", "Line 1: write “name: probability”"),
        ("Lead: 10\nDemo: 150", "Line 2: the probability must be between 0 and 100."),
        ("Lead: 10\nlead: 20", "“lead” is listed twice"),
    ],
)
def test_bad_step_lines_are_shown_and_nothing_is_created(admin_client, steps, message):
    response = admin_client.post(
        reverse("sales:settings_pipeline_create"), {"name": "Enterprise", "steps": steps}
    )
    assert response.status_code == 422
    assert message in text(response)
    assert not Pipeline.objects.filter(name="Enterprise").exists()


def test_a_duplicate_pipeline_name_is_refused_by_the_service(admin_client, cast):
    response = admin_client.post(reverse("sales:settings_pipeline_create"), {"name": "Sales"})
    assert response.status_code == 422
    assert "Pipeline with this Name already exists." in text(response)
    assert Pipeline.objects.filter(name="Sales").count() == 1


def test_admin_renames_and_deactivates_a_pipeline(admin_client, cast):
    response = admin_client.post(
        reverse("sales:settings_pipeline_update", args=[cast.pipeline.pk]), {"name": "Retail"}
    )
    assert response.status_code == 302
    cast.pipeline.refresh_from_db()
    assert (cast.pipeline.name, cast.pipeline.is_active) == ("Retail", False)
    html = text(admin_client.get(reverse("sales:settings_pipelines")))
    assert "Retail" in html and "Inactive" in html


def test_moving_a_step_up_sends_the_whole_new_order(admin_client, cast):
    demo = step_named(cast.pipeline, "Demo")
    url = reverse("sales:settings_step_move", args=[cast.pipeline.pk])
    response = admin_client.post(url, {"step": demo.pk, "direction": "up"})
    assert response.status_code == 302
    assert step_order(cast.pipeline) == ["Lead", "Demo", "Qualified", "Proposal"]
    assert list(cast.pipeline.steps.order_by("position").values_list("position", flat=True)) == [
        0,
        1,
        2,
        3,
    ]
    response = admin_client.post(url, {"step": demo.pk, "direction": "down"}, **HTMX)
    assert response.status_code == 200
    html = text(response)
    assert "<html" not in html and 'id="steps"' in html
    assert html.index('value="Qualified"') < html.index('value="Demo"')
    assert step_order(cast.pipeline) == ["Lead", "Qualified", "Demo", "Proposal"]


def test_the_first_step_cannot_move_up(admin_client, cast):
    lead = step_named(cast.pipeline, "Lead")
    url = reverse("sales:settings_step_move", args=[cast.pipeline.pk])
    admin_client.post(url, {"step": lead.pk, "direction": "up"})
    assert step_order(cast.pipeline) == ["Lead", "Qualified", "Demo", "Proposal"]


def test_a_step_of_another_pipeline_cannot_be_moved_here(admin_client, cast):
    other = PipelineFactory(name="Other")
    url = reverse("sales:settings_step_move", args=[cast.pipeline.pk])
    foreign = other.steps.order_by("position").last()
    assert admin_client.post(url, {"step": foreign.pk, "direction": "up"}).status_code == 404


def test_a_new_default_probability_carries_to_the_open_opportunities_following_it(
    admin_client, cast
):
    lead = step_named(cast.pipeline, "Lead")
    following = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, step=lead)
    manual = OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        step=lead,
        probability=33,
        probability_is_manual=True,
    )
    response = admin_client.post(
        reverse("sales:settings_step_update", args=[lead.pk]),
        {"name": "Lead", "probability": "40", "rot_days": "14"},
    )
    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.probability, lead.rot_days) == (40, 14)
    following.refresh_from_db()
    manual.refresh_from_db()
    assert following.probability == 40
    assert manual.probability == 33
    event = OpportunityEvent.objects.get(opportunity=following, kind=EventKind.PROBABILITY)
    assert event.changes == {"probability": [10, 40]}
    assert event.actor == cast.admin
    assert not OpportunityEvent.objects.filter(opportunity=manual).exists()


def test_a_probability_of_150_is_shown_as_an_error(admin_client, cast):
    lead = step_named(cast.pipeline, "Lead")
    url = reverse("sales:settings_step_update", args=[lead.pk])
    message = "Ensure this value is less than or equal to 100."
    response = admin_client.post(url, {"name": "Lead", "probability": "150"})
    assert response.status_code == 422
    assert message in text(response)
    assert 'value="150"' in text(response)
    response = admin_client.post(url, {"name": "Lead", "probability": "150"}, **HTMX)
    assert response.status_code == 422
    assert "<html" not in text(response) and message in text(response)
    lead.refresh_from_db()
    assert lead.probability == 10


def test_a_duplicate_step_name_is_refused_by_the_service(admin_client, cast):
    lead = step_named(cast.pipeline, "Lead")
    response = admin_client.post(
        reverse("sales:settings_step_update", args=[lead.pk]),
        {"name": "Demo", "probability": "10"},
    )
    assert response.status_code == 422
    assert "already exists" in text(response)
    assert step_named(cast.pipeline, "Lead").pk == lead.pk


def test_admin_adds_a_step_at_the_end(admin_client, cast):
    url = reverse("sales:settings_step_create", args=[cast.pipeline.pk])
    response = admin_client.post(url, {"name": "Negotiation", "probability": "85"}, **HTMX)
    assert response.status_code == 200
    assert 'value="Negotiation"' in text(response)
    assert "Step “Negotiation” added." in text(response)
    assert step_order(cast.pipeline)[-1] == "Negotiation"
    assert step_named(cast.pipeline, "Negotiation").probability == 85


def test_an_empty_step_is_deleted_after_confirmation(admin_client, cast):
    demo = step_named(cast.pipeline, "Demo")
    url = reverse("sales:settings_step_delete", args=[demo.pk])
    page = admin_client.get(url)
    assert "Yes, delete the step" in text(page)
    assert Step.objects.filter(pk=demo.pk).exists()  # asking deletes nothing
    response = admin_client.post(url)
    assert response.status_code == 302
    assert not Step.objects.filter(pk=demo.pk).exists()


def test_a_step_holding_opportunities_is_not_deleted_and_the_reason_is_shown(admin_client, cast):
    lead = step_named(cast.pipeline, "Lead")
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, step=lead)
    url = reverse("sales:settings_step_delete", args=[lead.pk])
    assert "This step holds 1 opportunity" in text(admin_client.get(url))
    response = admin_client.post(url)
    assert response.status_code == 422
    assert "Move this step&#x27;s opportunities elsewhere before deleting it." in text(response)
    assert Step.objects.filter(pk=lead.pk).exists()


# Default fields -------------------------------------------------------------------------


def test_admin_defines_a_choice_field_with_one_choice_per_line(admin_client):
    response = admin_client.post(
        reverse("sales:settings_field_create"),
        {
            "label": "Company size",
            "kind": "choice",
            "choices": "Small\n\n Large \n",
            "required": "on",
        },
    )
    assert response.status_code == 302
    definition = FieldDefinition.objects.get(label="Company size")
    assert (definition.key, definition.kind, definition.choices, definition.required) == (
        "company_size",
        FieldKind.CHOICE,
        ["Small", "Large"],
        True,
    )
    html = text(admin_client.get(reverse("sales:settings_fields")))
    assert "Company size" in html and "Small, Large" in html


def test_a_choice_field_without_choices_is_refused_with_the_services_message(admin_client):
    response = admin_client.post(
        reverse("sales:settings_field_create"), {"label": "Size", "kind": "choice", "choices": ""}
    )
    assert response.status_code == 422
    assert "A choice field needs at least one choice." in text(response)
    assert not FieldDefinition.objects.filter(label="Size").exists()


def test_admin_changes_and_deactivates_a_field(admin_client):
    definition = FieldDefinitionFactory(label="Budget", kind=FieldKind.TEXT)
    url = reverse("sales:settings_field", args=[definition.pk])
    assert 'value="Budget"' in text(admin_client.get(url))
    response = admin_client.post(
        url, {"label": "Budget (k€)", "kind": "number", "choices": "", "required": "on"}
    )
    assert response.status_code == 302
    definition.refresh_from_db()
    assert (definition.label, definition.kind, definition.required, definition.is_active) == (
        "Budget (k€)",
        "number",
        True,
        False,
    )


def test_a_label_with_a_colon_is_refused_on_edit(admin_client):
    definition = FieldDefinitionFactory(label="Budget")
    response = admin_client.post(
        reverse("sales:settings_field", args=[definition.pk]),
        {"label": "Budget: total", "kind": "text", "is_active": "on"},
    )
    assert response.status_code == 422
    assert "A label cannot contain" in text(response)
    definition.refresh_from_db()
    assert definition.label == "Budget"


def test_fields_move_up_and_down_by_position_updates(admin_client):
    first = FieldDefinitionFactory(label="First", position=0)
    FieldDefinitionFactory(label="Second", position=0)  # same position: pk decides
    third = FieldDefinitionFactory(label="Third", position=5)

    def order():
        return list(
            FieldDefinition.objects.order_by("position", "pk").values_list("label", flat=True)
        )

    response = admin_client.post(
        reverse("sales:settings_field_move", args=[third.pk]), {"direction": "up"}
    )
    assert response.status_code == 302
    assert order() == ["First", "Third", "Second"]
    response = admin_client.post(
        reverse("sales:settings_field_move", args=[first.pk]), {"direction": "down"}, **HTMX
    )
    assert response.status_code == 200
    assert 'id="field-list"' in text(response) and "<html" not in text(response)
    assert order() == ["Third", "First", "Second"]
    assert list(
        FieldDefinition.objects.order_by("position").values_list("position", flat=True)
    ) == [
        0,
        1,
        2,
    ]


# Catalogues -----------------------------------------------------------------------------


def test_a_product_price_is_typed_in_currency_units(admin_client):
    url = reverse("sales:settings_catalogue_create", kwargs={"kind": "products"})
    response = admin_client.post(
        url, {"name": "Setup", "unit_price": "1.234,56", "is_active": "on"}
    )
    assert response.status_code == 302
    assert Product.objects.get(name="Setup").unit_price == 123456
    assert 'value="1234.56"' in text(admin_client.get(response.url))


def test_a_bad_price_is_shown(admin_client):
    url = reverse("sales:settings_catalogue_create", kwargs={"kind": "products"})
    response = admin_client.post(url, {"name": "Setup", "unit_price": "a lot"}, **HTMX)
    assert response.status_code == 422
    assert "Enter an amount" in text(response)
    assert not Product.objects.filter(name="Setup").exists()


def test_a_product_is_deactivated_not_deleted(admin_client):
    product = ProductFactory(name="Old service")
    url = reverse("sales:settings_catalogue_update", kwargs={"kind": "products", "pk": product.pk})
    response = admin_client.post(url, {"name": "Old service", "unit_price": "100"}, **HTMX)
    assert response.status_code == 200
    assert "<html" not in text(response)
    assert "“Old service” saved." in text(response)
    product.refresh_from_db()
    assert product.is_active is False
    assert product.unit_price == 10000


def test_a_tag_gets_its_colour(admin_client):
    tag = TagFactory(name="agency")
    url = reverse("sales:settings_catalogue_update", kwargs={"kind": "tags", "pk": tag.pk})
    assert 'type="color"' in text(
        admin_client.get(reverse("sales:settings_catalogue", args=["tags"]))
    )
    response = admin_client.post(url, {"name": "media agency", "colour": "#FF8800"})
    assert response.status_code == 302
    tag.refresh_from_db()
    assert (tag.name, tag.colour) == ("media agency", "#ff8800")


def test_a_bad_colour_and_a_duplicate_name_are_shown(admin_client):
    TagFactory(name="vip")
    url = reverse("sales:settings_catalogue_create", kwargs={"kind": "tags"})
    response = admin_client.post(url, {"name": "new", "colour": "red"})
    assert response.status_code == 422
    assert "Pick a colour" in text(response)
    response = admin_client.post(url, {"name": "vip", "colour": "#000000"})
    assert response.status_code == 422
    assert "Tag with this Name already exists." in text(response)
    assert list(Tag.objects.values_list("name", flat=True)) == ["vip"]


def test_activity_types_and_lost_reasons_are_saved_through_their_services(admin_client):
    url = reverse("sales:settings_catalogue_create", kwargs={"kind": "activity-types"})
    response = admin_client.post(url, {"name": "Trade fair", "position": "9", "is_active": "on"})
    assert response.status_code == 302
    assert ActivityType.objects.get(name="Trade fair").key == "trade_fair"  # made by the service
    reason = LostReasonFactory(name="Price")
    url = reverse(
        "sales:settings_catalogue_update", kwargs={"kind": "lost-reasons", "pk": reason.pk}
    )
    assert admin_client.post(url, {"name": "Price too high", "position": "1"}).status_code == 302
    reason.refresh_from_db()
    assert (reason.name, reason.is_active) == ("Price too high", False)
    assert LostReason.objects.filter(pk=reason.pk).exists()


# Users and teams ------------------------------------------------------------------------


def test_admin_creates_a_user_with_a_password(admin_client, cast):
    response = admin_client.post(
        reverse("sales:settings_user_create"),
        {
            "username": "giulia",
            "first_name": "Giulia",
            "last_name": "Verdi",
            "email": "giulia@example.com",
            "role": "manager",
            "team": cast.team_b.pk,
            "language": "it",
            "password1": "a-long-password-77",
            "password2": "a-long-password-77",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="giulia")
    assert (user.role, user.team, user.language, user.is_active) == (
        "manager",
        cast.team_b,
        "it",
        True,
    )
    assert user.check_password("a-long-password-77")


def test_a_user_without_a_password_cannot_log_in_and_the_admin_is_told(admin_client):
    response = admin_client.post(
        reverse("sales:settings_user_create"),
        {"username": "marco", "role": "salesperson"},
        follow=True,
    )
    user = User.objects.get(username="marco")
    assert not user.has_usable_password()
    html = text(response)
    assert "created without a password" in html
    assert "No password yet" in html
    assert reverse("admin:auth_user_password_change", args=[user.pk]) in html


def test_mismatched_or_weak_passwords_are_shown(admin_client):
    url = reverse("sales:settings_user_create")
    data = {"username": "marco", "role": "salesperson", "password1": "x-long-pass-1"}
    response = admin_client.post(url, {**data, "password2": "something else"})
    assert response.status_code == 422
    assert "The two passwords differ." in text(response)
    response = admin_client.post(url, {**data, "password1": "123", "password2": "123"})
    assert response.status_code == 422
    assert not User.objects.filter(username="marco").exists()


def test_a_taken_username_is_refused(admin_client, cast):
    response = admin_client.post(
        reverse("sales:settings_user_create"), {"username": "owner", "role": "salesperson"}
    )
    assert response.status_code == 422
    assert "already exists" in text(response)


def test_admin_changes_a_users_role_and_team(admin_client, cast):
    response = admin_client.post(
        reverse("sales:settings_user", args=[cast.other.pk]),
        {
            "first_name": "Otto",
            "last_name": "Neri",
            "email": "otto@example.com",
            "role": "manager",
            "team": cast.team_a.pk,
            "language": "",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    cast.other.refresh_from_db()
    assert (cast.other.first_name, cast.other.role, cast.other.team) == (
        "Otto",
        "manager",
        cast.team_a,
    )


def test_deactivating_a_user_asks_for_confirmation_first(admin_client, cast):
    url = reverse("sales:settings_user", args=[cast.teammate.pk])
    data = {
        "first_name": cast.teammate.first_name,
        "last_name": cast.teammate.last_name,
        "email": cast.teammate.email,
        "role": "salesperson",
        "team": cast.team_a.pk,
    }
    response = admin_client.post(url, data)  # is_active left unticked
    assert response.status_code == 200
    assert "Yes, deactivate" in text(response)
    cast.teammate.refresh_from_db()
    assert cast.teammate.is_active
    response = admin_client.post(url, {**data, "confirm": "deactivate"})
    assert response.status_code == 302
    cast.teammate.refresh_from_db()
    assert not cast.teammate.is_active
    assert "Deactivated" in text(admin_client.get(reverse("sales:settings_users")))


def test_an_admin_cannot_change_their_own_role(admin_client, cast):
    response = admin_client.post(
        reverse("sales:settings_user", args=[cast.admin.pk]),
        {"role": "salesperson", "is_active": "on"},
    )
    assert response.status_code == 422
    assert "You cannot deactivate yourself or change your own role." in text(response)
    cast.admin.refresh_from_db()
    assert cast.admin.role == Role.ADMIN


def test_manager_sees_their_teams_users_read_only(client, cast):
    client.force_login(cast.manager)
    response = client.get(reverse("sales:settings_users"))
    html = text(response)
    assert response.status_code == 200
    assert "Your team's users" in html
    for user in (cast.owner, cast.teammate, cast.manager):
        assert f"<td>{user.username}</td>" in html
    assert f"<td>{cast.other.username}</td>" not in html  # team B
    assert f"<td>{cast.admin.username}</td>" not in html
    assert "<form" not in html.split('id="main"')[1]  # nothing to submit
    assert reverse("sales:settings_user", args=[cast.owner.pk]) not in html
    assert reverse("sales:settings_user_create") not in html


def test_manager_cannot_open_or_change_a_user(client, cast):
    client.force_login(cast.manager)
    url = reverse("sales:settings_user", args=[cast.owner.pk])
    assert client.get(url).status_code == 403
    response = client.post(url, {"role": "manager", "is_active": "on", "team": cast.team_a.pk})
    assert response.status_code == 403
    cast.owner.refresh_from_db()
    assert cast.owner.role == Role.SALESPERSON


def test_admin_creates_a_team_with_a_manager_and_changes_its_managers(admin_client, cast):
    boss = UserFactory(username="boss", role=Role.MANAGER)
    response = admin_client.post(
        reverse("sales:settings_team_create"), {"name": "Team C", "managers": [boss.pk]}
    )
    assert response.status_code == 302
    team = Team.objects.get(name="Team C")
    assert list(team.managers.all()) == [boss]
    url = reverse("sales:settings_team", args=[team.pk])
    response = admin_client.post(url, {"name": "Team Z", "managers": [cast.manager.pk]})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.name == "Team Z"
    assert list(team.managers.all()) == [cast.manager]


def test_a_salesperson_is_not_offered_as_a_manager(admin_client, cast):
    response = admin_client.post(
        reverse("sales:settings_team", args=[cast.team_a.pk]),
        {"name": "Team A", "managers": [cast.owner.pk]},
    )
    assert response.status_code == 422
    assert "Select a valid choice" in text(response)
    assert list(cast.team_a.managers.all()) == [cast.manager]


# The account ----------------------------------------------------------------------------


def test_the_visibility_policy_explains_each_option(admin_client):
    html = text(admin_client.get(reverse("sales:settings_account")))
    assert html.count('type="radio"') == 2
    assert "sees only the opportunities they own" in html
    assert "also sees the opportunities of their teammates" in html


def test_team_policy_lets_a_salesperson_see_teammates_opportunities(admin_client, cast):
    theirs = OpportunityFactory(owner=cast.teammate, pipeline=cast.pipeline)
    assert theirs not in visible_opportunities(cast.owner)
    response = admin_client.post(
        reverse("sales:settings_account"),
        {"name": "Acme Sales", "currency": "usd", "visibility": VisibilityPolicy.TEAM},
    )
    assert response.status_code == 302
    account = Account.load()
    assert (account.name, account.currency, account.visibility) == ("Acme Sales", "USD", "team")
    assert theirs in visible_opportunities(cast.owner)
    assert theirs not in visible_opportunities(cast.other)


def test_a_bad_currency_is_shown_with_the_services_message(admin_client):
    response = admin_client.post(
        reverse("sales:settings_account"), {"name": "Acme", "currency": "E1R", "visibility": "own"}
    )
    assert response.status_code == 422
    assert "Use a three-letter ISO currency code." in text(response)
    assert Account.load().currency == "EUR"


# Escaping and query counts --------------------------------------------------------------


def test_names_are_escaped(admin_client, cast):
    pipeline = PipelineFactory(name=XSS, steps=[(XSS, 10)])
    TagFactory(name=XSS)
    TeamFactory(name=XSS)
    FieldDefinitionFactory(label=XSS)
    UserFactory(username="xss", first_name=XSS)
    for url in [
        reverse("sales:settings_pipelines"),
        reverse("sales:settings_pipeline", args=[pipeline.pk]),
        reverse("sales:settings_catalogue", args=["tags"]),
        reverse("sales:settings_teams"),
        reverse("sales:settings_fields"),
        reverse("sales:settings_users"),
    ]:
        html = text(admin_client.get(url))
        assert XSS not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def make_rows(kind, count):
    for index in range(count):
        if kind == "pipelines":
            PipelineFactory(name=f"P{index}", steps=[("A", 10), ("B", 50)])
        elif kind == "steps":
            pipeline = Pipeline.objects.get(name="Sales")
            Step.objects.create(pipeline=pipeline, name=f"S{index}", position=10 + index)
        elif kind == "fields":
            FieldDefinitionFactory(label=f"F{index}", kind="choice", choices=["a", "b"])
        elif kind == "tags":
            TagFactory(name=f"t{index}")
        elif kind == "products":
            ProductFactory(name=f"p{index}")
        elif kind == "users":
            UserFactory(username=f"u{index}", team=Team.objects.get(name="Team A"))
        elif kind == "teams":
            team = TeamFactory(name=f"T{index}")
            team.managers.add(User.objects.get(username="manager"))


# session, user and the to-do badge come with every page; then what each page reads.
QUERY_COUNTS = [
    ("pipelines", "admin", "/settings/pipelines/", 3 + 2),  # pipelines, their steps
    ("steps", "admin", "pipeline", 3 + 2),  # the pipeline, its steps with counts
    ("fields", "admin", "/settings/fields/", 3 + 1),  # the fields
    ("tags", "admin", "/settings/tags/", 3 + 2),  # the tags, account currency
    ("products", "admin", "/settings/products/", 3 + 2),  # the products, account currency
    ("users", "admin", "/settings/users/", 3 + 1),  # users with their team
    ("users", "manager", "/settings/users/", 3 + 1),  # managed users with their team
    ("teams", "admin", "/settings/teams/", 3 + 3),  # teams with counts, managers, choices
]


@pytest.mark.parametrize("kind,who,url,expected", QUERY_COUNTS)
@pytest.mark.parametrize("rows", [1, 30])
def test_query_count_is_constant(
    client, cast, kind, who, url, expected, rows, django_assert_num_queries
):
    make_rows(kind, rows)
    if url == "pipeline":
        url = reverse("sales:settings_pipeline", args=[cast.pipeline.pk])
    client.force_login(getattr(cast, who))
    with django_assert_num_queries(expected):
        response = client.get(url)
    assert response.status_code == 200
    if kind in ("tags", "products"):
        assert len(re.findall(r'class="settings-row"', text(response))) == rows
