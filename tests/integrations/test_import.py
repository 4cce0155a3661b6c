"""Import: files read into opportunities and client folders through the import services, and
the web flow upload → mapping → dry run → import."""

import csv
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection
from django.test import Client as Browser
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from opportuna.core.announce import change_announced
from opportuna.core.database import refresh_planner_statistics
from opportuna.core.money import to_cents
from opportuna.insights.models import StepVisit
from opportuna.integrations.importing import (
    IGNORE,
    TEXT,
    ImportOptions,
    Upload,
    as_cents,
    guess_mapping,
    import_file,
)
from opportuna.sales import search
from opportuna.sales.models import (
    Client,
    Contact,
    EventKind,
    FieldKind,
    Opportunity,
    OpportunityEvent,
    Status,
    Tag,
)
from opportuna.sales.selectors.search import search_everything
from opportuna.sales.services import (
    client_import_batch,
    opportunity_create,
    opportunity_import_batch,
)
from opportuna.sales.services import imports as import_services
from opportuna.sales.services.imports import ClientRow, ImportRow
from tests.core.test_database import stat_rows
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

HEADER = ["External id", "Title", "Client", "Owner", "Step", "Amount"]


@pytest.fixture(autouse=True)
def _data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"


@pytest.fixture
def cast():
    return make_cast()


def write_csv(tmp_path, rows, header=HEADER, *, encoding="utf-8", delimiter=",", name="in.csv"):
    path = tmp_path / name
    with path.open("w", encoding=encoding, newline="") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(actor, path, *, dry_run=False, **options):
    report, _columns = import_file(
        actor=actor, path=path, options=ImportOptions(**options), dry_run=dry_run
    )
    return report


def actions(report):
    return [(row.number, row.action) for row in report.rows]


def errors(report):
    return {row.number: row.errors for row in report.rows if row.errors}


def imported(external_id):
    return Opportunity.objects.get(external_id=external_id)


# Reading the file ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["1234.56", "1.234,56", "1,234.56", "€ 1.234,56", "1234,56", " 1 234,56 "]
)
def test_an_amount_in_any_usual_notation_becomes_exact_cents(cast, tmp_path, written):
    path = write_csv(tmp_path, [["A-1", "Deal", "", "owner", "Lead", written]])
    report = run(cast.admin, path)
    assert actions(report) == [(2, "created")]
    assert imported("A-1").amount == 123456


@given(units=st.integers(0, 10**15 - 1), decimals=st.sampled_from(["", ".5", ".05", ".50", ".99"]))
def test_plain_amounts_read_without_decimal_give_the_same_cents(units, decimals):
    text = f"{units}{decimals}"
    assert as_cents(text) == to_cents(Decimal(text)) == as_cents(f" {text} ")


@pytest.mark.parametrize("value", [1234.56, Decimal("1234.56"), "1234.56"])
def test_a_spreadsheet_number_becomes_exact_cents(value):
    assert as_cents(value) == 123456


@pytest.mark.parametrize(
    "written,message",
    [
        ("1,234", "ambiguous"),
        ("12.345", None),  # a lone dot is a decimal point: 12.345 has three decimals
        ("ten", "Enter a number"),
        ("-5", "zero or more"),
    ],
)
def test_an_unreadable_amount_rejects_the_row_naming_its_column(cast, tmp_path, written, message):
    path = write_csv(tmp_path, [["A-1", "Deal", "", "owner", "Lead", written]])
    report = run(cast.admin, path)
    assert actions(report) == [(2, "rejected")]
    ((column, text),) = errors(report)[2]
    assert column == "Amount"
    assert message is None or message in text
    assert not Opportunity.objects.exists()


@pytest.mark.parametrize(
    "encoding,delimiter",
    [("utf-8", ","), ("utf-8-sig", ","), ("cp1252", ";"), ("utf-8-sig", ";"), ("utf-8", ";")],
)
def test_csv_in_utf8_bom_or_windows_1252_with_commas_or_semicolons_reads_the_same(
    cast, tmp_path, encoding, delimiter
):
    rows = [["A-1", "Caffè Nerò", "Società Forlì", "owner", "Lead", "1.234,50"]]
    path = write_csv(tmp_path, rows, encoding=encoding, delimiter=delimiter)
    report = run(cast.admin, path)
    assert actions(report) == [(2, "created")]
    opp = imported("A-1")
    assert (opp.title, opp.client.name, opp.amount) == ("Caffè Nerò", "Società Forlì", 123450)


def test_an_xlsx_workbook_imports_with_its_numbers_and_dates(cast, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["External id", "Title", "Owner", "Amount", "Probability", "Expected close"])
    sheet.append(["X-1", "From Excel", "owner", 1234.5, 35, datetime(2027, 3, 31)])
    path = tmp_path / "in.xlsx"
    workbook.save(path)
    report = run(cast.admin, path)
    assert actions(report) == [(2, "created")]
    opp = imported("X-1")
    assert (opp.amount, opp.probability, opp.probability_is_manual) == (123450, 35, True)
    assert opp.expected_close_date == date(2027, 3, 31)


def test_headers_are_guessed_in_english_italian_and_as_the_export_writes_them():
    field = FieldDefinitionFactory(label="Budget", key="budget")
    headers = ["Titolo", "Cliente", "AMOUNT", "Budget", "Contact 2 email", "Tags", "Who knows"]
    assert guess_mapping(headers, "opportunities", [field]) == [
        "title",
        "client",
        "amount",
        "field:budget",
        "contact:2:email",
        "tags",
        IGNORE,
    ]


def test_a_default_field_labelled_like_a_contact_column_wins():
    field = FieldDefinitionFactory(label="Contact 1 name", key="contact_1_name")
    assert guess_mapping(["Contact 1 name"], "opportunities", [field]) == ["field:contact_1_name"]


# Rules ------------------------------------------------------------------------------------


def test_owner_is_found_by_username_or_email(cast, tmp_path):
    path = write_csv(
        tmp_path,
        [
            ["A-1", "One", "", "owner", "Lead", "1"],
            ["A-2", "Two", "", "TEAMMATE@example.com", "Lead", "1"],
            ["A-3", "Three", "", "", "Lead", "1"],
        ],
    )
    run(cast.manager, path)
    assert imported("A-1").owner == cast.owner
    assert imported("A-2").owner == cast.teammate
    assert imported("A-3").owner == cast.manager  # no owner: the one who imports


def test_owner_must_exist_be_active_and_be_managed_by_the_importer(cast, tmp_path):
    cast.teammate.is_active = False
    cast.teammate.save()
    path = write_csv(
        tmp_path,
        [
            ["A-1", "Nobody", "", "ghost", "Lead", "1"],
            ["A-2", "Inactive", "", "teammate", "Lead", "1"],
            ["A-3", "Other team", "", "other", "Lead", "1"],
        ],
    )
    report = run(cast.manager, path)
    assert [row.action for row in report.rows] == ["rejected"] * 3
    messages = {number: errs[0] for number, errs in errors(report).items()}
    assert messages[2] == ("Owner", "No user is called ghost.")
    assert messages[3] == ("Owner", "The owner must be an active user.")
    assert messages[4] == ("Owner", "You can only give opportunities to people you manage.")
    assert not Opportunity.objects.exists()


def test_a_salesperson_cannot_import(cast, tmp_path):
    path = write_csv(tmp_path, [["A-1", "Mine", "", "owner", "Lead", "1"]])
    with pytest.raises(PermissionDenied):
        run(cast.owner, path)
    with pytest.raises(PermissionDenied):
        opportunity_import_batch(actor=cast.owner, rows=[])
    assert not Opportunity.objects.exists()


def test_pipeline_and_step_are_found_by_name_and_the_probability_follows_the_step(cast, tmp_path):
    header = ["Title", "Pipeline", "Step", "Probability"]
    path = write_csv(
        tmp_path,
        [
            ["On demo", "sales", "DEMO", ""],
            ["Unknown", "Sales", "Signed", ""],
            ["No step", "", "", ""],
        ],
        header,
    )
    report = run(cast.admin, path)
    assert actions(report) == [(2, "created"), (3, "rejected"), (4, "created")]
    demo = Opportunity.objects.get(title="On demo")
    assert (demo.step.name, demo.probability, demo.probability_is_manual) == ("Demo", 50, False)
    assert errors(report)[3] == [("Step", "The pipeline Sales has no step called Signed.")]
    first = Opportunity.objects.get(title="No step")
    assert first.step == cast.pipeline.steps.order_by("position").first()


def test_product_and_tags_by_name_new_tags_are_created(cast, tmp_path):
    ProductFactory(name="Licence")
    TagFactory(name="Horeca")
    header = ["Title", "Product", "Tags"]
    path = write_csv(
        tmp_path,
        [["Tagged", "licence", "horeca, Brand new,, brand NEW"], ["Bad", "Nothing", ""]],
        header,
    )
    report = run(cast.admin, path)
    assert actions(report) == [(2, "created"), (3, "rejected")]
    opp = Opportunity.objects.get(title="Tagged")
    assert opp.product.name == "Licence"
    assert sorted(t.name for t in opp.tags.all()) == ["Brand new", "Horeca"]
    assert report.new_tags == ["Brand new"]
    assert errors(report)[3] == [("Product", "No product is called Nothing.")]


def test_client_folders_are_found_by_name_or_external_id_and_created_when_missing(cast, tmp_path):
    acme = ClientFactory(name="Acme S.p.A.")
    other = ClientFactory(name="Same name", external_id="C-9")
    header = ["Title", "Client", "Client external id"]
    rows = [
        ["By name", "acme  s.p.a.", ""],
        ["By id", "Whatever", "C-9"],
        ["New", "Brand New Srl", ""],
        ["New again", "brand new srl", ""],
        ["New with id", "Named", "C-10"],
    ]
    report = run(cast.admin, write_csv(tmp_path, rows, header))
    assert report.counts()["created"] == 5
    client_of = dict(Opportunity.objects.values_list("title", "client__name"))
    assert client_of["By name"] == acme.name
    assert client_of["By id"] == other.name
    assert client_of["New"] == client_of["New again"] == "Brand New Srl"
    assert Client.objects.get(external_id="C-10").name == "Named"
    assert sorted(report.new_clients) == ["Brand New Srl", "Named"]


def test_a_won_row_writes_the_created_and_won_events_with_the_files_dates(cast, tmp_path):
    header = ["Title", "Status", "Amount", "Won amount", "Created", "Closed"]
    path = write_csv(
        tmp_path, [["Won deal", "Won", "1000", "950.50", "2025-01-10 09:30", "15/03/2025"]], header
    )
    report = run(cast.admin, path)
    assert actions(report) == [(2, "created")]
    opp = Opportunity.objects.get()
    zone = timezone.get_current_timezone()
    assert opp.status == Status.WON and opp.won_amount == 95050 and opp.next_action_at is None
    assert opp.created_at == datetime(2025, 1, 10, 9, 30, tzinfo=zone)
    assert opp.closed_at == datetime(2025, 3, 15, tzinfo=zone)
    created, won = OpportunityEvent.objects.filter(opportunity=opp).order_by("at")
    assert (created.kind, created.at, created.actor) == (
        EventKind.CREATED,
        opp.created_at,
        cast.admin,
    )
    assert (won.kind, won.at) == (EventKind.WON, opp.closed_at)
    assert won.changes == {
        "status": ["todo", "won"],
        "won_amount": [None, 95050],
        "closed_at": [None, opp.closed_at.isoformat()],
        "next_action_at": [opp.created_at.isoformat(), None],
    }
    assert opp.version == 2


def test_a_lost_row_needs_a_reason_by_name(cast, tmp_path):
    LostReasonFactory(name="Price")
    header = ["Title", "Status", "Lost reason", "Lost note", "Closed"]
    rows = [
        ["Lost", "lost", "price", "Too dear", "2025-05-02"],
        ["No reason", "Lost", "", "", "2025-05-02"],
    ]
    report = run(cast.admin, write_csv(tmp_path, rows, header))
    assert actions(report) == [(2, "created"), (3, "rejected")]
    lost = Opportunity.objects.get()
    assert (lost.lost_reason.name, lost.lost_note) == ("Price", "Too dear")
    event = lost.events.get(kind=EventKind.LOST)
    assert event.changes["lost_reason"] == [None, lost.lost_reason_id]
    assert event.changes["lost_note"] == ["", "Too dear"]
    assert errors(report)[3] == [("Lost reason", "Say why it was lost: choose a reason.")]


def test_a_closing_date_in_the_future_is_rejected(cast, tmp_path):
    header = ["Title", "Status", "Closed"]
    later = (timezone.localdate() + timedelta(days=3)).isoformat()
    report = run(cast.admin, write_csv(tmp_path, [["Future", "won", later]], header))
    assert errors(report) == {2: [("Closed", "A closing date cannot be in the future.")]}


def test_without_a_creation_date_a_closed_row_was_created_when_it_closed(cast, tmp_path):
    header = ["Title", "Status", "Closed"]
    run(cast.admin, write_csv(tmp_path, [["Old win", "won", "2024-06-30"]], header))
    opp = Opportunity.objects.get()
    assert (
        opp.created_at
        == opp.closed_at
        == datetime(2024, 6, 30, tzinfo=timezone.get_current_timezone())
    )


def test_an_imported_opportunity_gets_the_same_created_event_as_opportunity_create(cast, tmp_path):
    TagFactory(name="Horeca")
    step = cast.pipeline.steps.get(name="Qualified")
    by_service = opportunity_create(
        actor=cast.admin,
        title="Same",
        pipeline=cast.pipeline,
        step=step,
        owner=cast.owner,
        amount=123456,
        expected_close_date=date(2027, 1, 31),
        tags=["Horeca"],
    )
    header = ["Title", "Pipeline", "Step", "Owner", "Amount", "Expected close date", "Tags"]
    rows = [["Same", "Sales", "Qualified", "owner", "1234.56", "2027-01-31", "Horeca"]]
    run(cast.admin, write_csv(tmp_path, rows, header))
    by_import = Opportunity.objects.exclude(pk=by_service.pk).get()
    expected = by_service.events.get(kind=EventKind.CREATED)
    got = by_import.events.get(kind=EventKind.CREATED)
    assert (got.data, got.changes, got.actor_id) == (
        expected.data,
        expected.changes,
        expected.actor_id,
    )
    for name in (
        "title",
        "owner_id",
        "pipeline_id",
        "step_id",
        "status",
        "amount",
        "probability",
        "probability_is_manual",
        "expected_close_date",
        "fields",
        "version",
    ):
        assert getattr(by_import, name) == getattr(by_service, name), name


def test_every_event_and_new_client_is_announced_after_commit(
    cast, tmp_path, django_capture_on_commit_callbacks
):
    heard = []

    def listen(sender, *, kind, object_id, data, **kwargs):
        heard.append((kind, object_id, data.get("event_id")))

    change_announced.connect(listen, dispatch_uid="test-import-listen")
    try:
        header = ["Title", "Client", "Status", "Closed"]
        rows = [["Open", "New Client", "", ""], ["Cancelled", "", "cancelled", "2025-01-01"]]
        with django_capture_on_commit_callbacks(execute=True):
            run(cast.admin, write_csv(tmp_path, rows, header))
    finally:
        change_announced.disconnect(dispatch_uid="test-import-listen")
    events = {e.pk: e for e in OpportunityEvent.objects.all()}
    opportunity_kinds = sorted(kind for kind, _pk, event_id in heard if event_id in events)
    assert opportunity_kinds == [
        "opportunity.cancelled",
        "opportunity.created",
        "opportunity.created",
    ]
    assert all(events[event_id].opportunity_id == pk for _k, pk, event_id in heard if event_id)
    client = Client.objects.get(name="New Client")
    assert ("client.created", client.pk, None) in heard


def test_search_finds_the_imported_opportunities(
    cast, tmp_path, django_capture_on_commit_callbacks
):
    header = ["Title", "Description", "Client"]
    rows = [["Zanzibar expansion", "Met at the fair", "Pemba Traders"]]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run(cast.admin, write_csv(tmp_path, rows, header))
        assert not search_everything(user=cast.admin, text="zanzibar").titles
    # The index is refreshed once after the commit, not once per imported row or event.
    flushes = [
        c
        for c in callbacks
        if getattr(getattr(c, "__self__", None), "flush", None) is search._search_index_flush
    ]
    assert len(flushes) == 1
    assert [c.name for c in search_everything(user=cast.admin, text="pemba").clients] == [
        "Pemba Traders"
    ]
    found = search_everything(user=cast.admin, text="zanzibar")
    assert [hit.title for hit in found.titles] == ["Zanzibar expansion"]


@pytest.mark.django_db(transaction=True)
def test_a_committed_import_is_searchable_and_in_the_funnel_once_the_import_returns(tmp_path):
    """With real commits (as the command line and the background task make them), the
    derived rows of every batch are there when the import returns."""
    cast = make_cast()
    header = ["External id", "Title", "Description", "Client"]
    rows = [[f"Z-{n}", f"Zanzibar {n}", "Met at the fair", "Pemba Traders"] for n in range(45)]
    report, _columns = import_file(
        actor=cast.admin,
        path=write_csv(tmp_path, rows, header),
        options=ImportOptions(),
        batch_size=10,
    )
    assert report.count("created") == 45
    found = search_everything(user=cast.admin, text="zanzibar", limit=100)
    assert len(found.titles) == 45
    imported_ids = set(
        Opportunity.objects.filter(external_id__startswith="Z-").values_list("pk", flat=True)
    )
    assert set(StepVisit.objects.values_list("opportunity_id", flat=True)) >= imported_ids


def test_contacts_from_their_columns_and_default_fields_from_their_labels(cast, tmp_path):
    FieldDefinitionFactory(label="Budget", key="budget", kind=FieldKind.NUMBER)
    header = ["Title", "Budget", "Contact 1 name", "Contact 1 email", "Contact 2 name"]
    rows = [
        ["Good", "1.234,5", "Anna Rossi", "anna@example.com", "Bo"],
        ["Bad", "lots", "", "nobody@example.com", ""],
    ]
    report = run(cast.admin, write_csv(tmp_path, rows, header))
    assert actions(report) == [(2, "created"), (3, "rejected")]
    good = Opportunity.objects.get()
    assert good.fields == {"budget": "1234.5"}
    assert list(good.contacts.values_list("position", "name", "email")) == [
        (0, "Anna Rossi", "anna@example.com"),
        (1, "Bo", ""),
    ]
    bad = dict(errors(report)[3])
    assert "Enter a number" in bad["Budget"]
    assert bad["Contact 1 name"] == "A contact needs a name."


def test_a_nocrm_text_column_gives_fields_then_the_description(cast, tmp_path):
    FieldDefinitionFactory(label="Budget", key="budget", kind=FieldKind.NUMBER)
    FieldDefinitionFactory(label="Source", key="source")
    text = "Budget: 1.500,50\nSource: Fair\nColour: blue\n---\nCall back in May.\nSecond line."
    path = write_csv(tmp_path, [["Noted", text]], ["Title", "Notes"])
    report = run(cast.admin, path, mapping=["title", TEXT])
    assert actions(report) == [(2, "created")]
    opp = Opportunity.objects.get()
    assert opp.fields == {"budget": "1500.5", "source": "Fair"}
    # A line of no known field is kept, on top of the description.
    assert opp.description == "Colour: blue\nCall back in May.\nSecond line."


def test_an_external_id_twice_in_one_file_rejects_the_second_row(cast, tmp_path):
    rows = [["D-1", "First", "", "", "", "1"], ["D-1", "Second", "", "", "", "2"]]
    report = run(cast.admin, write_csv(tmp_path, rows))
    assert actions(report) == [(2, "created"), (3, "rejected")]
    assert errors(report)[3] == [("External id", "Row 2 has the same external id.")]


def test_text_neutralised_by_an_export_reads_back_as_it_was(cast, tmp_path):
    rows = [
        ["F-1", "'=SUM(A1)", "", "", "", "'-5"],
        ["F-2", "''=still quoted", "", "", "", "1"],
    ]
    report = run(cast.admin, write_csv(tmp_path, rows))
    assert errors(report)[2] == [("Amount", "An amount must be zero or more.")]
    assert imported("F-2").title == "'=still quoted"


# All or nothing, dry runs, re-imports -------------------------------------------------------


def test_a_dry_run_reports_row_by_row_and_writes_nothing(cast, tmp_path):
    existing = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, external_id="E-1")
    before = (
        Opportunity.objects.count(),
        OpportunityEvent.objects.count(),
        Client.objects.count(),
        Tag.objects.count(),
    )
    header = [*HEADER, "Tags"]
    rows = [
        ["E-1", "Renamed", "", "owner", "Lead", "1", ""],
        ["N-1", "New", "New Client", "owner", "Lead", "2", "fresh"],
        ["N-2", "Also new", "new client", "owner", "Lead", "3", "fresh"],
        ["N-3", "Bad", "", "ghost", "Lead", "4", ""],
    ]
    report = run(cast.admin, write_csv(tmp_path, rows, header), dry_run=True)
    assert actions(report) == [(2, "updated"), (3, "created"), (4, "created"), (5, "rejected")]
    assert report.new_clients == ["New Client"] and report.new_tags == ["fresh"]
    after = (
        Opportunity.objects.count(),
        OpportunityEvent.objects.count(),
        Client.objects.count(),
        Tag.objects.count(),
    )
    assert after == before
    existing.refresh_from_db()
    assert existing.title != "Renamed"


def test_importing_the_same_file_again_changes_nothing(cast, tmp_path):
    LostReasonFactory(name="Price")
    FieldDefinitionFactory(label="Budget", key="budget", kind=FieldKind.NUMBER)
    header = [
        "External id",
        "Title",
        "Client",
        "Owner",
        "Step",
        "Amount",
        "Status",
        "Lost reason",
        "Closed",
        "Tags",
        "Budget",
        "Contact 1 name",
        "Next action",
        "Description",
    ]
    rows = [
        [
            "R-1",
            "Open",
            "Acme",
            "owner",
            "Demo",
            "10",
            "",
            "",
            "",
            "a, b",
            "5",
            "Ann",
            "2030-01-02 10:00",
            "Line\nline",
        ],
        [
            "R-2",
            "Lost",
            "Acme",
            "teammate",
            "Lead",
            "20",
            "lost",
            "Price",
            "2025-01-01",
            "",
            "",
            "",
            "",
            "",
        ],
        [
            "R-3",
            "Won",
            "",
            "owner",
            "Lead",
            "30",
            "won",
            "",
            "2025-02-01 12:00:00",
            "b",
            "",
            "",
            "",
            "",
        ],
    ]
    path = write_csv(tmp_path, rows, header)
    assert run(cast.manager, path).counts()["created"] == 3
    events = OpportunityEvent.objects.count()
    versions = dict(Opportunity.objects.values_list("pk", "version"))
    again = run(cast.manager, path)
    assert actions(again) == [(2, "unchanged"), (3, "unchanged"), (4, "unchanged")]
    assert OpportunityEvent.objects.count() == events
    assert dict(Opportunity.objects.values_list("pk", "version")) == versions
    assert Client.objects.count() == 1


def test_an_update_by_external_id_goes_through_the_services(cast, tmp_path):
    opp = OpportunityFactory(
        owner=cast.owner, pipeline=cast.pipeline, external_id="U-1", amount=100_00
    )
    rows = [["U-1", opp.title, "", "owner", "Qualified", "250"]]
    report = run(cast.manager, write_csv(tmp_path, rows))
    assert actions(report) == [(2, "updated")]
    opp.refresh_from_db()
    assert (opp.amount, opp.step.name, opp.probability) == (250_00, "Qualified", 25)
    kinds = list(opp.events.values_list("kind", "changes"))
    assert (EventKind.UPDATED, {"amount": [100_00, 250_00]}) in kinds
    assert any(kind == EventKind.MOVED for kind, _changes in kinds)


def test_an_update_can_close_reopen_and_park_through_the_services(cast, tmp_path):
    make = {"owner": cast.owner, "pipeline": cast.pipeline}
    to_win = OpportunityFactory(**make, external_id="S-1", amount=10_00)
    won = OpportunityFactory(
        **make, external_id="S-2", status="won", won_amount=5_00, closed_at=timezone.now()
    )
    to_park = OpportunityFactory(**make, external_id="S-3")
    until = timezone.localdate() + timedelta(days=10)
    header = ["External id", "Status", "Closed", "Next action"]
    rows = [
        ["S-1", "Won", "2025-06-01", ""],
        ["S-2", "To do", "", "2030-01-01 10:00"],
        ["S-3", "standby", "", until.isoformat()],
    ]
    report = run(cast.manager, write_csv(tmp_path, rows, header))
    assert actions(report) == [(2, "updated"), (3, "updated"), (4, "updated")]
    for opp in (to_win, won, to_park):
        opp.refresh_from_db()
    assert (to_win.status, to_win.won_amount) == (Status.WON, 10_00)
    assert to_win.events.filter(kind=EventKind.WON).exists()
    assert won.status == Status.TODO and won.won_amount is None
    assert won.events.filter(kind=EventKind.REOPENED).exists()
    assert to_park.status == Status.STANDBY
    assert timezone.localdate(to_park.next_action_at) == until
    assert run(cast.manager, write_csv(tmp_path, rows, header)).counts()["unchanged"] == 3


def test_an_update_syncs_tags_adds_missing_contacts_and_changes_client_folder(cast, tmp_path):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, external_id="G-1")
    opp.tags.add(TagFactory(name="old"))
    Contact.objects.create(opportunity=opp, name="Anna", position=0)
    header = ["External id", "Tags", "Contact 1 name", "Contact 2 name", "Client"]
    rows = [["G-1", "new, NEW", "anna", "Bo", "Fresh Folder"]]
    report = run(cast.manager, write_csv(tmp_path, rows, header))
    assert actions(report) == [(2, "updated")]
    opp.refresh_from_db()
    assert [t.name for t in opp.tags.all()] == ["new"]
    assert list(opp.contacts.values_list("name", flat=True)) == ["Anna", "Bo"]
    assert opp.client.name == "Fresh Folder"
    kinds = set(opp.events.values_list("kind", flat=True))
    assert {EventKind.TAG_ADDED, EventKind.TAG_REMOVED, EventKind.CONTACT_ADDED} <= kinds
    assert EventKind.UPDATED in kinds
    again = run(cast.manager, write_csv(tmp_path, rows, header))
    assert actions(again) == [(2, "unchanged")]
    assert Client.objects.filter(name="Fresh Folder").count() == 1


def test_an_update_of_an_opportunity_the_importer_cannot_change_is_rejected(cast, tmp_path):
    theirs = OpportunityFactory(owner=cast.other, pipeline=cast.pipeline, external_id="T-1")
    rows = [["T-1", "Taken over", "", "", "", "1"]]
    report = run(cast.manager, write_csv(tmp_path, rows))
    assert errors(report) == {
        2: [("External id", "This external id belongs to an opportunity you cannot change.")]
    }
    theirs.refresh_from_db()
    assert theirs.title != "Taken over"
    assert Opportunity.objects.count() == 1


def test_a_row_the_database_refuses_leaves_nothing_and_the_others_are_kept(
    cast, tmp_path, monkeypatch
):
    real = import_services._write_creates

    def refuse_poison(plans, ctx, now):
        if any(plan.title == "Poison" for plan in plans):
            # Half written, then refused: the savepoint must take it all back.
            real(plans, ctx, now)
            raise DatabaseError("refused")
        return real(plans, ctx, now)

    monkeypatch.setattr(import_services, "_write_creates", refuse_poison)
    header = ["Title", "Client", "Tags"]
    rows = [
        ["Fine", "Kept Client", "kept"],
        ["Poison", "Poison Client", "poison"],
        ["Fine too", "", ""],
    ]
    report = run(cast.admin, write_csv(tmp_path, rows, header))
    assert actions(report) == [(2, "created"), (3, "rejected"), (4, "created")]
    assert errors(report)[3] == [("", "refused")]
    assert sorted(Opportunity.objects.values_list("title", flat=True)) == ["Fine", "Fine too"]
    assert not Client.objects.filter(name="Poison Client").exists()
    assert not Tag.objects.filter(name="poison").exists()
    assert Client.objects.filter(name="Kept Client").count() == 1
    assert report.new_clients == ["Kept Client"] and report.new_tags == ["kept"]
    assert not Contact.objects.exists()
    assert OpportunityEvent.objects.count() == 2


def test_the_same_batch_service_takes_rows_directly(cast):
    rows = [
        ImportRow(number=1, given=frozenset({"title", "amount"}), title="Direct", amount=5),
        ImportRow(number=2, given=frozenset({"title"}), title=""),
    ]
    report = opportunity_import_batch(actor=cast.admin, rows=rows)
    assert actions(report) == [(1, "created"), (2, "rejected")]
    assert report.rows[1].errors == [("title", "An opportunity needs a title.")]


# Client folders ---------------------------------------------------------------------------


def test_client_folders_are_created_updated_or_left_as_they_are(cast, tmp_path):
    ClientFactory(name="Acme", city="Milano", external_id="")
    header = ["External id", "Name", "City", "Email"]
    rows = [
        ["", "acme", "Torino", ""],
        ["K-1", "Brand New", "Roma", "info@brand.example"],
        ["", "Broken", "", "not an email"],
    ]
    path = write_csv(tmp_path, rows, header)
    dry = run(cast.admin, path, kind="clients", dry_run=True)
    assert actions(dry) == [(2, "updated"), (3, "created"), (4, "rejected")]
    assert Client.objects.count() == 1
    report = run(cast.admin, path, kind="clients")
    assert actions(report) == [(2, "updated"), (3, "created"), (4, "rejected")]
    assert Client.objects.get(name="Acme").city == "Torino"
    assert Client.objects.get(external_id="K-1").email == "info@brand.example"
    assert errors(report)[4][0][0] == "Email"
    again = run(cast.admin, path, kind="clients")
    assert actions(again)[:2] == [(2, "unchanged"), (3, "unchanged")]


def test_only_admins_and_managers_import_client_folders(cast):
    with pytest.raises(PermissionDenied):
        client_import_batch(actor=cast.owner, rows=[ClientRow(number=2, values={"name": "X"})])


# The web pages ------------------------------------------------------------------------------

START = reverse("integrations:import")


def upload(browser, path, **data):
    with path.open("rb") as file:
        return browser.post(
            START, {"file": file, "kind": "opportunities", "encoding": "auto", **data}
        )


def token_of(response):
    return re.search(r"/integrations/import/([\w-]+)/", response.url).group(1)


@pytest.fixture
def manager(client, cast):
    client.force_login(cast.manager)
    return client


def test_url_names_and_paths():
    assert START == "/integrations/import/"
    assert (
        reverse("integrations:import_mapping", args=["t" * 32])
        == f"/integrations/import/{'t' * 32}/"
    )


def test_anonymous_is_sent_to_log_in(client):
    for url in (START, reverse("integrations:import_mapping", args=["x" * 32])):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_a_salesperson_gets_403_on_every_import_page(client, cast, tmp_path):
    client.force_login(cast.manager)
    token = token_of(upload(client, write_csv(tmp_path, [["A", "B", "", "", "", "1"]])))
    client.force_login(cast.owner)
    assert client.get(START).status_code == 403
    assert client.get(reverse("integrations:import_mapping", args=[token])).status_code == 403
    assert client.post(reverse("integrations:import_run", args=[token])).status_code == 403
    assert not Opportunity.objects.exists()


def test_someone_elses_upload_answers_404(client, cast, tmp_path):
    client.force_login(cast.manager)
    token = token_of(upload(client, write_csv(tmp_path, [["A", "B", "", "", "", "1"]])))
    client.force_login(cast.admin)
    assert client.get(reverse("integrations:import_mapping", args=[token])).status_code == 404
    assert client.post(reverse("integrations:import_run", args=[token])).status_code == 404


def test_upload_then_mapping_then_dry_run_then_import(manager, cast, tmp_path):
    rows = [
        ["W-1", "<script>alert(1)</script>", "Acme", "owner", "Lead", "1.234,56"],
        ["W-2", "Bad owner", "", "ghost", "Lead", "1"],
    ]
    response = upload(manager, write_csv(tmp_path, rows, encoding="cp1252", delimiter=";"))
    assert response.status_code == 302
    mapping_url = response.url
    page = manager.get(mapping_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<option value="amount" selected>' in html
    assert "1.234,56" in html  # a sample value
    data = {
        f"column_{i}": target
        for i, target in enumerate(["external_id", "title", "client", "owner", "step", "amount"])
    }
    checked = manager.post(mapping_url, data)
    html = checked.content.decode()
    assert checked.status_code == 200
    assert "Check: what an import would do" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "No user is called ghost." in html
    assert not Opportunity.objects.exists() and not Client.objects.exists()
    token = token_of(response)
    done = manager.post(reverse("integrations:import_run", args=[token]))
    assert done.status_code == 200
    assert "Imported" in done.content.decode()
    assert imported("W-1").amount == 123456
    # The upload is gone once imported.
    assert manager.get(mapping_url).status_code == 404
    assert not list((tmp_path / "data" / "imports").glob("*.upload"))


def test_a_mapping_without_a_title_or_with_a_column_twice_is_refused(manager, tmp_path):
    response = upload(manager, write_csv(tmp_path, [["A", "B", "", "", "", "1"]]))
    both = {f"column_{i}": "" for i in range(6)}
    refused = manager.post(response.url, {**both, "column_0": "amount", "column_5": "amount"})
    assert refused.status_code == 422
    assert "Two columns go to Amount" in refused.content.decode()
    refused = manager.post(response.url, both)
    assert refused.status_code == 422
    assert "Map a column to the title." in refused.content.decode()


def test_an_unreadable_file_is_refused_on_the_upload_form(manager, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\n\n")
    response = upload(manager, path)
    assert response.status_code == 422
    assert "This file cannot be read" in response.content.decode()


def test_uploading_needs_a_csrf_token(cast, tmp_path):
    browser = Browser(enforce_csrf_checks=True)
    browser.force_login(cast.manager)
    assert upload(browser, write_csv(tmp_path, [["A", "B", "", "", "", "1"]])).status_code == 403
    assert not list((tmp_path / "data").glob("imports/*"))


@pytest.mark.parametrize("rows", [1, 30])
def test_the_mapping_page_runs_a_constant_number_of_queries(
    manager, tmp_path, rows, django_assert_num_queries
):
    lines = [[f"Q-{n}", f"Row {n}", "", "", "", "1"] for n in range(rows)]
    response = upload(manager, write_csv(tmp_path, lines))
    # session, user, default fields, the to-do badge in the navigation
    with django_assert_num_queries(4):
        assert manager.get(response.url).status_code == 200


def big_file(tmp_path, count=4000):
    lines = [[f"B-{n}", f"Big row {n} " + "x" * 60, "", "owner", "Lead", "1"] for n in range(count)]
    return write_csv(tmp_path, lines)


def test_a_big_file_runs_in_a_background_task_and_the_page_follows_it(
    manager, cast, tmp_path, settings
):
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    response = upload(manager, big_file(tmp_path))
    token = token_of(response)
    queued = manager.post(
        response.url,
        {
            f"column_{i}": t
            for i, t in enumerate(["external_id", "title", "client", "owner", "step", "amount"])
        },
    )
    status_url = reverse("integrations:import_status", args=[token])
    assert queued.status_code == 302 and queued.url == status_url
    waiting = manager.get(status_url)
    assert "Checking the file" in waiting.content.decode()
    assert f'hx-get="{status_url}"' in waiting.content.decode()
    partial = manager.get(status_url, headers={"HX-Request": "true"})
    assert "<html" not in partial.content.decode() and "<progress" in partial.content.decode()
    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test",
        excluded_queue_names=[],
    )
    worker.run_task(DBTaskResult.objects.get())
    done = manager.get(status_url, headers={"HX-Request": "true"})
    assert "Check: what an import would do" in done.content.decode()
    assert "4000" in done.content.decode()
    assert Upload.load(token, cast.manager).progress() == (4000, 4000)
    assert not Opportunity.objects.exists()


def test_with_a_backend_that_runs_at_once_a_big_file_is_reported_straight_away(manager, tmp_path):
    response = upload(manager, big_file(tmp_path))
    checked = manager.post(
        response.url,
        {
            f"column_{i}": t
            for i, t in enumerate(["external_id", "title", "client", "owner", "step", "amount"])
        },
    )
    assert checked.status_code == 200
    assert "Check: what an import would do" in checked.content.decode()
    done = manager.post(reverse("integrations:import_run", args=[token_of(response)]))
    assert done.status_code == 200
    assert Opportunity.objects.count() == 4000


def test_the_opportunity_list_links_to_import_and_export_for_managers(client, cast):
    client.force_login(cast.manager)
    html = client.get(reverse("sales:opportunity_list"), {"status": "won"}).content.decode()
    assert f'href="{START}"' in html
    assert "/integrations/export/?format=csv&amp;status=won" in html
    client.force_login(cast.owner)
    html = client.get(reverse("sales:opportunity_list")).content.decode()
    assert f'href="{START}"' not in html
    assert "/integrations/export/?format=csv" in html


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own statistics")
def test_a_big_import_refreshes_the_planner_statistics_as_the_tables_grow(cast, tmp_path):
    """Statistics taken while the log was small would make SQLite scan the whole log to
    refresh each batch's derived rows: the import refreshes them after its first batch and
    at each doubling."""
    OpportunityFactory()
    refresh_planner_statistics()
    before = stat_rows("sales_opportunityevent") or 0
    rows = [[f"X-{n}", f"Deal {n}", "", "", "", "100"] for n in range(60)]
    report, _columns = import_file(
        actor=cast.admin, path=write_csv(tmp_path, rows), options=ImportOptions(), batch_size=20
    )
    assert report.count("created") == 60
    # Refreshed after the batches that reached 20 and 40 created: the last one (60) waits
    # for 80.
    assert stat_rows("sales_opportunityevent") == before + 40
