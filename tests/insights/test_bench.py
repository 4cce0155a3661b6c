"""`opportuna bench`: the scenario list, and a run on a small database."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.factories import OpportunityFactory, make_cast


def test_list_names_the_scenarios_without_the_database():
    out = StringIO()
    # No django_db mark: any query here fails the test (an empty database could not answer).
    call_command("bench", "--list", stdout=out)
    names = [line.split()[0] for line in out.getvalue().splitlines()]
    assert {"forecast", "forecast_raw", "history_page", "funnel_page"} <= set(names)


@pytest.mark.django_db
def test_a_scenario_runs_and_reports_its_times():
    make_cast()
    OpportunityFactory.create_batch(3)
    out = StringIO()
    call_command("bench", "--runs", "2", "--scenario", "as_of", stdout=out)
    text = out.getvalue()
    assert "3 opportunities" in text
    assert [line.split()[0] for line in text.splitlines()][-1] == "as_of"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "said"),
    [
        ("admin", "Forecast ORM and raw SQL give the same rows: yes"),
        # The raw query is the whole company's: a manager's forecast is not expected to match.
        ("manager", "Forecast ORM and raw SQL not compared"),
    ],
)
def test_the_forecast_is_checked_against_the_raw_query_for_a_whole_company_view(who, said):
    cast = make_cast()
    OpportunityFactory.create_batch(3, owner=cast.other, pipeline=cast.pipeline)
    out = StringIO()
    username = getattr(cast, who).username
    call_command("bench", "--runs", "1", "--scenario", "forecast", "--user", username, stdout=out)
    assert said in out.getvalue()


@pytest.mark.django_db
def test_unknown_scenario_is_refused():
    make_cast()
    with pytest.raises(CommandError, match="Unknown scenario"):
        call_command("bench", "--scenario", "nope")
