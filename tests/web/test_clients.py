"""Client folders: list with open figures, one folder's totals and contacts, edit and merge."""

import re

import pytest
from django.test import Client as Browser
from django.urls import reverse
from django.utils import timezone

from opportuna.core.announce import change_announced
from opportuna.sales.models import Client, Contact, EventKind, Opportunity, OpportunityEvent, Status
from opportuna.sales.selectors.clients import PAGE_SIZE
from tests.factories import (
    ClientFactory,
    LostReasonFactory,
    OpportunityFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def folder():
    return ClientFactory(name="Acme Lighthouses")


def opp(cast, owner, client, **values):
    return OpportunityFactory(owner=owner, pipeline=cast.pipeline, client=client, **values)


def closed(cast, owner, client, status, **values):
    """A closed opportunity, straight into the database (a fixture, not a write path)."""
    values.setdefault("next_action_at", None)
    extra = {"won_amount": values.pop("won_amount", 0)} if status == Status.WON else {}
    if status == Status.LOST:
        extra["lost_reason"] = LostReasonFactory()
    return opp(cast, owner, client, status=status, closed_at=timezone.now(), **extra, **values)


def detail_url(client):
    return reverse("sales:client_detail", args=[client.pk])


def test_url_names_and_paths(folder):
    assert reverse("sales:client_list") == "/clients/"
    assert detail_url(folder) == f"/clients/{folder.pk}/"


@pytest.mark.parametrize("name", ["client_list", "client_detail", "client_edit", "client_merge"])
def test_anonymous_user_is_sent_to_login(client, folder, name):
    args = [] if name == "client_list" else [folder.pk]
    response = client.get(reverse(f"sales:{name}", args=args))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_unknown_folder_is_404(client, cast):
    client.force_login(cast.owner)
    assert client.get("/clients/999999/").status_code == 404
    assert client.get("/clients/999999/edit/").status_code == 404


# The list --------------------------------------------------------------------------------


def test_list_counts_only_visible_open_opportunities(client, cast, folder):
    opp(cast, cast.owner, folder, amount=1000_00)
    opp(cast, cast.owner, folder, amount=234_56)
    opp(cast, cast.other, folder, amount=9_999_00)  # not visible to the owner
    closed(cast, cast.owner, folder, Status.WON, won_amount=5000_00)  # not open
    client.force_login(cast.owner)
    html = client.get("/clients/").content.decode()
    row = re.search(r"Acme Lighthouses</a></td>(.*?)</tr>", html, re.S).group(1)
    assert '<td class="num">2</td>' in row
    assert "1,234.56 EUR" in row
    client.force_login(cast.admin)
    row = re.search(
        r"Acme Lighthouses</a></td>(.*?)</tr>", client.get("/clients/").content.decode(), re.S
    ).group(1)
    assert '<td class="num">3</td>' in row
    assert "11,233.56 EUR" in row


def test_list_searches_by_name(client, cast):
    ClientFactory(name="Rossi Trasporti")
    ClientFactory(name="Bianchi Vini")
    client.force_login(cast.owner)
    html = client.get("/clients/", {"q": "ross"}).content.decode()
    assert "Rossi Trasporti" in html
    assert "Bianchi Vini" not in html


def test_list_pages_have_no_duplicates_or_gaps(client, cast):
    # Equal names exercise the (name, id) tie-break.
    for index in range(PAGE_SIZE * 2 + 7):
        ClientFactory(name=f"Folder {index % 40:02d}")
    client.force_login(cast.owner)
    seen, url = [], "/clients/"
    while url:
        response = client.get(url)
        html = response.content.decode()
        seen += [int(pk) for pk in re.findall(r'href="/clients/(\d+)/"', html)]
        match = re.search(r'rel="next" href="([^"]+)"', html)
        url = "/clients/" + match.group(1).replace("&amp;", "&") if match else None
    expected = list(Client.objects.order_by("name", "pk").values_list("pk", flat=True))
    assert seen == expected


def test_list_htmx_gets_only_the_rows(client, cast, folder):
    client.force_login(cast.owner)
    response = client.get("/clients/", {"q": "acme"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html
    assert 'id="client-results"' in html
    assert "Acme Lighthouses" in html


@pytest.mark.parametrize("rows", [1, 30])
def test_list_query_count_is_constant(client, cast, rows, django_assert_num_queries):
    for _ in range(rows):
        opp(cast, cast.owner, ClientFactory())
    client.force_login(cast.owner)
    # session, user, folders with their open figures, account currency, to-do badge
    with django_assert_num_queries(5):
        response = client.get("/clients/")
    assert len(re.findall(r'href="/clients/\d+/"', response.content.decode())) == rows


# One folder ------------------------------------------------------------------------------


def test_folder_totals_are_exact_and_count_only_visible(client, cast, folder):
    opp(cast, cast.owner, folder, amount=1000_01, probability=33)  # weighted 330.00
    opp(cast, cast.owner, folder, amount=10_05, probability=50)  # weighted 5.03 (half up)
    closed(cast, cast.owner, folder, Status.WON, won_amount=700_00)
    closed(cast, cast.owner, folder, Status.WON, won_amount=99)
    closed(cast, cast.owner, folder, Status.LOST)
    closed(cast, cast.owner, folder, Status.CANCELLED)
    opp(cast, cast.other, folder, amount=5_000_000_00)  # outsider's: never counted
    closed(cast, cast.other, folder, Status.WON, won_amount=1_000_000_00)
    client.force_login(cast.owner)
    response = client.get(detail_url(folder))
    totals = response.context["totals"]
    assert totals.open_count == 2
    assert totals.open_amount == 1010_06
    assert totals.weighted == 330_00 + 5_03
    assert totals.won_count == 2
    assert totals.won_amount == 700_99
    assert (totals.lost_count, totals.cancelled_count) == (1, 1)
    html = response.content.decode()
    assert "1,010.06 EUR" in html
    assert "335.03 EUR" in html
    assert "700.99 EUR" in html
    assert "5,000,000.00" not in html


def test_folder_lists_visible_opportunities_by_status_with_links(client, cast, folder):
    mine = opp(cast, cast.owner, folder, title="Open lighthouse")
    won = closed(cast, cast.owner, folder, Status.WON, title="Won lamp", won_amount=1)
    theirs = opp(cast, cast.other, folder, title="Secret deal")
    client.force_login(cast.owner)
    html = client.get(detail_url(folder)).content.decode()
    assert f'href="/o/{mine.pk}/"' in html
    assert f'href="/o/{won.pk}/duplicate/"' in html
    assert f'href="/o/{mine.pk}/duplicate/"' not in html  # only past ones are duplicated
    assert "Secret deal" not in html
    assert f"/o/{theirs.pk}/" not in html
    assert f'href="/o/new/?client={folder.pk}"' in html


def test_folder_contacts_are_deduplicated(client, cast, folder):
    first = opp(cast, cast.owner, folder)
    second = opp(cast, cast.owner, folder)
    hidden = opp(cast, cast.other, folder)
    Contact.objects.create(opportunity=first, name="Anna Rossi", email="anna@example.com")
    Contact.objects.create(opportunity=second, name="Anna R.", email="ANNA@example.com")
    Contact.objects.create(opportunity=first, name="Bruno Neri")
    Contact.objects.create(opportunity=second, name="bruno neri", role="CTO")
    Contact.objects.create(opportunity=second, name="Carla Blu", email="carla@example.com")
    Contact.objects.create(opportunity=hidden, name="Dario Secret", email="dario@example.com")
    client.force_login(cast.owner)
    contacts = client.get(detail_url(folder)).context["contacts"]
    assert sorted(c.name.lower() for c in contacts) == ["anna r.", "bruno neri", "carla blu"]
    # The most recent row speaks for a person.
    assert {c.role for c in contacts if c.name.lower() == "bruno neri"} == {"CTO"}


def test_folder_escapes_user_text(client, cast):
    folder = ClientFactory(name="<script>alert(1)</script>")
    opp(cast, cast.owner, folder, title="<script>alert(2)</script>")
    client.force_login(cast.owner)
    html = client.get(detail_url(folder)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    html = client.get("/clients/").content.decode()
    assert "<script>alert" not in html


@pytest.mark.parametrize("rows", [1, 30])
def test_folder_query_count_is_constant(client, cast, folder, rows, django_assert_num_queries):
    for index in range(rows):
        first = opp(cast, cast.owner, folder)
        Contact.objects.create(opportunity=first, name=f"Person {index}")
        closed(cast, cast.owner, folder, Status.WON, won_amount=index)
        closed(cast, cast.owner, folder, Status.LOST)
        closed(cast, cast.owner, folder, Status.CANCELLED)
    client.force_login(cast.owner)
    # session, user, folder, totals, open/won/lost/cancelled rows, contacts, account currency,
    # the to-do badge in the navigation
    with django_assert_num_queries(11):
        response = client.get(detail_url(folder))
    assert len(response.context["contacts"]) == rows


# Editing ---------------------------------------------------------------------------------


def test_edit_saves_through_the_service(client, cast, folder, django_capture_on_commit_callbacks):
    announced = []

    def listen(sender, kind, object_id, **kwargs):
        announced.append((kind, object_id))

    change_announced.connect(listen)
    try:
        client.force_login(cast.teammate)
        data = {"name": "Acme Lighthouses S.p.A.", "city": "Trieste", "email": "info@acme.example"}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/clients/{folder.pk}/edit/", data)
    finally:
        change_announced.disconnect(listen)
    assert response.status_code == 302
    assert response.url == detail_url(folder)
    folder.refresh_from_db()
    assert (folder.name, folder.city, folder.email) == (
        "Acme Lighthouses S.p.A.",
        "Trieste",
        "info@acme.example",
    )
    assert ("client.updated", folder.pk) in announced


def test_edit_shows_validation_errors(client, cast, folder):
    client.force_login(cast.owner)
    response = client.post(f"/clients/{folder.pk}/edit/", {"name": "  ", "email": "not-an-email"})
    assert response.status_code == 422
    html = response.content.decode()
    assert 'class="error"' in html
    folder.refresh_from_db()
    assert folder.name == "Acme Lighthouses"


def test_edit_form_shows_current_values(client, cast, folder):
    client.force_login(cast.owner)
    html = client.get(f"/clients/{folder.pk}/edit/").content.decode()
    assert 'value="Acme Lighthouses"' in html
    assert '<label for="id_name">' in html


def test_edit_refuses_a_post_without_csrf_token(cast, folder):
    browser = Browser(enforce_csrf_checks=True)
    browser.force_login(cast.owner)
    response = browser.post(f"/clients/{folder.pk}/edit/", {"name": "Hacked"})
    assert response.status_code == 403
    folder.refresh_from_db()
    assert folder.name == "Acme Lighthouses"


# Merging ---------------------------------------------------------------------------------


@pytest.fixture
def target():
    return ClientFactory(name="Acme Group")


def test_merge_is_refused_to_salespeople(client, cast, folder, target):
    client.force_login(cast.owner)
    assert client.get(f"/clients/{folder.pk}/merge/").status_code == 403
    response = client.post(f"/clients/{folder.pk}/merge/", {"target": target.pk, "confirm": "yes"})
    assert response.status_code == 403
    assert Client.objects.filter(pk=folder.pk).exists()
    assert "Merge into another folder" not in client.get(detail_url(folder)).content.decode()


def test_merge_finds_the_target_by_search_then_asks_to_confirm(client, cast, folder, target):
    client.force_login(cast.manager)
    assert "Merge into another folder" in client.get(detail_url(folder)).content.decode()
    html = client.get(f"/clients/{folder.pk}/merge/", {"q": "acme"}).content.decode()
    assert f'href="?target={target.pk}"' in html
    assert f'href="?target={folder.pk}"' not in html  # not into itself
    html = client.get(f"/clients/{folder.pk}/merge/", {"target": target.pk}).content.decode()
    assert 'name="confirm"' in html
    assert "cannot be undone" in html


def test_merge_needs_the_confirmation(client, cast, folder, target):
    client.force_login(cast.manager)
    response = client.post(f"/clients/{folder.pk}/merge/", {"target": target.pk})
    assert response.status_code == 422
    assert Client.objects.filter(pk=folder.pk).exists()


def test_merge_moves_the_opportunities_and_writes_events(client, cast, folder, target):
    moved = opp(cast, cast.owner, folder)
    unseen = opp(cast, cast.other, folder)  # the manager does not see it; it moves too
    client.force_login(cast.manager)
    response = client.post(f"/clients/{folder.pk}/merge/", {"target": target.pk, "confirm": "yes"})
    assert response.status_code == 302
    assert response.url == detail_url(target)
    assert not Client.objects.filter(pk=folder.pk).exists()
    assert set(Opportunity.objects.filter(client=target).values_list("pk", flat=True)) == {
        moved.pk,
        unseen.pk,
    }
    assert OpportunityEvent.objects.filter(
        opportunity=moved, kind=EventKind.CLIENT_CHANGED
    ).exists()


def test_merge_into_itself_is_refused(client, cast, folder):
    client.force_login(cast.admin)
    response = client.post(f"/clients/{folder.pk}/merge/", {"target": folder.pk, "confirm": "yes"})
    assert response.status_code == 422
    assert "cannot be merged into itself" in response.content.decode()


def test_merge_refuses_a_post_without_csrf_token(cast, folder, target):
    browser = Browser(enforce_csrf_checks=True)
    browser.force_login(cast.admin)
    response = browser.post(f"/clients/{folder.pk}/merge/", {"target": target.pk, "confirm": "yes"})
    assert response.status_code == 403
    assert Client.objects.filter(pk=folder.pk).exists()
