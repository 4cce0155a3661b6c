"""The pipeline board: columns, totals to the cent, keyset pages, filters, moves."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.core.money import weighted_cents
from opportuna.core.templatetags.opportuna import money
from opportuna.sales.models import EventKind, Opportunity, OpportunityEvent, Status
from opportuna.sales.selectors.board import (
    BOARD_PAGE,
    BoardFilters,
    Cursor,
    board_first_pages,
    board_steps,
    board_totals,
)
from opportuna.sales.services import opportunity_set_probability
from tests.factories import (
    ClientFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    TagFactory,
    make_cast,
)
from tests.plans import postgres_plan

pytestmark = pytest.mark.django_db

BOARD = reverse("sales:board")
COLUMN = reverse("sales:board_column")
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def steps(cast):
    return board_steps(pipeline=cast.pipeline)


@pytest.fixture
def owner_client(client, cast):
    client.force_login(cast.owner)
    return client


def card(cast, step=None, **kwargs):
    kwargs.setdefault("owner", cast.owner)
    step = step or cast.pipeline.steps.order_by("position").first()
    return OpportunityFactory(
        pipeline=cast.pipeline, step=step, probability=step.probability, **kwargs
    )


def move_url(opp, **query):
    url = reverse("sales:board_move", args=[opp.pk])
    return f"{url}?pipeline={opp.pipeline_id}" + "".join(f"&{k}={v}" for k, v in query.items())


def board_url(cast, **query):
    return f"{BOARD}?pipeline={cast.pipeline.pk}" + "".join(f"&{k}={v}" for k, v in query.items())


# Who may come in ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,url",
    [("get", BOARD), ("get", COLUMN), ("post", reverse("sales:board_move", args=[1]))],
)
def test_anonymous_is_sent_to_login(client, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_outsider_does_not_see_cards_and_cannot_move_them(client, cast, steps):
    opp = card(cast, title="Secret deal")
    client.force_login(cast.other)
    assert "Secret deal" not in client.get(board_url(cast)).content.decode()
    column = client.get(COLUMN, {"step": steps[0].pk}, **HTMX)
    assert "Secret deal" not in column.content.decode()
    assert client.post(move_url(opp), {"step": steps[1].pk}).status_code == 404
    assert client.post(move_url(opp), {"step": steps[1].pk}, **HTMX).status_code == 404
    opp.refresh_from_db()
    assert opp.step_id == steps[0].pk


def test_unknown_pipeline_or_step_is_404(owner_client):
    assert owner_client.get(BOARD, {"pipeline": 999_999}).status_code == 404
    assert owner_client.get(COLUMN, {"step": 999_999}).status_code == 404
    assert owner_client.get(COLUMN, {"step": "x"}).status_code == 400


# Columns and cards ----------------------------------------------------------------------


def test_columns_show_open_cards_of_the_chosen_pipeline(owner_client, cast, steps):
    client_folder = ClientFactory(name="Laguna Spa")
    tag = TagFactory(name="agency-x")
    open_card = card(cast, steps[1], title="Open deal", client=client_folder, amount=2500_00)
    open_card.tags.add(tag)
    card(cast, title="Won deal", status=Status.WON, won_amount=1, closed_at=timezone.now())
    card(cast, title="Parked deal", status=Status.STANDBY)
    OpportunityFactory(
        owner=cast.owner, title="Other pipeline deal", pipeline=PipelineFactory(position=5)
    )
    html = owner_client.get(BOARD).content.decode()  # the first active pipeline by default
    for step in steps:
        assert f'id="col-head-{step.pk}"' in html
    assert "Open deal" in html and "Laguna Spa" in html and "agency-x" in html
    assert "Parked deal" in html
    assert "Won deal" not in html
    assert "Other pipeline deal" not in html
    assert "2,500.00 EUR" in html
    assert f">{cast.owner.initials}<" in html
    assert f"{steps[1].probability}%" in html


def test_overdue_next_action_is_marked_in_words_too(owner_client, cast):
    card(cast, next_action_at=timezone.now() - timedelta(days=2))
    html = owner_client.get(BOARD).content.decode()
    assert 'class="overdue"' in html and "Overdue" in html


def test_user_text_is_escaped(owner_client, cast):
    opp = card(cast, title="<script>alert(1)</script>")
    opp.tags.add(TagFactory(name="<i>tag</i>"))
    html = owner_client.get(BOARD).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>tag</i>" not in html


def test_totals_equal_the_sql_sums_to_the_cent(owner_client, cast, steps):
    # Amounts and probabilities chosen so that rounding each weighted amount matters.
    amounts = [333_33, 1_01, 999_99, 12_345_67, 5]
    cards = [card(cast, steps[2], amount=a) for a in amounts]
    opportunity_set_probability(opportunity=cards[0], probability=33, actor=cast.owner)
    opportunity_set_probability(opportunity=cards[1], probability=49, actor=cast.owner)
    for opp in cards:
        opp.refresh_from_db()
    expected_amount = sum(amounts)
    expected_weighted = sum(weighted_cents(o.amount, o.probability) for o in cards)
    totals = board_totals(user=cast.owner, pipeline=cast.pipeline, filters=BoardFilters())
    assert totals[steps[2].pk] == (len(cards), expected_amount, expected_weighted)
    assert steps[0].pk not in totals
    html = owner_client.get(BOARD).content.decode()
    head = html[html.index(f'id="col-head-{steps[2].pk}"') :]
    head = head[: head.index("</header>")]
    assert money(expected_amount, "EUR") in head
    assert money(expected_weighted, "EUR") in head
    assert ">5<" in head


def test_move_with_htmx_updates_the_card_and_the_totals(owner_client, cast, steps):
    opp = card(cast, steps[0], amount=1000_00)
    response = owner_client.post(move_url(opp), {"step": steps[2].pk}, **HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "opportunityMoved"
    html = response.content.decode()
    assert f'hx-swap-oob="afterbegin:#cards-{steps[2].pk}"' in html
    assert f'id="card-{opp.pk}"' in html
    old_head = html[html.index(f'id="col-head-{steps[0].pk}"') :]
    assert ">0<" in old_head[: old_head.index("</header>")]
    new_head = html[html.index(f'id="col-head-{steps[2].pk}"') :]
    new_head = new_head[: new_head.index("</header>")]
    assert 'hx-swap-oob="true"' in html
    assert ">1<" in new_head
    assert money(1000_00, "EUR") in new_head
    assert money(weighted_cents(1000_00, steps[2].probability), "EUR") in new_head
    opp.refresh_from_db()
    assert opp.step_id == steps[2].pk
    assert opp.probability == steps[2].probability  # follows the step
    assert OpportunityEvent.objects.filter(opportunity=opp, kind=EventKind.MOVED).count() == 1


def test_move_keeps_a_probability_set_by_hand(owner_client, cast, steps):
    opp = card(cast, steps[0])
    opportunity_set_probability(opportunity=opp, probability=90, actor=cast.owner)
    owner_client.post(move_url(opp), {"step": steps[1].pk}, **HTMX)
    opp.refresh_from_db()
    assert (opp.step_id, opp.probability) == (steps[1].pk, 90)


def test_move_without_javascript_redirects_back_with_the_same_filters(owner_client, cast, steps):
    tag = TagFactory()
    opp = card(cast, steps[0])
    opp.tags.add(tag)
    response = owner_client.post(move_url(opp, tag=tag.pk, q="deal"), {"step": steps[3].pk})
    assert response.status_code == 302
    parts = urlsplit(response.url)
    assert parts.path == BOARD
    assert parse_qs(parts.query) == {
        "pipeline": [str(cast.pipeline.pk)],
        "tag": [str(tag.pk)],
        "q": ["deal"],
    }
    opp.refresh_from_db()
    assert opp.step_id == steps[3].pk
    page = owner_client.get(response.url)
    assert "moved to" in page.content.decode()


def test_move_form_is_on_every_editable_card(owner_client, cast, steps):
    opp = card(cast)
    html = owner_client.get(BOARD).content.decode()
    assert f'action="{reverse("sales:board_move", args=[opp.pk])}?pipeline=' in html
    assert f'id="move-{opp.pk}"' in html
    assert 'draggable="true"' in html


def test_move_to_a_step_of_another_pipeline_is_refused(owner_client, cast, steps):
    other_step = PipelineFactory(name="Renewals").steps.first()
    opp = card(cast, steps[0])
    response = owner_client.post(move_url(opp), {"step": other_step.pk}, **HTMX)
    assert response.status_code == 422
    assert "does not belong to this pipeline" in response.content.decode()
    plain = owner_client.post(move_url(opp), {"step": other_step.pk}, follow=True)
    assert "does not belong to this pipeline" in plain.content.decode()
    missing = owner_client.post(move_url(opp), {"step": ""}, **HTMX)
    assert missing.status_code == 422
    opp.refresh_from_db()
    assert opp.step_id == steps[0].pk
    assert not OpportunityEvent.objects.filter(kind=EventKind.MOVED).exists()


def test_teammate_sees_no_move_control_and_a_forged_move_is_403(client, cast, steps):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    opp = card(cast, steps[0], title="Owner deal")
    mine = card(cast, steps[0], owner=cast.teammate, title="Teammate deal")
    client.force_login(cast.teammate)
    html = client.get(BOARD).content.decode()
    assert "Owner deal" in html
    owners_card = html[html.index(f'id="card-{opp.pk}"') :]
    owners_card = owners_card[: owners_card.index("</article>")]
    assert "draggable" not in owners_card and "move-form" not in owners_card
    assert f'id="move-{mine.pk}"' in html  # their own card can move
    assert client.post(move_url(opp), {"step": steps[1].pk}).status_code == 403
    assert client.post(move_url(opp), {"step": steps[1].pk}, **HTMX).status_code == 403
    opp.refresh_from_db()
    assert opp.step_id == steps[0].pk


def test_manager_can_move_a_team_members_card(client, cast, steps):
    opp = card(cast, steps[0])
    client.force_login(cast.manager)
    assert f'id="move-{opp.pk}"' in client.get(BOARD).content.decode()
    assert client.post(move_url(opp), {"step": steps[1].pk}).status_code == 302
    opp.refresh_from_db()
    assert opp.step_id == steps[1].pk


def test_move_needs_post_and_a_csrf_token(cast, steps):
    opp = card(cast, steps[0])
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(cast.owner)
    assert csrf_client.get(move_url(opp)).status_code == 405
    assert csrf_client.post(move_url(opp), {"step": steps[1].pk}).status_code == 403
    opp.refresh_from_db()
    assert opp.step_id == steps[0].pk


# Keyset pages ---------------------------------------------------------------------------


def test_load_more_returns_the_next_cards_without_duplicates(owner_client, cast, steps):
    same_time = timezone.now() + timedelta(days=3)  # ties broken by id
    cards = [
        card(cast, steps[1], title=f"Card {n:02d}", next_action_at=same_time) for n in range(30)
    ]
    card(cast, steps[1], title="Card first", next_action_at=same_time - timedelta(days=1))
    html = owner_client.get(BOARD).content.decode()
    shown = {o.pk for o in cards if f'id="card-{o.pk}"' in html}
    assert len(shown) == BOARD_PAGE - 1 and "Card first" in html
    assert "Load more" in html
    first = board_first_pages(
        user=cast.owner, pipeline=cast.pipeline, steps=steps, filters=BoardFilters()
    )[steps[1].pk]
    more_url = html[html.index(f"{COLUMN}?") :].split('"')[0].replace("&amp;", "&")
    assert (
        f"after={str(first.next).replace(':', '%3A').replace('+', '%2B').replace('|', '%7C')}"
        in more_url
    )
    response = owner_client.get(more_url, **HTMX)
    assert response.status_code == 200
    rest = {o.pk for o in cards if f'id="card-{o.pk}"' in response.content.decode()}
    assert len(rest) == 6
    assert not shown & rest
    assert shown | rest == {o.pk for o in cards}
    assert "Load more" not in response.content.decode()


def test_first_pages_look_the_picked_cards_up_by_id(cast, steps):
    for step in steps:
        card(cast, step)
    with CaptureQueriesContext(connection) as queries:
        pages = board_first_pages(
            user=cast.admin, pipeline=cast.pipeline, steps=steps, filters=BoardFilters()
        )
    assert all(len(pages[step.pk].rows) == 1 for step in steps)
    if connection.vendor == "postgresql":
        # Each column's ids in one union, not a `pk IN` per column OR-ed, over which
        # PostgreSQL read every opportunity and probed each column's ids (0.3 s at 1M).
        plan = postgres_plan(queries.captured_queries[0]["sql"])
        assert "Seq Scan on sales_opportunity " not in plan
        assert "sales_opportunity_pkey" in plan


def test_load_more_works_as_a_plain_page(owner_client, cast, steps):
    for _ in range(BOARD_PAGE + 2):
        card(cast, steps[0])
    first = board_first_pages(
        user=cast.owner, pipeline=cast.pipeline, steps=steps, filters=BoardFilters()
    )[steps[0].pk]
    response = owner_client.get(COLUMN, {"step": steps[0].pk, "after": str(first.next)})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count('class="opp-card') == 2


def test_cursor_round_trips_and_bad_cursors_are_refused(owner_client, steps):
    cursor = Cursor(timezone.now(), 42)
    assert Cursor.parse(str(cursor)) == cursor
    assert owner_client.get(COLUMN, {"step": steps[0].pk, "after": "soon|1"}).status_code == 400
    assert owner_client.get(COLUMN, {"step": steps[0].pk, "after": "nothing"}).status_code == 400


# Filters --------------------------------------------------------------------------------


def test_filters_in_the_url_narrow_the_cards_and_the_totals(owner_client, cast, steps):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    tag = TagFactory(name="media")
    product = ProductFactory(name="Hosting")
    acme = ClientFactory(name="Acme Glass")
    tagged = card(cast, steps[0], title="Tagged deal", amount=100_00)
    tagged.tags.add(tag)
    card(cast, steps[0], title="Product deal", amount=200_00, product=product)
    card(cast, steps[0], title="Client deal", amount=400_00, client=acme)
    card(cast, steps[0], title="Teammate deal", amount=800_00, owner=cast.teammate)

    def shown(**query):
        html = owner_client.get(board_url(cast, **query)).content.decode()
        titles = {
            t for t in ("Tagged deal", "Product deal", "Client deal", "Teammate deal") if t in html
        }
        head = html[html.index(f'id="col-head-{steps[0].pk}"') :]
        return titles, head[: head.index("</header>")]

    titles, head = shown()
    assert len(titles) == 4 and money(1500_00, "EUR") in head
    titles, head = shown(tag=tag.pk)
    assert titles == {"Tagged deal"} and money(100_00, "EUR") in head
    titles, head = shown(product=product.pk)
    assert titles == {"Product deal"} and money(200_00, "EUR") in head
    titles, head = shown(client=acme.pk)
    assert titles == {"Client deal"} and money(400_00, "EUR") in head
    titles, head = shown(owner=cast.teammate.pk)
    assert titles == {"Teammate deal"} and money(800_00, "EUR") in head
    titles, _ = shown(mine=1)
    assert "Teammate deal" not in titles and len(titles) == 3
    titles, _ = shown(q="acme")
    assert titles == {"Client deal"}
    titles, _ = shown(q="tagged")
    assert titles == {"Tagged deal"}
    titles, _ = shown(team=cast.team_a.pk)
    assert len(titles) == 4
    titles, _ = shown(team=cast.team_b.pk)
    assert titles == set()


def test_filter_form_keeps_the_chosen_values(owner_client, cast):
    tag = TagFactory(name="media")
    html = owner_client.get(board_url(cast, tag=tag.pk, mine=1, q="x<y")).content.decode()
    assert f'<option value="{tag.pk}" selected>media</option>' in html
    assert 'name="mine" value="1" checked' in html
    assert 'value="x&lt;y"' in html


def test_malformed_filters_are_ignored(owner_client, cast):
    card(cast, title="Still here")
    response = owner_client.get(board_url(cast, owner="abc", tag="-1", mine="maybe"))
    assert response.status_code == 200
    assert "Still here" in response.content.decode()


def test_htmx_filter_change_returns_the_columns_only(owner_client, cast):
    card(cast, title="Found")
    response = owner_client.get(board_url(cast, q="found"), **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="board-body">')
    assert "Found" in html
    assert "HX-Request" in response["Vary"]
    # A history restore (back button after the cache expired) needs the whole page.
    restore = owner_client.get(
        board_url(cast, q="found"), HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX
    )
    assert restore.content.decode().startswith("<!DOCTYPE html>")


def test_board_without_pipelines_says_so(owner_client, cast):
    type(cast.pipeline).objects.update(is_active=False)
    response = owner_client.get(BOARD)
    assert response.status_code == 200
    assert "There is no pipeline yet" in response.content.decode()


# Query counts ---------------------------------------------------------------------------


def populate(cast, *, per_column, columns):
    pipeline = PipelineFactory(
        name=f"Board {columns}", steps=[(f"Step {n}", 10 * n) for n in range(columns)]
    )
    tags = [TagFactory(name=f"t{n}") for n in range(3)]
    client_folder = ClientFactory()
    for step in pipeline.steps.all():
        for _ in range(per_column):
            opp = OpportunityFactory(
                owner=cast.owner,
                pipeline=pipeline,
                step=step,
                probability=step.probability,
                client=client_folder,
            )
            opp.tags.add(*tags)
    return pipeline, tags[0]


@pytest.mark.parametrize("per_column,columns", [(1, 2), (30, 2), (1, 6), (30, 6)])
@pytest.mark.parametrize("who", ["owner", "manager", "admin"])
def test_board_runs_a_constant_number_of_queries(
    client, cast, per_column, columns, who, django_assert_num_queries
):
    pipeline, tag = populate(cast, per_column=per_column, columns=columns)
    client.force_login(getattr(cast, who))
    # session, user, pipelines, steps, account currency, totals, cards, their tags,
    # filter choices (owners, teams for managers and admins, tags, products), nav count
    expected = 12 if who == "owner" else 13
    with django_assert_num_queries(expected):
        response = client.get(BOARD, {"pipeline": pipeline.pk, "tag": tag.pk, "q": "opp"})
    assert response.status_code == 200
    assert response.content.decode().count('class="opp-card') == min(per_column, 25) * columns


@pytest.mark.parametrize("per_column,columns", [(1, 2), (30, 6)])
def test_htmx_board_and_column_pages_run_constant_queries(
    client, cast, per_column, columns, django_assert_num_queries
):
    pipeline, _ = populate(cast, per_column=per_column, columns=columns)
    client.force_login(cast.owner)
    # session, user, pipelines, steps, account currency, totals, cards, their tags
    with django_assert_num_queries(8):
        client.get(BOARD, {"pipeline": pipeline.pk}, **HTMX)
    step = pipeline.steps.first()
    # session, user, step, cards, their tags, steps (move choices), account currency
    with django_assert_num_queries(7):
        client.get(COLUMN, {"step": step.pk}, **HTMX)


@pytest.mark.parametrize("per_column,columns", [(1, 2), (30, 6)])
def test_move_runs_constant_queries(client, cast, per_column, columns, django_assert_num_queries):
    pipeline, _ = populate(cast, per_column=per_column, columns=columns)
    first_step, *_, target = pipeline.steps.order_by("position")
    opp = Opportunity.objects.filter(step=first_step).first()
    client.force_login(cast.owner)
    with django_assert_num_queries(MOVE_QUERIES):
        response = client.post(move_url(opp), {"step": target.pk}, **HTMX)
    assert response.status_code == 200
    opp.refresh_from_db()
    assert opp.step_id == target.pk


# session, user, the visible opportunity, the step, the service (savepoint, locked re-read,
# update, event insert, subscribed webhook endpoints, release savepoint), the card, its tags,
# steps, account currency, totals
MOVE_QUERIES = 15


def test_move_with_htmx_refreshes_the_board_summary(owner_client, cast, steps):
    moved = card(cast, steps[0], amount=1000_00)
    card(cast, steps[1], amount=500_00)
    response = owner_client.post(move_url(moved), {"step": steps[2].pk}, **HTMX)
    html = response.content.decode()
    summary = html[html.index('id="board-summary"') :]
    summary = summary[: summary.index("</p>")]
    assert 'hx-swap-oob="true"' in summary
    weighted = weighted_cents(1000_00, steps[2].probability) + weighted_cents(
        500_00, steps[1].probability
    )
    assert money(weighted, "EUR") in summary
