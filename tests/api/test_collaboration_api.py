"""What lives in an opportunity, over the API: comments, activities, contacts, tags, events.

All of it is reached through the opportunity: outside the caller's view it answers 404.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.accounts.tokens import api_token_authenticate
from opportuna.sales import services
from opportuna.sales.models import Activity, Comment, Contact, EventKind, OpportunityEvent
from tests.api.test_opportunities_api import Api
from tests.factories import OpportunityFactory, TagFactory, activity_type, make_cast

pytestmark = pytest.mark.django_db

OPPORTUNITIES = "/api/v1/opportunities"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def api(cast):
    return Api(cast.owner)


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)


@pytest.fixture
def hidden(cast):
    return OpportunityFactory(owner=cast.other, pipeline=cast.pipeline)


def walk(api, path, limit=2):
    seen, cursor = [], None
    while True:
        body = api.get(path, {"limit": limit, **({"cursor": cursor} if cursor else {})}).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


# Comments --------------------------------------------------------------------------------


def test_comment_is_added_and_listed_newest_first(api, cast, opp):
    first = api.post(f"{OPPORTUNITIES}/{opp.pk}/comments", {"body": "Called, no answer"})
    second = api.post(f"{OPPORTUNITIES}/{opp.pk}/comments", {"body": "Demo booked"})

    listed = api.get(f"{OPPORTUNITIES}/{opp.pk}/comments").json()["items"]

    assert (first.status_code, second.status_code) == (201, 201)
    assert [c["body"] for c in listed] == ["Demo booked", "Called, no answer"]
    assert listed[0]["author"] == cast.owner.pk
    assert (
        OpportunityEvent.objects.filter(opportunity=opp, kind=EventKind.COMMENT_ADDED).count() == 2
    )


def test_comment_pages_walk_every_comment_once(api, cast, opp):
    made = [
        services.comment_add(opportunity=opp, actor=cast.owner, body=f"c{n}").pk for n in range(5)
    ]

    assert walk(api, f"{OPPORTUNITIES}/{opp.pk}/comments") == list(reversed(made))


def test_comment_is_reworded_by_its_author_and_deleted(api, cast, opp):
    made = api.post(f"{OPPORTUNITIES}/{opp.pk}/comments", {"body": "Calll back"}).json()
    edited = api.patch(f"/api/v1/comments/{made['id']}", {"body": "Call back"})
    assert edited.status_code == 200
    assert edited.json()["body"] == "Call back"
    assert edited.json()["edited_at"] is not None
    assert api.delete(f"/api/v1/comments/{made['id']}").status_code == 204
    assert not Comment.objects.filter(pk=made["id"]).exists()
    assert api.delete(f"/api/v1/comments/{made['id']}").status_code == 404


def test_comment_of_someone_else_cannot_be_reworded_and_hidden_ones_are_404(api, cast, opp, hidden):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    theirs = services.comment_add(opportunity=opp, actor=cast.teammate, body="Teammate's")
    assert api.patch(f"/api/v1/comments/{theirs.pk}", {"body": "Mine"}).status_code == 403
    elsewhere = services.comment_add(opportunity=hidden, actor=cast.other, body="Not yours")
    assert api.patch(f"/api/v1/comments/{elsewhere.pk}", {"body": "x"}).status_code == 404
    assert api.delete(f"/api/v1/comments/{elsewhere.pk}").status_code == 404
    assert Comment.objects.filter(pk=elsewhere.pk).exists()


def test_blank_comment_is_422(api, opp):
    response = api.post(f"{OPPORTUNITIES}/{opp.pk}/comments", {"body": "   "})

    assert response.status_code == 422
    assert not Comment.objects.exists()


def test_comments_of_a_hidden_opportunity_are_404(api, hidden):
    assert api.get(f"{OPPORTUNITIES}/{hidden.pk}/comments").status_code == 404
    assert api.post(f"{OPPORTUNITIES}/{hidden.pk}/comments", {"body": "x"}).status_code == 404


def test_pin_and_unpin_a_comment(api, cast, opp):
    comment = services.comment_add(opportunity=opp, actor=cast.owner, body="Budget: 10k")

    pinned = api.post(f"/api/v1/comments/{comment.pk}/pin")
    only_pinned = api.get(f"{OPPORTUNITIES}/{opp.pk}/comments", {"pinned": "true"})
    unpinned = api.post(f"/api/v1/comments/{comment.pk}/unpin")

    assert pinned.status_code == 200 and pinned.json()["pinned"] is True
    assert [c["id"] for c in only_pinned.json()["items"]] == [comment.pk]
    assert unpinned.json()["pinned"] is False


def test_pinning_a_comment_of_a_hidden_opportunity_is_404(api, cast, hidden):
    comment = services.comment_add(opportunity=hidden, actor=cast.other, body="secret")

    assert api.post(f"/api/v1/comments/{comment.pk}/pin").status_code == 404


# Activities ------------------------------------------------------------------------------


def test_log_an_activity_done(api, cast, opp):
    call = activity_type("call")

    response = api.post(f"{OPPORTUNITIES}/{opp.pk}/activities", {"type": call.pk, "note": "Intro"})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["planned"], body["user"], body["type"]) == (False, cast.owner.pk, call.pk)
    assert body["done_at"] is not None


def test_plan_an_activity_then_complete_it(api, opp):
    due = (timezone.now() + timedelta(days=2)).isoformat()
    planned = api.post(
        f"{OPPORTUNITIES}/{opp.pk}/activities", {"type": activity_type("visit").pk, "due_at": due}
    ).json()

    done = api.post(f"/api/v1/activities/{planned['id']}/complete", {"note": "Went well"})

    assert planned["planned"] is True
    assert done.status_code == 200, done.json()
    assert done.json()["planned"] is False
    assert done.json()["note"] == "Went well"


def test_completing_twice_is_409(api, cast, opp):
    activity = services.activity_log(opportunity=opp, actor=cast.owner, type=activity_type("call"))

    assert api.post(f"/api/v1/activities/{activity.pk}/complete").status_code == 409


def test_an_activity_out_of_sight_cannot_be_completed(api, cast, opp, hidden):
    elsewhere = services.activity_plan(
        opportunity=hidden, actor=cast.other, type=activity_type("call"), due_at=timezone.now()
    )
    handed = services.activity_plan(
        opportunity=opp, actor=cast.owner, type=activity_type("call"), due_at=timezone.now()
    )
    services.opportunity_update(
        opportunity=opp, actor=cast.admin, version=opp.version, owner=cast.other
    )

    for activity in (elsewhere, handed):  # another's deal; a deal handed to another team
        assert api.post(f"/api/v1/activities/{activity.pk}/complete", {}).status_code == 404
        activity.refresh_from_db()
        assert activity.done_at is None


def test_an_activity_is_logged_or_planned_not_both(api, opp):
    now = timezone.now().isoformat()

    response = api.post(
        f"{OPPORTUNITIES}/{opp.pk}/activities",
        {"type": activity_type("call").pk, "done_at": now, "due_at": now},
    )

    assert response.status_code == 422
    assert not Activity.objects.exists()


def test_a_time_without_offset_is_read_in_the_account_time_zone(api, opp):
    response = api.post(
        f"{OPPORTUNITIES}/{opp.pk}/activities",
        {"type": activity_type("call").pk, "done_at": "2026-01-15T10:00:00"},
    )

    assert response.status_code == 201, response.json()
    done_at = Activity.objects.get().done_at
    assert timezone.localtime(done_at).hour == 10


def test_a_number_is_not_a_time(api, opp):
    response = api.post(
        f"{OPPORTUNITIES}/{opp.pk}/activities",
        {"type": activity_type("call").pk, "done_at": 1_700_000_000},
    )

    assert response.status_code == 422


def test_activities_filter_planned(api, cast, opp):
    call = activity_type("call")
    services.activity_log(opportunity=opp, actor=cast.owner, type=call)
    planned = services.activity_plan(
        opportunity=opp, actor=cast.owner, type=call, due_at=timezone.now() + timedelta(days=1)
    )

    response = api.get(f"{OPPORTUNITIES}/{opp.pk}/activities", {"planned": "true"})

    assert [a["id"] for a in response.json()["items"]] == [planned.pk]


def test_teammate_may_log_an_activity_but_not_add_a_contact(cast, opp):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    teammate = Api(cast.teammate)

    logged = teammate.post(
        f"{OPPORTUNITIES}/{opp.pk}/activities", {"type": activity_type("call").pk}
    )
    contact = teammate.post(f"{OPPORTUNITIES}/{opp.pk}/contacts", {"name": "Anna"})

    assert logged.status_code == 201
    assert contact.status_code == 403


# Contacts --------------------------------------------------------------------------------


def test_contacts_are_added_in_order_and_reordered(api, opp):
    anna = api.post(f"{OPPORTUNITIES}/{opp.pk}/contacts", {"name": "Anna", "role": "CTO"})
    bruno = api.post(f"{OPPORTUNITIES}/{opp.pk}/contacts", {"name": "Bruno"})

    reordered = api.post(
        f"{OPPORTUNITIES}/{opp.pk}/contacts/reorder",
        {"contacts": [bruno.json()["id"], anna.json()["id"]]},
    )
    listed = api.get(f"{OPPORTUNITIES}/{opp.pk}/contacts").json()

    assert anna.status_code == 201
    assert anna["Location"] == f"/api/v1/contacts/{anna.json()['id']}"
    assert reordered.status_code == 200, reordered.json()
    assert [c["name"] for c in listed] == ["Bruno", "Anna"]
    assert [c["position"] for c in listed] == [0, 1]


def test_contact_with_a_bad_email_is_422(api, opp):
    response = api.post(f"{OPPORTUNITIES}/{opp.pk}/contacts", {"name": "Anna", "email": "anna@"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "email"


def test_contact_patch_needs_a_fresh_etag(api, cast, opp):
    contact = services.contact_add(opportunity=opp, actor=cast.owner, name="Anna")
    path = f"/api/v1/contacts/{contact.pk}"
    etag = api.get(path)["ETag"]

    missing = api.patch(path, {"role": "CEO"})
    saved = api.patch(path, {"role": "CEO"}, {"If-Match": etag})
    stale = api.patch(path, {"role": "CFO"}, {"If-Match": etag})

    assert (missing.status_code, saved.status_code, stale.status_code) == (428, 200, 412)
    contact.refresh_from_db()
    assert contact.role == "CEO"


def test_contact_is_removed(api, cast, opp):
    contact = services.contact_add(opportunity=opp, actor=cast.owner, name="Anna")

    response = api.client.delete(f"/api/v1/contacts/{contact.pk}", headers=api._headers({}))

    assert response.status_code == 204
    assert not Contact.objects.exists()
    assert OpportunityEvent.objects.filter(kind=EventKind.CONTACT_REMOVED).exists()


def test_contact_of_a_hidden_opportunity_is_404(api, cast, hidden):
    contact = services.contact_add(opportunity=hidden, actor=cast.other, name="Anna")

    assert api.get(f"/api/v1/contacts/{contact.pk}").status_code == 404
    delete = api.client.delete(f"/api/v1/contacts/{contact.pk}", headers=api._headers({}))
    assert delete.status_code == 404


# Tags ------------------------------------------------------------------------------------


def test_tag_an_opportunity_and_take_it_off(api, opp):
    added = api.post(f"{OPPORTUNITIES}/{opp.pk}/tags", {"name": "Agency X"})
    tags_after_add = api.get(f"{OPPORTUNITIES}/{opp.pk}").json()["tags"]
    removed = api.client.delete(
        f"{OPPORTUNITIES}/{opp.pk}/tags/{added.json()['id']}", headers=api._headers({})
    )

    assert added.status_code == 200
    assert tags_after_add == ["Agency X"]
    assert removed.status_code == 204
    assert api.get(f"{OPPORTUNITIES}/{opp.pk}").json()["tags"] == []


def test_an_existing_tag_is_reused_whatever_its_case(api, opp):
    tag = TagFactory(name="VIP")

    response = api.post(f"{OPPORTUNITIES}/{opp.pk}/tags", {"name": "vip"})

    assert response.json()["id"] == tag.pk


def test_removing_an_unknown_tag_is_404(api, opp):
    response = api.client.delete(f"{OPPORTUNITIES}/{opp.pk}/tags/999999", headers=api._headers({}))

    assert response.status_code == 404


# Events ----------------------------------------------------------------------------------


def test_events_are_the_log_newest_first(api, cast, opp):
    step = cast.pipeline.steps.order_by("position")[2]
    services.opportunity_move(opportunity=opp, step=step, actor=cast.owner)
    services.opportunity_cancel(opportunity=opp, actor=cast.owner)

    response = api.get(f"{OPPORTUNITIES}/{opp.pk}/events")

    items = response.json()["items"]
    assert [e["kind"] for e in items] == ["cancelled", "moved"]
    assert items[1]["changes"]["step"][1] == step.pk
    assert items[0]["actor"] == cast.owner.pk


def test_events_filter_by_kind_and_walk_in_pages(api, cast, opp):
    call = activity_type("call")
    for _ in range(3):
        services.activity_log(opportunity=opp, actor=cast.owner, type=call)

    logged = api.get(f"{OPPORTUNITIES}/{opp.pk}/events", {"kind": "activity_logged"})

    assert len(logged.json()["items"]) == 3
    assert len(walk(api, f"{OPPORTUNITIES}/{opp.pk}/events", limit=1)) == 3


def test_events_of_a_hidden_opportunity_are_404(api, hidden):
    assert api.get(f"{OPPORTUNITIES}/{hidden.pk}/events").status_code == 404


# Constant queries --------------------------------------------------------------------------


def _fill(kind, cast, opp, count):
    call = activity_type("call")
    for number in range(count):
        if kind == "comments":
            services.comment_add(opportunity=opp, actor=cast.owner, body=f"c{number}")
        elif kind == "activities":
            services.activity_log(opportunity=opp, actor=cast.owner, type=call)
        elif kind == "contacts":
            services.contact_add(opportunity=opp, actor=cast.owner, name=f"p{number}")
        else:
            services.opportunity_set_probability(
                opportunity=opp, actor=cast.owner, probability=number % 100
            )


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("kind", ["comments", "activities", "contacts", "events"])
def test_lists_run_a_constant_number_of_queries(
    api, cast, opp, kind, count, django_assert_num_queries
):
    _fill(kind, cast, opp, count)
    api_token_authenticate(api.raw)

    # 1 token with its user, 2 the opportunity is visible, 3 the rows.
    with django_assert_num_queries(3):
        response = api.get(f"{OPPORTUNITIES}/{opp.pk}/{kind}")

    body = response.json()
    rows = body if kind == "contacts" else body["items"]
    assert len(rows) >= count
