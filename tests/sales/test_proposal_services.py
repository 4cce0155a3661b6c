"""Proposals: numbered versions, exact totals, and the send / accept / decline life."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import (
    Activity,
    ActivityType,
    EventKind,
    Opportunity,
    OpportunityEvent,
    Proposal,
    ProposalLine,
    ProposalStatus,
)
from opportuna.sales.services import (
    line_total,
    opportunity_close_won,
    proposal_accept,
    proposal_create,
    proposal_decline,
    proposal_revise,
    proposal_send,
)
from tests.factories import OpportunityFactory, ProductFactory, make_cast

pytestmark = pytest.mark.django_db

LINES = [
    {"description": "Consulting days", "quantity": "3", "unit_price": 33_33, "discount": "10"},
    {"description": "Set-up", "unit_price": 500_00},
]
# 3 x 33.33 = 99.99, less 10% = 89.991 -> 89.99; plus 500.00.
LINES_TOTAL = 89_99 + 500_00


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, amount=1000_00)


@pytest.fixture
def draft(cast, opp):
    return proposal_create(opportunity=opp, actor=cast.owner, scope="Phase 1", lines=LINES)


@pytest.fixture
def sent(cast, draft):
    return proposal_send(proposal=draft, actor=cast.owner)


def events(opportunity, kind):
    return list(OpportunityEvent.objects.filter(opportunity=opportunity, kind=kind))


def only_event(opportunity, kind):
    found = events(opportunity, kind)
    assert len(found) == 1, found
    return found[0]


def amount_of(opportunity):
    return Opportunity.objects.values_list("amount", flat=True).get(pk=opportunity.pk)


# Line totals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit_price", "discount", "expected"),
    [
        ("1", 100_00, "0", 100_00),
        ("3", 33_33, "10", 89_99),  # 89.991
        ("0.5", 1, "0", 1),  # 0.5 cent rounds half-up
        ("0.499", 1, "0", 0),
        ("2.5", 33_33, "0", 83_33),  # 83.325 -> 83.33
        ("1.125", 200, "0", 225),
        ("7", 14_29, "12.5", 87_53),  # 100.03 x 0.875 = 87.52625
        ("1", 99_99, "100", 0),
        ("0", 99_99, "0", 0),
    ],
)
def test_line_total_is_exact_and_rounds_half_up(quantity, unit_price, discount, expected):
    got = line_total(quantity=Decimal(quantity), unit_price=unit_price, discount=Decimal(discount))
    assert got == expected


# Create and revise ----------------------------------------------------------------------


def test_proposal_create_makes_a_draft_numbered_one(cast, draft):
    assert (draft.number, draft.status, draft.created_by) == (1, ProposalStatus.DRAFT, cast.owner)


def test_proposal_total_is_the_sum_of_exact_line_totals(draft):
    draft.refresh_from_db()
    assert draft.total == LINES_TOTAL
    assert list(draft.lines.values_list("total", flat=True)) == [89_99, 500_00]


def test_proposal_lines_keep_their_order_and_values(draft):
    first, second = draft.lines.all()
    assert (first.position, first.quantity, first.unit_price, first.discount) == (
        0,
        Decimal("3.000"),
        33_33,
        Decimal("10.00"),
    )
    assert (second.position, second.quantity, second.discount) == (1, Decimal(1), Decimal(0))


def test_fractional_quantities_are_stored_exactly(cast, opp):
    proposal = proposal_create(
        opportunity=opp,
        actor=cast.owner,
        lines=[{"description": "Hours", "quantity": "2.125", "unit_price": 80_00}],
    )
    line = proposal.lines.get()
    assert line.quantity == Decimal("2.125")
    assert line.total == proposal.total == 170_00


def test_line_takes_product_price_and_name_by_default(cast, opp):
    product = ProductFactory(name="Licence", unit_price=250_00)
    proposal = proposal_create(
        opportunity=opp, actor=cast.owner, lines=[{"product": product, "quantity": 2}]
    )
    line = proposal.lines.get()
    assert (line.product, line.description, line.unit_price, line.total) == (
        product,
        "Licence",
        250_00,
        500_00,
    )


def test_proposals_are_numbered_one_two_three(cast, opp):
    numbers = [proposal_create(opportunity=opp, actor=cast.owner).number for _ in range(3)]
    assert numbers == [1, 2, 3]


def test_numbers_are_per_opportunity(cast, opp, draft):
    elsewhere = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    assert proposal_create(opportunity=elsewhere, actor=cast.owner).number == 1


def test_proposal_create_records_event(cast, opp, draft):
    event = only_event(opp, EventKind.PROPOSAL_CREATED)
    assert event.actor == cast.owner
    assert event.data == {
        "proposal": draft.pk,
        "number": 1,
        "total": LINES_TOTAL,
        "revises": None,
    }


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"description": "x", "discount": "120"}, "discount"),
        ({"description": "x", "discount": "-1"}, "discount"),
        ({"description": "x", "quantity": "-1"}, "quantity"),
        ({"description": "x", "quantity": "abc"}, "quantity"),
        ({"description": "x", "quantity": "1.2345"}, "quantity"),
        ({"description": "x", "quantity": "1000000000"}, "quantity"),
        ({"description": "x", "discount": "10.555"}, "discount"),
        ({"description": "x", "unit_price": -1}, "unit_price"),
        ({"description": "x", "unit_price": 1.5}, "unit_price"),
    ],
)
def test_proposal_create_refuses_bad_lines(cast, opp, line, field):
    with pytest.raises(SalesRuleError) as caught:
        proposal_create(opportunity=opp, actor=cast.owner, lines=[line])
    assert caught.value.field == field
    assert not Proposal.objects.exists()
    assert not ProposalLine.objects.exists()


def test_proposal_line_needs_a_product_or_description(cast, opp):
    with pytest.raises(SalesRuleError):
        proposal_create(opportunity=opp, actor=cast.owner, lines=[{"unit_price": 1}])
    assert not Proposal.objects.exists()


def test_teammate_under_team_policy_cannot_create_proposals(cast, opp):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    with pytest.raises(PermissionDenied):
        proposal_create(opportunity=opp, actor=cast.teammate, lines=LINES)
    assert not Proposal.objects.exists()


def test_other_team_cannot_create_proposals(cast, opp):
    with pytest.raises(Opportunity.DoesNotExist):
        proposal_create(opportunity=opp, actor=cast.other, lines=LINES)


def test_proposal_revise_copies_scope_and_lines_into_next_version(cast, draft):
    revision = proposal_revise(proposal=draft, actor=cast.owner)
    assert (revision.number, revision.scope, revision.total) == (2, "Phase 1", LINES_TOTAL)
    copied = list(revision.lines.values_list("description", "quantity", "unit_price", "discount"))
    original = list(draft.lines.values_list("description", "quantity", "unit_price", "discount"))
    assert copied == original
    assert set(revision.lines.all()).isdisjoint(draft.lines.all())


def test_proposal_revise_with_new_lines_and_scope(cast, draft):
    revision = proposal_revise(
        proposal=draft,
        actor=cast.owner,
        scope="Phase 1 and 2",
        lines=[{"description": "All in", "unit_price": 700_00}],
    )
    assert (revision.scope, revision.total, revision.lines.count()) == ("Phase 1 and 2", 700_00, 1)
    draft.refresh_from_db()
    assert (draft.total, draft.status) == (LINES_TOTAL, ProposalStatus.DRAFT)


def test_proposal_revise_keeps_valid_until_unless_given(cast, opp):
    first = proposal_create(opportunity=opp, actor=cast.owner, valid_until=date(2030, 1, 31))
    assert proposal_revise(proposal=first, actor=cast.owner).valid_until == date(2030, 1, 31)


def test_proposal_revise_records_what_it_revises(cast, opp, draft):
    revision = proposal_revise(proposal=draft, actor=cast.owner)
    created = events(opp, EventKind.PROPOSAL_CREATED)
    assert [e.data["number"] for e in created] == [1, 2]
    assert created[1].data["revises"] == draft.pk
    assert created[1].data["proposal"] == revision.pk


# Send -----------------------------------------------------------------------------------


def test_proposal_send_marks_it_sent(cast, draft):
    before = timezone.now()
    proposal_send(proposal=draft, actor=cast.owner)
    draft.refresh_from_db()
    assert draft.status == ProposalStatus.SENT
    assert before <= draft.sent_at <= timezone.now()


def test_proposal_send_logs_a_proposal_sent_activity(cast, opp, draft):
    sent_at = timezone.now() - timedelta(hours=1)
    proposal_send(proposal=draft, actor=cast.owner, sent_at=sent_at)
    activity = Activity.objects.get(opportunity=opp)
    assert activity.type.key == ActivityType.PROPOSAL_SENT
    assert (activity.user, activity.done_at) == (cast.owner, sent_at)
    assert only_event(opp, EventKind.ACTIVITY_LOGGED).data["activity"] == activity.pk


def test_proposal_send_records_event(cast, opp, draft):
    proposal_send(proposal=draft, actor=cast.owner)
    event = only_event(opp, EventKind.PROPOSAL_SENT)
    assert event.actor == cast.owner
    assert event.data == {"proposal": draft.pk, "number": 1, "total": LINES_TOTAL}


def test_proposal_send_without_lines_is_refused(cast, opp):
    empty = proposal_create(opportunity=opp, actor=cast.owner)
    with pytest.raises(SalesRuleError):
        proposal_send(proposal=empty, actor=cast.owner)
    empty.refresh_from_db()
    assert empty.status == ProposalStatus.DRAFT
    assert not Activity.objects.exists()


def test_proposal_send_twice_is_refused(cast, opp, sent):
    with pytest.raises(SalesRuleError):
        proposal_send(proposal=sent, actor=cast.owner)
    assert Activity.objects.filter(opportunity=opp).count() == 1


# Accept and decline ---------------------------------------------------------------------


def test_proposal_accept_sets_the_opportunity_amount_to_its_total(cast, opp, sent):
    proposal_accept(proposal=sent, actor=cast.owner)
    sent.refresh_from_db()
    assert sent.status == ProposalStatus.ACCEPTED
    assert sent.decided_at is not None
    assert amount_of(opp) == LINES_TOTAL


def test_proposal_accept_records_accepted_and_amount_events(cast, opp, sent):
    proposal_accept(proposal=sent, actor=cast.owner)
    accepted = only_event(opp, EventKind.PROPOSAL_ACCEPTED)
    assert accepted.data == {"proposal": sent.pk, "number": 1, "total": LINES_TOTAL}
    updated = only_event(opp, EventKind.UPDATED)
    assert updated.changes == {"amount": [1000_00, LINES_TOTAL]}
    assert updated.actor == cast.owner


def test_proposal_accept_without_set_amount_keeps_the_amount(cast, opp, sent):
    proposal_accept(proposal=sent, actor=cast.owner, set_amount=False)
    assert amount_of(opp) == 1000_00
    assert events(opp, EventKind.UPDATED) == []


def test_proposal_accept_leaves_a_closed_opportunity_amount(cast, opp, sent):
    opportunity_close_won(opportunity=opp, actor=cast.owner)
    proposal_accept(proposal=sent, actor=cast.owner)
    assert amount_of(opp) == 1000_00


def test_proposal_accept_of_a_draft_is_refused(cast, opp, draft):
    with pytest.raises(SalesRuleError):
        proposal_accept(proposal=draft, actor=cast.owner)
    draft.refresh_from_db()
    assert draft.status == ProposalStatus.DRAFT
    assert amount_of(opp) == 1000_00


def test_proposal_accept_twice_is_refused(cast, sent):
    proposal_accept(proposal=sent, actor=cast.owner)
    with pytest.raises(SalesRuleError):
        proposal_accept(proposal=sent, actor=cast.owner)


def test_proposal_decline_marks_it_declined_and_records_event(cast, opp, sent):
    proposal_decline(proposal=sent, actor=cast.owner)
    sent.refresh_from_db()
    assert sent.status == ProposalStatus.DECLINED
    assert sent.decided_at is not None
    assert only_event(opp, EventKind.PROPOSAL_DECLINED).data == {"proposal": sent.pk, "number": 1}
    assert amount_of(opp) == 1000_00


def test_proposal_decline_of_a_draft_is_refused(cast, draft):
    with pytest.raises(SalesRuleError):
        proposal_decline(proposal=draft, actor=cast.owner)


def test_declined_proposal_cannot_be_accepted(cast, sent):
    proposal_decline(proposal=sent, actor=cast.owner)
    with pytest.raises(SalesRuleError):
        proposal_accept(proposal=sent, actor=cast.owner)
