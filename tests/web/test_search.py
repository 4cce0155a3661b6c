"""Search: one box over titles, client folders, descriptions, fields, contacts and comments."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportuna.sales.search import search_index_rebuild, search_terms, sqlite_match
from opportuna.sales.selectors.search import search_everything, snippet_parts
from opportuna.sales.services import (
    client_merge,
    client_update,
    comment_add,
    contact_add,
    opportunity_create,
    opportunity_update,
)
from tests.factories import (
    ClientFactory,
    FieldDefinitionFactory,
    OpportunityFactory,
    make_cast,
)
from tests.plans import postgres_plan

pytestmark = pytest.mark.django_db

URL = "/search/"


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def create(cast, django_capture_on_commit_callbacks):
    """Create an opportunity through the service and let the index follow the commit."""

    def make(owner=None, **values):
        values.setdefault("title", "Plain deal")
        with django_capture_on_commit_callbacks(execute=True):
            return opportunity_create(actor=owner or cast.owner, pipeline=cast.pipeline, **values)

    return make


def found(response, opportunity):
    return f'href="/o/{opportunity.pk}/"' in response.content.decode()


def test_url_name_and_path():
    assert reverse("sales:search") == URL


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(URL, {"q": "anything"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_header_has_a_labelled_search_box(client, cast):
    client.force_login(cast.owner)
    html = client.get(URL).content.decode()
    assert '<form role="search"' in html
    assert 'action="/search/"' in html
    assert '<label class="visually-hidden" for="header-search-q">' in html


def test_finds_a_word_in_the_title(client, cast, create):
    opp = create(title="Renewal of the Lighthouse licence")
    client.force_login(cast.owner)
    response = client.get(URL, {"q": "lighthouse"})
    assert found(response, opp)
    results = search_everything(user=cast.owner, text="lighthou")  # a prefix is enough
    assert [o.pk for o in results.titles] == [opp.pk]
    assert results.elsewhere == []


def test_finds_a_word_in_a_comment(client, cast, create, django_capture_on_commit_callbacks):
    opp = create()
    with django_capture_on_commit_callbacks(execute=True):
        comment_add(opportunity=opp, actor=cast.owner, body="They asked about the zeppelin option")
    client.force_login(cast.owner)
    response = client.get(URL, {"q": "zeppelin"})
    assert found(response, opp)
    assert "<mark>zeppelin</mark>" in response.content.decode()
    results = search_everything(user=cast.owner, text="zeppelin")
    assert [o.pk for o in results.elsewhere] == [opp.pk]


def test_finds_a_contact_name(client, cast, create, django_capture_on_commit_callbacks):
    opp = create(contacts=[{"name": "Ottavia Brambilla", "email": "ob@example.com"}])
    other = create(title="Second deal")
    with django_capture_on_commit_callbacks(execute=True):
        contact_add(opportunity=other, actor=cast.owner, name="Ugo Brambilla")
    results = search_everything(user=cast.owner, text="brambilla")
    assert {o.pk for o in results.elsewhere} == {opp.pk, other.pk}
    results = search_everything(user=cast.owner, text="Ottavia Brambilla")
    assert [o.pk for o in results.elsewhere] == [opp.pk]


def test_finds_a_default_field_value(cast, create):
    FieldDefinitionFactory(key="sector", label="Sector")
    opp = create(fields={"sector": "Aquaculture"})
    results = search_everything(user=cast.owner, text="aquacult")
    assert [o.pk for o in results.elsewhere] == [opp.pk]


def test_finds_a_word_in_the_description_ignoring_accents(cast, create):
    opp = create(description="Consegna prevista a Forlì entro l'estate")
    assert [o.pk for o in search_everything(user=cast.owner, text="forli").elsewhere] == [opp.pk]


def test_finds_a_client_folder_and_its_opportunities(client, cast, create):
    folder = ClientFactory(name="Quercia Logistica")
    search_index_rebuild()
    opp = create(client=folder)
    client.force_login(cast.owner)
    response = client.get(URL, {"q": "quercia"})
    html = response.content.decode()
    assert f'href="/clients/{folder.pk}/"' in html
    assert found(response, opp)
    results = search_everything(user=cast.owner, text="quercia")
    assert [c.pk for c in results.clients] == [folder.pk]
    assert [o.pk for o in results.elsewhere] == [opp.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan")
def test_client_folders_are_found_by_the_text_index_before_being_sorted(cast):
    folders = [ClientFactory(name=f"{letter} Quercia") for letter in "CAB"]
    ClientFactory(name="Olmo")
    with CaptureQueriesContext(connection) as queries:
        results = search_everything(user=cast.admin, text="quercia")
    assert [c.name for c in results.clients] == sorted(f.name for f in folders)
    (sql,) = [q["sql"] for q in queries.captured_queries if 'FROM "sales_client"' in q["sql"]]
    # Even where a sort is priced out, a folder's text is only read through the text index,
    # never computed for each folder of the name index in order until enough match (2 s at
    # 73,000 folders for a name late in the alphabet).
    plan = postgres_plan(sql, priced_out=["seqscan", "sort"])
    assert "sales_client_search_idx" in plan
    assert "Filter: (to_tsvector" not in plan


def test_never_returns_an_outsiders_opportunity(client, cast, create):
    mine = create(title="Walrus project", owner=cast.owner)
    theirs = create(title="Walrus project too", owner=cast.other, description="walrus")
    client.force_login(cast.owner)
    response = client.get(URL, {"q": "walrus"})
    assert found(response, mine)
    assert not found(response, theirs)
    assert "Walrus project too" not in response.content.decode()
    # The admin sees both: the index has them, visibility filters them.
    results = search_everything(user=cast.admin, text="walrus")
    assert {o.pk for o in results.titles} == {mine.pk, theirs.pk}


def test_the_index_follows_an_edit(cast, create, django_capture_on_commit_callbacks):
    opp = create(title="Blue whale")
    with django_capture_on_commit_callbacks(execute=True):
        opportunity_update(opportunity=opp, actor=cast.owner, version=opp.version, title="Orca")
    assert search_everything(user=cast.owner, text="whale").is_empty
    assert [o.pk for o in search_everything(user=cast.owner, text="orca").titles] == [opp.pk]


def test_the_index_follows_a_client_rename_and_merge(
    cast, create, django_capture_on_commit_callbacks
):
    source = ClientFactory(name="Old Pelican")
    target = ClientFactory(name="New Heron")
    search_index_rebuild()
    opp = create(client=source)
    with django_capture_on_commit_callbacks(execute=True):
        client_update(client=source, actor=cast.owner, name="Grey Pelican")
    results = search_everything(user=cast.owner, text="grey pelican")
    assert [c.pk for c in results.clients] == [source.pk]
    assert [o.pk for o in results.elsewhere] == [opp.pk]
    with django_capture_on_commit_callbacks(execute=True):
        client_merge(source=source, target=target, actor=cast.manager)
    assert search_everything(user=cast.owner, text="pelican").is_empty
    results = search_everything(user=cast.owner, text="heron")
    assert [c.pk for c in results.clients] == [target.pk]
    assert [o.pk for o in results.elsewhere] == [opp.pk]


def test_rebuild_command_indexes_rows_written_in_bulk(cast, capsys):
    opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, title="Narwhal tusks")
    assert search_everything(user=cast.owner, text="narwhal").is_empty
    call_command("rebuild_search_index")
    assert "Indexed 1 opportunities" in capsys.readouterr().out
    assert [o.pk for o in search_everything(user=cast.owner, text="narwhal").titles] == [opp.pk]


def test_titles_are_escaped(client, cast, create, django_capture_on_commit_callbacks):
    opp = create(title="<script>alert(1)</script> needle")
    with django_capture_on_commit_callbacks(execute=True):
        comment_add(opportunity=opp, actor=cast.owner, body="<b>haystack</b> needle")
    client.force_login(cast.owner)
    html = client.get(URL, {"q": "needle"}).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    html = client.get(URL, {"q": "haystack"}).content.decode()
    assert "<b>" not in html
    assert "<mark>haystack</mark>" in html
    if connection.vendor == "sqlite":  # PostgreSQL's headline drops tags altogether
        assert "&lt;b&gt;<mark>haystack</mark>&lt;/b&gt;" in html


def test_query_syntax_is_never_passed_through(client, cast, create):
    create(title="Quotes deal")
    client.force_login(cast.owner)
    for text in ['"', "a* OR b", 'title : "x', "NEAR(a b)", "-- ; DROP", "{title}", "' OR 1=1"]:
        assert client.get(URL, {"q": text}).status_code == 200


def test_empty_or_tiny_query_asks_for_more(client, cast):
    client.force_login(cast.owner)
    response = client.get(URL, {"q": "a"})
    assert response.status_code == 200
    assert "Type at least two letters" in response.content.decode()


def test_htmx_gets_only_the_results(client, cast, create):
    opp = create(title="Pangolin")
    client.force_login(cast.owner)
    response = client.get(URL, {"q": "pangolin"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "<html" not in html
    assert 'id="search-results"' in html
    assert found(response, opp)
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("rows", [1, 30])
def test_query_count_does_not_grow_with_results(client, cast, rows, django_assert_num_queries):
    folder = ClientFactory(name="Needle Works")
    for _ in range(rows):
        opp = OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline, client=folder)
        opp.title = f"Needle {opp.pk}"
        opp.description = "needle in the description"
        opp.save()
        OpportunityFactory(owner=cast.other, pipeline=cast.pipeline, title="Needle other")
    search_index_rebuild()
    client.force_login(cast.owner)
    # session, user, one query per group (titles, elsewhere, client folders), to-do badge
    with django_assert_num_queries(6):
        response = client.get(URL, {"q": "needle"})
    assert response.content.decode().count('href="/o/') == min(rows, 20)


def test_search_terms_and_match_expression():
    assert search_terms('  "Rossi", anna.rossi@example.com  x  rossi ') == [
        "Rossi",
        "anna.rossi@example.com",
    ]
    assert sqlite_match(['say "hi"']) == '"say ""hi"""*'
    assert sqlite_match(["a", "b"], ["title"]) == '{title} : ("a"* "b"*)'


def test_snippet_parts_split_marks():
    parts = snippet_parts("before \ue000word\ue001 after")
    assert [(p.text, p.mark) for p in parts] == [
        ("before ", False),
        ("word", True),
        (" after", False),
    ]
