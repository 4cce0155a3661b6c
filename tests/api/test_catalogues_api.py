"""Catalogues over the API: everyone reads them, admins add to them, anyone adds a tag."""

import factory
import pytest

from opportuna.accounts.tokens import api_token_authenticate
from opportuna.sales.models import ActivityType, FieldDefinition, LostReason, Product, Tag
from tests.api.test_opportunities_api import Api
from tests.factories import (
    FieldDefinitionFactory,
    LostReasonFactory,
    ProductFactory,
    TagFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db


class ActivityTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActivityType

    name = factory.Sequence(lambda n: f"Activity {n}")
    key = factory.Sequence(lambda n: f"activity_{n}")


@pytest.fixture
def cast():
    return make_cast()


NEW = {
    "products": ({"name": "Hosting", "unit_price": "19.90"}, Product),
    "lost-reasons": ({"name": "Price"}, LostReason),
    "activity-types": ({"name": "Trade fair"}, ActivityType),
    "fields": ({"label": "Budget", "kind": "number"}, FieldDefinition),
}


@pytest.mark.parametrize("kind", sorted(NEW))
def test_admin_adds_to_a_catalogue(cast, kind):
    body, model = NEW[kind]

    response = Api(cast.admin).post(f"/api/v1/{kind}", body)

    assert response.status_code == 201, response.json()
    assert model.objects.filter(pk=response.json()["id"]).exists()


@pytest.mark.parametrize("kind", sorted(NEW))
def test_salesperson_cannot_add_to_a_catalogue(cast, kind):
    body, model = NEW[kind]
    before = model.objects.count()

    response = Api(cast.owner).post(f"/api/v1/{kind}", body)

    assert response.status_code == 403
    assert model.objects.count() == before


def test_product_price_is_exact(cast):
    body = Api(cast.admin).post("/api/v1/products", NEW["products"][0]).json()

    assert body["unit_price"] == "19.90"
    assert Product.objects.get().unit_price == 1990


def test_a_duplicate_name_is_409(cast):
    LostReasonFactory(name="Price")

    response = Api(cast.admin).post("/api/v1/lost-reasons", {"name": "Price"})

    assert response.status_code == 409
    assert response.json()["field"] == "name"


def test_a_field_label_with_a_colon_is_422(cast):
    response = Api(cast.admin).post("/api/v1/fields", {"label": "Budget: max"})

    assert response.status_code == 422


def test_a_field_key_is_derived_from_its_label(cast):
    body = Api(cast.admin).post("/api/v1/fields", {"label": "Contact email"}).json()

    assert body["key"] == "contact_email"


def test_anyone_creates_a_tag(cast):
    response = Api(cast.owner).post("/api/v1/tags", {"name": "Agency X", "colour": "#112233"})

    assert response.status_code == 201, response.json()
    assert Tag.objects.get().colour == "#112233"


def test_activity_types_list_the_seeded_ones(cast):
    keys = [t["key"] for t in Api(cast.owner).get("/api/v1/activity-types").json()]

    assert {"call", "visit", "demo"} <= set(keys)


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("kind", ["products", "tags", "lost-reasons", "fields", "activity-types"])
def test_lists_run_a_constant_number_of_queries(cast, kind, count, django_assert_num_queries):
    factory = {
        "products": ProductFactory,
        "tags": TagFactory,
        "lost-reasons": LostReasonFactory,
        "fields": FieldDefinitionFactory,
        "activity-types": ActivityTypeFactory,
    }[kind]
    before = len(Api(cast.admin).get(f"/api/v1/{kind}").json())
    factory.create_batch(count)
    api = Api(cast.owner)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the rows.
    with django_assert_num_queries(2):
        response = api.get(f"/api/v1/{kind}")

    assert len(response.json()) == before + count
