"""Client folders: create, update, and merging two folders into one."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Client, EventKind, Opportunity, OpportunityEvent
from opportuna.sales.services import client_create, client_merge, client_update
from tests.factories import ClientFactory, OpportunityFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


# Create and update ----------------------------------------------------------------------


def test_any_salesperson_can_open_a_client_folder(cast):
    client = client_create(actor=cast.owner, name="  ACME Srl ", city="Milano")
    client.refresh_from_db()
    assert (client.name, client.city) == ("ACME Srl", "Milano")


def test_client_create_requires_a_name(cast):
    with pytest.raises(SalesRuleError) as caught:
        client_create(actor=cast.owner, name="  ")
    assert caught.value.field == "name"
    assert not Client.objects.exists()


def test_client_create_refuses_an_invalid_email(cast):
    with pytest.raises(SalesRuleError) as caught:
        client_create(actor=cast.owner, name="ACME", email="not-an-email")
    assert caught.value.field == "email"
    assert not Client.objects.exists()


def test_client_create_refuses_unknown_fields(cast):
    with pytest.raises(TypeError):
        client_create(actor=cast.owner, name="ACME", owner=cast.owner)


def test_inactive_user_cannot_open_a_client_folder(cast):
    cast.owner.is_active = False
    cast.owner.save()
    with pytest.raises(PermissionDenied):
        client_create(actor=cast.owner, name="ACME")


def test_client_update_changes_the_given_details(cast):
    client = ClientFactory(name="ACME", phone="")
    client_update(client=client, actor=cast.owner, phone="+39 02 1234567")
    client.refresh_from_db()
    assert (client.name, client.phone) == ("ACME", "+39 02 1234567")


def test_client_update_refuses_an_invalid_website(cast):
    client = ClientFactory(name="ACME")
    with pytest.raises(SalesRuleError) as caught:
        client_update(client=client, actor=cast.owner, website="not a url")
    assert caught.value.field == "website"
    client.refresh_from_db()
    assert client.website == ""


def test_client_update_refuses_an_empty_name(cast):
    client = ClientFactory(name="ACME")
    with pytest.raises(SalesRuleError):
        client_update(client=client, actor=cast.owner, name=" ")
    client.refresh_from_db()
    assert client.name == "ACME"


def test_client_update_refuses_unknown_fields(cast):
    with pytest.raises(TypeError):
        client_update(client=ClientFactory(), actor=cast.owner, created_at=timezone.now())


# Merge ----------------------------------------------------------------------------------


@pytest.fixture
def folders(cast):
    """Two folders for the same customer: `source` holds two opportunities, `target` one."""
    source = ClientFactory(name="ACME S.r.l.", vat_number="IT123", notes="From the fair")
    target = ClientFactory(name="ACME", city="Milano", notes="Main folder")
    for owner in (cast.owner, cast.other):
        OpportunityFactory(owner=owner, pipeline=cast.pipeline, client=source)
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, client=target)
    return source, target


def test_client_merge_moves_every_opportunity_to_the_target(cast, folders):
    source, target = folders
    moved = list(source.opportunities.values_list("pk", flat=True))
    client_merge(source=source, target=target, actor=cast.manager)
    assert set(target.opportunities.values_list("pk", flat=True)) >= set(moved)
    assert target.opportunities.count() == 3


def test_client_merge_deletes_the_source(cast, folders):
    source, target = folders
    client_merge(source=source, target=target, actor=cast.admin)
    assert not Client.objects.filter(pk=source.pk).exists()


def test_client_merge_writes_a_client_changed_event_per_moved_opportunity(cast, folders):
    source, target = folders
    moved = set(source.opportunities.values_list("pk", flat=True))
    client_merge(source=source, target=target, actor=cast.manager)
    events = OpportunityEvent.objects.filter(kind=EventKind.CLIENT_CHANGED)
    assert {e.opportunity_id for e in events} == moved
    assert len(events) == 2
    for event in events:
        assert event.actor == cast.manager
        assert event.changes == {"client": [source.pk, target.pk]}


def test_client_merge_bumps_version_and_updated_at_of_moved_opportunities(cast, folders):
    source, target = folders
    opp = source.opportunities.first()
    Opportunity.objects.filter(pk=opp.pk).update(updated_at=timezone.now() - timedelta(days=9))
    before = timezone.now()
    client_merge(source=source, target=target, actor=cast.manager)
    fresh = Opportunity.objects.get(pk=opp.pk)
    assert fresh.version == opp.version + 1
    assert fresh.updated_at >= before


def test_client_merge_fills_the_targets_empty_details_and_keeps_both_notes(cast, folders):
    source, target = folders
    client_merge(source=source, target=target, actor=cast.admin)
    target.refresh_from_db()
    assert (target.name, target.vat_number, target.city) == ("ACME", "IT123", "Milano")
    assert target.notes == "Main folder\n\nFrom the fair"


def test_salesperson_cannot_merge_client_folders(cast, folders):
    source, target = folders
    with pytest.raises(PermissionDenied):
        client_merge(source=source, target=target, actor=cast.owner)
    assert Client.objects.filter(pk=source.pk).exists()
    assert source.opportunities.count() == 2
    assert not OpportunityEvent.objects.exists()


def test_a_folder_cannot_be_merged_into_itself(cast, folders):
    source, _target = folders
    with pytest.raises(SalesRuleError):
        client_merge(source=source, target=source, actor=cast.admin)
    assert Client.objects.filter(pk=source.pk).exists()
