"""The forecast page: controls, table, chart, targets, drill-down links and downloads, only
over what the user may see, in a constant number of queries."""

import csv
import io
import re
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from opportuna.insights.services import target_set
from opportuna.sales.models import Status
from tests.factories import (
    ClientFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    TagFactory,
    make_cast,
)

pytestmark = pytest.mark.django_db

PAGE = reverse("insights:forecast")
EXPORT = reverse("insights:forecast_export")
HTMX = {"HTTP_HX_REQUEST": "true"}
# November 2026 and December 2026.
TWO_MONTHS = {"period": "month", "start": "2026-11-01", "periods": "2"}


@pytest.fixture(autouse=True)
def _rome(settings):
    settings.TIME_ZONE = "Europe/Rome"


@pytest.fixture
def cast():
    return make_cast()


def deal(cast, *, amount, probability=50, day=date(2026, 11, 10), status=Status.TODO, **extra):
    """An opportunity counted on `day`: expected then if open, closed then if won or lost."""
    closed = status in (Status.WON, Status.LOST, Status.CANCELLED)
    fields = {
        "owner": cast.owner,
        "pipeline": cast.pipeline,
        "status": status,
        "amount": amount,
        "probability": probability,
        "expected_close_date": day,
        **extra,
    }
    if closed:
        fields["closed_at"] = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        fields["next_action_at"] = None
    if status == Status.WON:
        fields.setdefault("won_amount", amount)
    if status == Status.LOST:
        fields["lost_reason"] = LostReasonFactory()
    return OpportunityFactory(**fields)


def html_of(client, **query):
    response = client.get(PAGE, query)
    assert response.status_code == 200
    return response.content.decode()


def table_rows(html):
    """The table's rows as lists of cell texts, tags stripped, spaces squeezed."""
    body = html.split('<table class="forecast-table">', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)
        rows.append([" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells])
    return rows


def csv_of(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()[1:])))


# Who may come in ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PAGE, EXPORT])
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_salesperson_sees_their_own_forecast_only(client, cast):
    deal(cast, amount=1_111_00)
    deal(cast, amount=7_777_00, owner=cast.other)
    client.force_login(cast.owner)
    html = html_of(client, **TWO_MONTHS)
    assert "1,111.00" in html
    assert "7,777.00" not in html
    rows = csv_of(client.get(EXPORT, {**TWO_MONTHS, "format": "csv"}))
    assert "7777.00" not in {cell for row in rows for cell in row}


def test_salesperson_filtering_on_someone_else_sees_nothing_of_theirs(client, cast):
    deal(cast, amount=7_777_00, owner=cast.other)
    client.force_login(cast.owner)
    html = html_of(client, **TWO_MONTHS, owner=cast.other.pk)
    assert "7,777.00" not in html


# The table ------------------------------------------------------------------------------


def test_table_has_every_period_even_empty_ones_and_a_total(client, cast):
    deal(cast, amount=1_000_00, probability=40)
    deal(cast, amount=300_00, status=Status.WON, day=date(2026, 11, 3))
    deal(cast, amount=200_00, status=Status.LOST, day=date(2026, 11, 4))
    client.force_login(cast.admin)
    rows = table_rows(html_of(client, period="month", start="2026-11-01", periods="3"))
    header, nov, dec, jan, total = rows
    assert header[:2] == ["Period", "Open"]
    # open, amount, weighted, won (n), lost (n), expected, P10, P50, P90, target, attainment
    assert nov[:10] == [
        "Nov 2026", "1", "1,000.00", "400.00", "300.00 (1)", "200.00 (1)", "700.00",
        "300.00", "300.00", "1,300.00",
    ]  # fmt: skip
    assert nov[10:] == ["Set target Nov 2026", ""]  # no target yet, a link to set one
    assert dec[0] == "Dec 2026" and dec[1] == "0"
    assert jan[0] == "Jan 2027"
    assert total[:3] == ["Total", "1", "1,000.00"]


def test_amounts_are_exact_to_the_cent_in_table_and_downloads(client, cast):
    for amount in (1_00, 2_01, 3_33):
        deal(cast, amount=amount, probability=33)
    client.force_login(cast.admin)
    # 33 % of 1.00, 2.01, 3.33 rounded per opportunity: 0.33 + 0.66 + 1.10
    assert table_rows(html_of(client, **TWO_MONTHS))[1][3] == "2.09"
    nov = csv_of(client.get(EXPORT, {**TWO_MONTHS, "format": "csv"}))[1]
    assert nov[:5] == ["2026-11", "Nov 2026", "3", "6.34", "2.09"]


def test_undated_open_opportunities_are_noted_apart(client, cast):
    deal(cast, amount=500_00, day=None)
    deal(cast, amount=250_00, day=None)
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS)
    assert "2 open opportunities have no expected close date" in html
    assert "750.00" in html


def test_breakdown_by_owner_lists_each_owner_under_the_period(client, cast):
    deal(cast, amount=100_00)
    deal(cast, amount=200_00, owner=cast.teammate)
    client.force_login(cast.admin)
    rows = table_rows(html_of(client, **TWO_MONTHS, by="owner"))
    labels = [row[1] for row in rows[1:4]]
    assert labels == ["All", str(cast.teammate), str(cast.owner)] or labels == [
        "All",
        str(cast.owner),
        str(cast.teammate),
    ]
    assert rows[1][2] == "2"  # the period line counts both


def test_breakdown_by_tag_counts_a_deal_under_each_of_its_tags(client, cast):
    red, blue = TagFactory(name="red"), TagFactory(name="blue")
    deal(cast, amount=100_00).tags.add(red, blue)
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, by="tag")
    rows = table_rows(html)
    assert [row[1] for row in rows[1:4]] == ["All", "blue", "red"]
    assert rows[1][2] == rows[2][2] == rows[3][2] == "1"
    assert "counts under each of them" in html


def test_filters_narrow_the_forecast(client, cast):
    other_pipeline = PipelineFactory(name="Renewals")
    product = ProductFactory(name="Licence")
    deal(cast, amount=100_00, product=product)
    deal(cast, amount=900_00, pipeline=other_pipeline, step=other_pipeline.steps.first())
    client.force_login(cast.admin)
    assert table_rows(html_of(client, **TWO_MONTHS, pipeline=other_pipeline.pk))[1][2] == "900.00"
    assert table_rows(html_of(client, **TWO_MONTHS, product=product.pk))[1][2] == "100.00"


def test_malformed_controls_fall_back_to_defaults(client, cast):
    client.force_login(cast.admin)
    html = html_of(client, period="decade", start="yesterday", periods="many", by="mood", tag="x")
    rows = table_rows(html)
    assert len(rows) == 1 + 12 + 1  # header, 12 months from this one, total
    this_month = timezone.localdate().strftime("%b %Y")
    assert rows[1][0] == this_month


def test_number_of_periods_is_capped(client, cast):
    client.force_login(cast.admin)
    rows = table_rows(html_of(client, period="month", start="2026-01-01", periods="500"))
    assert len(rows) == 1 + 36 + 1


def test_quarters_and_years(client, cast):
    client.force_login(cast.admin)
    rows = table_rows(html_of(client, period="quarter", start="2026-05-20", periods="2"))
    assert [row[0] for row in rows[1:3]] == ["Q2 2026", "Q3 2026"]
    rows = table_rows(html_of(client, period="year", start="2026-05-20", periods="2"))
    assert [row[0] for row in rows[1:3]] == ["2026", "2027"]


def test_multi_year_view_spans_five_years_back_and_ahead(client, cast):
    year = timezone.localdate().year
    client.force_login(cast.admin)
    rows = table_rows(html_of(client, period="multiyear"))
    assert [row[0] for row in rows[1:-1]] == [str(y) for y in range(year - 5, year + 6)]
    rows = table_rows(html_of(client, period="multiyear", start="2001-01-01", periods="2"))
    assert len(rows) == 1 + 11 + 1  # start and number of periods do not apply


def test_htmx_answer_shows_the_controls_as_the_page_read_them(client, cast):
    client.force_login(cast.admin)
    html = client.get(PAGE, {"period": "quarter", "start": "2026-05-20"}, **HTMX).content.decode()
    assert 'name="start" value="2026-04-01"' in html  # the first day of its quarter
    assert 'name="periods" value="4"' in html


def test_htmx_control_changes_get_the_body_only(client, cast):
    client.force_login(cast.admin)
    response = client.get(PAGE, TWO_MONTHS, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="forecast-body">')
    assert "<html" not in html
    assert response["Vary"].count("HX-Request") == 1


def test_user_text_is_escaped(client, cast):
    tag = TagFactory(name="<script>alert(1)</script>")
    deal(cast, amount=100_00).tags.add(tag)
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, by="tag")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_page_folds_small_groups_but_downloads_keep_them_all(client, cast, monkeypatch):
    monkeypatch.setattr("opportuna.insights.views.forecast.GROUPS_SHOWN", 2)
    for name, amount in [("Big", 900_00), ("Middle", 500_00), ("Small", 100_00)]:
        deal(cast, amount=amount, probability=100, client=ClientFactory(name=name))
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, by="client")
    rows = table_rows(html)
    assert [row[1] for row in rows[1:5]] == ["All", "Big", "Middle", "1 other"]
    assert rows[4][3] == "100.00"  # the folded line adds up what it folds
    assert "largest groups" in html
    exported = csv_of(client.get(EXPORT, {**TWO_MONTHS, "by": "client", "format": "csv"}))
    assert [row[2] for row in exported[1:5]] == ["All", "Big", "Middle", "Small"]


# Drill-down --------------------------------------------------------------------------------


def links(html, text_status):
    """The opportunity-list links of the page with this status, as query dicts."""
    found = []
    for href in re.findall(r'href="([^"]+)"', html):
        href = href.replace("&amp;", "&")
        parts = urlsplit(href)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == reverse("sales:opportunity_list") and query.get("status") == text_status:
            found.append(query)
    return found


def test_cells_link_to_the_opportunities_behind_them(client, cast):
    deal(cast, amount=100_00)
    deal(cast, amount=100_00, status=Status.WON, day=date(2026, 12, 5))
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, by="owner")
    open_links = links(html, "open")
    assert {
        "status": "open",
        "owner": str(cast.owner.pk),
        "expected_close_from": "2026-11-01",
        "expected_close_to": "2026-11-30",
    } in open_links
    assert {
        "status": "won",
        "owner": str(cast.owner.pk),
        "closed_from": "2026-12-01",
        "closed_to": "2026-12-31",
    } in links(html, "won")


def test_drill_down_keeps_the_filters(client, cast):
    product = ProductFactory(name="Licence")
    deal(cast, amount=100_00, product=product)
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, product=product.pk)
    assert all(link["product"] == str(product.pk) for link in links(html, "open"))
    assert links(html, "open")


def test_groups_without_a_value_get_no_drill_down_link(client, cast):
    deal(cast, amount=100_00)  # no product
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, by="product")
    open_links = links(html, "open")
    # The period line and the total link; "(no product)" has no filter to hand the list.
    assert len(open_links) == 2
    assert not any("product" in link for link in open_links)


# The chart ----------------------------------------------------------------------------------


def test_chart_has_a_bar_per_period_and_a_band(client, cast):
    deal(cast, amount=1_000_00, probability=50)
    deal(cast, amount=500_00, probability=50, day=date(2026, 12, 3))
    client.force_login(cast.admin)
    html = html_of(client, period="month", start="2026-11-01", periods="3")
    svg = html.split('<svg class="chart-svg"', 1)[1].split("</svg>", 1)[0]
    assert svg.count('<g class="chart-period">') == 3
    assert "<polygon" in svg  # the P10-P90 band
    assert 'fill="url(#forecast-hatch)"' in svg  # weighted open, told apart by a pattern
    assert "Nov 2026: won 0, weighted open 500" in svg


def test_chart_coordinates_stay_numbers_in_italian(client, cast):
    deal(cast, amount=1_234_567_89, probability=33)
    cast.admin.language = "it"
    cast.admin.save()
    client.force_login(cast.admin)
    html = client.get(PAGE, TWO_MONTHS, HTTP_ACCEPT_LANGUAGE="it").content.decode()
    svg = html.split('<svg class="chart-svg"', 1)[1].split("</svg>", 1)[0]
    for value in re.findall(r'\b(?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', svg):
        assert re.fullmatch(r"-?\d+(\.\d+)?", value), value
    assert "1.234.568" in svg or "1.234.567" in svg  # axis and tooltips in Italian numbers


@pytest.mark.parametrize("language,shown", [("en", "1,234,567.89"), ("it", "1.234.567,89")])
def test_table_amounts_follow_the_users_language(client, cast, language, shown):
    deal(cast, amount=1_234_567_89, probability=100)
    cast.admin.language = language
    cast.admin.save()
    client.force_login(cast.admin)
    html = client.get(PAGE, TWO_MONTHS, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    november = table_rows(html)[1]  # after the header
    assert november[2:4] == [shown, shown]  # open amount, weighted


def test_print_drops_the_controls_and_forms_but_keeps_chart_and_table(client, cast):
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS)

    def classes_of(marker):
        return re.search(rf"<[a-z]+ [^>]*{marker}[^>]*>", html).group(0)

    assert "no-print" in classes_of('class="card forecast-controls')
    assert "no-print" in classes_of('id="target-form"')
    assert "no-print" not in classes_of('class="card forecast-chart')
    assert "no-print" not in classes_of('class="forecast-table')


# Targets on the page --------------------------------------------------------------------------


def test_admin_sees_the_company_target_and_attainment(client, cast):
    deal(cast, amount=300_00, status=Status.WON, day=date(2026, 11, 3))
    target_set(actor=cast.admin, period_key="2026-11", amount=1_200_00)
    client.force_login(cast.admin)
    nov = table_rows(html_of(client, **TWO_MONTHS))[1]
    assert nov[-2].startswith("1,200.00")
    assert nov[-1] == "25.0 %"


def test_owner_rows_show_each_owners_target(client, cast):
    deal(cast, amount=500_00, status=Status.WON, day=date(2026, 11, 3))
    target_set(actor=cast.admin, period_key="2026-11", amount=1_000_00, user=cast.owner)
    target_set(actor=cast.admin, period_key="2026-11", amount=4_000_00, user=cast.teammate)
    client.force_login(cast.manager)
    rows = table_rows(html_of(client, **TWO_MONTHS, by="owner"))
    by_owner = {row[1]: row for row in rows[2:4]}
    assert by_owner[str(cast.owner)][-1] == "50.0 %"
    # The teammate sold nothing but has a target: the row is there, at 0 %.
    assert by_owner[str(cast.teammate)][-1] == "0.0 %"


def test_targets_do_not_match_a_forecast_narrowed_by_product(client, cast):
    product = ProductFactory(name="Licence")
    target_set(actor=cast.admin, period_key="2026-11", amount=1_000_00)
    client.force_login(cast.admin)
    nov = table_rows(html_of(client, **TWO_MONTHS, product=product.pk))[1]
    assert nov[-2:] == ["", ""]


def test_salesperson_compares_with_their_own_target(client, cast):
    deal(cast, amount=100_00, status=Status.WON, day=date(2026, 11, 3))
    target_set(actor=cast.admin, period_key="2026-11", amount=400_00, user=cast.owner)
    target_set(actor=cast.admin, period_key="2026-11", amount=9_000_00)  # the company's
    client.force_login(cast.owner)
    nov = table_rows(html_of(client, **TWO_MONTHS))[1]
    assert nov[-2] == "400.00"
    assert nov[-1] == "25.0 %"


def test_salesperson_cannot_read_someone_elses_target_by_filtering(client, cast):
    target_set(actor=cast.admin, period_key="2026-11", amount=4_321_00, user=cast.other)
    client.force_login(cast.owner)
    assert "4,321.00" not in html_of(client, **TWO_MONTHS, owner=cast.other.pk)


def test_total_target_is_shown_only_when_every_period_has_one(client, cast):
    target_set(actor=cast.admin, period_key="2026-11", amount=100_00)
    client.force_login(cast.admin)
    assert table_rows(html_of(client, **TWO_MONTHS))[-1][-2] == ""
    target_set(actor=cast.admin, period_key="2026-12", amount=200_00)
    assert table_rows(html_of(client, **TWO_MONTHS))[-1][-2] == "300.00"


# Downloads --------------------------------------------------------------------------------


def test_download_links_carry_the_same_parameters(client, cast):
    client.force_login(cast.admin)
    html = html_of(client, **TWO_MONTHS, by="team")
    for kind in ("csv", "xlsx"):
        href = re.search(rf'href="({re.escape(EXPORT)}\?[^"]*format={kind}[^"]*)"', html)
        query = parse_qs(urlsplit(href.group(1).replace("&amp;", "&")).query)
        assert query["period"] == ["month"]
        assert query["start"] == ["2026-11-01"]
        assert query["periods"] == ["2"]
        assert query["by"] == ["team"]


def test_csv_has_the_tables_rows_and_defuses_formulas(client, cast):
    client_folder = ClientFactory(name='=HYPERLINK("http://x")')
    deal(cast, amount=100_00, client=client_folder)
    client.force_login(cast.admin)
    response = client.get(EXPORT, {**TWO_MONTHS, "by": "client", "format": "csv"})
    assert response["Content-Disposition"].endswith('.csv"')
    header, nov_all, nov_client, dec_all, total = csv_of(response)
    assert header[:4] == ["Period", "Period name", "Client", "Client id"]
    assert nov_all[:3] == ["2026-11", "Nov 2026", "All"]
    assert nov_client[2] == '\'=HYPERLINK("http://x")'
    assert nov_client[3] == str(client_folder.pk)
    assert total[0] == "Total"


def test_xlsx_has_numbers_as_numbers(client, cast):
    deal(cast, amount=1_234_50, probability=100)
    client.force_login(cast.admin)
    response = client.get(EXPORT, {**TWO_MONTHS, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0]
    assert sheet["A2"].value == "2026-11"
    assert sheet["C2"].value == 1  # open count
    assert sheet["D2"].value == pytest.approx(1234.5)  # open amount
    assert sheet["K2"].value == pytest.approx(1234.5)  # P50: it is certain


# Queries ----------------------------------------------------------------------------------


def populate(cast, count):
    tag = TagFactory(name="agency")
    product = ProductFactory(name="Licence")
    people = [cast.owner, cast.teammate, cast.other]
    for n in range(count):
        opportunity = deal(
            cast,
            amount=(n + 1) * 100_00,
            probability=(n * 7) % 100,
            day=date(2026, 11 + n % 2, 1 + n % 28),
            owner=people[n % 3],
            product=product if n % 2 else None,
            status=[Status.TODO, Status.WON, Status.LOST][n % 3],
        )
        opportunity.tags.add(tag)
    target_set(actor=cast.admin, period_key="2026-11", amount=1_000_00, user=cast.owner)


# session, user, account (currency, policy), forecast sums, largest deals, targets, undated,
# filter choices (owners, teams for managers and admins, tags, products), pipelines, nav count
PAGE_QUERIES = 13
# the same, plus the breakdown's sums and largest deals
PAGE_QUERIES_BY = 15
# session, user, account, sums, largest deals, targets, undated (+ 2 with a breakdown)
EXPORT_QUERIES = 7


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("by,expected", [(None, PAGE_QUERIES), ("owner", PAGE_QUERIES_BY)])
def test_page_runs_constant_queries(client, cast, count, by, expected, django_assert_num_queries):
    populate(cast, count)
    client.force_login(cast.admin)
    query = {**TWO_MONTHS, **({"by": by} if by else {})}
    with django_assert_num_queries(expected):
        response = client.get(PAGE, query)
    assert response.status_code == 200


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("by,expected", [(None, EXPORT_QUERIES), ("tag", EXPORT_QUERIES + 2)])
def test_export_runs_constant_queries(client, cast, count, by, expected, django_assert_num_queries):
    populate(cast, count)
    client.force_login(cast.admin)
    query = {**TWO_MONTHS, "format": "xlsx", **({"by": by} if by else {})}
    with django_assert_num_queries(expected):
        response = client.get(EXPORT, query)
        b"".join(response.streaming_content)
    assert response.status_code == 200
