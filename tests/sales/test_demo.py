"""`opportuna demo`: the demo account is complete, consistent, deterministic, with its signal."""

import json
from collections import Counter, defaultdict
from datetime import date, datetime
from functools import partial
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db.models import F, Min
from django.utils import timezone

from opportuna.accounts.models import Account, Role, Team, User
from opportuna.sales.demo import DEMO_PASSWORD
from opportuna.sales.demo.story import CLIENT_NAMES
from opportuna.sales.fieldtext import clean_field_values
from opportuna.sales.models import (
    Activity,
    Client,
    Contact,
    EventKind,
    FieldDefinition,
    Opportunity,
    OpportunityEvent,
    Pipeline,
    Status,
)

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 18)  # a fixed "today" where a test compares two loads


def demo(**options) -> str:
    out = StringIO()
    call_command("demo", no_progress=True, stdout=out, **{"opportunities": 200, **options})
    return out.getvalue()


def shape(event: OpportunityEvent) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(sorted(event.changes)), tuple(sorted(event.data))


def test_cast_is_one_admin_two_managers_five_salespeople_in_two_teams():
    demo()
    assert Counter(User.objects.values_list("role", flat=True)) == {
        Role.ADMIN: 1,
        Role.MANAGER: 2,
        Role.SALESPERSON: 5,
    }
    admin = User.objects.get(role=Role.ADMIN)
    assert admin.is_superuser and admin.is_staff
    teams = Team.objects.all()
    assert len(teams) == 2
    for team in teams:
        assert [m.role for m in team.managers.all()] == [Role.MANAGER]
        assert team.members.filter(role=Role.SALESPERSON).exists()
    account = Account.load()
    assert (account.name, account.currency) == ("Adriatica Software S.r.l.", "EUR")


def test_the_printed_logins_work_with_the_demo_password():
    output = demo()
    for username in ("admin", "marco", "luca"):
        assert f"{username} / {DEMO_PASSWORD}" in output
        assert authenticate(username=username, password=DEMO_PASSWORD) is not None


def test_two_pipelines_with_rising_probabilities_and_a_multi_contact_block():
    demo()
    for pipeline in Pipeline.objects.all():
        probabilities = list(pipeline.steps.values_list("probability", flat=True))
        assert probabilities == sorted(probabilities)
        assert Opportunity.objects.filter(pipeline=pipeline).count() > 10
    labels = list(FieldDefinition.objects.values_list("label", flat=True))
    assert labels[:5] == [
        "Contatto 1 nome",
        "Contatto 1 ruolo",
        "Contatto 1 email",
        "Contatto 1 telefono",
        "Contatto 2 nome",
    ]
    assert {"Fonte", "Settore", "Numero dipendenti", "Sito web"} <= set(labels)


def test_loads_the_number_of_opportunities_asked_for():
    demo(opportunities=321)
    assert Opportunity.objects.count() == 321


def test_every_opportunity_keeps_the_model_rules():
    demo()
    opportunities = Opportunity.objects.all()
    assert not opportunities.won().filter(won_amount__isnull=True).exists()
    assert not opportunities.closed().filter(closed_at__isnull=True).exists()
    assert not opportunities.lost().filter(lost_reason__isnull=True).exists()
    assert not opportunities.open().filter(next_action_at__isnull=True).exists()
    assert not opportunities.open().filter(closed_at__isnull=False).exists()
    assert not opportunities.exclude(step__pipeline=F("pipeline")).exists()
    assert not opportunities.filter(contacts__isnull=True).exists()


def test_every_opportunity_starts_with_its_created_event():
    demo()
    created = OpportunityEvent.objects.filter(kind=EventKind.CREATED)
    assert created.count() == Opportunity.objects.count()
    first = Opportunity.objects.annotate(first=Min("events__at"))
    assert not first.exclude(first=F("created_at")).exists()


def test_history_is_in_the_past_and_activities_precede_the_close():
    demo()
    now = timezone.now()
    assert not OpportunityEvent.objects.filter(at__gt=now).exists()
    assert not Activity.objects.filter(done_at__gt=now).exists()
    assert not Activity.objects.filter(done_at__gt=F("opportunity__closed_at")).exists()
    assert not Opportunity.objects.filter(created_at__gt=F("closed_at")).exists()
    oldest = Opportunity.objects.aggregate(m=Min("created_at"))["m"]
    assert (now - oldest).days > 2 * 365


def test_every_activity_repeats_its_opportunitys_owner():
    # The story goes through the services; the bulk writes its rows itself, owner included.
    demo()
    activities = Activity.objects.all()
    assert activities.exists()
    assert not activities.exclude(opportunity_owner=F("opportunity__owner")).exists()


def test_open_opportunities_have_overdue_today_later_and_standby_next_actions():
    demo(opportunities=600)
    today = timezone.localdate()
    todo = Opportunity.objects.filter(status=Status.TODO)
    assert todo.filter(next_action_at__date__lt=today).exists()
    assert todo.filter(next_action_at__date=today).exists()
    assert todo.filter(next_action_at__date__gt=today).exists()
    standby = Opportunity.objects.filter(status=Status.STANDBY)
    assert standby.filter(next_action_at__gt=timezone.now()).exists()
    assert Activity.objects.planned().exists()
    horizon = Opportunity.objects.open().order_by("-expected_close_date").first()
    assert (horizon.expected_close_date - today).days > 180


def test_story_makes_every_kind_of_event():
    demo()
    kinds = set(OpportunityEvent.objects.values_list("kind", flat=True))
    assert kinds == set(EventKind.values)


def test_bulk_events_have_the_shapes_the_services_write():
    demo()
    # The story's opportunities are made by the services, the rest by the bulk generator.
    story = set(Client.objects.filter(name__in=CLIENT_NAMES).values_list("pk", flat=True))
    assert len(story) == 4  # one of the five was merged away
    by_origin: dict[bool, dict[str, set]] = {True: defaultdict(set), False: defaultdict(set)}
    for event in OpportunityEvent.objects.select_related("opportunity"):
        by_origin[event.opportunity.client_id in story][event.kind].add(shape(event))
    for kind in (
        EventKind.CREATED,
        EventKind.MOVED,
        EventKind.WON,
        EventKind.ACTIVITY_LOGGED,
        EventKind.ACTIVITY_PLANNED,
        EventKind.COMMENT_ADDED,
        EventKind.DUPLICATED,
        EventKind.NEXT_ACTION,
    ):
        assert by_origin[False][kind] == by_origin[True][kind], kind


def test_won_events_agree_with_the_opportunity():
    demo()
    for opp in Opportunity.objects.won().prefetch_related("events"):
        (won,) = [e for e in opp.events.all() if e.kind == EventKind.WON]
        assert won.changes["won_amount"] == [None, opp.won_amount]
        assert datetime.fromisoformat(won.changes["closed_at"][1]) == opp.closed_at
        assert won.at == opp.closed_at


def test_renewals_are_duplicates_of_the_same_client():
    demo(opportunities=600)
    duplicates = Opportunity.objects.filter(duplicated_from__isnull=False)
    assert duplicates.count() > 10
    assert not duplicates.exclude(client=F("duplicated_from__client")).exists()
    assert not duplicates.filter(created_at__lt=F("duplicated_from__closed_at")).exists()
    assert Client.objects.filter(opportunities__isnull=False).distinct().count() > 20


def test_agency_tag_spans_several_end_clients():
    demo(opportunities=1000)
    tagged = Opportunity.objects.filter(tags__name="Agenzia Media Nord")
    assert tagged.values("client").distinct().count() >= 3


def test_default_field_values_are_already_clean():
    demo()
    definitions = list(FieldDefinition.objects.all())
    for fields in Opportunity.objects.values_list("fields", flat=True)[:100]:
        assert clean_field_values(fields, definitions) == fields
    contact = Contact.objects.filter(position=0).select_related("opportunity").first()
    assert contact.opportunity.fields["contatto_1_nome"] == contact.name


def fingerprint() -> list:
    """Everything but ids, sorted in Python so that it does not depend on the backend."""
    opportunities = Opportunity.objects.values_list(
        "title", "client__name", "owner__username", "step__name", "status", "amount",
        "won_amount", "probability", "expected_close_date", "next_action_at", "closed_at",
        "created_at", "fields", "lost_reason__name", "duplicated_from__title",
    )  # fmt: skip
    activities = Activity.objects.values_list(
        "opportunity__title", "type__key", "done_at", "due_at", "note"
    )
    events = OpportunityEvent.objects.values_list("opportunity__title", "kind", "at")
    as_text = partial(json.dumps, sort_keys=True, default=str)  # jsonb reorders keys
    return [sorted(map(as_text, rows)) for rows in (opportunities, activities, events)]


def test_same_seed_gives_the_same_data():
    demo(seed=7, today=TODAY)
    first = fingerprint()
    demo(seed=7, today=TODAY, reset=True)
    assert fingerprint() == first
    demo(seed=8, today=TODAY, reset=True)
    assert fingerprint() != first


def test_first_demo_after_two_visits_wins_far_more_often_than_demo_first():
    demo(opportunities=1000)
    keys_by_opportunity = defaultdict(list)
    for opportunity, key in (
        Activity.objects.done()
        .filter(opportunity__status__in=[Status.WON, Status.LOST, Status.CANCELLED])
        .order_by("opportunity", "done_at", "pk")
        .values_list("opportunity", "type__key")
    ):
        keys_by_opportunity[opportunity].append(key)
    statuses = dict(Opportunity.objects.closed().values_list("pk", "status"))
    outcomes: dict[int, list[bool]] = defaultdict(list)
    for opportunity, keys in keys_by_opportunity.items():
        if "demo" in keys:
            visits = min(keys[: keys.index("demo")].count("visit"), 2)
            outcomes[visits].append(statuses[opportunity] == Status.WON)
    rate = {visits: sum(won) / len(won) for visits, won in outcomes.items()}
    assert all(len(outcomes[visits]) >= 50 for visits in (0, 1, 2)), outcomes.keys()
    assert rate[2] > rate[1] > rate[0]
    assert rate[2] - rate[0] > 0.25, rate


def test_if_empty_on_a_loaded_database_creates_nothing_and_prints_the_logins():
    demo()
    counts = (Opportunity.objects.count(), OpportunityEvent.objects.count(), User.objects.count())
    output = demo(if_empty=True)
    assert "already has data" in output
    assert "admin / demo" in output
    assert (
        Opportunity.objects.count(),
        OpportunityEvent.objects.count(),
        User.objects.count(),
    ) == counts


def test_if_empty_does_not_print_demo_logins_for_another_installation():
    User.objects.create_superuser(username="admin", password="secret-of-theirs")
    output = demo(if_empty=True)
    assert "already has data" in output
    assert "admin / demo" not in output
    assert not Opportunity.objects.exists()


def test_refuses_a_database_with_data_unless_told():
    demo()
    with pytest.raises(CommandError, match="--reset"):
        demo()


def test_reset_replaces_the_demo_and_keeps_other_users():
    demo()
    User.objects.create_user(username="someone", password="x")
    demo(reset=True, opportunities=150)
    assert Opportunity.objects.count() == 150
    assert User.objects.filter(username="someone").exists()
    assert User.objects.count() == 9


def test_too_few_opportunities_is_refused():
    with pytest.raises(CommandError, match="at least"):
        demo(opportunities=3)


def test_the_bulk_loaded_opportunities_are_in_the_search_index():
    from opportuna.sales.selectors.search import search_everything

    demo(today=TODAY)
    admin = User.objects.get(username="admin")
    bulk_loaded = Opportunity.objects.order_by("-pk").first()  # written in bulk, not announced
    word = max(bulk_loaded.title.split(), key=len)
    found = search_everything(user=admin, text=word, limit=200)
    assert bulk_loaded in found.titles + found.elsewhere


def test_the_bulk_load_fills_the_insights_derived_tables():
    from opportuna.insights.models import DealFacts, ForecastOpening, StepVisit

    demo(today=TODAY)
    closed = Opportunity.objects.filter(status__in=[Status.WON, Status.LOST]).count()
    assert DealFacts.objects.count() == closed
    assert StepVisit.objects.values("opportunity").distinct().count() == Opportunity.objects.count()
    assert ForecastOpening.objects.exists()
