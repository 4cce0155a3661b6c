"""Services on an opportunity's life: create, update, move, plan, close, reopen, duplicate."""

import importlib
from datetime import date, datetime, time, timedelta

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.sales.errors import ConflictError, SalesRuleError
from opportuna.sales.fieldtext import clean_field_values
from opportuna.sales.models import (
    Activity,
    Contact,
    EventKind,
    FieldKind,
    Opportunity,
    OpportunityEvent,
    Status,
    Tag,
)
from opportuna.sales.services import (
    activity_log,
    activity_plan,
    opportunity_cancel,
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_duplicate,
    opportunity_move,
    opportunity_plan_next_action,
    opportunity_reopen,
    opportunity_set_probability,
    opportunity_standby,
    opportunity_update,
)
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    TagFactory,
    UserFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def steps(cast):
    """The cast pipeline's steps: Lead 10%, Qualified 25%, Demo 50%, Proposal 70%."""
    return list(cast.pipeline.steps.order_by("position"))


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, amount=1000_00)


def events(opportunity, kind):
    return list(OpportunityEvent.objects.filter(opportunity=opportunity, kind=kind))


def only_event(opportunity, kind):
    found = events(opportunity, kind)
    assert len(found) == 1, found
    return found[0]


def reloaded(opportunity):
    return Opportunity.objects.get(pk=opportunity.pk)


def close_won(opportunity, actor):
    return opportunity_close_won(opportunity=opportunity, actor=actor)


# Create ---------------------------------------------------------------------------------


def test_create_starts_on_first_step_with_its_probability(cast, steps):
    created = opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    assert created.step == steps[0]
    assert created.probability == steps[0].probability
    assert created.probability_is_manual is False


def test_create_on_a_given_step_takes_that_steps_probability(cast, steps):
    created = opportunity_create(
        actor=cast.owner, title="Deal", pipeline=cast.pipeline, step=steps[2]
    )
    assert (created.step, created.probability) == (steps[2], 50)


def test_create_owner_defaults_to_actor(cast):
    created = opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    assert created.owner == cast.owner


def test_create_defaults_next_action_to_now(cast):
    before = timezone.now()
    created = opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    assert before <= reloaded(created).next_action_at <= timezone.now()
    assert created.status == Status.TODO


def test_create_with_explicit_probability_marks_it_manual(cast):
    created = opportunity_create(
        actor=cast.owner, title="Deal", pipeline=cast.pipeline, probability=80
    )
    assert (created.probability, created.probability_is_manual) == (80, True)


def test_create_strips_the_title(cast):
    created = opportunity_create(actor=cast.owner, title="  Deal  ", pipeline=cast.pipeline)
    assert reloaded(created).title == "Deal"


def test_create_records_created_event(cast, steps):
    created = opportunity_create(
        actor=cast.owner, title="Deal", pipeline=cast.pipeline, amount=500_00
    )
    event = only_event(created, EventKind.CREATED)
    assert event.actor == cast.owner
    assert event.data["title"] == "Deal"
    assert event.data["step"] == steps[0].pk
    assert event.data["owner"] == cast.owner.pk
    assert event.data["amount"] == 500_00
    assert event.data["probability"] == 10


def test_create_refuses_step_of_another_pipeline(cast):
    foreign_step = PipelineFactory(name="Renewals").steps.first()
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, step=foreign_step
        )
    assert caught.value.field == "step"
    assert not Opportunity.objects.exists()


def test_create_refuses_pipeline_without_steps(cast):
    empty = PipelineFactory(name="Empty")
    empty.steps.all().delete()
    with pytest.raises(SalesRuleError):
        opportunity_create(actor=cast.owner, title="Deal", pipeline=empty)


@pytest.mark.parametrize("probability", [-1, 101])
def test_create_refuses_probability_out_of_range(cast, probability):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, probability=probability
        )
    assert caught.value.field == "probability"
    assert not Opportunity.objects.exists()


def test_create_refuses_negative_amount(cast):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline, amount=-1)
    assert caught.value.field == "amount"
    assert not Opportunity.objects.exists()


@pytest.mark.parametrize("title", ["", "   "])
def test_create_refuses_empty_title(cast, title):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(actor=cast.owner, title=title, pipeline=cast.pipeline)
    assert caught.value.field == "title"
    assert not Opportunity.objects.exists()


@pytest.mark.parametrize(("field", "limit"), [("next_action_note", 200), ("external_id", 100)])
def test_create_refuses_text_longer_than_its_column(cast, field, limit):
    # PostgreSQL would fail on it and SQLite would keep it whole: refuse it on both.
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, **{field: "x" * (limit + 1)}
        )
    assert caught.value.field == field
    assert not Opportunity.objects.exists()


def test_create_stores_cleaned_field_values(cast):
    definitions = [
        FieldDefinitionFactory(key="budget", label="Budget", kind=FieldKind.NUMBER),
        FieldDefinitionFactory(key="contact_name", label="Contact name"),
    ]
    raw = {"budget": "1.234,50", "contact_name": "Anna Rossi"}
    created = opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline, fields=raw)
    assert reloaded(created).fields == clean_field_values(raw, definitions)
    assert reloaded(created).fields["budget"] != "1.234,50"


def test_create_refuses_invalid_field_value(cast):
    FieldDefinitionFactory(key="email", label="Email", kind=FieldKind.EMAIL)
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, fields={"email": "nope"}
        )
    assert caught.value.field == "fields"
    assert "email" in str(caught.value)
    assert not Opportunity.objects.exists()


def test_create_refuses_unknown_field_key(cast):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, fields={"ghost": "x"}
        )
    assert caught.value.field == "fields"


def test_create_refuses_missing_required_field(cast):
    FieldDefinitionFactory(key="source", label="Source", required=True)
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    assert caught.value.field == "fields"


def test_create_adds_tags_by_name_reusing_existing_ones(cast):
    existing = TagFactory(name="Agency")
    created = opportunity_create(
        actor=cast.owner, title="Deal", pipeline=cast.pipeline, tags=["agency", "New one"]
    )
    names = set(created.tags.values_list("name", flat=True))
    assert names == {"Agency", "New one"}
    assert Tag.objects.filter(name__iexact="agency").get() == existing


def test_create_adds_contacts_in_given_order(cast):
    created = opportunity_create(
        actor=cast.owner,
        title="Deal",
        pipeline=cast.pipeline,
        contacts=[{"name": "Anna", "role": "CEO"}, {"name": "Bruno"}],
    )
    assert list(created.contacts.values_list("name", flat=True)) == ["Anna", "Bruno"]
    assert created.contacts.first().role == "CEO"


def test_create_refuses_contact_with_invalid_email(cast):
    with pytest.raises(SalesRuleError):
        opportunity_create(
            actor=cast.owner,
            title="Deal",
            pipeline=cast.pipeline,
            contacts=[{"name": "Anna", "email": "not-an-email"}],
        )
    assert not Opportunity.objects.exists()
    assert not Contact.objects.exists()


def test_salesperson_cannot_give_opportunity_to_teammate(cast):
    with pytest.raises(PermissionDenied):
        opportunity_create(
            actor=cast.owner, title="Deal", pipeline=cast.pipeline, owner=cast.teammate
        )
    assert not Opportunity.objects.exists()


def test_manager_can_give_opportunity_to_team_member(cast):
    created = opportunity_create(
        actor=cast.manager, title="Deal", pipeline=cast.pipeline, owner=cast.owner
    )
    assert created.owner == cast.owner
    assert only_event(created, EventKind.CREATED).actor == cast.manager


def test_manager_cannot_give_opportunity_to_other_team(cast):
    with pytest.raises(PermissionDenied):
        opportunity_create(
            actor=cast.manager, title="Deal", pipeline=cast.pipeline, owner=cast.other
        )


def test_admin_can_give_opportunity_to_anyone(cast):
    created = opportunity_create(
        actor=cast.admin, title="Deal", pipeline=cast.pipeline, owner=cast.other
    )
    assert created.owner == cast.other


def test_create_refuses_inactive_owner(cast):
    cast.owner.is_active = False
    cast.owner.save()
    with pytest.raises(SalesRuleError) as caught:
        opportunity_create(actor=cast.admin, title="Deal", pipeline=cast.pipeline, owner=cast.owner)
    assert caught.value.field == "owner"


def test_inactive_user_cannot_create(cast):
    cast.owner.is_active = False
    cast.owner.save()
    with pytest.raises(PermissionDenied):
        opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)


# Update ---------------------------------------------------------------------------------


def test_update_changes_fields_and_bumps_version(cast, opp):
    client = ClientFactory()
    updated = opportunity_update(
        opportunity=opp, actor=cast.owner, version=opp.version, title="New", client=client
    )
    fresh = reloaded(updated)
    assert (fresh.title, fresh.client, fresh.version) == ("New", client, opp.version + 1)


def test_update_records_before_and_after_of_changed_fields(cast, opp):
    client = ClientFactory()
    opportunity_update(
        opportunity=opp, actor=cast.owner, version=opp.version, amount=2000_00, client=client
    )
    event = only_event(opp, EventKind.UPDATED)
    assert event.actor == cast.owner
    assert event.changes == {"amount": [1000_00, 2000_00], "client": [None, client.pk]}


def test_activities_repeat_their_opportunitys_owner_and_follow_a_new_one(cast, opp):
    other = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    logged = activity_log(opportunity=opp, actor=cast.manager, type=activity_type("call"))
    planned = activity_plan(
        opportunity=opp,
        actor=cast.owner,
        type=activity_type("visit"),
        due_at=timezone.now() + timedelta(days=1),
        user=cast.teammate,
    )
    elsewhere = activity_log(opportunity=other, actor=cast.owner, type=activity_type("call"))
    assert {a.opportunity_owner_id for a in (logged, planned, elsewhere)} == {cast.owner.pk}

    opportunity_update(
        opportunity=opp, actor=cast.manager, version=opp.version, owner=cast.teammate
    )

    owners = dict(Activity.objects.values_list("pk", "opportunity_owner_id"))
    assert owners == {
        logged.pk: cast.teammate.pk,
        planned.pk: cast.teammate.pk,
        elsewhere.pk: cast.owner.pk,  # another opportunity's stay
    }


def test_the_migration_gives_every_activity_its_opportunitys_owner(cast, opp):
    theirs = OpportunityFactory(owner=cast.teammate, pipeline=cast.pipeline)
    logged = activity_log(opportunity=opp, actor=cast.owner, type=activity_type("call"))
    helped = activity_log(opportunity=theirs, actor=cast.manager, type=activity_type("call"))
    # As the rows stood before the migration: no owner (a wrong one here, the column is not
    # nullable any more).
    Activity.objects.update(opportunity_owner=cast.other)

    migration = importlib.import_module(
        "opportuna.sales.migrations.0020_activity_opportunity_owner_fill"
    )
    migration.fill(django_apps, None)

    assert dict(Activity.objects.values_list("pk", "opportunity_owner_id")) == {
        logged.pk: cast.owner.pk,
        helped.pk: cast.teammate.pk,  # the deal's owner, not who did it
    }


def test_update_event_leaves_out_unchanged_fields(cast, opp):
    opportunity_update(
        opportunity=opp, actor=cast.owner, version=opp.version, title=opp.title, amount=5
    )
    assert only_event(opp, EventKind.UPDATED).changes == {"amount": [1000_00, 5]}


def test_update_without_change_writes_no_event_and_keeps_version(cast, opp):
    result = opportunity_update(
        opportunity=opp, actor=cast.owner, version=opp.version, title=opp.title
    )
    assert events(opp, EventKind.UPDATED) == []
    assert reloaded(opp).version == opp.version == result.version


def test_update_with_stale_version_raises_conflict_and_writes_nothing(cast, opp):
    opportunity_update(opportunity=opp, actor=cast.owner, version=opp.version, title="First")
    with pytest.raises(ConflictError) as caught:
        opportunity_update(opportunity=opp, actor=cast.owner, version=opp.version, title="Late")
    assert caught.value.current_version == opp.version + 1
    assert reloaded(opp).title == "First"
    assert len(events(opp, EventKind.UPDATED)) == 1


@pytest.mark.parametrize("field", ["status", "step", "probability", "version", "closed_at"])
def test_update_refuses_fields_with_their_own_service(cast, opp, field):
    with pytest.raises(TypeError):
        opportunity_update(opportunity=opp, actor=cast.owner, version=opp.version, **{field: 1})


def test_update_refuses_negative_amount(cast, opp):
    with pytest.raises(SalesRuleError):
        opportunity_update(opportunity=opp, actor=cast.owner, version=opp.version, amount=-5)
    assert reloaded(opp).amount == 1000_00


def test_update_refuses_empty_title(cast, opp):
    with pytest.raises(SalesRuleError):
        opportunity_update(opportunity=opp, actor=cast.owner, version=opp.version, title=" ")


def test_update_refuses_a_note_longer_than_its_column(cast, opp):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_update(
            opportunity=opp, actor=cast.owner, version=opp.version, next_action_note="x" * 201
        )
    assert caught.value.field == "next_action_note"


def test_update_validates_field_values(cast, opp):
    FieldDefinitionFactory(key="email", label="Email", kind=FieldKind.EMAIL)
    with pytest.raises(SalesRuleError) as caught:
        opportunity_update(
            opportunity=opp, actor=cast.owner, version=opp.version, fields={"email": "x"}
        )
    assert caught.value.field == "fields"


def test_salesperson_cannot_give_own_opportunity_away(cast, opp):
    with pytest.raises(PermissionDenied):
        opportunity_update(
            opportunity=opp, actor=cast.owner, version=opp.version, owner=cast.teammate
        )
    assert reloaded(opp).owner == cast.owner


def test_manager_can_reassign_within_team(cast, opp):
    opportunity_update(
        opportunity=opp, actor=cast.manager, version=opp.version, owner=cast.teammate
    )
    assert only_event(opp, EventKind.UPDATED).changes == {
        "owner": [cast.owner.pk, cast.teammate.pk]
    }


def test_teammate_under_team_policy_cannot_update(cast, opp):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    with pytest.raises(PermissionDenied):
        opportunity_update(opportunity=opp, actor=cast.teammate, version=opp.version, title="X")
    assert reloaded(opp).title == opp.title


def test_other_team_update_answers_does_not_exist(cast, opp):
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_update(opportunity=opp, actor=cast.other, version=opp.version, title="X")


# Move -----------------------------------------------------------------------------------


def test_move_changes_step_and_probability_follows(cast, opp, steps):
    moved = opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)
    assert (reloaded(moved).step, reloaded(moved).probability) == (steps[2], 50)


def test_move_records_step_and_probability_before_after(cast, opp, steps):
    opportunity_move(opportunity=opp, step=steps[1], actor=cast.owner)
    event = only_event(opp, EventKind.MOVED)
    assert event.actor == cast.owner
    assert event.changes == {"step": [steps[0].pk, steps[1].pk], "probability": [10, 25]}


def test_move_keeps_manual_probability(cast, opp, steps):
    opportunity_set_probability(opportunity=opp, probability=90, actor=cast.owner)
    opportunity_move(opportunity=opp, step=steps[3], actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.step, fresh.probability) == (steps[3], 90)
    assert only_event(opp, EventKind.MOVED).changes == {"step": [steps[0].pk, steps[3].pk]}


def test_move_refuses_closed_opportunity(cast, opp, steps):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_move(opportunity=opp, step=steps[1], actor=cast.owner)
    assert reloaded(opp).step == steps[0]
    assert events(opp, EventKind.MOVED) == []


def test_move_refuses_step_of_another_pipeline(cast, opp):
    foreign_step = PipelineFactory(name="Renewals").steps.last()
    with pytest.raises(SalesRuleError):
        opportunity_move(opportunity=opp, step=foreign_step, actor=cast.owner)
    assert reloaded(opp).step_id != foreign_step.pk


def test_move_to_current_step_writes_nothing(cast, opp, steps):
    opportunity_move(opportunity=opp, step=steps[0], actor=cast.owner)
    assert events(opp, EventKind.MOVED) == []
    assert reloaded(opp).version == opp.version


def test_move_with_stale_version_raises_conflict(cast, opp, steps):
    with pytest.raises(ConflictError):
        opportunity_move(opportunity=opp, step=steps[1], actor=cast.owner, version=99)
    assert reloaded(opp).step == steps[0]


def test_move_bumps_version(cast, opp, steps):
    opportunity_move(opportunity=opp, step=steps[1], actor=cast.owner)
    assert reloaded(opp).version == opp.version + 1


# Probability ----------------------------------------------------------------------------


def test_set_probability_marks_it_manual_and_records_event(cast, opp):
    opportunity_set_probability(opportunity=opp, probability=42, actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.probability, fresh.probability_is_manual) == (42, True)
    event = only_event(opp, EventKind.PROBABILITY)
    assert event.actor == cast.owner
    assert event.changes == {"probability": [10, 42], "probability_is_manual": [False, True]}


def test_set_probability_none_follows_the_step_again(cast, opp, steps):
    opportunity_move(opportunity=opp, step=steps[2], actor=cast.owner)
    opportunity_set_probability(opportunity=opp, probability=90, actor=cast.owner)
    opportunity_set_probability(opportunity=opp, probability=None, actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.probability, fresh.probability_is_manual) == (50, False)
    opportunity_move(opportunity=opp, step=steps[3], actor=cast.owner)
    assert reloaded(opp).probability == 70


@pytest.mark.parametrize("probability", [-1, 101])
def test_set_probability_refuses_out_of_range(cast, opp, probability):
    with pytest.raises(SalesRuleError):
        opportunity_set_probability(opportunity=opp, probability=probability, actor=cast.owner)
    assert reloaded(opp).probability == 10


def test_set_probability_refuses_closed_opportunity(cast, opp):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_set_probability(opportunity=opp, probability=50, actor=cast.owner)


# Next action and standby ----------------------------------------------------------------


def test_plan_next_action_sets_time_and_note(cast, opp):
    at = timezone.now() + timedelta(days=3)
    opportunity_plan_next_action(opportunity=opp, at=at, note="Call back", actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.next_action_at, fresh.next_action_note) == (at, "Call back")
    event = only_event(opp, EventKind.NEXT_ACTION)
    assert event.actor == cast.owner
    assert event.changes["next_action_at"] == [opp.next_action_at.isoformat(), at.isoformat()]
    assert event.changes["next_action_note"] == ["", "Call back"]
    assert "status" not in event.changes


def test_plan_next_action_brings_standby_back_to_todo(cast, opp):
    opportunity_standby(
        opportunity=opp, until=timezone.localdate() + timedelta(days=30), actor=cast.owner
    )
    opportunity_plan_next_action(opportunity=opp, at=timezone.now(), actor=cast.owner)
    assert reloaded(opp).status == Status.TODO
    assert only_event(opp, EventKind.NEXT_ACTION).changes["status"] == ["standby", "todo"]


def test_plan_next_action_refuses_a_note_longer_than_its_column(cast, opp):
    with pytest.raises(SalesRuleError):
        opportunity_plan_next_action(
            opportunity=opp, at=timezone.now(), note="x" * 201, actor=cast.owner
        )
    assert reloaded(opp).next_action_note == ""


def test_standby_refuses_a_note_longer_than_its_column(cast, opp):
    with pytest.raises(SalesRuleError):
        opportunity_standby(
            opportunity=opp,
            until=timezone.localdate() + timedelta(days=5),
            note="x" * 201,
            actor=cast.owner,
        )
    assert reloaded(opp).status == Status.TODO


def test_plan_next_action_refuses_closed_opportunity(cast, opp):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_plan_next_action(opportunity=opp, at=timezone.now(), actor=cast.owner)


@pytest.mark.parametrize("days", [0, -1])
def test_standby_requires_a_future_date(cast, opp, days):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_standby(
            opportunity=opp, until=timezone.localdate() + timedelta(days=days), actor=cast.owner
        )
    assert caught.value.field == "until"
    assert reloaded(opp).status == Status.TODO


def test_standby_comes_back_at_nine_that_morning(cast, opp):
    until = timezone.localdate() + timedelta(days=10)
    opportunity_standby(opportunity=opp, until=until, note="After summer", actor=cast.owner)
    fresh = reloaded(opp)
    assert fresh.status == Status.STANDBY
    assert timezone.localtime(fresh.next_action_at) == timezone.make_aware(
        datetime.combine(until, time(9, 0))
    )
    assert fresh.next_action_note == "After summer"


def test_standby_records_event(cast, opp):
    opportunity_standby(
        opportunity=opp, until=timezone.localdate() + timedelta(days=5), actor=cast.owner
    )
    event = only_event(opp, EventKind.STANDBY)
    assert event.actor == cast.owner
    assert event.changes["status"] == ["todo", "standby"]


def test_standby_refuses_closed_opportunity(cast, opp):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_standby(
            opportunity=opp, until=timezone.localdate() + timedelta(days=5), actor=cast.owner
        )


# Closing --------------------------------------------------------------------------------


def test_close_won_defaults_won_amount_to_amount(cast, opp):
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.status, fresh.won_amount) == (Status.WON, 1000_00)


def test_close_won_with_explicit_won_amount(cast, opp):
    opportunity_close_won(opportunity=opp, actor=cast.owner, won_amount=950_00)
    fresh = reloaded(opp)
    assert (fresh.won_amount, fresh.amount) == (950_00, 1000_00)


def test_close_won_sets_closed_at_and_clears_next_action(cast, opp):
    before = timezone.now()
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    fresh = reloaded(opp)
    assert before <= fresh.closed_at <= timezone.now()
    assert fresh.next_action_at is None


def test_close_won_uses_given_close_time(cast, opp):
    closed_at = timezone.now() - timedelta(days=2)
    opportunity_close_won(opportunity=opp, actor=cast.owner, closed_at=closed_at)
    assert reloaded(opp).closed_at == closed_at


def test_close_won_records_event(cast, opp):
    opportunity_close_won(opportunity=opp, actor=cast.owner, won_amount=900_00)
    event = only_event(opp, EventKind.WON)
    assert event.actor == cast.owner
    assert event.changes["status"] == ["todo", "won"]
    assert event.changes["won_amount"] == [None, 900_00]
    assert event.changes["closed_at"][0] is None


def test_close_won_refuses_negative_won_amount(cast, opp):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_close_won(opportunity=opp, actor=cast.owner, won_amount=-1)
    assert caught.value.field == "won_amount"
    assert reloaded(opp).status == Status.TODO


def test_close_won_refuses_already_closed(cast, opp):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_close_won(opportunity=opp, actor=cast.owner, won_amount=1)
    assert reloaded(opp).won_amount == 1000_00
    assert len(events(opp, EventKind.WON)) == 1


def test_close_lost_requires_a_reason(cast, opp):
    with pytest.raises(SalesRuleError) as caught:
        opportunity_close_lost(opportunity=opp, actor=cast.owner, reason=None)
    assert caught.value.field == "reason"
    assert reloaded(opp).status == Status.TODO


def test_close_lost_stores_reason_and_note(cast, opp):
    reason = LostReasonFactory(name="Price")
    opportunity_close_lost(opportunity=opp, actor=cast.owner, reason=reason, note=" Too dear ")
    fresh = reloaded(opp)
    assert (fresh.status, fresh.lost_reason, fresh.lost_note) == (Status.LOST, reason, "Too dear")
    assert fresh.closed_at is not None


def test_close_lost_records_event(cast, opp):
    reason = LostReasonFactory(name="Price")
    opportunity_close_lost(opportunity=opp, actor=cast.owner, reason=reason)
    event = only_event(opp, EventKind.LOST)
    assert event.actor == cast.owner
    assert event.changes["lost_reason"] == [None, reason.pk]
    assert event.changes["status"] == ["todo", "lost"]


def test_close_lost_refuses_already_closed(cast, opp):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_close_lost(opportunity=opp, actor=cast.owner, reason=LostReasonFactory())
    assert reloaded(opp).status == Status.WON


def test_cancel_closes_as_cancelled_with_event(cast, opp):
    opportunity_cancel(opportunity=opp, actor=cast.owner, note="Project dropped")
    fresh = reloaded(opp)
    assert (fresh.status, fresh.lost_note) == (Status.CANCELLED, "Project dropped")
    assert fresh.closed_at is not None
    assert only_event(opp, EventKind.CANCELLED).changes["status"] == ["todo", "cancelled"]


def test_cancel_refuses_already_closed(cast, opp):
    close_won(opp, cast.owner)
    with pytest.raises(SalesRuleError):
        opportunity_cancel(opportunity=opp, actor=cast.owner)


def test_teammate_under_team_policy_cannot_close(cast, opp):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    with pytest.raises(PermissionDenied):
        opportunity_close_won(opportunity=opp, actor=cast.teammate)
    assert reloaded(opp).status == Status.TODO


# Reopen ---------------------------------------------------------------------------------


def test_reopen_clears_won_amount_and_closed_at(cast, opp):
    close_won(opp, cast.owner)
    opportunity_reopen(opportunity=opp, actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.status, fresh.won_amount, fresh.closed_at) == (Status.TODO, None, None)
    assert fresh.next_action_at is not None


def test_reopen_clears_lost_reason_and_note(cast, opp):
    opportunity_close_lost(
        opportunity=opp, actor=cast.owner, reason=LostReasonFactory(), note="Price"
    )
    opportunity_reopen(opportunity=opp, actor=cast.owner)
    fresh = reloaded(opp)
    assert (fresh.lost_reason, fresh.lost_note) == (None, "")


def test_reopen_uses_given_next_action(cast, opp):
    close_won(opp, cast.owner)
    at = timezone.now() + timedelta(days=7)
    opportunity_reopen(opportunity=opp, actor=cast.owner, next_action_at=at)
    assert reloaded(opp).next_action_at == at


def test_reopen_records_event(cast, opp):
    close_won(opp, cast.owner)
    opportunity_reopen(opportunity=opp, actor=cast.manager)
    event = only_event(opp, EventKind.REOPENED)
    assert event.actor == cast.manager
    assert event.changes["status"] == ["won", "todo"]
    assert event.changes["won_amount"] == [1000_00, None]


def test_reopen_refuses_open_opportunity(cast, opp):
    with pytest.raises(SalesRuleError):
        opportunity_reopen(opportunity=opp, actor=cast.owner)
    assert events(opp, EventKind.REOPENED) == []


def test_reopened_opportunity_can_move_again(cast, opp, steps):
    close_won(opp, cast.owner)
    opportunity_reopen(opportunity=opp, actor=cast.owner)
    opportunity_move(opportunity=opp, step=steps[1], actor=cast.owner)
    assert reloaded(opp).step == steps[1]


# Duplicate ------------------------------------------------------------------------------


@pytest.fixture
def rich_source(cast, steps):
    """An opportunity on its third step with client, contacts, fields, tags and product."""
    FieldDefinitionFactory(key="source", label="Source")
    source = opportunity_create(
        actor=cast.owner,
        title="Licence 2025",
        pipeline=cast.pipeline,
        step=steps[2],
        client=ClientFactory(name="ACME"),
        product=ProductFactory(name="Licence"),
        amount=1234_56,
        expected_close_date=date(2025, 6, 30),
        description="Yearly licence",
        fields={"source": "Trade fair"},
        tags=["renewal", "agency"],
        contacts=[{"name": "Anna", "role": "CEO"}, {"name": "Bruno", "email": "b@example.com"}],
    )
    close_won(source, cast.owner)
    return reloaded(source)


def duplicate(source, actor, **values):
    return opportunity_duplicate(
        opportunity=source, actor=actor, title=values.pop("title", "Licence 2026"), **values
    )


def test_duplicate_keeps_client_product_amount_and_description(cast, rich_source):
    new = duplicate(rich_source, cast.owner)
    assert (new.client, new.product, new.amount, new.description) == (
        rich_source.client,
        rich_source.product,
        1234_56,
        "Yearly licence",
    )


def test_duplicate_keeps_contacts_in_order(cast, rich_source):
    new = duplicate(rich_source, cast.owner)
    copied = list(new.contacts.values_list("name", "role", "email"))
    assert copied == [("Anna", "CEO", ""), ("Bruno", "", "b@example.com")]
    assert set(new.contacts.all()).isdisjoint(rich_source.contacts.all())


def test_duplicate_keeps_fields_and_tags(cast, rich_source):
    new = duplicate(rich_source, cast.owner)
    assert new.fields == {"source": "Trade fair"}
    assert set(new.tags.all()) == set(rich_source.tags.all())
    assert new.tags.count() == 2


def test_duplicate_has_its_own_title_and_dates(cast, rich_source):
    at = timezone.now() + timedelta(days=3)
    new = duplicate(
        rich_source,
        cast.owner,
        title="Licence 2026",
        expected_close_date=date(2026, 6, 30),
        next_action_at=at,
    )
    fresh = reloaded(new)
    assert (fresh.title, fresh.expected_close_date, fresh.next_action_at) == (
        "Licence 2026",
        date(2026, 6, 30),
        at,
    )
    assert (fresh.status, fresh.closed_at, fresh.won_amount) == (Status.TODO, None, None)


def test_duplicate_starts_on_the_first_step(cast, rich_source, steps):
    new = duplicate(rich_source, cast.owner)
    assert (new.step, new.probability, new.probability_is_manual) == (steps[0], 10, False)


def test_duplicate_remembers_where_it_came_from(cast, rich_source):
    new = duplicate(rich_source, cast.owner)
    assert reloaded(new).duplicated_from == rich_source
    assert list(rich_source.duplicates.all()) == [new]


def test_duplicate_records_events_on_both(cast, rich_source):
    new = duplicate(rich_source, cast.manager)
    on_new = only_event(new, EventKind.DUPLICATED)
    on_source = only_event(rich_source, EventKind.DUPLICATED)
    assert on_new.actor == on_source.actor == cast.manager
    assert on_new.data["from"] == rich_source.pk
    assert on_source.data["to"] == new.pk
    assert only_event(new, EventKind.CREATED).actor == cast.manager


def test_duplicate_amount_can_be_overridden(cast, rich_source):
    assert duplicate(rich_source, cast.owner, amount=2000_00).amount == 2000_00


def test_duplicate_leaves_the_source_unchanged(cast, rich_source):
    duplicate(rich_source, cast.owner)
    fresh = reloaded(rich_source)
    assert (fresh.status, fresh.title, fresh.version) == (
        Status.WON,
        "Licence 2025",
        rich_source.version,
    )


def test_other_team_cannot_duplicate(cast, rich_source):
    with pytest.raises(Opportunity.DoesNotExist):
        duplicate(rich_source, cast.other)
    assert Opportunity.objects.count() == 1


def test_unrelated_user_is_not_a_valid_owner_of_a_duplicate(cast, rich_source):
    stranger = UserFactory(username="stranger")
    with pytest.raises(PermissionDenied):
        duplicate(rich_source, cast.owner, owner=stranger)


@pytest.mark.django_db
def test_close_lost_refuses_an_inactive_reason():
    from opportuna.sales.services import opportunity_close_lost
    from tests.factories import LostReasonFactory, OpportunityFactory

    opp = OpportunityFactory()
    retired = LostReasonFactory(is_active=False)
    with pytest.raises(SalesRuleError):
        opportunity_close_lost(opportunity=opp, actor=opp.owner, reason=retired)
    opp.refresh_from_db()
    assert opp.status == "todo"


@pytest.mark.django_db
def test_close_won_refuses_a_closing_date_in_the_future():
    from opportuna.sales.services import opportunity_close_won
    from tests.factories import OpportunityFactory

    opp = OpportunityFactory()
    with pytest.raises(SalesRuleError):
        opportunity_close_won(
            opportunity=opp, actor=opp.owner, closed_at=timezone.now() + timedelta(days=2)
        )


@pytest.mark.django_db
def test_plan_next_action_without_a_date_is_a_rule_error():
    from opportuna.sales.services import opportunity_plan_next_action
    from tests.factories import OpportunityFactory

    opp = OpportunityFactory()
    with pytest.raises(SalesRuleError):
        opportunity_plan_next_action(opportunity=opp, actor=opp.owner, at=None)
