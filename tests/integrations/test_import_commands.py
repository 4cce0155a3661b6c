"""`opportuna import_opportunities` and `opportuna export_opportunities`."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from opportuna.sales.models import Client, Opportunity, OpportunityEvent, Status
from tests.factories import FieldDefinitionFactory, OpportunityFactory, TagFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


def write_csv(tmp_path, header, rows, *, delimiter=",", encoding="utf-8"):
    path = tmp_path / "in.csv"
    with path.open("w", encoding=encoding, newline="") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def command(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


ROWS = [["I-1", "Good", "Acme", "owner", "1.234,56"], ["I-2", "Bad", "", "ghost", "1"]]
HEADER = ["External id", "Title", "Client", "Owner", "Amount"]


def test_a_dry_run_prints_the_summary_and_rejected_rows_and_writes_nothing(cast, tmp_path):
    path = write_csv(tmp_path, HEADER, ROWS)
    out, _err = command(
        "import_opportunities", str(path), "--user", "admin", "--dry-run", "--no-progress"
    )
    assert "row 3: Owner: No user is called ghost." in out
    assert "1 would be created" in out and "1 rejected" in out and "Nothing was written" in out
    assert not Opportunity.objects.exists() and not Client.objects.exists()


def test_an_import_writes_and_shows_a_progress_bar(cast, tmp_path):
    path = write_csv(tmp_path, HEADER, ROWS)
    out, err = command("import_opportunities", str(path), "--user", "manager")
    assert "1 were created" in out and "rows/s" in out
    assert "2/2" in err  # tqdm's bar, on standard error
    opp = Opportunity.objects.get()
    assert (opp.external_id, opp.amount, opp.client.name) == ("I-1", 123456, "Acme")
    again, _err = command("import_opportunities", str(path), "--user", "manager", "--no-progress")
    assert "1 unchanged" in again


def test_map_and_text_column_flags_with_semicolons_in_windows_1252(cast, tmp_path):
    FieldDefinitionFactory(label="Budget", key="budget", kind="number")
    path = write_csv(
        tmp_path,
        ["Nome", "Valore", "Appunti", "Referente"],
        [["Perché no", "2.500,00", "Budget: 7,5\n---\nDescrizione è qui", "Zoë"]],
        delimiter=";",
        encoding="cp1252",
    )
    command(
        "import_opportunities",
        str(path),
        "--user",
        "admin",
        "--no-progress",
        "--delimiter",
        ";",
        "--encoding",
        "cp1252",
        "--map",
        "Nome=title",
        "valore=amount",  # several after one --map, or --map again
        "--map",
        "Referente=contact:1:name",
        "--text-column",
        "Appunti",
    )
    opp = Opportunity.objects.get()
    assert (opp.title, opp.amount, opp.fields) == ("Perché no", 250000, {"budget": "7.5"})
    assert opp.description == "Descrizione è qui"
    assert list(opp.contacts.values_list("name", flat=True)) == ["Zoë"]


def test_bad_flags_and_users_are_command_errors(cast, tmp_path):
    path = write_csv(tmp_path, HEADER, ROWS)
    base = ["import_opportunities", str(path), "--no-progress"]
    with pytest.raises(CommandError, match="No user is called"):
        command(*base, "--user", "nobody")
    with pytest.raises(CommandError, match="Only an admin or a manager can import"):
        command(*base, "--user", "owner")
    with pytest.raises(CommandError, match="no column Missing"):
        command(*base, "--user", "admin", "--map", "Missing=title")
    with pytest.raises(CommandError, match="not a field"):
        command(*base, "--user", "admin", "--map", "Title=colour")
    with pytest.raises(CommandError, match="Map a column to the title"):
        command(*base, "--user", "admin", "--map", "Title=")
    assert not Opportunity.objects.exists()


def test_client_folders_import_from_the_command_line(cast, tmp_path):
    path = write_csv(tmp_path, ["Name", "City"], [["Acme", "Roma"], ["Beta", "Bari"]])
    out, _err = command(
        "import_opportunities", str(path), "--user", "admin", "--clients", "--no-progress"
    )
    assert "2 were created" in out
    assert sorted(Client.objects.values_list("name", "city")) == [
        ("Acme", "Roma"),
        ("Beta", "Bari"),
    ]


def test_list_fields_shows_where_a_column_can_go(cast):
    FieldDefinitionFactory(label="Budget", key="budget")
    out, _err = command("import_opportunities", "unused.csv", "--user", "x", "--list-fields")
    assert "amount" in out and "field:budget" in out and "contact:1:email" in out


def test_export_writes_csv_with_the_lists_filters(cast, tmp_path):
    tag = TagFactory(name="Hot")
    hot = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Hot one")
    hot.tags.add(tag)
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Cold one")
    OpportunityFactory(
        owner=cast.other,
        pipeline=cast.pipeline,
        title="Theirs",
        status=Status.WON,
        won_amount=1,
        closed_at="2025-01-01T00:00:00Z",
    )
    out, _err = command("export_opportunities", "--user", "manager", "--tag", "hot")
    rows = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))
    assert [row["Title"] for row in rows] == ["Hot one"]
    out, _err = command("export_opportunities", "--user", "admin", "--status", "won")
    assert [r["Title"] for r in csv.DictReader(io.StringIO(out.lstrip("\ufeff")))] == ["Theirs"]
    # A manager sees only their team: the other team's won one is not there.
    out, _err = command("export_opportunities", "--user", "manager", "--status", "won")
    assert list(csv.DictReader(io.StringIO(out.lstrip("\ufeff")))) == []


def test_export_xlsx_to_a_file_reads_back_into_the_importer(cast, tmp_path):
    OpportunityFactory(
        owner=cast.owner, pipeline=cast.pipeline, title="=Round", amount=5_00, external_id="Z-1"
    )
    output = tmp_path / "out.xlsx"
    command("export_opportunities", "--user", "admin", "--format", "xlsx", "--output", str(output))
    sheet = load_workbook(output).active
    assert sheet["B2"].value == "'=Round"
    events = OpportunityEvent.objects.count()
    out, _err = command("import_opportunities", str(output), "--user", "admin", "--no-progress")
    assert "1 unchanged" in out
    assert OpportunityEvent.objects.count() == events


def test_export_refuses_unknown_names(cast):
    with pytest.raises(CommandError, match="Pipeline 'Nope': none found"):
        command("export_opportunities", "--user", "admin", "--pipeline", "Nope")
    with pytest.raises(CommandError, match="No active user"):
        command("export_opportunities", "--user", "ghost")
