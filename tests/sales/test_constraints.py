"""The database itself refuses rows that break the domain's invariants.

Each test starts from a valid row (the first test proves it is valid) and breaks one thing.
The error must name the constraint, so a test cannot pass on some unrelated failure.
"""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from opportuna.accounts.models import Account
from opportuna.sales.models import (
    Activity,
    Opportunity,
    Proposal,
    ProposalLine,
    Status,
    Step,
)
from tests.factories import (
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    UserFactory,
    activity_type,
)
from tests.plans import sqlite_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory(username="owner")


@pytest.fixture
def pipeline():
    return PipelineFactory(name="Sales")


def refused(constraint):
    """Expect the database to refuse the row, naming `constraint` (SQLite and PostgreSQL)."""
    return pytest.raises(IntegrityError, match=constraint)


def opportunity(owner, pipeline, **values):
    """Insert one opportunity row, valid unless `values` break it."""
    step = pipeline.steps.order_by("position").first()
    row = {
        "title": "Deal",
        "owner": owner,
        "pipeline": pipeline,
        "step": step,
        "probability": step.probability,
        "amount": 1000_00,
        "next_action_at": timezone.now(),
        **values,
    }
    with transaction.atomic():
        return Opportunity.objects.create(**row)


def closed(**values):
    return {"closed_at": timezone.now(), "next_action_at": None, **values}


def test_the_base_rows_are_valid(owner, pipeline):
    opportunity(owner, pipeline)
    opportunity(owner, pipeline, **closed(status=Status.WON, won_amount=900_00))
    opportunity(owner, pipeline, **closed(status=Status.LOST, lost_reason=LostReasonFactory()))
    opportunity(owner, pipeline, **closed(status=Status.CANCELLED))
    opportunity(owner, pipeline, probability=0, amount=0)
    opportunity(owner, pipeline, probability=100)
    assert Opportunity.objects.count() == 6


# Opportunity ----------------------------------------------------------------------------


def test_probability_above_100_is_refused(owner, pipeline):
    with refused("opportunity_probability_range"):
        opportunity(owner, pipeline, probability=101)


def test_negative_amount_is_refused(owner, pipeline):
    with refused("opportunity_amount_positive"):
        opportunity(owner, pipeline, amount=-1)


def test_negative_won_amount_is_refused(owner, pipeline):
    with refused("opportunity_won_amount_positive"):
        opportunity(owner, pipeline, **closed(status=Status.WON, won_amount=-1))


def test_unknown_status_is_refused(owner, pipeline):
    # It is neither open nor closed either, so the database may report that check first.
    with refused("opportunity_status_valid|opportunity_closed_iff_closed_at"):
        opportunity(owner, pipeline, status="maybe")


def test_won_without_won_amount_is_refused(owner, pipeline):
    with refused("opportunity_won_has_won_amount"):
        opportunity(owner, pipeline, **closed(status=Status.WON, won_amount=None))


def test_lost_without_reason_is_refused(owner, pipeline):
    with refused("opportunity_lost_has_reason"):
        opportunity(owner, pipeline, **closed(status=Status.LOST))


@pytest.mark.parametrize("status", [Status.WON, Status.LOST, Status.CANCELLED])
def test_closed_without_closed_at_is_refused(owner, pipeline, status):
    values = closed(status=status, won_amount=1, lost_reason=LostReasonFactory(), closed_at=None)
    with refused("opportunity_closed_iff_closed_at"):
        opportunity(owner, pipeline, **values)


@pytest.mark.parametrize("status", [Status.TODO, Status.STANDBY])
def test_open_with_closed_at_is_refused(owner, pipeline, status):
    with refused("opportunity_closed_iff_closed_at"):
        opportunity(owner, pipeline, status=status, closed_at=timezone.now())


@pytest.mark.parametrize("status", [Status.TODO, Status.STANDBY])
def test_open_without_next_action_is_refused(owner, pipeline, status):
    with refused("opportunity_open_has_next_action"):
        opportunity(owner, pipeline, status=status, next_action_at=None)


def test_an_update_breaking_a_constraint_is_refused(owner, pipeline):
    opp = opportunity(owner, pipeline)
    with refused("opportunity_probability_range"), transaction.atomic():
        Opportunity.objects.filter(pk=opp.pk).update(probability=101)
    assert Opportunity.objects.get(pk=opp.pk).probability == 10


# Step -----------------------------------------------------------------------------------


def step(pipeline, probability):
    with transaction.atomic():
        return Step.objects.create(pipeline=pipeline, name="Extra", probability=probability)


def test_step_probability_bounds_are_valid(pipeline):
    step(pipeline, 0)
    Step.objects.filter(name="Extra").delete()
    step(pipeline, 100)


def test_step_probability_above_100_is_refused(pipeline):
    with refused("step_probability_range"):
        step(pipeline, 101)


def test_negative_step_probability_is_refused(pipeline):
    # A positive integer column: PostgreSQL names its check "<table>_probability_check",
    # SQLite quotes the expression; both mention the column.
    with refused("probability"):
        step(pipeline, -1)


def test_two_steps_with_the_same_name_in_a_pipeline_are_refused(pipeline):
    with refused(r"step_unique_name|sales_step\.pipeline_id, sales_step\.name"):
        step(pipeline, 10)
        step(pipeline, 20)


# Activity -------------------------------------------------------------------------------


def activity(owner, pipeline, **values):
    opp = OpportunityFactory(owner=owner, pipeline=pipeline)
    with transaction.atomic():
        return Activity.objects.create(
            opportunity=opp, type=activity_type("call"), user=owner, **values
        )


def test_activity_done_or_due_is_valid(owner, pipeline):
    activity(owner, pipeline, done_at=timezone.now())
    activity(owner, pipeline, due_at=timezone.now() + timedelta(days=1))
    assert Activity.objects.count() == 2


def test_activity_with_neither_done_at_nor_due_at_is_refused(owner, pipeline):
    with refused("activity_done_or_due"):
        activity(owner, pipeline)


# Proposal -------------------------------------------------------------------------------


@pytest.fixture
def proposal(owner, pipeline):
    opp = OpportunityFactory(owner=owner, pipeline=pipeline)
    return Proposal.objects.create(opportunity=opp, number=1, created_by=owner)


def line(proposal, **values):
    with transaction.atomic():
        return ProposalLine.objects.create(proposal=proposal, description="Work", **values)


def test_proposal_line_bounds_are_valid(proposal):
    line(proposal, discount=0, quantity=0, unit_price=0)
    line(proposal, discount=100, quantity="0.001", unit_price=1)
    assert proposal.lines.count() == 2


@pytest.mark.parametrize("discount", [120, -1])
def test_proposal_line_discount_out_of_range_is_refused(proposal, discount):
    with refused("line_discount_range"):
        line(proposal, discount=discount)


def test_proposal_line_negative_quantity_is_refused(proposal):
    with refused("line_quantity_positive"):
        line(proposal, quantity=-1)


def test_proposal_line_negative_price_is_refused(proposal):
    with refused("line_price_positive"):
        line(proposal, unit_price=-1)


def test_two_proposals_with_the_same_number_are_refused(owner, proposal):
    with (
        refused(r"proposal_unique_number|sales_proposal\.opportunity_id, sales_proposal\.number"),
        transaction.atomic(),
    ):
        Proposal.objects.create(opportunity=proposal.opportunity, number=1, created_by=owner)


def test_same_number_on_another_opportunity_is_valid(owner, pipeline, proposal):
    other = OpportunityFactory(owner=owner, pipeline=pipeline)
    Proposal.objects.create(opportunity=other, number=1, created_by=owner)


def test_sent_proposal_without_sent_at_is_refused(owner, proposal):
    with refused("proposal_sent_has_sent_at"), transaction.atomic():
        Proposal.objects.filter(pk=proposal.pk).update(status="sent")


# Account --------------------------------------------------------------------------------


def test_there_is_one_account_row():
    assert list(Account.objects.values_list("pk", flat=True)) == [1]


def test_a_second_account_row_is_refused():
    with refused("account_is_singleton"), transaction.atomic():
        Account.objects.create(pk=2, name="Second")
    assert Account.objects.count() == 1


def test_open_means_a_next_action_is_set_so_the_open_ones_partial_indexes_serve_it(owner):
    OpportunityFactory(owner=owner)
    OpportunityFactory(owner=owner, status=Status.WON, closed_at=timezone.now(), won_amount=1)
    found = Opportunity.objects.open()
    assert list(found) == list(Opportunity.objects.filter(status__in=[Status.TODO, Status.STANDBY]))
    queryset = found.filter(owner=owner).order_by("next_action_at").values("pk")
    sql, params = queryset.query.sql_with_params()
    assert '"next_action_at" IS NOT NULL' in sql  # literal, not a parameter
    if connection.vendor == "sqlite":
        plan = sqlite_plan(sql, params)
        # The to-do list's partial index, already in next-action order.
        assert "opp_todo_idx" in plan
        assert "TEMP B-TREE" not in plan
