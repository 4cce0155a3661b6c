"""The OpenAPI document lists every operation with every status code it can answer."""

import pytest

pytestmark = pytest.mark.django_db

READ = {200, 401, 422}
GET = READ | {404}
LIST = {200, 401}
CREATE = {201, 400, 401, 403, 409, 422}
TARGET = {400, 401, 403, 404, 409, 422}
ACTION = {200, 412} | TARGET
UPDATE = ACTION | {428}
COMMAND = {401, 403, 404, 422}

DECLARED = {
    # Opportunities
    ("get", "/opportunities"): READ,
    ("post", "/opportunities"): CREATE,
    ("get", "/opportunities/{opportunity_id}"): GET,
    ("patch", "/opportunities/{opportunity_id}"): UPDATE,
    ("post", "/opportunities/{opportunity_id}/move"): ACTION,
    ("post", "/opportunities/{opportunity_id}/set-probability"): ACTION,
    ("post", "/opportunities/{opportunity_id}/plan-next-action"): ACTION,
    ("post", "/opportunities/{opportunity_id}/standby"): ACTION,
    ("post", "/opportunities/{opportunity_id}/close-won"): ACTION,
    ("post", "/opportunities/{opportunity_id}/close-lost"): ACTION,
    ("post", "/opportunities/{opportunity_id}/cancel"): ACTION,
    ("post", "/opportunities/{opportunity_id}/reopen"): ACTION,
    ("post", "/opportunities/{opportunity_id}/duplicate"): {201} | TARGET,
    ("get", "/opportunities/{opportunity_id}/events"): GET,
    ("get", "/pipelines"): LIST,
    # Inside an opportunity
    ("get", "/opportunities/{opportunity_id}/comments"): GET,
    ("post", "/opportunities/{opportunity_id}/comments"): {201} | TARGET,
    ("patch", "/comments/{comment_id}"): {200} | TARGET,
    ("delete", "/comments/{comment_id}"): {204} | COMMAND,
    ("post", "/comments/{comment_id}/pin"): {200} | COMMAND,
    ("post", "/comments/{comment_id}/unpin"): {200} | COMMAND,
    ("get", "/opportunities/{opportunity_id}/activities"): GET,
    ("post", "/opportunities/{opportunity_id}/activities"): {201} | TARGET,
    ("post", "/activities/{activity_id}/complete"): {200} | TARGET,
    ("get", "/opportunities/{opportunity_id}/contacts"): GET,
    ("post", "/opportunities/{opportunity_id}/contacts"): {201} | TARGET,
    ("post", "/opportunities/{opportunity_id}/contacts/reorder"): {200} | TARGET,
    ("get", "/contacts/{contact_id}"): GET,
    ("patch", "/contacts/{contact_id}"): UPDATE,
    ("delete", "/contacts/{contact_id}"): {204, 412} | COMMAND,
    ("post", "/opportunities/{opportunity_id}/tags"): {200} | TARGET,
    ("delete", "/opportunities/{opportunity_id}/tags/{tag_id}"): {204} | COMMAND,
    ("get", "/opportunities/{opportunity_id}/proposals"): GET,
    ("post", "/opportunities/{opportunity_id}/proposals"): {201} | TARGET,
    ("get", "/proposals/{proposal_id}"): GET,
    ("post", "/proposals/{proposal_id}/revise"): {201} | TARGET,
    ("post", "/proposals/{proposal_id}/send"): {200, 409} | COMMAND,
    ("post", "/proposals/{proposal_id}/accept"): {200} | TARGET,
    ("post", "/proposals/{proposal_id}/decline"): {200, 409} | COMMAND,
    # Client folders
    ("get", "/clients"): READ,
    ("post", "/clients"): CREATE,
    ("get", "/clients/{client_id}"): GET,
    ("patch", "/clients/{client_id}"): UPDATE,
    ("post", "/clients/{client_id}/merge"): {200} | TARGET,
    # Catalogues
    ("get", "/products"): LIST,
    ("post", "/products"): CREATE,
    ("get", "/tags"): LIST,
    ("post", "/tags"): CREATE,
    ("get", "/lost-reasons"): LIST,
    ("post", "/lost-reasons"): CREATE,
    ("get", "/activity-types"): LIST,
    ("post", "/activity-types"): CREATE,
    ("get", "/fields"): LIST,
    ("post", "/fields"): CREATE,
    # People and tokens
    ("get", "/users"): READ,
    ("get", "/users/me"): LIST,
    ("get", "/users/{user_id}"): GET,
    ("get", "/teams"): LIST,
    ("post", "/teams"): CREATE,
    ("get", "/tokens"): LIST,
    ("post", "/tokens/{token_id}/revoke"): {200} | COMMAND,
    # Forecast
    ("get", "/forecast"): READ,
}


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_operation_declares_its_status_codes(document):
    found = {
        (method, path.removeprefix("/api/v1")): {int(code) for code in operation["responses"]}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }

    assert found == DECLARED


def test_operation_ids_are_unique_names(document):
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]

    assert len(set(ids)) == len(ids)
    assert {"client_list", "comment_add", "proposal_send", "forecast", "team_create"} <= set(ids)


def test_every_operation_needs_authentication(document):
    operations = [op for ops in document["paths"].values() for op in ops.values()]

    assert all(op.get("security") for op in operations)


def test_reads_of_one_object_declare_their_etag(document):
    paths = document["paths"]
    for path in ("/api/v1/clients/{client_id}", "/api/v1/contacts/{contact_id}"):
        assert "ETag" in paths[path]["get"]["responses"]["200"]["headers"]


def test_list_sorts_are_an_allow_list(document):
    parameters = document["paths"]["/api/v1/opportunities"]["get"]["parameters"]
    sort = next(p for p in parameters if p["name"] == "sort")

    assert "-amount" in sort["schema"]["enum"]
    assert "owner__password" not in sort["schema"]["enum"]


def test_docs_page_links_the_document(client, db):
    response = client.get("/api/v1/docs")

    assert response.status_code == 200
    assert b"openapi.json" in response.content
