"""Client folders over the API: list and search in keyset pages, totals over what the caller
sees, create, PATCH with a content ETag, merge for managers."""

import pytest
from django.utils import timezone

from opportuna.accounts.tokens import api_token_authenticate
from opportuna.sales.models import Client, EventKind, OpportunityEvent, Status
from tests.api.test_opportunities_api import Api
from tests.factories import ClientFactory, OpportunityFactory, make_cast

pytestmark = pytest.mark.django_db

BASE = "/api/v1/clients"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def api(cast):
    return Api(cast.owner)


def names(response):
    return [item["name"] for item in response.json()["items"]]


def test_list_is_by_name_and_searches_part_of_it(api):
    for name in ("Globex", "Acme Italia", "Acme"):
        ClientFactory(name=name)

    assert names(api.get(BASE)) == ["Acme", "Acme Italia", "Globex"]
    assert names(api.get(BASE, {"q": "cme it"})) == ["Acme Italia"]


def test_list_finds_a_folder_by_external_id(api):
    ClientFactory(name="Acme", external_id="ERP-7")
    ClientFactory(name="Globex", external_id="ERP-8")

    assert names(api.get(BASE, {"external_id": "ERP-8"})) == ["Globex"]


def test_pages_walk_every_folder_once_even_with_equal_names(api):
    made = [ClientFactory(name=name).pk for name in ["Same"] * 5 + ["Other"] * 2]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get(BASE, params).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(made)
    assert len(seen) == len(made)


def test_a_cursor_from_another_list_is_422(api):
    ClientFactory.create_batch(3)
    opportunities_cursor = "WyItaWQiLDEsMV0"  # ["-id",1,1]: the opportunity list's

    response = api.get(BASE, {"cursor": opportunities_cursor})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_detail_totals_count_only_visible_opportunities(api, cast):
    client = ClientFactory()
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, client=client, amount=1000_00)
    OpportunityFactory(owner=cast.other, pipeline=cast.pipeline, client=client, amount=5000_00)

    response = api.get(f"{BASE}/{client.pk}")

    assert response.status_code == 200
    totals = response.json()["totals"]
    assert (totals["open_count"], totals["open_amount"]) == (1, "1000.00")
    assert totals["weighted"] == "100.00"  # 10 % on the first step
    assert response["ETag"].startswith('W/"')


def test_unknown_folder_is_404(api):
    assert api.get(f"{BASE}/999999").status_code == 404


def test_create_answers_201_with_location(api):
    response = api.post(BASE, {"name": "  Acme  ", "website": "https://acme.example"})

    assert response.status_code == 201, response.json()
    assert response["Location"] == f"{BASE}/{response.json()['id']}"
    assert Client.objects.get().name == "Acme"


@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "not-an-email"), ("website", "acme"), ("name", "   "), ("vat_number", "x" * 41)],
)
def test_create_refuses_malformed_fields_with_422(api, field, value):
    response = api.post(BASE, {"name": "Acme", field: value})

    assert response.status_code == 422
    assert not Client.objects.exists()


def test_patch_needs_the_etag_of_a_read(api):
    client = ClientFactory(name="Acme")

    missing = api.patch(f"{BASE}/{client.pk}", {"city": "Milano"})
    etag = api.get(f"{BASE}/{client.pk}")["ETag"]
    saved = api.patch(f"{BASE}/{client.pk}", {"city": "Milano"}, {"If-Match": etag})
    stale = api.patch(f"{BASE}/{client.pk}", {"city": "Roma"}, {"If-Match": etag})

    assert missing.status_code == 428
    assert saved.status_code == 200, saved.json()
    assert saved["ETag"] != etag
    assert stale.status_code == 412
    client.refresh_from_db()
    assert client.city == "Milano"


def test_patch_cannot_null_a_field(api):
    client = ClientFactory(name="Acme")
    etag = api.get(f"{BASE}/{client.pk}")["ETag"]

    response = api.patch(f"{BASE}/{client.pk}", {"name": None}, {"If-Match": etag})

    assert response.status_code == 422


def test_salesperson_cannot_merge(api):
    source, target = ClientFactory(), ClientFactory()

    response = api.post(f"{BASE}/{source.pk}/merge", {"into": target.pk})

    assert response.status_code == 403
    assert Client.objects.filter(pk=source.pk).exists()


def test_manager_merges_and_the_opportunities_move(cast):
    source, target = ClientFactory(name="Acme srl"), ClientFactory(name="Acme")
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, client=source)

    response = Api(cast.manager).post(f"{BASE}/{source.pk}/merge", {"into": target.pk})

    assert response.status_code == 200, response.json()
    assert response.json()["id"] == target.pk
    opp.refresh_from_db()
    assert opp.client_id == target.pk
    assert OpportunityEvent.objects.filter(opportunity=opp, kind=EventKind.CLIENT_CHANGED).exists()


def test_merging_into_itself_is_409(cast):
    client = ClientFactory()

    response = Api(cast.manager).post(f"{BASE}/{client.pk}/merge", {"into": client.pk})

    assert response.status_code == 409


@pytest.mark.parametrize("count", [1, 30])
def test_list_runs_a_constant_number_of_queries(api, count, django_assert_num_queries):
    ClientFactory.create_batch(count)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the folders.
    with django_assert_num_queries(2):
        response = api.get(BASE)

    assert len(response.json()["items"]) == count


@pytest.mark.parametrize("count", [1, 30])
def test_detail_runs_a_constant_number_of_queries(api, cast, count, django_assert_num_queries):
    client = ClientFactory()
    for number in range(count):
        won = {"status": Status.WON, "won_amount": 1, "closed_at": timezone.now()}
        OpportunityFactory(
            owner=cast.owner, pipeline=cast.pipeline, client=client, **(won if number % 2 else {})
        )
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the folder, 3 its totals.
    with django_assert_num_queries(3):
        response = api.get(f"{BASE}/{client.pk}")

    totals = response.json()["totals"]
    assert totals["open_count"] + totals["won_count"] == count
