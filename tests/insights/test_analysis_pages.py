"""The behaviour analysis, calibration and history pages: who may open them, what they show,
htmx partials, and a constant number of queries."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import User
from opportuna.insights.facts import deal_facts_update
from opportuna.sales.models import Activity, Opportunity, Status
from tests.factories import (
    LostReasonFactory,
    OpportunityFactory,
    UserFactory,
    activity_type,
    make_cast,
)

pytestmark = pytest.mark.django_db

ANALYSIS = reverse("insights:analysis")
CALIBRATION = reverse("insights:calibration")
HISTORY = reverse("insights:history")
PAGES = [ANALYSIS, CALIBRATION, HISTORY]
HTMX = {"HTTP_HX_REQUEST": "true"}
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def cast():
    return make_cast()


def closed(cast, *, owner=None, won=True, title="Deal", probability=40, days=30):
    step = cast.pipeline.steps.order_by("position").first()
    opp = OpportunityFactory(
        title=title,
        owner=owner or cast.owner,
        pipeline=cast.pipeline,
        step=step,
        probability=probability,
        status=Status.WON if won else Status.LOST,
        won_amount=500_00 if won else None,
        lost_reason=None if won else LostReasonFactory(name="Price"),
        closed_at=T0 + timedelta(days=days),
    )
    Opportunity.objects.filter(pk=opp.pk).update(created_at=T0)
    deal_facts_update([opp.pk])  # written without the services: store its facts by hand
    return opp


def populate(cast, count):
    """`count` closed opportunities with a visit and a demo each, and as many open ones."""
    ids = []
    for index in range(count):
        opp = closed(cast, won=index % 2 == 0, title=f"Closed {index}")
        for key, day in (("visit", 1), ("demo", 2)):
            Activity.objects.create(
                opportunity=opp,
                type=activity_type(key),
                user=opp.owner,
                done_at=T0 + timedelta(days=day),
            )
        ids.append(opp.pk)
        OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title=f"Open {index}")
    deal_facts_update(ids)


# Who may come in ------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


@pytest.mark.parametrize("url", PAGES)
def test_writing_to_a_page_is_refused(client, cast, url):
    client.force_login(cast.owner)
    assert client.post(url).status_code == 405


@pytest.mark.parametrize("url", PAGES)
def test_a_salesperson_sees_only_the_opportunities_they_may_see(client, cast, url):
    closed(cast, owner=cast.other, won=False, title="Their deal")
    closed(cast, owner=cast.other, won=True, title="Their deal")
    closed(cast, owner=cast.owner, won=True, title="My deal")
    client.force_login(cast.owner)

    html = client.get(url, {"at": "2024-05-20"}).content.decode()

    assert str(cast.other) not in html  # neither in the tables nor in the owner choices
    if url == ANALYSIS:
        assert "1 closed opportunity analysed" in html
    if url == CALIBRATION:
        assert "1 won or lost opportunity" in html


# What the pages show --------------------------------------------------------------------


def test_analysis_page_shows_sample_sizes_intervals_and_small_sample_labels(client, cast):
    populate(cast, 4)
    client.force_login(cast.admin)

    html = client.get(ANALYSIS).content.decode()

    assert "Position of the first demo" in html
    assert "Demo after 1 visit" in html
    assert "Small sample" in html
    assert "95% interval" in html
    assert "No clear pattern yet" in html
    assert "<svg" in html


def test_the_demo_story_shows_up_as_a_detected_pattern(client):
    call_command("demo", opportunities=600, no_progress=True, today=date(2026, 3, 15))
    admin = User.objects.get(username="admin")
    admin.language = "en"  # the demo's admin reads Italian; this test reads the English words
    admin.save(update_fields=["language"])
    client.force_login(admin)

    html = client.get(ANALYSIS).content.decode()

    assert 'data-dimension="demo"' in html
    assert "a demo after two visits wins" in html
    assert "when the demo comes first" in html


def test_calibration_page_draws_the_reliability_chart_and_owner_verdicts(client, cast):
    for index in range(30):
        closed(cast, owner=cast.teammate, won=index < 3, probability=90)
    closed(cast, owner=cast.owner, won=True, probability=20)
    client.force_login(cast.admin)

    html = client.get(CALIBRATION).content.decode()

    assert 'class="reliability-chart"' in html
    assert "<circle" in html
    assert "Over-estimates" in html  # the teammate: 90% carried, 10% won
    assert "Small sample" in html  # the owner: one deal
    assert "90–100%" in html


def test_calibration_at_a_step_says_so(client, cast):
    step = cast.pipeline.steps.order_by("position")[1]
    client.force_login(cast.admin)

    html = client.get(CALIBRATION, {"step": step.pk}).content.decode()

    assert f"first reached {cast.pipeline.name} / {step.name}" in html
    assert f'<option value="{step.pk}" selected>' in html


def test_calibration_ignores_an_unknown_step(client, cast):
    client.force_login(cast.admin)

    html = client.get(CALIBRATION, {"step": "999999"}).content.decode()

    assert "30 days before it closed" in html


def test_history_page_shows_the_pipeline_then_and_the_forecast_record(client, cast):
    OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Open now", amount=700_00)
    client.force_login(cast.admin)

    html = client.get(HISTORY, {"at": timezone.localdate().isoformat(), "months": "6"}).content
    html = html.decode()

    assert "Forecast versus actual" in html
    assert "700.00 EUR" in html  # open today, and at the end of today
    assert html.count('class="forecast-bar"') == 7 + 1  # 6 months + this one, + the legend
    assert "(in progress)" in html


def test_history_page_reads_a_bad_date_or_month_count_as_the_default(client, cast):
    client.force_login(cast.admin)

    response = client.get(HISTORY, {"at": "yesterday", "months": "1000"})

    assert response.status_code == 200
    default_day = timezone.localdate() - timedelta(days=30)
    assert f'value="{default_day.isoformat()}"' in response.content.decode()
    assert response.content.decode().count('class="forecast-bar"') == 12 + 1 + 1


def test_history_page_brings_a_future_date_back_to_today(client, cast):
    client.force_login(cast.admin)

    html = client.get(HISTORY, {"at": "2999-01-01"}).content.decode()

    assert f'value="{timezone.localdate().isoformat()}"' in html


def test_names_are_escaped(client, cast):
    sneaky = UserFactory(username="sneaky", first_name="<script>x</script>", team=cast.team_a)
    closed(cast, owner=sneaky)
    client.force_login(cast.admin)

    html = client.get(CALIBRATION).content.decode()

    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


@pytest.mark.parametrize("url", PAGES)
def test_htmx_gets_the_results_only(client, cast, url):
    client.force_login(cast.admin)

    response = client.get(url, **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="insight-results"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("url", PAGES)
def test_filters_survive_in_the_links_between_pages(client, cast, url):
    client.force_login(cast.admin)

    html = client.get(url, {"pipeline": cast.pipeline.pk, "team": cast.team_a.pk}).content
    html = html.decode()

    assert f"{CALIBRATION}?pipeline={cast.pipeline.pk}&amp;team={cast.team_a.pk}" in html
    assert f'<option value="{cast.pipeline.pk}" selected>' in html


# Query counts ---------------------------------------------------------------------------

# session, user, to-do count in the navigation, filter choices (owners, teams, pipelines),
# then each page's own:
#   analysis: activity types, closed deals' facts grouped (demo position, days to the first
#             activity, activity profile)
#   calibration: steps, per band and owner (with the owners' names)
#   history: steps, pipeline then, pipeline now, the stored month openings (a union), the
#            forecast's sums per month, account currency; once a first visit has stored the
#            months' openings (insights.openings)
QUERIES = {ANALYSIS: 8, CALIBRATION: 8, HISTORY: 12}
HTMX_QUERIES = {ANALYSIS: 4, CALIBRATION: 4, HISTORY: 8}


@pytest.mark.parametrize("count", [1, 30])
@pytest.mark.parametrize("url", PAGES)
def test_pages_run_a_constant_number_of_queries(
    client, cast, url, count, django_assert_num_queries
):
    populate(cast, count)
    client.force_login(cast.manager)
    client.get(url, {"at": "2024-05-20"})  # the history stores the months' openings once
    with django_assert_num_queries(QUERIES[url]):
        response = client.get(url, {"at": "2024-05-20"})
    assert response.status_code == 200
    with django_assert_num_queries(HTMX_QUERIES[url]):
        client.get(url, {"at": "2024-05-20"}, **HTMX)


@pytest.mark.parametrize("url", PAGES)
def test_a_salesperson_has_no_team_choice_and_one_query_less(
    client, cast, url, django_assert_num_queries
):
    populate(cast, 3)
    client.force_login(cast.owner)
    client.get(url)  # the history stores the months' openings once
    with django_assert_num_queries(QUERIES[url] - 1):
        html = client.get(url).content.decode()
    assert 'name="team"' not in html
