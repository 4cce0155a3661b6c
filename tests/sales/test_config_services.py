"""The account's configuration (admins only): pipelines, steps, default fields, catalogues."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    ActivityType,
    EventKind,
    FieldDefinition,
    FieldKind,
    LostReason,
    Opportunity,
    OpportunityEvent,
    Pipeline,
    Product,
    Status,
    Step,
    Tag,
)
from opportuna.sales.services import (
    activity_type_save,
    field_definition_create,
    field_definition_update,
    lost_reason_save,
    opportunity_close_won,
    opportunity_set_probability,
    pipeline_create,
    pipeline_update,
    product_save,
    step_create,
    step_delete,
    step_reorder,
    step_update,
    tag_save,
)
from tests.factories import FieldDefinitionFactory, OpportunityFactory, TagFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def steps(cast):
    return list(cast.pipeline.steps.order_by("position"))


# Only admins ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "manager"])
def test_only_admins_change_configuration(cast, steps, who):
    actor = getattr(cast, who)
    attempts = [
        lambda: pipeline_create(actor=actor, name="New"),
        lambda: pipeline_update(pipeline=cast.pipeline, actor=actor, name="Renamed"),
        lambda: step_create(actor=actor, pipeline=cast.pipeline, name="Won?", probability=90),
        lambda: step_update(step=steps[0], actor=actor, probability=15),
        lambda: step_delete(step=steps[0], actor=actor),
        lambda: step_reorder(
            pipeline=cast.pipeline, actor=actor, step_ids=[s.pk for s in reversed(steps)]
        ),
        lambda: field_definition_create(actor=actor, label="Budget"),
        lambda: activity_type_save(actor=actor, activity_type=ActivityType(name="Fax")),
        lambda: lost_reason_save(actor=actor, lost_reason=LostReason(name="Price")),
        lambda: product_save(actor=actor, product=Product(name="Licence")),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()
    assert Pipeline.objects.get() == cast.pipeline
    assert cast.pipeline.name == Pipeline.objects.get().name
    assert list(cast.pipeline.steps.order_by("position")) == steps
    assert Step.objects.get(pk=steps[0].pk).probability == 10
    assert not FieldDefinition.objects.exists()
    assert not LostReason.objects.exists()
    assert not Product.objects.exists()


# Pipelines and steps --------------------------------------------------------------------


def test_pipeline_create_with_steps_in_order(cast):
    pipeline = pipeline_create(
        actor=cast.admin, name=" Renewals ", steps=[("Contact", 20), ("Offer", 60)]
    )
    assert pipeline.name == "Renewals"
    got = list(pipeline.steps.order_by("position").values_list("name", "probability"))
    assert got == [("Contact", 20), ("Offer", 60)]


def test_pipeline_create_goes_after_existing_pipelines(cast):
    pipeline = pipeline_create(actor=cast.admin, name="Renewals")
    assert pipeline.position > cast.pipeline.position


@pytest.mark.parametrize("probability", [-1, 101])
def test_pipeline_create_refuses_a_step_probability_out_of_range(cast, probability):
    with pytest.raises(SalesRuleError):
        pipeline_create(actor=cast.admin, name="Renewals", steps=[("Bad", probability)])
    assert not Pipeline.objects.filter(name="Renewals").exists()


def test_pipeline_create_refuses_a_taken_name(cast):
    with pytest.raises(SalesRuleError) as caught:
        pipeline_create(actor=cast.admin, name=cast.pipeline.name)
    assert caught.value.field == "name"


def test_step_create_goes_at_the_end(cast, steps):
    step = step_create(actor=cast.admin, pipeline=cast.pipeline, name="Negotiation", probability=85)
    assert list(cast.pipeline.steps.order_by("position")) == [*steps, step]


@pytest.mark.parametrize("probability", [-1, 101])
def test_step_create_refuses_probability_out_of_range(cast, probability):
    with pytest.raises(SalesRuleError):
        step_create(actor=cast.admin, pipeline=cast.pipeline, name="Bad", probability=probability)
    assert not Step.objects.filter(name="Bad").exists()


def test_step_create_refuses_a_name_taken_in_the_pipeline(cast, steps):
    with pytest.raises(SalesRuleError):
        step_create(actor=cast.admin, pipeline=cast.pipeline, name=steps[0].name, probability=5)


def test_step_update_probability_carries_to_open_opportunities_following_it(cast, steps):
    todo = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    standby = OpportunityFactory(owner=cast.other, pipeline=cast.pipeline, status=Status.STANDBY)
    step_update(step=steps[0], actor=cast.admin, probability=15)
    assert set(
        Opportunity.objects.filter(pk__in=[todo.pk, standby.pk]).values_list(
            "probability", flat=True
        )
    ) == {15}


def test_step_update_records_a_probability_event_per_opportunity(cast, steps):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    step_update(step=steps[0], actor=cast.admin, probability=15)
    event = OpportunityEvent.objects.get(opportunity=opp)
    assert (event.kind, event.actor) == (EventKind.PROBABILITY, cast.admin)
    assert event.changes == {"probability": [10, 15]}


def test_step_update_bumps_version_and_updated_at(cast, steps):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    Opportunity.objects.filter(pk=opp.pk).update(updated_at=timezone.now() - timedelta(days=9))
    before = timezone.now()
    step_update(step=steps[0], actor=cast.admin, probability=15)
    fresh = Opportunity.objects.get(pk=opp.pk)
    assert fresh.version == opp.version + 1
    assert fresh.updated_at >= before


def test_step_update_leaves_manual_closed_and_other_step_opportunities(cast, steps):
    manual = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    opportunity_set_probability(opportunity=manual, probability=33, actor=cast.owner)
    closed = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    opportunity_close_won(opportunity=closed, actor=cast.owner)
    elsewhere = OpportunityFactory(
        owner=cast.owner, pipeline=cast.pipeline, step=steps[1], probability=25
    )
    events_before = OpportunityEvent.objects.count()
    step_update(step=steps[0], actor=cast.admin, probability=15)
    probabilities = dict(Opportunity.objects.values_list("pk", "probability"))
    assert probabilities == {manual.pk: 33, closed.pk: 10, elsewhere.pk: 25}
    assert OpportunityEvent.objects.count() == events_before


def test_step_update_without_probability_change_writes_no_event(cast, steps):
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    step_update(step=steps[0], actor=cast.admin, name="First contact")
    assert Step.objects.get(pk=steps[0].pk).name == "First contact"
    assert not OpportunityEvent.objects.exists()


@pytest.mark.parametrize("probability", [-1, 101])
def test_step_update_refuses_probability_out_of_range(cast, steps, probability):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    with pytest.raises(SalesRuleError):
        step_update(step=steps[0], actor=cast.admin, probability=probability)
    assert Step.objects.get(pk=steps[0].pk).probability == 10
    assert Opportunity.objects.get(pk=opp.pk).probability == 10


def test_step_update_refuses_unknown_fields(cast, steps):
    with pytest.raises(TypeError):
        step_update(step=steps[0], actor=cast.admin, pipeline=cast.pipeline)


def test_step_delete_is_refused_while_opportunities_are_on_it(cast, steps):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    with pytest.raises(SalesRuleError):
        step_delete(step=steps[0], actor=cast.admin)
    assert Step.objects.filter(pk=steps[0].pk).exists()


def test_step_delete_removes_an_empty_step(cast, steps):
    step_delete(step=steps[3], actor=cast.admin)
    assert list(cast.pipeline.steps.order_by("position")) == steps[:3]


def test_step_reorder_puts_steps_in_the_given_order(cast, steps):
    step_reorder(pipeline=cast.pipeline, actor=cast.admin, step_ids=[s.pk for s in steps[::-1]])
    assert list(cast.pipeline.steps.order_by("position")) == steps[::-1]


def test_step_reorder_must_list_every_step_once(cast, steps):
    with pytest.raises(SalesRuleError):
        step_reorder(pipeline=cast.pipeline, actor=cast.admin, step_ids=[steps[0].pk])
    assert list(cast.pipeline.steps.order_by("position")) == steps


# Default fields -------------------------------------------------------------------------


def test_field_definition_key_is_derived_from_the_label(cast):
    definition = field_definition_create(actor=cast.admin, label="Contact 1 e-mail")
    assert (definition.key, definition.kind) == ("contact_1_e_mail", FieldKind.TEXT)


def test_field_definitions_go_after_existing_ones(cast):
    first = field_definition_create(actor=cast.admin, label="Budget")
    second = field_definition_create(actor=cast.admin, label="Source")
    assert second.position > first.position


def test_choice_field_needs_choices(cast):
    with pytest.raises(SalesRuleError) as caught:
        field_definition_create(
            actor=cast.admin, label="Size", kind=FieldKind.CHOICE, choices=[" ", ""]
        )
    assert caught.value.field == "choices"
    assert not FieldDefinition.objects.exists()


def test_choice_field_keeps_trimmed_choices(cast):
    definition = field_definition_create(
        actor=cast.admin, label="Size", kind=FieldKind.CHOICE, choices=[" S ", "M", ""]
    )
    definition.refresh_from_db()
    assert definition.choices == ["S", "M"]


def test_non_choice_field_drops_choices(cast):
    definition = field_definition_create(actor=cast.admin, label="Notes", choices=["x"])
    assert definition.choices == []


def test_field_label_with_a_colon_is_refused(cast):
    # "Label: value" is the text form: a colon in a label would make it unreadable.
    with pytest.raises(SalesRuleError) as caught:
        field_definition_create(actor=cast.admin, label="Budget: EUR")
    assert caught.value.field == "label"
    assert not FieldDefinition.objects.exists()


def test_field_label_update_with_a_colon_is_refused(cast):
    definition = FieldDefinitionFactory(label="Budget", key="budget")
    with pytest.raises(SalesRuleError):
        field_definition_update(definition=definition, actor=cast.admin, label="Budget: EUR")
    assert FieldDefinition.objects.get(pk=definition.pk).label == "Budget"


def test_field_definition_update_keeps_the_key(cast):
    definition = FieldDefinitionFactory(label="Budget", key="budget")
    field_definition_update(definition=definition, actor=cast.admin, label="Expected budget")
    stored = FieldDefinition.objects.get(pk=definition.pk)
    assert (stored.label, stored.key) == ("Expected budget", "budget")


def test_field_definition_update_to_choice_needs_choices(cast):
    definition = FieldDefinitionFactory(label="Size", key="size")
    with pytest.raises(SalesRuleError):
        field_definition_update(definition=definition, actor=cast.admin, kind=FieldKind.CHOICE)
    assert FieldDefinition.objects.get(pk=definition.pk).kind == FieldKind.TEXT


def test_field_definition_refuses_a_taken_label(cast):
    FieldDefinitionFactory(label="Budget", key="budget")
    with pytest.raises(SalesRuleError):
        field_definition_create(actor=cast.admin, label="Budget", key="budget_2")


def test_field_definition_refuses_an_unknown_kind(cast):
    with pytest.raises(SalesRuleError):
        field_definition_create(actor=cast.admin, label="Budget", kind="money")


# Catalogues -----------------------------------------------------------------------------


def test_activity_type_key_is_derived_from_the_name(cast):
    saved = activity_type_save(actor=cast.admin, activity_type=ActivityType(name="Site survey"))
    assert ActivityType.objects.get(pk=saved.pk).key == "site_survey"


def test_lost_reason_and_product_are_saved_by_admins(cast):
    lost_reason_save(actor=cast.admin, lost_reason=LostReason(name="Price"))
    product_save(actor=cast.admin, product=Product(name="Licence", unit_price=100_00))
    assert LostReason.objects.get().name == "Price"
    assert Product.objects.get().unit_price == 100_00


def test_product_with_negative_price_is_refused(cast):
    with pytest.raises(SalesRuleError):
        product_save(actor=cast.admin, product=Product(name="Licence", unit_price=-1))
    assert not Product.objects.exists()


def test_anyone_may_create_a_tag(cast):
    tag_save(actor=cast.owner, tag=Tag(name="agency"))
    assert Tag.objects.filter(name="agency").exists()


def test_only_admins_change_a_tag(cast):
    tag = TagFactory(name="agency", colour="#000000")
    tag.colour = "#ff0000"
    with pytest.raises(PermissionDenied):
        tag_save(actor=cast.owner, tag=tag)
    tag_save(actor=cast.admin, tag=tag)
    assert Tag.objects.get(pk=tag.pk).colour == "#ff0000"
