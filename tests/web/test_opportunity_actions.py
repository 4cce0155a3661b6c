"""Actions of the opportunity page: each one writes through its service and its event."""

from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.sales.models import (
    Activity,
    Client,
    Comment,
    EventKind,
    Opportunity,
    OpportunityEvent,
    Status,
)
from opportuna.sales.services import (
    activity_plan,
    comment_add,
    contact_add,
    opportunity_close_won,
    opportunity_update,
    tag_add,
)
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    LostReasonFactory,
    OpportunityFactory,
    ProductFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    return OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        title="Fleet renewal",
        amount=12_000_00,
        client=ClientFactory(name="Rossi Logistica"),
    )


@pytest.fixture
def owner_client(client, cast):
    client.force_login(cast.owner)
    return client


def url(name, *args):
    return reverse(f"sales:{name}", args=args)


def last_event(opp):
    return OpportunityEvent.objects.filter(opportunity=opp).order_by("-at", "-pk").first()


def kinds(opp):
    return list(OpportunityEvent.objects.filter(opportunity=opp).values_list("kind", flat=True))


def local_input(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def assert_back_on_page(response, opp):
    assert response.status_code == 302
    assert response.url.startswith(url("opportunity_detail", opp.pk))


# Planning, steps, closing -----------------------------------------------------------------


def test_plan_next_action(owner_client, opp):
    when = timezone.now() + timedelta(days=3)
    response = owner_client.post(
        url("opportunity_next_action", opp.pk), {"at": local_input(when), "note": "Call Anna"}
    )
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.next_action_note == "Call Anna"
    assert last_event(opp).kind == EventKind.NEXT_ACTION


def test_standby_until_a_date(owner_client, opp):
    until = timezone.localdate() + timedelta(days=20)
    response = owner_client.post(url("opportunity_standby", opp.pk), {"until": until.isoformat()})
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.status == Status.STANDBY
    assert timezone.localtime(opp.next_action_at).date() == until
    assert last_event(opp).kind == EventKind.STANDBY


def test_standby_in_the_past_shows_the_rule_and_writes_nothing(owner_client, opp):
    response = owner_client.post(
        url("opportunity_standby", opp.pk), {"until": timezone.localdate().isoformat()}
    )
    assert response.status_code == 422
    assert "A standby date must be in the future." in response.content.decode()
    assert 'id="dialog-standby" open' in response.content.decode()
    opp.refresh_from_db()
    assert opp.status == Status.TODO
    assert not kinds(opp)


def test_move_step(owner_client, cast, opp):
    demo = cast.pipeline.steps.get(name="Demo")
    response = owner_client.post(url("opportunity_move", opp.pk), {"step": demo.pk})
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.step == demo
    assert opp.probability == 50
    assert last_event(opp).kind == EventKind.MOVED


def test_move_to_a_step_of_another_pipeline_is_refused(owner_client, opp):
    other = OpportunityFactory().step
    response = owner_client.post(url("opportunity_move", opp.pk), {"step": other.pk})
    assert response.status_code == 422
    assert not kinds(opp)


def test_set_probability_by_hand(owner_client, opp):
    response = owner_client.post(url("opportunity_probability", opp.pk), {"probability": "60"})
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert (opp.probability, opp.probability_is_manual) == (60, True)
    assert last_event(opp).kind == EventKind.PROBABILITY


def test_close_won_with_an_italian_amount(owner_client, opp):
    response = owner_client.post(url("opportunity_won", opp.pk), {"won_amount": "11.500,50"})
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.status == Status.WON
    assert opp.won_amount == 11_500_50
    assert last_event(opp).kind == EventKind.WON


def test_won_dialog_defaults_to_the_amount(owner_client, opp):
    html = owner_client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert 'name="won_amount" value="12000.00"' in html


def test_close_lost_needs_a_reason(owner_client, opp):
    LostReasonFactory(name="Price")
    response = owner_client.post(url("opportunity_lost", opp.pk), {"note": "too dear"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "This field is required." in html
    assert 'id="dialog-lost" open' in html
    assert "too dear" in html  # the typed note is kept
    opp.refresh_from_db()
    assert opp.status == Status.TODO


def test_close_lost_with_reason_and_note(owner_client, opp):
    reason = LostReasonFactory(name="Price")
    response = owner_client.post(
        url("opportunity_lost", opp.pk), {"reason": reason.pk, "note": "Rival was cheaper"}
    )
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert (opp.status, opp.lost_reason, opp.lost_note) == (
        Status.LOST,
        reason,
        "Rival was cheaper",
    )
    assert last_event(opp).kind == EventKind.LOST


def test_cancel(owner_client, opp):
    response = owner_client.post(url("opportunity_cancel", opp.pk), {"note": "Project dropped"})
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.status == Status.CANCELLED
    assert last_event(opp).kind == EventKind.CANCELLED


def test_reopen(owner_client, cast, opp):
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    response = owner_client.post(url("opportunity_reopen", opp.pk), {})
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.status == Status.TODO
    assert opp.won_amount is None
    assert last_event(opp).kind == EventKind.REOPENED


def test_closing_twice_is_refused_with_the_rule(owner_client, cast, opp):
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    response = owner_client.post(url("opportunity_cancel", opp.pk), {})
    assert response.status_code == 422
    assert "already closed" in response.content.decode()
    assert last_event(opp).kind == EventKind.WON


# Comments and activities ------------------------------------------------------------------


def test_add_a_comment(owner_client, opp):
    response = owner_client.post(url("opportunity_comment", opp.pk), {"body": "Budget approved"})
    assert_back_on_page(response, opp)
    assert opp.comments.get().body == "Budget approved"
    assert last_event(opp).kind == EventKind.COMMENT_ADDED


def test_add_a_pinned_comment(owner_client, opp):
    owner_client.post(url("opportunity_comment", opp.pk), {"body": "Key fact", "pinned": "on"})
    assert opp.comments.get().pinned


def test_comment_as_an_activity_of_a_type(owner_client, opp):
    visit = activity_type("visit")
    response = owner_client.post(
        url("opportunity_comment", opp.pk), {"body": "Saw the plant", "as_type": visit.pk}
    )
    assert_back_on_page(response, opp)
    activity = opp.activities.get()
    assert (activity.type, activity.note) == (visit, "Saw the plant")
    assert activity.done_at is not None
    assert not opp.comments.exists()
    assert last_event(opp).kind == EventKind.ACTIVITY_LOGGED


def test_empty_comment_is_refused(owner_client, opp):
    response = owner_client.post(url("opportunity_comment", opp.pk), {"body": "  "})
    assert response.status_code == 422
    assert not opp.comments.exists()


def test_htmx_comment_gets_the_fresh_page_partial(owner_client, opp):
    response = owner_client.post(
        url("opportunity_comment", opp.pk), {"body": "Via htmx"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="opportunity-page"')
    assert "Via htmx" in html
    assert "Comment added." in html
    assert response["HX-Trigger"] == "opportunity-changed"


def test_htmx_refused_comment_gets_422_partial(owner_client, opp):
    response = owner_client.post(
        url("opportunity_comment", opp.pk), {"body": ""}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert response.content.decode().lstrip().startswith('<div id="opportunity-page"')


def test_pin_and_unpin(owner_client, cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Important")
    owner_client.post(url("opportunity_comment_pin", opp.pk, comment.pk))
    comment.refresh_from_db()
    assert comment.pinned
    assert last_event(opp).kind == EventKind.COMMENT_PINNED
    owner_client.post(url("opportunity_comment_unpin", opp.pk, comment.pk))
    comment.refresh_from_db()
    assert not comment.pinned
    assert last_event(opp).kind == EventKind.COMMENT_UNPINNED


def test_pin_a_comment_of_another_opportunity_is_404(owner_client, cast, opp):
    elsewhere = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    comment = comment_add(opportunity=elsewhere, actor=cast.owner, body="Elsewhere")
    response = owner_client.post(url("opportunity_comment_pin", opp.pk, comment.pk))
    assert response.status_code == 404


def test_log_an_activity(owner_client, opp):
    call = activity_type("call")
    when = timezone.now() - timedelta(hours=2)
    response = owner_client.post(
        url("opportunity_activity_log", opp.pk),
        {"type": call.pk, "note": "Talked prices", "done_at": local_input(when)},
    )
    assert_back_on_page(response, opp)
    activity = opp.activities.get()
    assert activity.note == "Talked prices"
    assert abs(activity.done_at - when) < timedelta(minutes=1)
    assert last_event(opp).kind == EventKind.ACTIVITY_LOGGED


def test_plan_an_activity_and_mark_it_done(owner_client, opp):
    demo = activity_type("demo")
    due = timezone.now() + timedelta(days=2)
    response = owner_client.post(
        url("opportunity_activity_plan", opp.pk),
        {"type": demo.pk, "due_at": local_input(due), "note": "Demo day"},
    )
    assert_back_on_page(response, opp)
    activity = opp.activities.get()
    assert activity.is_planned
    assert last_event(opp).kind == EventKind.ACTIVITY_PLANNED
    owner_client.post(url("opportunity_activity_done", opp.pk, activity.pk))
    activity.refresh_from_db()
    assert activity.done_at is not None
    assert last_event(opp).kind == EventKind.ACTIVITY_COMPLETED


def test_planning_needs_a_due_date(owner_client, opp):
    response = owner_client.post(
        url("opportunity_activity_plan", opp.pk), {"type": activity_type("demo").pk}
    )
    assert response.status_code == 422
    assert not Activity.objects.exists()


# Contacts and tags ------------------------------------------------------------------------


def test_add_a_contact(owner_client, opp):
    response = owner_client.post(
        url("opportunity_contact_add", opp.pk),
        {
            "new-contact-name": "Anna",
            "new-contact-email": "anna@rossi.it",
            "new-contact-phone": "02 123",
        },
    )
    assert_back_on_page(response, opp)
    assert opp.contacts.get().email == "anna@rossi.it"
    assert last_event(opp).kind == EventKind.CONTACT_ADDED


def test_contact_with_a_bad_email_is_refused(owner_client, opp):
    response = owner_client.post(
        url("opportunity_contact_add", opp.pk),
        {"new-contact-name": "Anna", "new-contact-email": "nope"},
    )
    assert response.status_code == 422
    assert not opp.contacts.exists()


def test_edit_a_contact(owner_client, cast, opp):
    contact = contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    prefix = f"contact-{contact.pk}"
    response = owner_client.post(
        url("opportunity_contact_edit", opp.pk, contact.pk),
        {f"{prefix}-name": "Anna Rossi", f"{prefix}-role": "CEO"},
    )
    assert_back_on_page(response, opp)
    contact.refresh_from_db()
    assert (contact.name, contact.role) == ("Anna Rossi", "CEO")
    assert last_event(opp).kind == EventKind.CONTACT_UPDATED


def test_edit_contact_error_reopens_its_dialog(owner_client, cast, opp):
    contact = contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    response = owner_client.post(url("opportunity_contact_edit", opp.pk, contact.pk), {})
    assert response.status_code == 422
    assert "This field is required." in response.content.decode()


def test_remove_a_contact(owner_client, cast, opp):
    contact = contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    response = owner_client.post(url("opportunity_contact_remove", opp.pk, contact.pk))
    assert_back_on_page(response, opp)
    assert not opp.contacts.exists()
    assert last_event(opp).kind == EventKind.CONTACT_REMOVED


def test_make_the_second_contact_the_main_one(owner_client, cast, opp):
    first = contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    second = contact_add(opportunity=opp, actor=cast.owner, name="Bruno")
    page = owner_client.get(url("opportunity_detail", opp.pk))
    rows = page.context["contacts"]
    assert rows[1].up_order == [second.pk, first.pk]
    response = owner_client.post(
        url("opportunity_contact_reorder", opp.pk), {"contact_ids": rows[1].up_order}
    )
    assert_back_on_page(response, opp)
    assert [c.name for c in opp.contacts.order_by("position")] == ["Bruno", "Anna"]
    assert last_event(opp).kind == EventKind.CONTACTS_REORDERED


def test_add_and_remove_a_tag(owner_client, opp):
    owner_client.post(url("opportunity_tag_add", opp.pk), {"name": "Agency X"})
    tag = opp.tags.get()
    assert tag.name == "Agency X"
    assert last_event(opp).kind == EventKind.TAG_ADDED
    owner_client.post(url("opportunity_tag_remove", opp.pk, tag.pk))
    assert not opp.tags.exists()
    assert last_event(opp).kind == EventKind.TAG_REMOVED


# Duplicate --------------------------------------------------------------------------------


def test_duplicate_form_is_prefilled_for_a_renewal(owner_client, opp):
    opp.expected_close_date = timezone.localdate().replace(month=3, day=31)
    opp.save()
    form = owner_client.get(url("opportunity_duplicate", opp.pk)).context["form"]
    assert form.initial["title"] == "Fleet renewal (renewal)"
    assert form.initial["expected_close_date"] == opp.expected_close_date.replace(
        year=opp.expected_close_date.year + 1
    )
    assert form.initial["amount"] == 12_000_00


def test_duplicate_creates_and_opens_the_new_opportunity(owner_client, cast, opp):
    contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    response = owner_client.post(
        url("opportunity_duplicate", opp.pk),
        {"title": "Fleet renewal 2027", "amount": "13000", "expected_close_date": "2027-03-31"},
    )
    new = Opportunity.objects.get(title="Fleet renewal 2027")
    assert response.status_code == 302
    assert response.url == url("opportunity_detail", new.pk)
    assert new.duplicated_from == opp
    assert new.client == opp.client
    assert new.amount == 13_000_00
    assert new.contacts.get().name == "Anna"
    assert last_event(opp).kind == EventKind.DUPLICATED


# Edit and concurrent edits ----------------------------------------------------------------


def edit_data(opp, **changes):
    data = {
        "version": opp.version,
        "title": opp.title,
        "client_name": opp.client.name if opp.client else "",
        "amount": "12000.00",
        "product": "",
        "expected_close_date": "",
        "description": opp.description,
    }
    data.update(changes)
    return data


def test_edit_form_renders_inline_for_htmx(owner_client, opp):
    response = owner_client.get(url("opportunity_edit", opp.pk), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith("<form")
    assert 'name="version"' in html
    assert 'list="client-options"' in html


def test_edit_saves_through_the_service(owner_client, opp):
    product = ProductFactory(name="Fleet care")
    definition = FieldDefinitionFactory(label="Website", key="website", kind="url")
    response = owner_client.post(
        url("opportunity_edit", opp.pk),
        edit_data(
            opp,
            title="Fleet renewal XL",
            amount="1.234,56",
            product=product.pk,
            expected_close_date="2026-06-30",
            field_website="rossi.it",
            description="More trucks",
        ),
    )
    assert_back_on_page(response, opp)
    opp.refresh_from_db()
    assert opp.title == "Fleet renewal XL"
    assert opp.amount == 1_234_56
    assert opp.product == product
    assert opp.fields == {definition.key: "https://rossi.it"}
    assert opp.description == "More trucks"
    assert opp.version == 2
    assert last_event(opp).kind == EventKind.UPDATED


def test_edit_typing_a_new_client_name_opens_a_client_folder(owner_client, opp):
    owner_client.post(url("opportunity_edit", opp.pk), edit_data(opp, client_name="Bianchi Srl"))
    opp.refresh_from_db()
    assert opp.client.name == "Bianchi Srl"
    assert Client.objects.filter(name="Bianchi Srl").count() == 1


def test_edit_picks_an_existing_client_by_name_ignoring_case(owner_client, opp):
    existing = ClientFactory(name="Verdi SpA")
    owner_client.post(url("opportunity_edit", opp.pk), edit_data(opp, client_name="verdi spa"))
    opp.refresh_from_db()
    assert opp.client == existing


def test_edit_with_an_ambiguous_client_name_asks_to_pick(owner_client, opp):
    ClientFactory(name="Verdi SpA")
    twin = ClientFactory(name="Verdi SpA")
    response = owner_client.post(
        url("opportunity_edit", opp.pk), edit_data(opp, client_name="Verdi SpA")
    )
    assert response.status_code == 422
    assert "Several client folders" in response.content.decode()
    owner_client.post(
        url("opportunity_edit", opp.pk), edit_data(opp, client_name=f"Verdi SpA (#{twin.pk})")
    )
    opp.refresh_from_db()
    assert opp.client == twin


def test_edit_shows_validation_errors(owner_client, opp):
    response = owner_client.post(url("opportunity_edit", opp.pk), edit_data(opp, amount="12,3,4"))
    assert response.status_code == 422
    assert "Enter an amount" in response.content.decode()
    opp.refresh_from_db()
    assert opp.version == 1


def test_concurrent_edit_keeps_typed_input_and_shows_what_changed(owner_client, cast, opp):
    stale = edit_data(opp, title="My new title", description="My careful notes")
    # Meanwhile the manager changes the amount.
    opportunity_update(opportunity=opp, actor=cast.manager, version=opp.version, amount=20_000_00)
    response = owner_client.post(url("opportunity_edit", opp.pk), stale)
    assert response.status_code == 409
    html = response.content.decode()
    assert "Someone else saved this opportunity" in html
    assert str(cast.manager) in html
    conflict = {row["label"]: row for row in response.context["conflict"]}
    assert conflict["Amount"]["saved"] == "20,000.00 EUR"
    assert conflict["Amount"]["yours"] == "12,000.00 EUR"
    assert conflict["Title"]["yours"] == "My new title"
    # The typed input is kept, and the form now carries the saved version.
    assert 'value="My new title"' in html
    assert "My careful notes" in html
    assert 'name="version" value="2"' in html
    opp.refresh_from_db()
    assert (opp.title, opp.amount) == ("Fleet renewal", 20_000_00)
    # Saving again writes the user's version over it.
    again = dict(stale, version="2")
    assert owner_client.post(url("opportunity_edit", opp.pk), again).status_code == 302
    opp.refresh_from_db()
    assert opp.title == "My new title"


def test_salesperson_edit_form_has_no_owner_field_manager_has(client, cast, opp):
    client.force_login(cast.owner)
    assert "owner" not in client.get(url("opportunity_edit", opp.pk)).context["form"].fields
    client.force_login(cast.manager)
    form = client.get(url("opportunity_edit", opp.pk)).context["form"]
    assert cast.teammate in form.fields["owner"].queryset
    assert cast.other not in form.fields["owner"].queryset


def test_manager_reassigns_the_owner(client, cast, opp):
    client.force_login(cast.manager)
    client.post(url("opportunity_edit", opp.pk), edit_data(opp, owner=cast.teammate.pk))
    opp.refresh_from_db()
    assert opp.owner == cast.teammate


# Who may do what --------------------------------------------------------------------------


def every_action(opp, cast):
    """(url, data) for every action endpoint of the page."""
    comment = comment_add(opportunity=opp, actor=cast.owner, body="x")
    contact = contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    tag = tag_add(opportunity=opp, actor=cast.owner, tag="t")
    activity = activity_plan(
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("call"),
        due_at=timezone.now() + timedelta(days=1),
    )
    return [
        (url("opportunity_edit", opp.pk), edit_data(opp)),
        (url("opportunity_next_action", opp.pk), {"at": "2030-01-01T09:00"}),
        (url("opportunity_standby", opp.pk), {"until": "2030-01-01"}),
        (url("opportunity_move", opp.pk), {"step": opp.step_id}),
        (url("opportunity_probability", opp.pk), {"probability": "40"}),
        (url("opportunity_won", opp.pk), {"won_amount": "1"}),
        (url("opportunity_lost", opp.pk), {}),
        (url("opportunity_cancel", opp.pk), {}),
        (url("opportunity_reopen", opp.pk), {}),
        (url("opportunity_comment", opp.pk), {"body": "hi"}),
        (url("opportunity_comment_pin", opp.pk, comment.pk), {}),
        (url("opportunity_comment_unpin", opp.pk, comment.pk), {}),
        (url("opportunity_activity_log", opp.pk), {"type": activity_type("call").pk}),
        (url("opportunity_activity_plan", opp.pk), {}),
        (url("opportunity_activity_done", opp.pk, activity.pk), {}),
        (url("opportunity_contact_add", opp.pk), {"new-contact-name": "B"}),
        (url("opportunity_contact_edit", opp.pk, contact.pk), {}),
        (url("opportunity_contact_remove", opp.pk, contact.pk), {}),
        (url("opportunity_contact_reorder", opp.pk), {"contact_ids": [contact.pk]}),
        (url("opportunity_tag_add", opp.pk), {"name": "u"}),
        (url("opportunity_tag_remove", opp.pk, tag.pk), {}),
        (url("opportunity_duplicate", opp.pk), {"title": "Copy", "amount": "1"}),
    ]


def test_outsider_gets_404_on_every_action(client, cast, opp):
    actions = every_action(opp, cast)
    before = OpportunityEvent.objects.count()
    client.force_login(cast.other)
    for action, data in actions:
        assert client.post(action, data).status_code == 404, action
        assert client.get(action).status_code in (404, 405), action
    assert OpportunityEvent.objects.count() == before
    assert Opportunity.objects.count() == 1


def test_anonymous_is_sent_to_login_from_every_action(client, cast, opp):
    for action, data in every_action(opp, cast):
        response = client.post(action, data)
        assert response.status_code == 302, action
        assert response.url.startswith(reverse("accounts:login"))


def test_teammate_can_comment_but_not_edit(client, cast, opp):
    account = Account.load()
    account.visibility = VisibilityPolicy.TEAM
    account.save()
    client.force_login(cast.teammate)
    response = client.post(url("opportunity_comment", opp.pk), {"body": "I know them"})
    assert_back_on_page(response, opp)
    assert Comment.objects.get(opportunity=opp).author == cast.teammate
    assert client.get(url("opportunity_edit", opp.pk)).status_code == 403
    assert (
        client.post(url("opportunity_edit", opp.pk), edit_data(opp, title="Mine")).status_code
        == 403
    )
    assert client.post(url("opportunity_won", opp.pk), {"won_amount": "1"}).status_code == 403
    opp.refresh_from_db()
    assert (opp.title, opp.status) == ("Fleet renewal", Status.TODO)


def test_csrf_token_is_required(cast, opp):
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    response = browser.post(url("opportunity_won", opp.pk), {"won_amount": "1"})
    assert response.status_code == 403
    opp.refresh_from_db()
    assert opp.status == Status.TODO


def test_edit_a_comment_from_the_page(owner_client, cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Call on Monday")
    page = owner_client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert url("opportunity_comment_edit", opp.pk, comment.pk) in page
    response = owner_client.post(
        url("opportunity_comment_edit", opp.pk, comment.pk), {"body": "Call on Tuesday"}
    )
    assert_back_on_page(response, opp)
    comment.refresh_from_db()
    assert comment.body == "Call on Tuesday"
    page = owner_client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert "(edited)" in page
    assert "Call on Monday" not in page  # the edit event is not repeated on the timeline


def test_an_empty_edit_shows_the_rule_and_keeps_the_words(owner_client, cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Keep me")
    response = owner_client.post(url("opportunity_comment_edit", opp.pk, comment.pk), {"body": " "})
    assert response.status_code == 422
    assert "A comment cannot be empty." in response.content.decode()
    comment.refresh_from_db()
    assert comment.body == "Keep me"


def test_delete_a_comment_after_confirming(owner_client, cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Wrong opportunity")
    page = owner_client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert "Delete this comment? This cannot be undone." in page
    response = owner_client.post(url("opportunity_comment_delete", opp.pk, comment.pk))
    assert_back_on_page(response, opp)
    assert not Comment.objects.filter(pk=comment.pk).exists()
    assert last_event(opp).kind == EventKind.COMMENT_DELETED
    page = owner_client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert "deleted a comment" in page
    assert "Wrong opportunity" not in page


def test_someone_elses_comment_has_no_edit_link_and_refuses_an_edit(client, cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Owner's words")
    client.force_login(cast.manager)
    page = client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert url("opportunity_comment_edit", opp.pk, comment.pk) not in page
    assert url("opportunity_comment_delete", opp.pk, comment.pk) in page  # may edit the deal
    response = client.post(url("opportunity_comment_edit", opp.pk, comment.pk), {"body": "Mine"})
    assert response.status_code == 403
    comment.refresh_from_db()
    assert comment.body == "Owner's words"


def test_deleting_a_comment_of_another_opportunity_is_404(owner_client, cast, opp):
    elsewhere = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    comment = comment_add(opportunity=elsewhere, actor=cast.owner, body="Elsewhere")
    response = owner_client.post(url("opportunity_comment_delete", opp.pk, comment.pk))
    assert response.status_code == 404
    assert Comment.objects.filter(pk=comment.pk).exists()
