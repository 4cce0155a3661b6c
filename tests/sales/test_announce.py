"""Changes are announced on `change_announced` after commit, never for a rolled-back change."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from opportuna.core.announce import change_announced
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import EventKind, OpportunityEvent
from opportuna.sales.services import (
    activity_log,
    client_create,
    client_merge,
    comment_add,
    opportunity_close_won,
    opportunity_create,
    opportunity_duplicate,
    opportunity_move,
    opportunity_standby,
    proposal_create,
    proposal_send,
    tag_add,
)
from opportuna.sales.services import opportunities as opportunity_services
from tests.factories import ClientFactory, OpportunityFactory, activity_type, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)


@pytest.fixture
def announced():
    """Every announcement received, as dicts of the signal's arguments."""
    received = []

    def receiver(sender, **kwargs):
        kwargs.pop("signal")
        received.append(kwargs)

    change_announced.connect(receiver, dispatch_uid="test_announce")
    yield received
    change_announced.disconnect(dispatch_uid="test_announce")


def kinds(announced):
    return [a["kind"] for a in announced]


def announcements(callbacks):
    """How many of the on-commit callbacks send an announcement (others refresh derived data,
    once per transaction)."""
    return sum(
        1 for c in callbacks if getattr(c, "__qualname__", "") == "announce_many.<locals>.send"
    )


def test_nothing_is_announced_before_commit(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        opportunity_move(opportunity=opp, step=cast.pipeline.steps.last(), actor=cast.owner)
        assert announced == []
    assert announcements(callbacks) == 1
    assert kinds(announced) == ["opportunity.moved"]


def test_move_announces_actor_object_and_changes(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    last = cast.pipeline.steps.last()
    with django_capture_on_commit_callbacks(execute=True):
        opportunity_move(opportunity=opp, step=last, actor=cast.owner)
    (announcement,) = announced
    event = OpportunityEvent.objects.get(opportunity=opp, kind=EventKind.MOVED)
    assert announcement == {
        "kind": "opportunity.moved",
        "actor_id": cast.owner.pk,
        "object_id": opp.pk,
        "data": {"event_id": event.pk, "changes": event.changes},
    }


def test_create_announces_opportunity_created(cast, announced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = opportunity_create(actor=cast.owner, title="Deal", pipeline=cast.pipeline)
    assert kinds(announced) == ["opportunity.created"]
    assert announced[0]["object_id"] == created.pk


def test_comment_announces_comment_added(cast, opp, announced, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        comment = comment_add(opportunity=opp, actor=cast.owner, body="Hello")
    assert kinds(announced) == ["comment.added"]
    assert announced[0]["data"]["comment"] == comment.pk
    assert announced[0]["object_id"] == opp.pk


def test_activity_log_announces_activity_logged(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        activity_log(opportunity=opp, actor=cast.owner, type=activity_type("call"))
    assert kinds(announced) == ["activity.logged"]
    assert announced[0]["data"]["type"] == "call"


def test_close_and_standby_announce_their_kinds(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        opportunity_standby(
            opportunity=opp, until=timezone.localdate() + timedelta(days=3), actor=cast.owner
        )
        opportunity_close_won(opportunity=opp, actor=cast.owner)
    assert kinds(announced) == ["opportunity.standby", "opportunity.won"]


def test_tag_add_announces_opportunity_tag_added(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        tag_add(opportunity=opp, actor=cast.owner, tag="vip")
    assert kinds(announced) == ["opportunity.tag_added"]


def test_proposal_send_announces_the_activity_and_the_sending(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    proposal = proposal_create(
        opportunity=opp, actor=cast.owner, lines=[{"description": "Work", "unit_price": 1}]
    )
    with django_capture_on_commit_callbacks(execute=True):
        proposal_send(proposal=proposal, actor=cast.owner)
    assert kinds(announced) == ["activity.logged", "opportunity.proposal_sent"]


def test_client_create_announces_client_created(
    cast, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client = client_create(actor=cast.owner, name="ACME")
    assert announced == [
        {
            "kind": "client.created",
            "actor_id": cast.owner.pk,
            "object_id": client.pk,
            "data": {"name": "ACME"},
        }
    ]


def test_client_merge_announces_client_merged(cast, announced, django_capture_on_commit_callbacks):
    source, target = ClientFactory(name="A"), ClientFactory(name="B")
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, client=source)
    with django_capture_on_commit_callbacks(execute=True):
        client_merge(source=source, target=target, actor=cast.admin)
    # Each moved opportunity announces its client change, then the merge itself.
    assert kinds(announced) == ["opportunity.client_changed", "client.merged"]
    assert announced[0]["data"]["changes"] == {"client": [source.pk, target.pk]}
    assert announced[1]["data"] == {"merged": source.pk, "opportunities": 1}


def test_a_refused_change_announces_nothing(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        opportunity_close_won(opportunity=opp, actor=cast.owner)
        with pytest.raises(SalesRuleError):
            opportunity_close_won(opportunity=opp, actor=cast.owner)
    assert announcements(callbacks) == 1
    assert kinds(announced) == ["opportunity.won"]


def test_a_service_failing_after_announcing_is_rolled_back_and_announces_nothing(
    cast, opp, announced, django_capture_on_commit_callbacks, monkeypatch
):
    real_record = opportunity_services.record

    def record_then_fail(opportunity, actor, kind, **kwargs):
        event = real_record(opportunity, actor, kind, **kwargs)
        if kind == EventKind.DUPLICATED:
            raise RuntimeError("disk full")
        return event

    monkeypatch.setattr(opportunity_services, "record", record_then_fail)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            opportunity_duplicate(opportunity=opp, actor=cast.owner, title="Renewal")
        comment_add(opportunity=opp, actor=cast.owner, body="Still here")
    # `created` and `duplicated` were announced inside the service, then rolled back with it.
    assert OpportunityEvent.objects.filter(kind=EventKind.DUPLICATED).count() == 0
    assert announcements(callbacks) == 1
    assert kinds(announced) == ["comment.added"]


def test_an_outer_rollback_announces_nothing(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        comment_add(opportunity=opp, actor=cast.owner, body="Hello")
        raise RuntimeError("the caller gives up")
    assert callbacks == []
    assert announced == []


def test_a_failing_listener_does_not_break_the_change(
    cast, opp, announced, django_capture_on_commit_callbacks
):
    def broken(sender, **kwargs):
        raise ValueError("listener bug")

    change_announced.connect(broken, dispatch_uid="test_announce_broken")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            comment = comment_add(opportunity=opp, actor=cast.owner, body="Hello")
    finally:
        change_announced.disconnect(dispatch_uid="test_announce_broken")
    assert comment.pk is not None
    assert kinds(announced) == ["comment.added"]


@pytest.mark.django_db
def test_step_default_change_announces_each_following_opportunity(
    django_capture_on_commit_callbacks,
):
    from opportuna.sales.services import step_update
    from tests.factories import OpportunityFactory, UserFactory

    admin = UserFactory(role="admin")
    first = OpportunityFactory()
    second = OpportunityFactory(owner=first.owner, pipeline=first.pipeline)
    heard = []

    def listener(sender, kind, object_id, **kwargs):
        heard.append((kind, object_id))

    change_announced.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            step_update(step=first.step, actor=admin, probability=first.step.probability + 5)
    finally:
        change_announced.disconnect(listener)
    assert sorted(heard) == sorted(
        [("opportunity.probability", first.pk), ("opportunity.probability", second.pk)]
    )
