"""The pipeline board in a real browser: drag and drop (board.js + htmx), the "Move" form
with and without JavaScript, and no drag handle on a card the user may not change."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.core.money import weighted_cents
from opportuna.core.templatetags.opportuna import money
from opportuna.sales.models import EventKind, OpportunityEvent, Step
from opportuna.sales.selectors.board import board_steps
from tests.factories import OpportunityFactory, make_cast

# The live server needs committed data; the seeded rows come back after each flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

EUR = "EUR"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def steps(cast):
    return board_steps(pipeline=cast.pipeline)


def card(cast, step, **kwargs):
    kwargs.setdefault("owner", cast.owner)
    return OpportunityFactory(
        pipeline=cast.pipeline, step=step, probability=step.probability, **kwargs
    )


def open_board(page: Page, cast) -> None:
    # goto waits for the load event: htmx and the deferred board.js have run by then.
    page.goto(f"{reverse('sales:board')}?pipeline={cast.pipeline.pk}")


def column(page: Page, step: Step):
    return page.locator(f'section.column[data-step="{step.pk}"]')


def empty_note(page: Page, step: Step):
    return page.locator(f"#col-empty-{step.pk}")


def totals(page: Page, step: Step):
    """The column head's Cards, Amount and Weighted figures."""
    return expect(page.locator(f"#col-head-{step.pk} dd"))


def test_dragging_a_card_onto_another_column_moves_it(open_page, cast, steps):
    lead, qualified = steps[0], steps[1]
    moving = card(cast, lead, title="Big deal", amount=1200_00)
    staying = card(cast, lead, title="Small deal", amount=800_00)
    page = open_page(cast.owner)
    open_board(page, cast)
    lead_weighted = weighted_cents(1200_00, lead.probability) + weighted_cents(
        800_00, lead.probability
    )
    totals(page, lead).to_have_text(["2", money(2000_00, EUR), money(lead_weighted, EUR)])
    totals(page, qualified).to_have_text(["0", money(0, EUR), money(0, EUR)])
    expect(empty_note(page, qualified)).to_be_visible()
    page.evaluate("window.notReloaded = true")

    with page.expect_response(re.compile(r"/board/move/\d+/")) as answer:
        page.locator(f"#card-{moving.pk}").drag_to(column(page, qualified))
    assert answer.value.status == 200

    moved = page.locator(f"#cards-{qualified.pk} #card-{moving.pk}")
    expect(moved).to_be_visible()
    expect(moved).to_have_attribute("data-step", str(qualified.pk))
    expect(page.locator(f"#cards-{lead.pk} #card-{moving.pk}")).to_have_count(0)
    expect(page.locator(f"#card-{moving.pk}")).to_have_count(1)
    expect(page.locator(f"#cards-{lead.pk} #card-{staying.pk}")).to_be_visible()
    totals(page, qualified).to_have_text(
        ["1", money(1200_00, EUR), money(weighted_cents(1200_00, qualified.probability), EUR)]
    )
    totals(page, lead).to_have_text(
        ["1", money(800_00, EUR), money(weighted_cents(800_00, lead.probability), EUR)]
    )
    # A column that receives its first card no longer says it is empty.
    expect(empty_note(page, qualified)).to_be_hidden()
    expect(empty_note(page, lead)).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True

    moving.refresh_from_db()
    assert moving.step_id == qualified.pk
    event = OpportunityEvent.objects.get(opportunity=moving, kind=EventKind.MOVED)
    assert event.actor == cast.owner
    staying.refresh_from_db()
    assert staying.step_id == lead.pk


@pytest.mark.parametrize("javascript", [True, False], ids=["htmx", "no-javascript"])
def test_the_move_form_moves_a_card(open_page, cast, steps, javascript):
    lead, demo = steps[0], steps[2]
    opp = card(cast, lead, title="Form deal", amount=500_00)
    page = open_page(cast.owner, javascript=javascript)
    open_board(page, cast)
    if javascript:
        page.evaluate("window.notReloaded = true")

    this_card = page.locator(f"#card-{opp.pk}")
    this_card.get_by_label("Move to step").select_option(label=demo.name)
    this_card.get_by_role("button", name="Move").click()

    expect(page.locator(f"#cards-{demo.pk} #card-{opp.pk}")).to_be_visible()
    expect(page.locator(f"#cards-{lead.pk} #card-{opp.pk}")).to_have_count(0)
    totals(page, demo).to_have_text(
        ["1", money(500_00, EUR), money(weighted_cents(500_00, demo.probability), EUR)]
    )
    # The column it left is empty now, and says so.
    expect(empty_note(page, lead)).to_be_visible()
    expect(empty_note(page, demo)).to_be_hidden()
    if javascript:
        assert page.evaluate("window.notReloaded") is True
    else:
        # Post, redirect, get: back on the same board, with a message.
        expect(page.get_by_role("status")).to_contain_text(f"“Form deal” moved to {demo.name}.")
        assert f"pipeline={cast.pipeline.pk}" in page.url
    opp.refresh_from_db()
    assert opp.step_id == demo.pk
    assert OpportunityEvent.objects.filter(opportunity=opp, kind=EventKind.MOVED).count() == 1


def test_a_card_the_user_may_not_change_cannot_be_dragged(open_page, cast, steps):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    theirs = card(cast, steps[0], title="Owner deal")
    mine = card(cast, steps[0], owner=cast.teammate, title="Teammate deal")
    page = open_page(cast.teammate)
    open_board(page, cast)

    their_card = page.locator(f"#card-{theirs.pk}")
    expect(their_card).to_be_visible()
    assert their_card.get_attribute("draggable") is None
    assert their_card.get_attribute("data-move-url") is None
    expect(their_card.locator("form.move-form")).to_have_count(0)
    # Their own card, in the same column, does move: the difference is the permission.
    expect(page.locator(f"#card-{mine.pk}")).to_have_attribute("draggable", "true")
