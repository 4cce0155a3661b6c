from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from opportuna.sales.fieldtext import ParsedText, clean_field_values, parse_text, render_text
from opportuna.sales.models import FieldDefinition, FieldKind

# No example database: the tests must not leave files in the working tree.
no_example_db = settings(database=None)


def field(
    key: str,
    *,
    label: str | None = None,
    kind: str = FieldKind.TEXT,
    choices: list[str] | None = None,
    required: bool = False,
    position: int = 0,
    is_active: bool = True,
) -> FieldDefinition:
    return FieldDefinition(
        key=key,
        label=label if label is not None else key.replace("_", " ").capitalize(),
        kind=kind,
        choices=choices or [],
        required=required,
        position=position,
        is_active=is_active,
    )


def clean_one(kind, value, **options):
    """Clean a single value of a kind; None when it was dropped as empty."""
    cleaned = clean_field_values({"f": value}, [field("f", kind=kind, **options)])
    return cleaned.get("f")


def error_codes(kind, value, **options):
    with pytest.raises(ValidationError) as caught:
        clean_one(kind, value, **options)
    return [error.code for error in caught.value.error_dict["f"]]


# --- cleaning: text ---


def test_text_is_stripped():
    assert clean_one(FieldKind.TEXT, "  Anna Rossi \t") == "Anna Rossi"


def test_text_line_breaks_become_spaces():
    assert clean_one(FieldKind.TEXT, "first\r\nsecond\nthird") == "first second third"


def test_text_of_1000_characters_is_accepted():
    assert clean_one(FieldKind.TEXT, "x" * 1000) == "x" * 1000


def test_text_over_1000_characters_is_rejected():
    assert error_codes(FieldKind.TEXT, "x" * 1001) == ["too_long"]


def test_empty_value_is_dropped():
    assert clean_field_values(
        {"a": "  ", "b": None, "c": "kept"}, [field("a"), field("b"), field("c")]
    ) == {"c": "kept"}


def test_result_follows_definition_position():
    definitions = [field("late", position=2), field("early", position=1)]
    cleaned = clean_field_values({"late": "2", "early": "1"}, definitions)
    assert list(cleaned) == ["early", "late"]


# --- cleaning: email ---


def test_email_domain_is_lower_cased_and_local_part_kept():
    assert clean_one(FieldKind.EMAIL, " Anna.Rossi@Example.IT ") == "Anna.Rossi@example.it"


@pytest.mark.parametrize("value", ["anna", "anna@", "@example.it", "anna@@example.it", "a b@x.it"])
def test_invalid_email_is_rejected(value):
    assert error_codes(FieldKind.EMAIL, value) == ["invalid_email"]


# --- cleaning: phone ---


@pytest.mark.parametrize("value", ["+39 (02) 123-45.67", "02/1234567", "12345"])
def test_phone_with_digits_and_separators_is_kept(value):
    assert clean_one(FieldKind.PHONE, value) == value


def test_phone_with_letters_is_rejected():
    assert error_codes(FieldKind.PHONE, "02 1234 ext 5") == ["invalid_phone"]


def test_phone_with_fewer_than_five_digits_is_rejected():
    assert error_codes(FieldKind.PHONE, "+(12) 34") == ["invalid_phone"]


def test_phone_with_non_ascii_digits_is_rejected():
    assert error_codes(FieldKind.PHONE, "١٢٣٤٥٦") == ["invalid_phone"]


# --- cleaning: url ---


def test_url_without_scheme_gets_https():
    assert clean_one(FieldKind.URL, "www.example.it/offerta") == "https://www.example.it/offerta"


def test_url_with_port_and_no_scheme_gets_https():
    assert clean_one(FieldKind.URL, "example.it:8080/x") == "https://example.it:8080/x"


def test_url_with_scheme_is_kept():
    assert clean_one(FieldKind.URL, "http://example.it") == "http://example.it"


@pytest.mark.parametrize("value", ["not a url", "example", "javascript://alert(1)"])
def test_invalid_url_is_rejected(value):
    assert error_codes(FieldKind.URL, value) == ["invalid_url"]


# --- cleaning: number ---


@pytest.mark.parametrize(
    ("value", "stored"),
    [("1.234,56", "1234.56"), ("1.234.567", "1234567"), ("1234,5", "1234.5"), ("0,123", "0.123")],
)
def test_number_accepts_italian_format(value, stored):
    assert clean_one(FieldKind.NUMBER, value) == stored


@pytest.mark.parametrize(
    ("value", "stored"),
    [("1,234.56", "1234.56"), ("1,234,567", "1234567"), ("-1,000.5", "-1000.5")],
)
def test_number_accepts_english_format(value, stored):
    assert clean_one(FieldKind.NUMBER, value) == stored


@pytest.mark.parametrize(("value", "stored"), [("1234.5", "1234.5"), ("-12", "-12"), ("+7", "7")])
def test_number_accepts_plain_format(value, stored):
    assert clean_one(FieldKind.NUMBER, value) == stored


@pytest.mark.parametrize(
    ("value", "stored"),
    [("1.50", "1.5"), ("2.00", "2"), ("100", "100"), ("007", "7"), ("-0,0", "0")],
)
def test_number_is_stored_without_leading_or_trailing_zeros(value, stored):
    assert clean_one(FieldKind.NUMBER, value) == stored


def test_number_lone_dot_is_a_decimal_point():
    assert clean_one(FieldKind.NUMBER, "1.234") == "1.234"


@pytest.mark.parametrize("value", ["1,234", "12,345", "-999,000"])
def test_number_lone_comma_before_three_digits_is_ambiguous(value):
    assert error_codes(FieldKind.NUMBER, value) == ["ambiguous_number"]


@pytest.mark.parametrize(
    "value", ["abc", "1e5", "1.23.456", "1,234,56", "1.234,567.8", "1 234", "12.", ",5", "--1"]
)
def test_number_malformed_is_rejected(value):
    assert error_codes(FieldKind.NUMBER, value) == ["invalid_number"]


def test_number_from_a_decimal_object_has_no_exponent():
    assert clean_one(FieldKind.NUMBER, Decimal("1E+3")) == "1000"


def test_number_keeps_more_digits_than_the_decimal_context():
    value = "1234567890123456789012345678901234.5"
    assert clean_one(FieldKind.NUMBER, value) == value


@no_example_db
@given(st.decimals(min_value=-(10**12), max_value=10**12, places=2))
def test_number_italian_and_english_spellings_store_the_same_value(number):
    english = f"{number:,.2f}"
    italian = english.replace(",", " ").replace(".", ",").replace(" ", ".")
    stored = clean_one(FieldKind.NUMBER, english)
    assert clean_one(FieldKind.NUMBER, italian) == stored
    assert Decimal(stored) == number


@no_example_db
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_number_cleaning_a_stored_number_changes_nothing(number):
    stored = clean_one(FieldKind.NUMBER, number)
    assert clean_one(FieldKind.NUMBER, stored) == stored
    assert Decimal(stored) == number


# --- cleaning: date ---


def test_date_accepts_iso():
    assert clean_one(FieldKind.DATE, "2024-04-03") == "2024-04-03"


@pytest.mark.parametrize("value", ["03/04/2024", "3/4/2024"])
def test_date_accepts_italian_day_first(value):
    assert clean_one(FieldKind.DATE, value) == "2024-04-03"


def test_date_accepts_a_date_object():
    assert clean_one(FieldKind.DATE, date(2024, 4, 3)) == "2024-04-03"


@pytest.mark.parametrize(
    "value", ["31/02/2024", "2024-13-01", "03-04-2024", "20240403", "2024-W14-3", "yesterday"]
)
def test_date_invalid_is_rejected(value):
    assert error_codes(FieldKind.DATE, value) == ["invalid_date"]


# --- cleaning: choice ---


def test_choice_matches_ignoring_case_and_stores_canonical_spelling():
    assert clean_one(FieldKind.CHOICE, " media AGENCY ", choices=["Direct", "Media agency"]) == (
        "Media agency"
    )


def test_choice_not_in_list_is_rejected():
    assert error_codes(FieldKind.CHOICE, "Partner", choices=["Direct", "Media agency"]) == [
        "invalid_choice"
    ]


def test_choice_error_lists_the_choices():
    with pytest.raises(ValidationError) as caught:
        clean_one(FieldKind.CHOICE, "Partner", choices=["Direct", "Media agency"])
    assert "Direct, Media agency" in caught.value.message_dict["f"][0]


# --- cleaning: required, unknown, inactive, all errors ---


@pytest.mark.parametrize("values", [{}, {"name": ""}, {"name": " \n "}, {"name": None}])
def test_required_field_missing_or_empty_is_rejected(values):
    with pytest.raises(ValidationError) as caught:
        clean_field_values(values, [field("name", required=True)])
    assert [error.code for error in caught.value.error_dict["name"]] == ["required"]


def test_unknown_key_is_rejected():
    with pytest.raises(ValidationError) as caught:
        clean_field_values({"name": "Anna", "fax": "0212345"}, [field("name")])
    assert list(caught.value.error_dict) == ["fax"]
    assert caught.value.error_dict["fax"][0].code == "unknown"


def test_inactive_field_value_is_accepted_as_text():
    old_email = field("old_email", kind=FieldKind.EMAIL, is_active=False)
    assert clean_field_values({"old_email": " not an email "}, [old_email]) == {
        "old_email": "not an email"
    }


def test_inactive_required_field_may_be_missing():
    assert clean_field_values({}, [field("gone", required=True, is_active=False)]) == {}


def test_every_bad_field_is_reported_at_once():
    definitions = [
        field("email", kind=FieldKind.EMAIL),
        field("budget", kind=FieldKind.NUMBER),
        field("close", kind=FieldKind.DATE),
        field("name", required=True),
        field("note"),
    ]
    values = {"email": "x", "budget": "many", "close": "soon", "note": "fine", "fax": "1"}
    with pytest.raises(ValidationError) as caught:
        clean_field_values(values, definitions)
    assert caught.value.message_dict.keys() == {"email", "budget", "close", "name", "fax"}


def test_error_messages_are_plain_strings_with_parameters_filled_in():
    with pytest.raises(ValidationError) as caught:
        clean_field_values({"note": "x" * 1001}, [field("note")])
    assert caught.value.message_dict == {"note": ["Enter at most 1000 characters (it has 1001)."]}


# --- text form: rendering ---

CONTACT = field("contact_name", label="Contact name", position=1)
BUDGET = field("budget", label="Budget", kind=FieldKind.NUMBER, position=2)
WEBSITE = field("website", label="Website", kind=FieldKind.URL, position=3)
DEFINITIONS = [WEBSITE, BUDGET, CONTACT]


def test_render_lists_fields_by_position_then_separator_then_description():
    text = render_text(
        fields={"website": "https://a.it", "contact_name": "Anna"},
        description="Met at the fair.",
        definitions=DEFINITIONS,
    )
    assert text == "Contact name: Anna\nWebsite: https://a.it\n---\nMet at the fair."


def test_render_leaves_out_empty_values():
    text = render_text(
        fields={"contact_name": "", "budget": "  "}, description="d", definitions=DEFINITIONS
    )
    assert text == "---\nd"


def test_render_turns_line_breaks_in_a_value_into_spaces():
    text = render_text(
        fields={"contact_name": "Anna\r\nRossi"}, description="", definitions=DEFINITIONS
    )
    assert text == "Contact name: Anna Rossi\n---\n"


def test_render_shows_a_value_of_no_definition_under_its_key():
    text = render_text(fields={"fax": "0212345"}, description="", definitions=DEFINITIONS)
    assert text == "fax: 0212345\n---\n"


# --- text form: parsing ---


def test_parse_splits_fields_and_description():
    parsed = parse_text("Contact name: Anna\nBudget: 1.234,5\n---\nMet at the fair.", DEFINITIONS)
    assert parsed == ParsedText(
        fields={"contact_name": "Anna", "budget": "1.234,5"},
        description="Met at the fair.",
        unknown=[],
    )


def test_parse_matches_labels_ignoring_case_and_surrounding_spaces():
    parsed = parse_text("  CONTACT NAME  :  Anna \n---\n", DEFINITIONS)
    assert parsed.fields == {"contact_name": "Anna"}


def test_parse_accepts_the_key_as_label():
    parsed = parse_text("contact_name: Anna\n---\n", DEFINITIONS)
    assert parsed.fields == {"contact_name": "Anna"}


def test_parse_prefers_a_label_over_another_fields_key():
    definitions = [field("budget", label="Amount"), field("amount_note", label="Budget")]
    parsed = parse_text("Budget: high\n---\n", definitions)
    assert parsed.fields == {"amount_note": "high"}


def test_parse_splits_on_the_first_colon_only():
    parsed = parse_text("Website: https://a.it:8080/x\n---\n", DEFINITIONS)
    assert parsed.fields == {"website": "https://a.it:8080/x"}


def test_parse_handles_windows_line_endings():
    parsed = parse_text(
        "Contact name: Anna\r\nBudget: 5\r\n---\r\nline one\r\nline two", DEFINITIONS
    )
    assert parsed.fields == {"contact_name": "Anna", "budget": "5"}
    assert parsed.description == "line one\r\nline two"


def test_parse_only_the_first_separator_splits():
    parsed = parse_text("Budget: 5\n---\nabove\n---\nbelow\n", DEFINITIONS)
    assert parsed.fields == {"budget": "5"}
    assert parsed.description == "above\n---\nbelow\n"


def test_parse_keeps_blank_lines_at_the_start_of_the_description():
    parsed = parse_text("Budget: 5\n---\n\n\nafter blank lines", DEFINITIONS)
    assert parsed.description == "\n\nafter blank lines"


def test_parse_accepts_a_separator_with_surrounding_spaces():
    parsed = parse_text("Budget: 5\n  ---  \ndescription", DEFINITIONS)
    assert parsed.fields == {"budget": "5"}
    assert parsed.description == "description"


def test_parse_reports_unknown_labels():
    parsed = parse_text("Budget: 5\nFax: 02 1234\n---\n", DEFINITIONS)
    assert parsed.fields == {"budget": "5"}
    assert parsed.unknown == [("Fax", "02 1234")]


def test_parse_reports_lines_that_are_not_label_value_with_an_empty_label():
    parsed = parse_text("Budget: 5\njust a note\n: no label\n\n---\n", DEFINITIONS)
    assert parsed.unknown == [("", "just a note"), ("", ": no label")]


def test_parse_keeps_the_first_of_a_repeated_label_and_reports_the_rest():
    parsed = parse_text("Budget: 5\nbudget: 6\n---\n", DEFINITIONS)
    assert parsed.fields == {"budget": "5"}
    assert parsed.unknown == [("budget", "6")]


def test_parse_keeps_an_empty_value_as_an_empty_string():
    parsed = parse_text("Budget:\n---\n", DEFINITIONS)
    assert parsed.fields == {"budget": ""}


def test_parse_returns_raw_values_without_cleaning_them():
    parsed = parse_text("Budget: lots\nWebsite: a.it\n---\n", DEFINITIONS)
    assert parsed.fields == {"budget": "lots", "website": "a.it"}


def test_parse_without_separator_reads_known_label_lines_as_fields():
    parsed = parse_text("Contact name: Anna\n\nBudget: 5\n", DEFINITIONS)
    assert parsed == ParsedText(
        fields={"contact_name": "Anna", "budget": "5"}, description="", unknown=[]
    )


def test_parse_without_separator_and_an_unknown_label_is_all_description():
    text = "Budget: 5\nNote: call back in May"
    assert parse_text(text, DEFINITIONS) == ParsedText(fields={}, description=text, unknown=[])


def test_parse_without_separator_and_plain_prose_is_all_description():
    text = "Met at the fair.\r\nCall back in May."
    assert parse_text(text, DEFINITIONS) == ParsedText(fields={}, description=text, unknown=[])


def test_parse_without_separator_and_only_blank_lines_is_all_description():
    text = "  \r\n\n"
    assert parse_text(text, DEFINITIONS) == ParsedText(fields={}, description=text, unknown=[])


def test_parse_of_empty_text_is_empty():
    assert parse_text("", DEFINITIONS) == ParsedText(fields={}, description="", unknown=[])


def test_parse_recognises_inactive_definitions():
    definitions = [field("old", label="Old field", is_active=False)]
    assert parse_text("Old field: x\n---\n", definitions).fields == {"old": "x"}


# --- text form: round trip ---

label_text = st.text(
    alphabet=st.characters(categories=("L", "Nd"), include_characters=" "), min_size=1, max_size=15
).filter(lambda label: label.strip())
key_text = st.text(alphabet="abc_", min_size=1, max_size=4)
one_line_value = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20
).map(str.strip)
description_text = st.one_of(
    st.text(),
    st.text(alphabet="-\r\n :ab", max_size=30),
    st.sampled_from(["", "\n", "\n\nafter blanks", "---", "---\n---", " --- \r\nx"]),
)


@st.composite
def definitions_and_fields(draw):
    labels = draw(
        st.lists(label_text, max_size=6, unique_by=lambda label: label.strip().casefold())
    )
    keys = draw(st.lists(key_text, min_size=len(labels), max_size=len(labels), unique=True))
    definitions = [
        field(key, label=label, position=draw(st.integers(0, 3)), is_active=draw(st.booleans()))
        for key, label in zip(keys, labels, strict=True)
    ]
    fields = {
        definition.key: draw(one_line_value) for definition in definitions if draw(st.booleans())
    }
    return definitions, fields


@no_example_db
@given(definitions_and_fields(), description_text)
def test_render_then_parse_gives_back_fields_and_description(definitions_fields, description):
    definitions, fields = definitions_fields
    text = render_text(fields=fields, description=description, definitions=definitions)
    parsed = parse_text(text, definitions)
    assert parsed.fields == {key: value for key, value in fields.items() if value}
    assert parsed.description == description
    assert parsed.unknown == []
