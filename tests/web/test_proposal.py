"""Proposals: compose with live totals, versions, a clean print page, sent/accepted/declined."""

from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.sales.models import (
    Activity,
    EventKind,
    OpportunityEvent,
    Proposal,
    ProposalStatus,
)
from opportuna.sales.services import proposal_create, proposal_send
from tests.factories import ClientFactory, OpportunityFactory, ProductFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    client = ClientFactory(
        name="Rossi Logistica",
        vat_number="IT01234567890",
        address="Via Roma 1",
        city="Milano",
        country="Italia",
        email="info@rossi.it",
    )
    return OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        client=client,
        title="Fleet renewal",
        amount=12_000_00,
    )


@pytest.fixture
def owner_client(client, cast):
    client.force_login(cast.owner)
    return client


@pytest.fixture
def product():
    return ProductFactory(name="Forklift care", unit_price=33_33)


def url(name, *args):
    return reverse(f"sales:{name}", args=args)


def lines_data(*lines, extra=0):
    """Formset data for the given lines (dicts), plus `extra` blank rows."""
    data = {
        "lines-TOTAL_FORMS": str(len(lines) + extra),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for index, line in enumerate(lines):
        for key, value in line.items():
            data[f"lines-{index}-{key}"] = value
    for index in range(len(lines), len(lines) + extra):
        data[f"lines-{index}-quantity"] = "1"
        data[f"lines-{index}-discount"] = "0"
    return data


def last_kind(opp):
    return OpportunityEvent.objects.filter(opportunity=opp).order_by("-at", "-pk").first().kind


def test_anonymous_is_sent_to_login(client, opp):
    response = client.get(url("proposal_new", opp.pk))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_compose_form_lists_products_and_blank_lines(owner_client, opp, product):
    response = owner_client.get(url("proposal_new", opp.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Forklift care" in html
    assert 'name="lines-2-quantity"' in html
    assert 'id="proposal-totals"' in html
    assert f'hx-post="{url("proposal_preview", opp.pk)}"' in html


def test_totals_are_exact(owner_client, opp, product):
    # 3 × 33.33 with 10% off = 89.991 → 89.99; plus 2 × 10.005 (a cent rounded half-up).
    data = lines_data(
        {"product": product.pk, "quantity": "3", "unit_price": "33,33", "discount": "10"},
        {"description": "Setup", "quantity": "1.5", "unit_price": "100", "discount": "0"},
        extra=1,
    )
    response = owner_client.post(url("proposal_preview", opp.pk), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="proposal-totals"')
    rows = html[html.index("<tbody>") : html.index("</tbody>")]
    assert "89.99 EUR" in rows and "150.00 EUR" in rows
    total = html[html.index("<tfoot>") :]
    assert "239.99 EUR" in total


def test_saved_total_matches_the_preview(owner_client, cast, opp, product):
    lines = [
        {"product": product.pk, "quantity": "3", "unit_price": "33,33", "discount": "10"},
        {"description": "Setup", "quantity": "1,5", "unit_price": "100", "discount": "0"},
    ]
    owner_client.post(url("proposal_new", opp.pk), {"save": "1", **lines_data(*lines)})
    assert Proposal.objects.get().total == 239_99


def test_preview_uses_the_list_price_when_none_is_typed(owner_client, opp, product):
    data = lines_data({"product": product.pk, "quantity": "2", "unit_price": "", "discount": ""})
    html = owner_client.post(url("proposal_preview", opp.pk), data).content.decode()
    assert '33.33 EUR <span class="muted">(list price)</span>' in html
    assert "66.66 EUR" in html[html.index("<tfoot>") :]


def test_preview_counts_lines_with_mistakes_apart(owner_client, opp):
    data = lines_data(
        {"description": "Ok", "quantity": "1", "unit_price": "10"},
        {"description": "Bad", "quantity": "x", "unit_price": "10"},
    )
    html = owner_client.post(url("proposal_preview", opp.pk), data).content.decode()
    assert "10.00 EUR" in html[html.index("<tfoot>") :]
    assert "1 line has a mistake and is not counted." in html


def test_save_creates_version_one_through_the_service(owner_client, opp, product):
    data = {
        "save": "1",
        "scope": "Maintenance of 3 forklifts",
        "valid_until": "2026-12-31",
        **lines_data(
            {"product": product.pk, "quantity": "3", "unit_price": "33.33", "discount": "10"},
            extra=2,
        ),
    }
    response = owner_client.post(url("proposal_new", opp.pk), data)
    assert response.status_code == 302
    assert response.url == url("opportunity_detail", opp.pk) + "#proposals"
    proposal = Proposal.objects.get()
    assert (proposal.number, proposal.total, proposal.status) == (1, 89_99, ProposalStatus.DRAFT)
    line = proposal.lines.get()
    assert (line.quantity, line.unit_price, line.discount) == (Decimal(3), 33_33, Decimal(10))
    assert last_kind(opp) == EventKind.PROPOSAL_CREATED


def test_a_line_needs_a_product_or_a_description(owner_client, opp):
    data = {"save": "1", **lines_data({"quantity": "2", "unit_price": "5"})}
    response = owner_client.post(url("proposal_new", opp.pk), data)
    assert response.status_code == 422
    assert "Choose a product or write a description." in response.content.decode()
    assert not Proposal.objects.exists()


def test_add_a_line_without_javascript(owner_client, opp):
    data = {"add_line": "1", **lines_data({"description": "A", "quantity": "1"}, extra=1)}
    response = owner_client.post(url("proposal_new", opp.pk), data)
    assert response.status_code == 200
    assert len(response.context["formset"].forms) == 3
    assert not Proposal.objects.exists()


def test_new_version_starts_from_the_previous_one(owner_client, cast, opp, product):
    first = proposal_create(
        opportunity=opp,
        actor=cast.owner,
        scope="First scope",
        lines=[{"product": product, "quantity": Decimal(2), "unit_price": 50_00}],
    )
    page = owner_client.get(url("proposal_new", opp.pk) + f"?from={first.pk}")
    formset = page.context["formset"]
    assert formset.forms[0].initial["quantity"] == "2"
    assert page.context["form"].initial["scope"] == "First scope"
    data = {
        "save": "1",
        "scope": "Second scope",
        **lines_data({"product": product.pk, "quantity": "2", "unit_price": "45", "discount": "0"}),
    }
    owner_client.post(url("proposal_new", opp.pk) + f"?from={first.pk}", data)
    second = Proposal.objects.get(number=2)
    assert (second.scope, second.total) == ("Second scope", 90_00)
    event = OpportunityEvent.objects.filter(kind=EventKind.PROPOSAL_CREATED).order_by("-pk")[0]
    assert event.data["revises"] == first.pk
    assert Proposal.objects.get(number=1).total == 100_00  # versions are kept


def test_print_page_shows_account_client_and_lines_without_navigation(
    owner_client, cast, opp, product
):
    account = Account.load()
    account.name = "Carrelli Nord Srl"
    account.save()
    proposal = proposal_create(
        opportunity=opp,
        actor=cast.owner,
        scope="Line one\n<b>not bold</b>",
        lines=[{"product": product, "quantity": Decimal(3), "discount": Decimal(10)}],
    )
    response = owner_client.get(url("proposal_print", opp.pk, proposal.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Carrelli Nord Srl" in html
    for detail in ("Rossi Logistica", "IT01234567890", "Via Roma 1", "Milano", "info@rossi.it"):
        assert detail in html
    assert "Forklift care" in html
    assert "89.99 EUR" in html
    assert "<b>not bold</b>" not in html
    assert "<nav" not in html
    assert 'class="topbar"' not in html
    assert 'role="search"' not in html


@pytest.mark.parametrize("lines", [1, 30])
def test_print_page_queries_do_not_grow_with_lines(
    owner_client, cast, opp, product, lines, django_assert_num_queries
):
    proposal = proposal_create(
        opportunity=opp,
        actor=cast.owner,
        lines=[{"product": product, "quantity": Decimal(1)}] * lines,
    )
    # session, user, proposal with opportunity/client/owner/author, lines, their products, account.
    with django_assert_num_queries(6):
        owner_client.get(url("proposal_print", opp.pk, proposal.pk))


def test_mark_sent_logs_the_activity(owner_client, cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    response = owner_client.post(url("proposal_send", opp.pk, proposal.pk))
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.SENT
    assert Activity.objects.get(opportunity=opp).type.key == "proposal_sent"
    assert last_kind(opp) == EventKind.PROPOSAL_SENT


def test_sending_an_empty_proposal_says_why(owner_client, cast, opp):
    proposal = proposal_create(opportunity=opp, actor=cast.owner)
    response = owner_client.post(url("proposal_send", opp.pk, proposal.pk))
    assert response.status_code == 422
    assert "Add at least one line" in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.DRAFT


def test_accept_sets_the_amount_by_default(owner_client, cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    proposal_send(proposal=proposal, actor=cast.owner)
    page = owner_client.get(url("opportunity_detail", opp.pk)).content.decode()
    assert 'name="set_amount" value="1"' in page and "checked" in page
    owner_client.post(url("proposal_accept", opp.pk, proposal.pk), {"set_amount": "1"})
    proposal.refresh_from_db()
    opp.refresh_from_db()
    assert proposal.status == ProposalStatus.ACCEPTED
    assert opp.amount == 33_33
    kinds = list(OpportunityEvent.objects.filter(opportunity=opp).values_list("kind", flat=True))
    assert EventKind.PROPOSAL_ACCEPTED in kinds


def test_accept_without_touching_the_amount(owner_client, cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    proposal_send(proposal=proposal, actor=cast.owner)
    owner_client.post(url("proposal_accept", opp.pk, proposal.pk), {})
    opp.refresh_from_db()
    assert opp.amount == 12_000_00
    assert last_kind(opp) == EventKind.PROPOSAL_ACCEPTED


def test_decline(owner_client, cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    proposal_send(proposal=proposal, actor=cast.owner)
    owner_client.post(url("proposal_decline", opp.pk, proposal.pk))
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.DECLINED
    assert last_kind(opp) == EventKind.PROPOSAL_DECLINED


def test_outsider_gets_404_everywhere(client, cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    client.force_login(cast.other)
    assert client.get(url("proposal_new", opp.pk)).status_code == 404
    assert (
        client.post(url("proposal_new", opp.pk), {"save": "1", **lines_data()}).status_code == 404
    )
    assert client.post(url("proposal_preview", opp.pk), lines_data()).status_code == 404
    assert client.get(url("proposal_print", opp.pk, proposal.pk)).status_code == 404
    for name in ("proposal_send", "proposal_accept", "proposal_decline"):
        assert client.post(url(name, opp.pk, proposal.pk)).status_code == 404
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.DRAFT


def test_a_proposal_under_another_opportunity_path_is_404(owner_client, cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    mine = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)
    assert owner_client.get(url("proposal_print", mine.pk, proposal.pk)).status_code == 404


def test_teammate_can_print_but_not_write(client, cast, opp, product):
    account = Account.load()
    account.visibility = VisibilityPolicy.TEAM
    account.save()
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    client.force_login(cast.teammate)
    assert client.get(url("proposal_print", opp.pk, proposal.pk)).status_code == 200
    assert client.get(url("proposal_new", opp.pk)).status_code == 403
    assert client.post(url("proposal_send", opp.pk, proposal.pk)).status_code == 403


def test_csrf_token_is_required(cast, opp, product):
    proposal = proposal_create(opportunity=opp, actor=cast.owner, lines=[{"product": product}])
    browser = HttpClient(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    assert browser.post(url("proposal_send", opp.pk, proposal.pk)).status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.DRAFT
