"""Export: what a user sees, with the list's filters, as formula-safe CSV and XLSX that the
importer reads back as it was."""

import csv
import io
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from opportuna.integrations.exporting import opportunity_export
from opportuna.integrations.importing import ImportOptions, import_file
from opportuna.integrations.tabular import neutralise, restore
from opportuna.sales.models import Contact, FieldKind, Opportunity, OpportunityEvent, Status
from opportuna.sales.selectors.opportunity_list import ListFilters
from opportuna.sales.services import (
    opportunity_close_lost,
    opportunity_close_won,
    opportunity_create,
    opportunity_standby,
)
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    LostReasonFactory,
    OpportunityFactory,
    ProductFactory,
    TagFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

URL = reverse("integrations:export")


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def cast():
    return make_cast()


def body(response):
    content = b"".join(response.streaming_content)
    return content


def csv_rows(response):
    text = body(response).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def xlsx_rows(response):
    sheet = load_workbook(io.BytesIO(body(response))).active
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]], sheet


def test_url_name_and_path():
    assert URL == "/integrations/export/"


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(URL, {"format": "csv"})
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_the_page_offers_what_format_and_the_lists_filters(client, cast):
    client.force_login(cast.owner)
    response = client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="format"' in html and 'name="what"' in html and 'name="status"' in html


def test_a_salesperson_exports_only_what_they_see(client, cast):
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Mine")
    OpportunityFactory(owner=cast.other, pipeline=cast.pipeline, title="Not mine")
    client.force_login(cast.owner)
    response = client.get(URL, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'attachment; filename="opportunities-' in response["Content-Disposition"]
    assert [row["Title"] for row in csv_rows(response)] == ["Mine"]


def test_the_export_carries_the_lists_filters_and_order(client, cast):
    tag = TagFactory(name="hot")
    for title, amount in (("Small", 1_00), ("Big", 9_00), ("Middle", 5_00)):
        OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title=title, amount=amount)
    untagged = Opportunity.objects.get(title="Middle")
    for opp in Opportunity.objects.exclude(pk=untagged.pk):
        opp.tags.add(tag)
    client.force_login(cast.manager)
    response = client.get(URL, {"format": "csv", "tag": tag.pk, "sort": "-amount", "after": "x"})
    assert [row["Title"] for row in csv_rows(response)] == ["Big", "Small"]


def test_formulas_are_neutralised_and_numbers_stay_numbers_in_csv_and_xlsx(client, cast):
    OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        title='=HYPERLINK("http://x")',
        description="@SUM(1)",
        next_action_note="+39 02 1234",
        amount=1234_56,
    )
    client.force_login(cast.owner)
    (row,) = csv_rows(client.get(URL, {"format": "csv"}))
    assert row["Title"] == '\'=HYPERLINK("http://x")'
    assert row["Description"] == "'@SUM(1)"
    assert row["Next action note"] == "'+39 02 1234"
    assert row["Amount"] == "1234.56"
    response = client.get(URL, {"format": "xlsx"})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    (row,), sheet = xlsx_rows(response)
    assert row["Title"] == '\'=HYPERLINK("http://x")'
    assert row["Amount"] == 1234.56 and row["Probability"] == 10
    assert sheet["I2"].data_type == "n"  # Amount: a number cell
    assert all(cell.data_type != "f" for line in sheet.iter_rows() for cell in line)


@pytest.mark.parametrize(
    "text", ["=1+1", "+1", "-1", "@x", "\tx", "\rx", "'=x", "''+x", "'plain", "plain", "", "'"]
)
def test_neutralising_is_undone_exactly_on_import(text):
    assert restore(neutralise(text)) == text


def test_clients_export(client, cast):
    ClientFactory(name="Zeta", city="Roma", external_id="K-2")
    ClientFactory(name="=Alpha", city="Milano")
    client.force_login(cast.owner)
    rows = csv_rows(client.get(URL, {"format": "csv", "what": "clients"}))
    assert [(r["Name"], r["City"], r["External id"]) for r in rows] == [
        ("'=Alpha", "Milano", ""),
        ("Zeta", "Roma", "K-2"),
    ]


@pytest.mark.parametrize("rows", [1, 30])
def test_the_export_runs_a_constant_number_of_queries(
    client, cast, rows, django_assert_num_queries
):
    tag = TagFactory()
    for n in range(rows):
        opp = OpportunityFactory(
            owner=cast.owner,
            pipeline=cast.pipeline,
            client=ClientFactory(),
            product=ProductFactory(),
        )
        opp.tags.add(tag)
        Contact.objects.create(opportunity=opp, name=f"Person {n}", position=0)
    client.force_login(cast.manager)
    # session, user, filter choices (owners, teams, tags, products, steps, assignees),
    # default fields, most contacts, then the rows, their tags and contacts (one chunk)
    with django_assert_num_queries(13):
        response = client.get(URL, {"format": "csv"})
        assert len(csv_rows(response)) == rows


# Round trips ------------------------------------------------------------------------------


def build(cast):
    """Opportunities of every shape, made through the services."""
    LostReasonFactory(name="Price")
    FieldDefinitionFactory(label="Budget", key="budget", kind=FieldKind.NUMBER)
    FieldDefinitionFactory(label="Decided on", key="decided", kind=FieldKind.DATE)
    FieldDefinitionFactory(label="Source", key="source")
    ProductFactory(name="Licence")
    acme = ClientFactory(name="Acme", external_id="C-1")
    steps = {s.name: s for s in cast.pipeline.steps.all()}
    make = {"actor": cast.manager, "pipeline": cast.pipeline}
    opportunity_create(
        **make,
        title="=Open one",
        step=steps["Demo"],
        owner=cast.owner,
        client=acme,
        amount=1234_56,
        probability=35,
        expected_close_date=date(2027, 5, 31),
        next_action_note="-call back",
        description='First line\nSecond line, with "quotes"; and semicolons',
        fields={"budget": "1234.5", "decided": "2026-01-02", "source": "+Fair"},
        tags=["Horeca", "Fiera"],
        contacts=[
            {"name": "Anna", "role": "CEO", "email": "anna@example.com", "phone": "+39 1"},
            {"name": "Bo"},
        ],
        external_id="O-1",
    )
    won = opportunity_create(
        **make, title="Won one", owner=cast.teammate, amount=99_99, external_id="O-2"
    )
    opportunity_close_won(
        opportunity=won,
        actor=cast.manager,
        won_amount=88_88,
        closed_at=timezone.now() - timedelta(days=3),
    )
    lost = opportunity_create(**make, title="Lost one", external_id="O-3")
    opportunity_close_lost(
        opportunity=lost,
        actor=cast.manager,
        reason=LostReasonFactory(name="Price"),
        note="Too dear",
    )
    parked = opportunity_create(**make, title="Parked", external_id="O-4")
    opportunity_standby(
        opportunity=parked,
        actor=cast.manager,
        until=timezone.localdate() + timedelta(days=20),
        note="later",
    )


def snapshot():
    fields = (
        "title",
        "client__name",
        "owner__username",
        "step__name",
        "status",
        "amount",
        "won_amount",
        "probability",
        "probability_is_manual",
        "product__name",
        "expected_close_date",
        "next_action_at",
        "next_action_note",
        "fields",
        "description",
        "lost_reason__name",
        "lost_note",
        "closed_at",
    )
    rows = {}
    for opp in Opportunity.objects.order_by("external_id"):
        values = dict(Opportunity.objects.filter(pk=opp.pk).values(*fields).get())
        for key in ("next_action_at", "closed_at"):
            if values[key] is not None:
                values[key] = values[key].replace(microsecond=0)
        values["tags"] = sorted(t.name for t in opp.tags.all())
        values["contacts"] = list(opp.contacts.values_list("name", "role", "email", "phone"))
        rows[opp.external_id] = values
    return rows


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_imported_again_changes_nothing(client, cast, tmp_path, fmt):
    build(cast)
    client.force_login(cast.manager)
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(body(client.get(URL, {"format": fmt})))
    events = OpportunityEvent.objects.count()
    report, _ = import_file(actor=cast.manager, path=path, options=ImportOptions())
    assert [(r.action, r.errors) for r in report.rows] == [("unchanged", [])] * 4
    assert OpportunityEvent.objects.count() == events


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_imported_into_an_empty_account_gives_the_same_opportunities(
    client, cast, tmp_path, fmt
):
    build(cast)
    before = snapshot()
    client.force_login(cast.manager)
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(body(client.get(URL, {"format": fmt})))
    Opportunity.objects.all().delete()
    report, _ = import_file(actor=cast.manager, path=path, options=ImportOptions())
    assert [(r.action, r.errors) for r in report.rows] == [("created", [])] * 4
    after = snapshot()
    # Closing and standby moments come back to the second; the rest exactly.
    assert after == before
    assert {o.status for o in Opportunity.objects.all()} == {
        Status.TODO,
        Status.WON,
        Status.LOST,
        Status.STANDBY,
    }


def test_the_selector_reads_in_chunks_with_the_list_filters(cast):
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Open", status="todo")
    OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        title="Won",
        status="won",
        won_amount=1,
        closed_at=timezone.now(),
    )
    headers, rows = opportunity_export(user=cast.admin, filters=ListFilters(status="closed"))
    assert [dict(zip(headers, row, strict=True))["Title"] for row in rows] == ["Won"]
