"""The Italian catalogue: complete, compiled, and used by the pages."""

import ast
import gettext
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from tests.factories import UserFactory

LOCALE = Path(settings.LOCALE_PATHS[0])
PO = LOCALE / "it" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "it" / "LC_MESSAGES" / "django.mo"


@dataclass
class Entry:
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def parse_po(text: str) -> list[Entry]:
    """A small reader for the .po format: enough for makemessages' output."""
    entries: list[Entry] = []
    entry = Entry()
    current: tuple[str, int] | None = None

    def finish() -> None:
        nonlocal entry, current
        if entry.msgstr:
            entries.append(entry)
        entry, current = Entry(), None

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            finish()
        elif line.startswith("#~"):
            continue  # obsolete entries are not part of the catalogue
        elif line.startswith("#,"):
            if entry.msgstr:
                finish()
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            if entry.msgstr:
                finish()
        else:
            keyword, _space, rest = line.partition(" ")
            if keyword.startswith('"'):
                value, rest = ast.literal_eval(line), None
                keyword, index = current  # type: ignore[misc]
            else:
                value = ast.literal_eval(rest)
                match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
                index = int(match.group(1)) if match else 0
                if match:
                    keyword = "msgstr"
                if keyword in ("msgctxt", "msgid") and entry.msgstr:
                    finish()
                current = (keyword, index)
            if keyword == "msgctxt":
                entry.msgctxt = (entry.msgctxt or "") + value
            elif keyword == "msgid":
                entry.msgid += value
            elif keyword == "msgid_plural":
                entry.msgid_plural = (entry.msgid_plural or "") + value
            elif keyword == "msgstr":
                entry.msgstr[index] = entry.msgstr.get(index, "") + value
    finish()
    return entries


@pytest.fixture(autouse=True)
def _back_to_the_default_language():
    # A request leaves its language active in the thread; later tests expect English.
    yield
    translation.deactivate()


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return parse_po(PO.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def catalog() -> gettext.GNUTranslations:
    with MO.open("rb") as handle:
        return gettext.GNUTranslations(handle)


def test_both_catalogue_files_exist():
    assert PO.is_file(), f"{PO} is missing: run `make messages`"
    assert MO.is_file(), f"{MO} is missing: run `make messages` (the .mo is committed)"


def test_po_header_is_italian_utf8_with_two_plural_forms(entries):
    header = next(e for e in entries if e.msgid == "" and e.msgctxt is None).msgstr[0]
    assert "Language: it\n" in header
    assert "charset=UTF-8" in header
    assert "Plural-Forms: nplurals=2; plural=(n != 1);" in header


def test_po_has_no_empty_and_no_fuzzy_translation(entries):
    messages = [e for e in entries if e.msgid]
    assert len(messages) > 500  # the whole UI, not a stub
    empty = [e.msgid for e in messages if not all(e.msgstr.values())]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    plural_gaps = [e.msgid for e in messages if e.msgid_plural and sorted(e.msgstr) != [0, 1]]
    assert not empty, f"untranslated: {empty}"
    assert not fuzzy, f"fuzzy (check, then drop the flag): {fuzzy}"
    assert not plural_gaps, f"plural entries need msgstr[0] and msgstr[1]: {plural_gaps}"


PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd%]|\{\w*\}")


def test_translations_keep_every_placeholder(entries):
    def found(text: str) -> list[str]:
        return sorted(PLACEHOLDER.findall(text))

    wrong = []
    for e in entries:
        if not e.msgid:
            continue
        for index, text in e.msgstr.items():
            source = e.msgid if index == 0 or not e.msgid_plural else e.msgid_plural
            if found(text) != found(source):
                wrong.append((e.msgid, text))
    assert not wrong


def test_mo_holds_every_translation_of_the_po(entries, catalog):
    """The committed .mo is compiled from this .po: recompile after editing the .po."""
    stale = []
    for e in entries:
        if not e.msgid:
            continue
        key = f"{e.msgctxt}\x04{e.msgid}" if e.msgctxt is not None else e.msgid
        if e.msgid_plural:
            for index, text in e.msgstr.items():
                if catalog._catalog.get((key, index)) != text:
                    stale.append(e.msgid)
        elif catalog._catalog.get(key) != e.msgstr[0]:
            stale.append(e.msgid)
    assert not stale, f"django.mo is out of date, run `make messages`: {stale[:10]}"


@pytest.mark.parametrize(
    ("english", "italian"),
    [
        ("To-do", "Da fare"),
        ("Pipeline", "Pipeline"),
        ("Opportunities", "Opportunità"),
        ("Client folders", "Cartelle cliente"),
        ("Won", "Vinta"),
        ("Lost", "Persa"),
        ("Cancelled", "Annullata"),
        ("Lost reason", "Motivazione della perdita"),
        ("Next action", "Prossima azione"),
        ("Default fields", "Campi predefiniti"),
        ("Won amount", "Valore di aggiudicazione"),
        ("Salesperson", "Commerciale"),
    ],
)
def test_key_ui_strings_are_translated(catalog, english, italian):
    assert catalog.gettext(english) == italian


def test_plural_forms_follow_italian(catalog):
    singular, plural = "%(counter)s open opportunity", "%(counter)s open opportunities"
    one = catalog.ngettext(singular, plural, 1) % {"counter": 1}
    many = catalog.ngettext(singular, plural, 3) % {"counter": 3}
    assert one == "1 opportunità aperta"
    assert many == "3 opportunità aperte"


def test_django_uses_the_catalogue():
    with translation.override("it"):
        assert translation.gettext("Client folders") == "Cartelle cliente"
        assert translation.gettext("Log out") == "Esci"


def test_login_page_is_italian_for_an_italian_browser(client):
    response = client.get(reverse("accounts:login"), HTTP_ACCEPT_LANGUAGE="it")
    page = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="it">' in page
    assert "Nome utente" in page
    assert "Accedi" in page
    assert "Username" not in page


@pytest.mark.django_db
def test_pages_follow_the_user_s_language(client):
    user = UserFactory(language="it")
    client.force_login(user)
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Niente da fare per adesso." in page
    assert ">Esci<" in page


@pytest.mark.skipif(
    not (shutil.which("xgettext") and shutil.which("msgmerge")), reason="needs GNU gettext"
)
def test_po_has_every_string_marked_in_the_code(entries, tmp_path, settings, monkeypatch):
    """Strings marked since the last `make messages` are missing from the catalogue."""
    package = LOCALE.parent
    copy = tmp_path / "opportuna"
    shutil.copytree(
        package, copy, ignore=shutil.ignore_patterns("__pycache__", "data", "*.mo", "*.sqlite3")
    )
    settings.LOCALE_PATHS = [copy / "locale"]
    monkeypatch.chdir(copy)
    call_command(
        "makemessages", locale=["it"], ignore_patterns=["migrations"], no_obsolete=True, verbosity=0
    )
    fresh = parse_po((copy / "locale" / "it" / "LC_MESSAGES" / "django.po").read_text("utf-8"))

    def keys(items: list[Entry]) -> set[tuple[str | None, str]]:
        return {(e.msgctxt, e.msgid) for e in items if e.msgid}

    missing = keys(fresh) - keys(entries)
    unused = keys(entries) - keys(fresh)
    assert not missing, f"new strings to translate, run `make messages`: {sorted(missing)}"
    assert not unused, f"strings no longer in the code, run `make messages`: {sorted(unused)}"
