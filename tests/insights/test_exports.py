"""CSV and XLSX downloads: numbers stay numbers, formulas are defused, names and types right."""

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from opportuna.insights.exports import csv_response, safe_cell, xlsx_response

HEADERS = ["Name", "Amount", "Count", "Closed"]


def csv_rows(response):
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")  # the BOM spreadsheets need to read UTF-8
    return list(csv.reader(io.StringIO(text[1:])))


def xlsx_sheet(response):
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return workbook.worksheets[0]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_text_that_would_run_as_a_formula_gets_a_leading_quote(start):
    assert safe_cell(f"{start}HYPERLINK(1)") == f"'{start}HYPERLINK(1)"


def test_plain_text_and_numbers_are_left_alone():
    assert safe_cell("Acme = good") == "Acme = good"
    assert safe_cell(-5) == -5
    assert safe_cell(Decimal("-12.50")) == Decimal("-12.50")
    assert safe_cell(None) is None


def test_csv_download_is_an_attachment_with_the_csv_name():
    response = csv_response([], HEADERS, "forecast")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="forecast.csv"'


def test_csv_defuses_formulas_and_keeps_numbers_as_numbers():
    rows = [["=cmd|' /C calc'!A0", Decimal("-1234.50"), 3, date(2026, 11, 2)]]
    header, row = csv_rows(csv_response(rows, HEADERS, "x.csv"))
    assert header == HEADERS
    assert row == ["'=cmd|' /C calc'!A0", "-1234.50", "3", "2026-11-02"]


def test_csv_defuses_headers_too():
    header, *_ = csv_rows(csv_response([], ["@SUM(A1)"], "x"))
    assert header == ["'@SUM(A1)"]


def test_csv_writes_aware_datetimes_in_the_account_time_zone(settings):
    settings.TIME_ZONE = "Europe/Rome"
    moment = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    _header, row = csv_rows(csv_response([["x", 1, 1, moment]], HEADERS, "x"))
    assert row[3] == "2026-07-01 12:00"


def test_csv_is_streamed_from_the_rows_as_they_come():
    consumed = []

    def rows():
        for n in range(3):
            consumed.append(n)
            yield [f"row {n}", n, n, None]

    response = csv_response(rows(), HEADERS, "x")
    assert consumed == []  # nothing read before the download starts
    assert len(csv_rows(response)) == 4


def test_xlsx_download_is_an_attachment_with_the_xlsx_name_and_type():
    response = xlsx_response([], HEADERS, "forecast")
    assert response["Content-Type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert response["Content-Disposition"] == 'attachment; filename="forecast.xlsx"'


def test_xlsx_keeps_numbers_as_numbers_and_money_with_two_decimals():
    response = xlsx_response([["Acme", Decimal("1234.50"), 7, None]], HEADERS, "x")
    sheet = xlsx_sheet(response)
    assert [cell.value for cell in sheet[1]] == HEADERS
    name, amount, count, closed = sheet[2]
    assert name.value == "Acme"
    assert amount.value == pytest.approx(1234.5)
    assert amount.number_format == "#,##0.00"
    assert count.value == 7
    assert closed.value is None


def test_xlsx_stores_would_be_formulas_as_text():
    sheet = xlsx_sheet(xlsx_response([["=1+1", 0, 0, None]], HEADERS, "x"))
    cell = sheet["A2"]
    assert cell.data_type == "s"
    assert cell.value == "'=1+1"


def test_xlsx_writes_dates_as_dates_and_aware_datetimes_in_local_time(settings):
    settings.TIME_ZONE = "Europe/Rome"
    moment = datetime(2026, 1, 1, 9, 30, tzinfo=ZoneInfo("UTC"))
    sheet = xlsx_sheet(
        xlsx_response([["x", 0, 0, moment], ["y", 0, 0, date(2026, 2, 3)]], HEADERS, "x")
    )
    assert sheet["D2"].value == datetime(2026, 1, 1, 10, 30)
    assert sheet["D3"].value == datetime(2026, 2, 3)  # openpyxl reads dates back as datetimes
    assert sheet["D3"].number_format == "yyyy-mm-dd"


def test_xlsx_drops_control_characters_xml_cannot_hold():
    sheet = xlsx_sheet(xlsx_response([["bad\x07bell", 0, 0, None]], HEADERS, "x"))
    assert sheet["A2"].value == "badbell"


def test_xlsx_sheet_title_is_made_legal():
    response = xlsx_response(
        [], HEADERS, "x", sheet_title="Forecast [2026/Q4]: by owner, a long one"
    )
    title = xlsx_sheet(response).title
    assert len(title) <= 31
    assert not set(title) & set("[]:*?/\\")
