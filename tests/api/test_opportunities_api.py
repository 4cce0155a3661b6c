"""The opportunity resource of the REST API: reads through the visibility door, writes through
the services, optimistic concurrency with ETag / If-Match, and a true OpenAPI document."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.accounts.tokens import api_token_authenticate, api_token_create
from opportuna.sales.models import EventKind, Opportunity, OpportunityEvent, Status
from tests.factories import (
    ClientFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    TagFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/opportunities"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def steps(cast):
    """The cast pipeline's steps: Lead 10%, Qualified 25%, Demo 50%, Proposal 70%."""
    return list(cast.pipeline.steps.order_by("position"))


class Api:
    """A test client speaking JSON with one user's bearer token."""

    def __init__(self, user):
        _token, self.raw = api_token_create(actor=user, user=user)
        self.client = Client()

    def _headers(self, extra):
        return {"Authorization": f"Bearer {self.raw}", **(extra or {})}

    def get(self, path, params=None, headers=None):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path, body=None, headers=None):
        return self.client.post(
            path, body or {}, content_type="application/json", headers=self._headers(headers)
        )

    def patch(self, path, body, headers=None):
        return self.client.patch(
            path, body, content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path, headers=None):
        return self.client.delete(path, headers=self._headers(headers))


@pytest.fixture
def api(cast):
    return Api(cast.owner)


def opportunity(cast, **values):
    return OpportunityFactory(**{"owner": cast.owner, "pipeline": cast.pipeline, **values})


def ids(response):
    return [item["id"] for item in response.json()["items"]]


# Reads ----------------------------------------------------------------------------------


def test_list_shows_only_visible_opportunities_newest_first(api, cast):
    mine = [opportunity(cast) for _ in range(3)]
    opportunity(cast, owner=cast.other)

    response = api.get(BASE)

    assert response.status_code == 200
    assert ids(response) == [o.pk for o in reversed(mine)]
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("status", {"match"}),
        ("owner", {"match", "renewal"}),
        ("pipeline", {"match", "managers"}),
        ("step", {"match"}),
        ("client", {"match"}),
        ("tag", {"match"}),
        ("q", {"match"}),
    ],
)
def test_list_filters(cast, steps, name, expected):
    match = opportunity(cast, title="Big website redesign", step=steps[2], client=ClientFactory())
    match.tags.add(TagFactory(name="Agency X"))
    # A fixture shortcut: what a filter sees needs no service.
    Opportunity.objects.filter(pk=match.pk).update(status=Status.STANDBY)
    made = {
        "match": match,
        "managers": opportunity(cast, title="Small thing", owner=cast.manager),
        "renewal": opportunity(cast, title="Renewal", pipeline=PipelineFactory(name="Renewals")),
    }
    params = {
        "status": "standby",
        "owner": cast.owner.pk,
        "pipeline": cast.pipeline.pk,
        "step": steps[2].pk,
        "client": match.client_id,
        "tag": "agency x",
        "q": "WEBSITE",
    }

    response = Api(cast.manager).get(BASE, {name: params[name]})

    assert response.status_code == 200
    assert set(ids(response)) == {made[key].pk for key in expected}


@pytest.fixture
def many(cast):
    return [opportunity(cast) for _ in range(7)]


def walk(api, limit, params=None, between_pages=None):
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": limit, **(params or {})}
        if cursor:
            query["cursor"] = cursor
        response = api.get(BASE, query)
        assert response.status_code == 200, response.json()
        seen += ids(response)
        pages += 1
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return seen, pages
        if between_pages:
            between_pages()


def test_cursor_pages_have_no_duplicates_or_gaps(api, many):
    seen, pages = walk(api, limit=3)

    assert seen == sorted((o.pk for o in many), reverse=True)
    assert pages == 3


def test_cursor_pages_stay_stable_while_opportunities_are_added(api, cast, many):
    seen, _pages = walk(api, limit=2, between_pages=lambda: opportunity(cast))

    assert seen == sorted((o.pk for o in many), reverse=True)


def test_invalid_cursor_is_422(api, many):
    response = api.get(BASE, {"cursor": "not-a-cursor"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("limit", [0, 201])
def test_limit_out_of_range_is_422(api, limit):
    assert api.get(BASE, {"limit": limit}).status_code == 422


@pytest.mark.parametrize("count", [1, 30])
def test_list_runs_a_constant_number_of_queries(api, cast, count, django_assert_num_queries):
    for _ in range(count):
        opp = opportunity(cast, client=ClientFactory())
        opp.tags.add(TagFactory(name="vip"))
        opp.contacts.create(name="Anna")
    api_token_authenticate(api.raw)  # last_used_at is fresh: no write in the request

    # 1 token with its user, 2 opportunities (visibility inside), 3 tags, 4 contacts.
    with django_assert_num_queries(4):
        response = api.get(BASE)

    assert len(response.json()["items"]) == count


def test_detail_has_an_etag_and_exact_amounts(api, cast):
    opp = opportunity(cast, amount=123456)

    response = api.get(f"{BASE}/{opp.pk}")

    assert response.status_code == 200
    assert response["ETag"] == 'W/"1"'
    body = response.json()
    assert body["amount"] == "1234.56"
    assert body["won_amount"] is None
    assert body["version"] == 1


def test_opportunity_outside_visibility_is_404(api, cast):
    hidden = opportunity(cast, owner=cast.other)

    assert api.get(f"{BASE}/{hidden.pk}").status_code == 404
    assert api.post(f"{BASE}/{hidden.pk}/cancel").status_code == 404


def test_teammate_sees_under_team_policy_but_cannot_edit(cast):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    opp = opportunity(cast)
    teammate = Api(cast.teammate)

    assert teammate.get(f"{BASE}/{opp.pk}").status_code == 200
    assert teammate.post(f"{BASE}/{opp.pk}/cancel").status_code == 403


@pytest.mark.parametrize("extra", [0, 10])
def test_pipelines_list_their_steps_in_constant_queries(
    api, cast, extra, django_assert_num_queries
):
    for number in range(extra):
        PipelineFactory(name=f"Pipeline {number}")
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 pipelines, 3 steps.
    with django_assert_num_queries(3):
        response = api.get("/api/v1/pipelines")

    pipelines = {p["name"]: p for p in response.json()}
    assert len(pipelines) == 1 + extra
    assert [s["name"] for s in pipelines["Sales"]["steps"]] == [
        "Lead",
        "Qualified",
        "Demo",
        "Proposal",
    ]


# Create ---------------------------------------------------------------------------------


def test_create_answers_201_and_records_an_event(api, cast, steps):
    client = ClientFactory()

    response = api.post(
        BASE,
        {
            "title": "New website",
            "pipeline": cast.pipeline.pk,
            "step": steps[1].pk,
            "client": client.pk,
            "amount": "1234.56",
            "tags": ["Agency X"],
            "contacts": [{"name": "Anna Rossi", "role": "CTO"}],
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["ETag"] == 'W/"1"'
    assert response["Location"] == f"{BASE}/{body['id']}"
    assert body["amount"] == "1234.56"
    assert body["owner"] == cast.owner.pk
    assert body["probability"] == 25
    assert body["tags"] == ["Agency X"]
    assert body["contacts"][0]["name"] == "Anna Rossi"
    opp = Opportunity.objects.get(pk=body["id"])
    assert opp.amount == 123456
    assert OpportunityEvent.objects.filter(opportunity=opp, kind=EventKind.CREATED).exists()


def test_create_takes_a_json_number_amount_exactly(api, cast):
    response = api.post(BASE, {"title": "x", "pipeline": cast.pipeline.pk, "amount": 1234.56})

    assert response.status_code == 201, response.json()
    assert Opportunity.objects.get(pk=response.json()["id"]).amount == 123456


@pytest.mark.parametrize("amount", ["12.345", "-1", "abc"])
def test_create_refuses_a_bad_amount_with_422(api, cast, amount):
    response = api.post(BASE, {"title": "x", "pipeline": cast.pipeline.pk, "amount": amount})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "amount"


def test_create_names_an_unknown_reference_in_a_422(api, cast):
    response = api.post(BASE, {"title": "x", "pipeline": 999999})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "pipeline"]


def test_create_refuses_unknown_fields_with_422(api, cast):
    response = api.post(BASE, {"title": "x", "pipeline": cast.pipeline.pk, "ammount": 5})

    assert response.status_code == 422


def test_create_for_someone_not_managed_is_403(api, cast):
    response = api.post(BASE, {"title": "x", "pipeline": cast.pipeline.pk, "owner": cast.other.pk})

    assert response.status_code == 403


def test_create_on_a_step_of_another_pipeline_is_409(api, cast):
    foreign_step = PipelineFactory(name="Renewals").steps.first()

    response = api.post(BASE, {"title": "x", "pipeline": cast.pipeline.pk, "step": foreign_step.pk})

    assert response.status_code == 409
    assert response.json()["field"] == "step"


# Update ---------------------------------------------------------------------------------


def test_patch_without_if_match_is_428(api, cast):
    opp = opportunity(cast)

    response = api.patch(f"{BASE}/{opp.pk}", {"title": "Renamed"})

    assert response.status_code == 428
    opp.refresh_from_db()
    assert opp.title != "Renamed"


def test_patch_with_a_stale_version_is_412_and_changes_nothing(api, cast):
    opp = opportunity(cast)
    Opportunity.objects.filter(pk=opp.pk).update(version=2)  # someone saved meanwhile

    response = api.patch(f"{BASE}/{opp.pk}", {"title": "Renamed"}, {"If-Match": 'W/"1"'})

    assert response.status_code == 412
    assert response.json()["current_version"] == 2
    opp.refresh_from_db()
    assert opp.title != "Renamed"


def test_patch_with_a_malformed_if_match_is_412(api, cast):
    opp = opportunity(cast)

    response = api.patch(f"{BASE}/{opp.pk}", {"title": "Renamed"}, {"If-Match": "yesterday"})

    assert response.status_code == 412


def test_patch_with_the_current_etag_saves_and_answers_the_new_one(api, cast):
    opp = opportunity(cast)
    etag = api.get(f"{BASE}/{opp.pk}")["ETag"]

    response = api.patch(
        f"{BASE}/{opp.pk}", {"title": "Renamed", "amount": "99.99"}, {"If-Match": etag}
    )

    assert response.status_code == 200, response.json()
    assert response["ETag"] == 'W/"2"'
    assert response.json()["amount"] == "99.99"
    opp.refresh_from_db()
    assert (opp.title, opp.amount, opp.version) == ("Renamed", 9999, 2)
    assert OpportunityEvent.objects.filter(opportunity=opp, kind=EventKind.UPDATED).exists()


def test_patch_can_clear_a_nullable_field_but_not_null_a_required_one(api, cast):
    opp = opportunity(cast, client=ClientFactory())

    cleared = api.patch(f"{BASE}/{opp.pk}", {"client": None}, {"If-Match": 'W/"1"'})
    nulled = api.patch(f"{BASE}/{opp.pk}", {"title": None}, {"If-Match": 'W/"2"'})

    assert cleared.status_code == 200 and cleared.json()["client"] is None
    assert nulled.status_code == 422


def test_patch_outside_visibility_is_404(api, cast):
    hidden = opportunity(cast, owner=cast.other)

    response = api.patch(f"{BASE}/{hidden.pk}", {"title": "x"}, {"If-Match": 'W/"1"'})

    assert response.status_code == 404


# Actions --------------------------------------------------------------------------------


def test_move_to_a_step_of_the_pipeline(api, cast, steps):
    opp = opportunity(cast)

    response = api.post(f"{BASE}/{opp.pk}/move", {"step": steps[2].pk})

    assert response.status_code == 200
    assert (response.json()["step"], response.json()["probability"]) == (steps[2].pk, 50)
    assert response["ETag"] == 'W/"2"'


def test_move_to_a_step_of_another_pipeline_is_409(api, cast):
    opp = opportunity(cast)
    foreign_step = PipelineFactory(name="Renewals").steps.first()

    response = api.post(f"{BASE}/{opp.pk}/move", {"step": foreign_step.pk})

    assert response.status_code == 409
    assert response.json()["field"] == "step"


def test_move_with_a_stale_if_match_is_412(api, cast, steps):
    opp = opportunity(cast)
    Opportunity.objects.filter(pk=opp.pk).update(version=5)

    response = api.post(f"{BASE}/{opp.pk}/move", {"step": steps[2].pk}, {"If-Match": 'W/"4"'})

    assert response.status_code == 412


def test_close_won_keeps_the_won_amount_exact(api, cast):
    opp = opportunity(cast)

    response = api.post(f"{BASE}/{opp.pk}/close-won", {"won_amount": "1234.56"})

    assert response.status_code == 200
    assert response.json()["status"] == "won"
    assert response.json()["won_amount"] == "1234.56"


def test_closing_lost_without_a_reason_is_422(api, cast):
    opp = opportunity(cast)

    response = api.post(f"{BASE}/{opp.pk}/close-lost", {"note": "price"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "reason"


def test_close_lost_with_a_reason(api, cast):
    opp = opportunity(cast)
    reason = LostReasonFactory(name="Price")

    response = api.post(f"{BASE}/{opp.pk}/close-lost", {"reason": reason.pk, "note": "too much"})

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["lost_reason"]) == ("lost", reason.pk)


def test_closing_twice_is_409(api, cast):
    opp = opportunity(cast)
    api.post(f"{BASE}/{opp.pk}/cancel")

    response = api.post(f"{BASE}/{opp.pk}/cancel")

    assert response.status_code == 409


def test_cancel_then_reopen(api, cast):
    opp = opportunity(cast)

    cancelled = api.post(f"{BASE}/{opp.pk}/cancel", {"note": "budget cut"})
    reopened = api.post(f"{BASE}/{opp.pk}/reopen")

    assert cancelled.json()["status"] == "cancelled"
    assert reopened.status_code == 200
    assert reopened.json()["status"] == "todo"


def test_actions_without_required_fields_take_no_body(api, cast):
    opp = opportunity(cast)

    response = api.client.post(
        f"{BASE}/{opp.pk}/close-won", b"", content_type="application/json", headers=api._headers({})
    )

    assert response.status_code == 200, response.json()
    assert response.json()["won_amount"] == "1000.00"


def test_a_body_that_is_not_json_is_400(api, cast):
    response = api.client.post(
        BASE, "{not json", content_type="application/json", headers=api._headers({})
    )

    assert response.status_code == 400


def test_a_path_id_that_is_not_a_number_is_422(api):
    assert api.get(f"{BASE}/abc").status_code == 422


def test_duplicate_answers_201_with_the_new_opportunity(api, cast):
    opp = opportunity(cast, client=ClientFactory(), amount=5000)
    close = (timezone.localdate() + timedelta(days=90)).isoformat()

    response = api.post(
        f"{BASE}/{opp.pk}/duplicate", {"title": "Renewal", "expected_close_date": close}
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"] != opp.pk
    assert (body["client"], body["amount"], body["duplicated_from"]) == (
        opp.client_id,
        "50.00",
        opp.pk,
    )
    assert body["expected_close_date"] == close


# Session auth ---------------------------------------------------------------------------


@pytest.fixture
def browser(cast):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.owner)
    return client


def test_session_reads_without_csrf(browser, cast):
    opportunity(cast)

    response = browser.get(BASE)

    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


def test_session_post_without_csrf_token_is_403(browser, cast):
    response = browser.post(
        BASE, {"title": "x", "pipeline": cast.pipeline.pk}, content_type="application/json"
    )

    assert response.status_code == 403
    assert not Opportunity.objects.exists()


def test_session_post_with_csrf_token_works(browser, cast):
    csrf = "a" * 32
    browser.cookies["csrftoken"] = csrf

    response = browser.post(
        BASE,
        {"title": "x", "pipeline": cast.pipeline.pk},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )

    assert response.status_code == 201, response.json()


# OpenAPI --------------------------------------------------------------------------------

READS = {200, 401, 422}
ACTIONS = {200, 400, 401, 403, 404, 409, 412, 422}
DECLARED = {
    ("get", "/api/v1/opportunities"): READS,
    ("post", "/api/v1/opportunities"): {201, 400, 401, 403, 409, 422},
    ("get", "/api/v1/opportunities/{opportunity_id}"): READS | {404},
    ("patch", "/api/v1/opportunities/{opportunity_id}"): ACTIONS | {428},
    ("post", "/api/v1/opportunities/{opportunity_id}/move"): ACTIONS,
    ("post", "/api/v1/opportunities/{opportunity_id}/close-won"): ACTIONS,
    ("post", "/api/v1/opportunities/{opportunity_id}/close-lost"): ACTIONS,
    ("post", "/api/v1/opportunities/{opportunity_id}/cancel"): ACTIONS,
    ("post", "/api/v1/opportunities/{opportunity_id}/reopen"): ACTIONS,
    ("post", "/api/v1/opportunities/{opportunity_id}/duplicate"): {
        201,
        400,
        401,
        403,
        404,
        409,
        422,
    },
    ("get", "/api/v1/pipelines"): {200, 401},
}


def test_openapi_lists_every_operation_with_its_status_codes(client, db):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    found = {
        (method, path): {int(code) for code in operation["responses"]}
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    # The other resources' operations are pinned in tests/api/test_openapi.py.
    assert {key: found.get(key) for key in DECLARED} == DECLARED
    operation_ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(set(operation_ids)) == len(operation_ids)
    assert "opportunity_list" in operation_ids


def test_openapi_declares_both_ways_in(client, db):
    schemes = client.get("/api/v1/openapi.json").json()["components"]["securitySchemes"]

    assert schemes["BearerTokenAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["SessionCsrfAuth"]["in"] == "cookie"


def test_docs_page_is_served(client, db):
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert b"openapi.json" in response.content
