"""Proposals over the API: numbered versions with exact lines, and send / accept / decline."""

from decimal import Decimal

import pytest

from opportuna.accounts.tokens import api_token_authenticate
from opportuna.sales import services
from opportuna.sales.models import Opportunity, Proposal
from tests.api.test_opportunities_api import Api
from tests.factories import OpportunityFactory, ProductFactory, make_cast

pytestmark = pytest.mark.django_db

LINES = [
    {"description": "Consulting days", "quantity": "3", "unit_price": "33.33", "discount": "10"},
    {"description": "Set-up", "unit_price": "500.00"},
]


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def api(cast):
    return Api(cast.owner)


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)


def path(opp):
    return f"/api/v1/opportunities/{opp.pk}/proposals"


def test_create_a_draft_with_exact_totals(api, opp):
    response = api.post(path(opp), {"scope": "New website", "lines": LINES})

    assert response.status_code == 201, response.json()
    body = response.json()
    # 3 x 33.33 = 99.99, less 10 % = 89.991 -> 89.99; plus 500.00.
    assert (body["number"], body["status"], body["total"]) == (1, "draft", "589.99")
    assert [line["total"] for line in body["lines"]] == ["89.99", "500.00"]
    assert response["Location"] == f"/api/v1/proposals/{body['id']}"


def test_a_product_line_takes_its_name_and_price(api, opp):
    product = ProductFactory(name="Hosting", unit_price=120_00)

    body = api.post(path(opp), {"lines": [{"product": product.pk, "quantity": "2"}]}).json()

    assert body["lines"][0]["description"] == "Hosting"
    assert body["total"] == "240.00"


@pytest.mark.parametrize(
    "line",
    [
        {"description": "x", "discount": "101"},
        {"description": "x", "quantity": "-1"},
        {"description": "x", "quantity": "1.0001"},
        {"description": "   "},
    ],
)
def test_malformed_lines_are_422(api, opp, line):
    assert api.post(path(opp), {"lines": [line]}).status_code == 422
    assert not Proposal.objects.exists()


def test_an_unknown_product_names_its_line(api, opp):
    response = api.post(path(opp), {"lines": [LINES[0], {"product": 999999}]})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "lines", 1, "product"]


def test_send_then_accept_sets_the_amount(api, cast, opp):
    proposal = services.proposal_create(
        opportunity=opp, actor=cast.owner, lines=[{"description": "x", "unit_price": 700_00}]
    )

    sent = api.post(f"/api/v1/proposals/{proposal.pk}/send")
    accepted = api.post(f"/api/v1/proposals/{proposal.pk}/accept", {"set_amount": True})

    assert sent.json()["status"] == "sent"
    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["status"] == "accepted"
    assert Opportunity.objects.get(pk=opp.pk).amount == 700_00


def test_declining_a_draft_is_409(api, cast, opp):
    proposal = services.proposal_create(opportunity=opp, actor=cast.owner)

    assert api.post(f"/api/v1/proposals/{proposal.pk}/decline").status_code == 409


def test_revise_copies_what_is_not_given(api, cast, opp):
    first = services.proposal_create(
        opportunity=opp,
        actor=cast.owner,
        scope="Website",
        lines=[{"description": "Design", "unit_price": 1000_00, "quantity": Decimal(1)}],
    )

    response = api.post(f"/api/v1/proposals/{first.pk}/revise", {"scope": "Website and shop"})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["number"], body["scope"], body["total"]) == (2, "Website and shop", "1000.00")
    listed = api.get(path(opp)).json()
    assert [p["number"] for p in listed] == [2, 1]


def test_proposals_of_a_hidden_opportunity_are_404(api, cast):
    hidden = OpportunityFactory(owner=cast.other, pipeline=cast.pipeline)
    proposal = services.proposal_create(opportunity=hidden, actor=cast.other)

    assert api.get(path(hidden)).status_code == 404
    assert api.get(f"/api/v1/proposals/{proposal.pk}").status_code == 404
    assert api.post(f"/api/v1/proposals/{proposal.pk}/send").status_code == 404


@pytest.mark.parametrize("count", [1, 30])
def test_list_runs_a_constant_number_of_queries(api, cast, opp, count, django_assert_num_queries):
    for _ in range(count):
        services.proposal_create(opportunity=opp, actor=cast.owner, lines=LINES_IN_CENTS)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the opportunity is visible, 3 the proposals, 4 their lines.
    with django_assert_num_queries(4):
        response = api.get(path(opp))

    assert len(response.json()) == count
    assert all(len(p["lines"]) == 2 for p in response.json())


LINES_IN_CENTS = [
    {"description": "Consulting days", "quantity": Decimal(3), "unit_price": 33_33},
    {"description": "Set-up", "unit_price": 500_00},
]
