"""The to-do list in a real browser: "Done…" opens its form inline (htmx), logs the activity,
plans the next action, and the list and the navigation's count update without a reload."""

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from opportuna.sales.models import Activity, EventKind, OpportunityEvent
from tests.factories import OpportunityFactory, make_cast

# The live server needs committed data; the seeded activity types come back after each flush.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def cast():
    return make_cast()


def test_done_moves_the_row_out_of_overdue_and_updates_the_counts(open_page, cast):
    now = timezone.now()
    late = OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        title="Late deal",
        next_action_at=now - timedelta(hours=2),
    )
    also_late = OpportunityFactory(
        owner=cast.owner,
        pipeline=cast.pipeline,
        title="Also late",
        next_action_at=now - timedelta(days=1),
    )
    page = open_page(cast.owner)
    page.goto(reverse("sales:todo"))
    overdue = page.locator("section.todo-group").filter(has=page.locator("#group-overdue"))
    nav_count = page.locator(".nav a[href='/']:not(.brand) .badge")
    expect(nav_count).to_have_text("2")
    expect(overdue.locator("#group-overdue .badge")).to_have_text("2")
    expect(overdue.locator(f"#todo-{late.pk}")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    row = page.locator(f"#todo-{late.pk}")
    row.get_by_text("Done… plan the next action").click()
    form = row.locator("form.done-form")  # fetched by htmx when the <details> opens
    form.get_by_label("Activity done").select_option(label="Visit")
    form.get_by_label("What happened (optional)").fill("Met the CFO")
    form.get_by_label("Tomorrow 9:00").check()
    form.get_by_role("button", name="Save").click()

    done_row = page.locator(f"#todo-{late.pk}")
    expect(done_row).to_have_class(re.compile(r"\bjust-done\b"))
    expect(overdue.locator(f"#todo-{late.pk}")).to_have_count(0)
    expect(overdue.locator(f"#todo-{also_late.pk}")).to_be_visible()
    expect(overdue.locator("#group-overdue .badge")).to_have_text("1")
    expect(nav_count).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True

    activity = Activity.objects.get(opportunity=late)
    assert activity.type.key == "visit"
    assert activity.note == "Met the CFO"
    assert activity.user == cast.owner
    assert activity.done_at is not None
    late.refresh_from_db()
    tomorrow = timezone.localdate() + timedelta(days=1)
    nine = datetime.combine(tomorrow, time(9, 0), tzinfo=ZoneInfo(settings.TIME_ZONE))
    assert late.next_action_at == nine
    assert OpportunityEvent.objects.filter(opportunity=late, kind=EventKind.NEXT_ACTION).exists()
    also_late.refresh_from_db()
    assert not Activity.objects.filter(opportunity=also_late).exists()
