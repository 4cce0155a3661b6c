"""Services inside an opportunity: comments, activities, contacts and tags."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    Activity,
    Comment,
    Contact,
    EventKind,
    Opportunity,
    OpportunityEvent,
    Tag,
)
from opportuna.sales.services import (
    activity_complete,
    activity_log,
    activity_plan,
    comment_add,
    comment_pin,
    comment_unpin,
    contact_add,
    contact_remove,
    contact_reorder,
    contact_update,
    opportunity_close_won,
    tag_add,
    tag_remove,
)
from tests.factories import OpportunityFactory, TagFactory, activity_type, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)


@pytest.fixture
def team_policy(cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)


def events(opportunity, kind):
    return list(OpportunityEvent.objects.filter(opportunity=opportunity, kind=kind))


def only_event(opportunity, kind):
    found = events(opportunity, kind)
    assert len(found) == 1, found
    return found[0]


def no_events(opportunity):
    return not OpportunityEvent.objects.filter(opportunity=opportunity).exists()


# Comments -------------------------------------------------------------------------------


def test_comment_add_stores_stripped_body_and_author(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="  Called them  ")
    comment.refresh_from_db()
    assert (comment.body, comment.author, comment.pinned) == ("Called them", cast.owner, False)


def test_comment_add_records_event(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Hello", pinned=True)
    event = only_event(opp, EventKind.COMMENT_ADDED)
    assert event.actor == cast.owner
    assert event.data == {"comment": comment.pk, "pinned": True}


def test_comment_add_refuses_empty_body(cast, opp):
    with pytest.raises(SalesRuleError) as caught:
        comment_add(opportunity=opp, actor=cast.owner, body="   ")
    assert caught.value.field == "body"
    assert not Comment.objects.exists()
    assert no_events(opp)


def test_teammate_under_team_policy_may_comment(cast, opp, team_policy):
    comment = comment_add(opportunity=opp, actor=cast.teammate, body="I know them")
    assert comment.author == cast.teammate
    assert only_event(opp, EventKind.COMMENT_ADDED).actor == cast.teammate


def test_teammate_under_own_policy_cannot_comment(cast, opp):
    with pytest.raises(Opportunity.DoesNotExist):
        comment_add(opportunity=opp, actor=cast.teammate, body="Hi")
    assert not Comment.objects.exists()


def test_other_team_cannot_comment(cast, opp, team_policy):
    with pytest.raises(Opportunity.DoesNotExist):
        comment_add(opportunity=opp, actor=cast.other, body="Hi")


def test_comment_pin_pins_and_records_event(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Key fact")
    comment_pin(comment=comment, actor=cast.owner)
    comment.refresh_from_db()
    assert comment.pinned is True
    event = only_event(opp, EventKind.COMMENT_PINNED)
    assert (event.actor, event.data) == (cast.owner, {"comment": comment.pk})


def test_comment_unpin_unpins_and_records_event(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Key fact", pinned=True)
    comment_unpin(comment=comment, actor=cast.manager)
    comment.refresh_from_db()
    assert comment.pinned is False
    assert only_event(opp, EventKind.COMMENT_UNPINNED).actor == cast.manager


def test_pinning_a_pinned_comment_writes_no_event(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Key fact", pinned=True)
    comment_pin(comment=comment, actor=cast.owner)
    assert events(opp, EventKind.COMMENT_PINNED) == []


def test_pinned_comments_come_first(cast, opp):
    first = comment_add(opportunity=opp, actor=cast.owner, body="Old")
    comment_add(opportunity=opp, actor=cast.owner, body="New")
    comment_pin(comment=first, actor=cast.owner)
    assert list(opp.comments.values_list("body", flat=True)) == ["Old", "New"]


def test_teammate_cannot_pin_someone_elses_comment(cast, opp, team_policy):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Key fact")
    with pytest.raises(PermissionDenied):
        comment_pin(comment=comment, actor=cast.teammate)
    comment.refresh_from_db()
    assert comment.pinned is False


def test_author_may_pin_own_comment_without_edit_rights(cast, opp, team_policy):
    comment = comment_add(opportunity=opp, actor=cast.teammate, body="Mine")
    comment_pin(comment=comment, actor=cast.teammate)
    comment.refresh_from_db()
    assert comment.pinned is True


# Activities -----------------------------------------------------------------------------


def test_activity_log_records_a_done_activity(cast, opp):
    done_at = timezone.now() - timedelta(hours=2)
    activity = activity_log(
        opportunity=opp, actor=cast.owner, type=activity_type("call"), note=" Ok ", done_at=done_at
    )
    activity.refresh_from_db()
    assert (activity.user, activity.done_at, activity.due_at, activity.note) == (
        cast.owner,
        done_at,
        None,
        "Ok",
    )


def test_activity_log_defaults_done_at_to_now(cast, opp):
    before = timezone.now()
    activity = activity_log(opportunity=opp, actor=cast.owner, type=activity_type("call"))
    assert before <= activity.done_at <= timezone.now()


def test_activity_log_records_event(cast, opp):
    activity = activity_log(opportunity=opp, actor=cast.owner, type=activity_type("visit"))
    event = only_event(opp, EventKind.ACTIVITY_LOGGED)
    assert event.actor == cast.owner
    assert event.data["activity"] == activity.pk
    assert event.data["type"] == "visit"


def test_activity_log_refuses_future_done_at(cast, opp):
    with pytest.raises(SalesRuleError) as caught:
        activity_log(
            opportunity=opp,
            actor=cast.owner,
            type=activity_type("call"),
            done_at=timezone.now() + timedelta(hours=1),
        )
    assert caught.value.field == "done_at"
    assert not Activity.objects.exists()


def test_activity_log_refuses_inactive_type(cast, opp):
    retired = activity_type("email")
    retired.is_active = False
    retired.save()
    with pytest.raises(SalesRuleError) as caught:
        activity_log(opportunity=opp, actor=cast.owner, type=retired)
    assert caught.value.field == "type"
    assert not Activity.objects.exists()
    assert no_events(opp)


def test_teammate_under_team_policy_may_log_activity(cast, opp, team_policy):
    activity = activity_log(opportunity=opp, actor=cast.teammate, type=activity_type("call"))
    assert activity.user == cast.teammate


def test_other_team_cannot_log_activity(cast, opp):
    with pytest.raises(Opportunity.DoesNotExist):
        activity_log(opportunity=opp, actor=cast.other, type=activity_type("call"))


def test_activity_plan_creates_a_task_for_the_actor(cast, opp):
    due = timezone.now() + timedelta(days=2)
    activity = activity_plan(
        opportunity=opp, actor=cast.owner, type=activity_type("demo"), due_at=due
    )
    activity.refresh_from_db()
    assert (activity.user, activity.due_at, activity.done_at) == (cast.owner, due, None)
    assert activity.is_planned


def test_activity_plan_records_event(cast, opp):
    due = timezone.now() + timedelta(days=2)
    activity = activity_plan(
        opportunity=opp, actor=cast.owner, type=activity_type("demo"), due_at=due
    )
    event = only_event(opp, EventKind.ACTIVITY_PLANNED)
    assert event.actor == cast.owner
    assert event.data == {"activity": activity.pk, "type": "demo", "due_at": due.isoformat()}


def test_activity_plan_refuses_inactive_type(cast, opp):
    retired = activity_type("demo")
    retired.is_active = False
    retired.save()
    with pytest.raises(SalesRuleError):
        activity_plan(opportunity=opp, actor=cast.owner, type=retired, due_at=timezone.now())
    assert not Activity.objects.exists()


def test_activity_plan_refuses_closed_opportunity(cast, opp):
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    with pytest.raises(SalesRuleError):
        activity_plan(
            opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=timezone.now()
        )


def test_manager_may_plan_for_the_owner(cast, opp):
    activity = activity_plan(
        opportunity=opp,
        actor=cast.manager,
        type=activity_type("call"),
        due_at=timezone.now(),
        user=cast.owner,
    )
    assert activity.user == cast.owner


def test_teammate_cannot_plan_for_the_owner(cast, opp, team_policy):
    with pytest.raises(PermissionDenied):
        activity_plan(
            opportunity=opp,
            actor=cast.teammate,
            type=activity_type("call"),
            due_at=timezone.now(),
            user=cast.owner,
        )
    assert not Activity.objects.exists()


@pytest.fixture
def planned(cast, opp):
    return activity_plan(
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("visit"),
        due_at=timezone.now() + timedelta(days=1),
    )


def test_activity_complete_marks_done_and_records_event(cast, opp, planned):
    before = timezone.now()
    activity_complete(activity=planned, actor=cast.owner, note="Went well")
    planned.refresh_from_db()
    assert before <= planned.done_at <= timezone.now()
    assert planned.note == "Went well"
    event = only_event(opp, EventKind.ACTIVITY_COMPLETED)
    assert (event.actor, event.data["activity"], event.data["type"]) == (
        cast.owner,
        planned.pk,
        "visit",
    )


def test_activity_complete_twice_is_refused(cast, opp, planned):
    activity_complete(activity=planned, actor=cast.owner)
    with pytest.raises(SalesRuleError):
        activity_complete(activity=planned, actor=cast.owner)
    assert len(events(opp, EventKind.ACTIVITY_COMPLETED)) == 1


def test_activity_complete_refuses_future_done_at(cast, opp, planned):
    with pytest.raises(SalesRuleError) as caught:
        activity_complete(
            activity=planned, actor=cast.owner, done_at=timezone.now() + timedelta(days=1)
        )
    assert caught.value.field == "done_at"
    planned.refresh_from_db()
    assert planned.done_at is None


def test_teammate_cannot_complete_someone_elses_task(cast, opp, planned, team_policy):
    with pytest.raises(PermissionDenied):
        activity_complete(activity=planned, actor=cast.teammate)
    planned.refresh_from_db()
    assert planned.done_at is None


# Contacts -------------------------------------------------------------------------------


def add(opp, actor, name, **values):
    return contact_add(opportunity=opp, actor=actor, name=name, **values)


def test_contact_add_appends_after_existing_ones(cast, opp):
    anna = add(opp, cast.owner, "Anna")
    bruno = add(opp, cast.owner, "Bruno")
    assert (anna.position, bruno.position) == (0, 1)
    assert opp.contacts.first() == anna


def test_contact_add_records_event(cast, opp):
    anna = add(opp, cast.owner, "Anna", role="CEO")
    event = only_event(opp, EventKind.CONTACT_ADDED)
    assert (event.actor, event.data) == (cast.owner, {"contact": anna.pk, "name": "Anna"})


def test_contact_add_refuses_empty_name(cast, opp):
    with pytest.raises(SalesRuleError):
        add(opp, cast.owner, "  ")
    assert not Contact.objects.exists()


def test_contact_add_refuses_invalid_email(cast, opp):
    with pytest.raises(SalesRuleError):
        add(opp, cast.owner, "Anna", email="anna-at-example")
    assert not Contact.objects.exists()


@pytest.mark.parametrize(("field", "limit"), [("name", 150), ("role", 100), ("phone", 40)])
def test_contact_add_refuses_text_longer_than_its_column(cast, opp, field, limit):
    values = {"name": "Anna", field: "1" * (limit + 1)}
    with pytest.raises(SalesRuleError) as caught:
        contact_add(opportunity=opp, actor=cast.owner, **values)
    assert caught.value.field == field
    assert not Contact.objects.exists()


def test_teammate_under_team_policy_cannot_add_contacts(cast, opp, team_policy):
    with pytest.raises(PermissionDenied):
        add(opp, cast.teammate, "Anna")
    assert not Contact.objects.exists()


def test_contact_update_records_only_changed_values(cast, opp):
    anna = add(opp, cast.owner, "Anna", role="CTO")
    contact_update(contact=anna, actor=cast.owner, role="CEO", name="Anna")
    anna.refresh_from_db()
    assert anna.role == "CEO"
    event = only_event(opp, EventKind.CONTACT_UPDATED)
    assert event.changes == {"role": ["CTO", "CEO"]}
    assert event.data == {"contact": anna.pk}


def test_contact_update_without_change_writes_no_event(cast, opp):
    anna = add(opp, cast.owner, "Anna")
    contact_update(contact=anna, actor=cast.owner, name="Anna")
    assert events(opp, EventKind.CONTACT_UPDATED) == []


def test_contact_update_refuses_invalid_email(cast, opp):
    anna = add(opp, cast.owner, "Anna")
    with pytest.raises(SalesRuleError):
        contact_update(contact=anna, actor=cast.owner, email="nope")
    anna.refresh_from_db()
    assert anna.email == ""


def test_contact_remove_deletes_and_records_event(cast, opp):
    anna = add(opp, cast.owner, "Anna")
    contact_remove(contact=anna, actor=cast.owner)
    assert not Contact.objects.exists()
    assert only_event(opp, EventKind.CONTACT_REMOVED).data == {"contact": anna.pk, "name": "Anna"}


def test_removing_the_main_contact_promotes_the_next(cast, opp):
    anna = add(opp, cast.owner, "Anna")
    bruno = add(opp, cast.owner, "Bruno")
    contact_remove(contact=anna, actor=cast.owner)
    assert opp.contacts.first() == bruno


def test_contact_reorder_makes_the_first_the_main_contact(cast, opp):
    anna, bruno, carla = (add(opp, cast.owner, n) for n in ("Anna", "Bruno", "Carla"))
    contact_reorder(opportunity=opp, actor=cast.owner, contact_ids=[carla.pk, anna.pk, bruno.pk])
    assert list(opp.contacts.all()) == [carla, anna, bruno]


def test_contact_reorder_records_before_and_after(cast, opp):
    anna, bruno = add(opp, cast.owner, "Anna"), add(opp, cast.owner, "Bruno")
    contact_reorder(opportunity=opp, actor=cast.owner, contact_ids=[bruno.pk, anna.pk])
    event = only_event(opp, EventKind.CONTACTS_REORDERED)
    assert event.changes == {"contacts": [[anna.pk, bruno.pk], [bruno.pk, anna.pk]]}


def test_contact_reorder_in_same_order_writes_no_event(cast, opp):
    anna, bruno = add(opp, cast.owner, "Anna"), add(opp, cast.owner, "Bruno")
    contact_reorder(opportunity=opp, actor=cast.owner, contact_ids=[anna.pk, bruno.pk])
    assert events(opp, EventKind.CONTACTS_REORDERED) == []


@pytest.mark.parametrize("order", ["missing", "repeated", "foreign"])
def test_contact_reorder_must_list_every_contact_once(cast, opp, order):
    anna, bruno = add(opp, cast.owner, "Anna"), add(opp, cast.owner, "Bruno")
    stranger = Contact.objects.create(opportunity=OpportunityFactory(), name="Zed")
    ids = {
        "missing": [bruno.pk],
        "repeated": [bruno.pk, bruno.pk],
        "foreign": [bruno.pk, stranger.pk],
    }[order]
    with pytest.raises(SalesRuleError):
        contact_reorder(opportunity=opp, actor=cast.owner, contact_ids=ids)
    assert opp.contacts.first() == anna


# Tags -----------------------------------------------------------------------------------


def test_tag_add_with_a_new_name_creates_the_tag(cast, opp):
    tag = tag_add(opportunity=opp, actor=cast.owner, tag=" Media Agency ")
    assert tag.name == "Media Agency"
    assert list(opp.tags.all()) == [tag]


def test_tag_add_with_a_known_name_reuses_the_tag(cast, opp):
    existing = TagFactory(name="Agency")
    assert tag_add(opportunity=opp, actor=cast.owner, tag="AGENCY") == existing
    assert Tag.objects.count() == 1


def test_tag_add_with_a_too_long_name_reuses_the_tag_of_its_first_60_characters(cast, opp):
    existing = TagFactory(name="y" * 60)
    assert tag_add(opportunity=opp, actor=cast.owner, tag="y" * 61) == existing
    assert Tag.objects.count() == 1


def test_tag_add_records_event(cast, opp):
    tag = tag_add(opportunity=opp, actor=cast.owner, tag="vip")
    event = only_event(opp, EventKind.TAG_ADDED)
    assert (event.actor, event.data) == (cast.owner, {"tag": tag.pk, "name": "vip"})


def test_tag_add_twice_records_one_event(cast, opp):
    tag_add(opportunity=opp, actor=cast.owner, tag="vip")
    tag_add(opportunity=opp, actor=cast.owner, tag="vip")
    assert len(events(opp, EventKind.TAG_ADDED)) == 1
    assert opp.tags.count() == 1


def test_tag_add_refuses_empty_name(cast, opp):
    with pytest.raises(SalesRuleError):
        tag_add(opportunity=opp, actor=cast.owner, tag="  ")
    assert not Tag.objects.exists()


def test_tag_remove_records_event_and_keeps_the_tag(cast, opp):
    tag = tag_add(opportunity=opp, actor=cast.owner, tag="vip")
    tag_remove(opportunity=opp, actor=cast.owner, tag=tag)
    assert opp.tags.count() == 0
    assert Tag.objects.filter(pk=tag.pk).exists()
    assert only_event(opp, EventKind.TAG_REMOVED).data == {"tag": tag.pk, "name": "vip"}


def test_tag_remove_of_absent_tag_writes_no_event(cast, opp):
    tag_remove(opportunity=opp, actor=cast.owner, tag=TagFactory(name="vip"))
    assert events(opp, EventKind.TAG_REMOVED) == []


def test_teammate_under_team_policy_cannot_tag(cast, opp, team_policy):
    with pytest.raises(PermissionDenied):
        tag_add(opportunity=opp, actor=cast.teammate, tag="vip")
    assert opp.tags.count() == 0
