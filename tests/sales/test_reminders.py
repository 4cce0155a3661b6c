"""Reminder digests: who gets an email, with which items, in which language; the
`send_reminders` command, the task, and the worker that runs it when tasks are queued."""

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone, translation

from opportuna.accounts.models import Account, VisibilityPolicy
from opportuna.sales import reminders
from opportuna.sales.models import Activity
from opportuna.sales.reminders import reminder_digests, send_reminder_digests
from opportuna.sales.selectors import visible_opportunities
from opportuna.sales.tasks import send_reminder_digests as send_reminder_digests_task
from tests.factories import (
    LostReasonFactory,
    OpportunityFactory,
    UserFactory,
    activity_type,
    make_cast,
)

SRC = Path(__file__).resolve().parents[2] / "src"
TODAY = datetime(2026, 3, 10).date()


def at(days: int, hour: int, minute: int = 0) -> datetime:
    """A local time `days` after TODAY."""
    return timezone.make_aware(datetime.combine(TODAY + timedelta(days=days), time(hour, minute)))


NOW = at(0, 7)  # the digest goes out at 7:00


@pytest.fixture
def cast(db):
    return make_cast()


def opportunity(cast, *, owner=None, **kwargs):
    return OpportunityFactory(owner=owner or cast.owner, pipeline=cast.pipeline, **kwargs)


def plan(opp, user, due_at, **kwargs):
    return Activity.objects.create(
        opportunity=opp, type=activity_type("call"), user=user, due_at=due_at, **kwargs
    )


def digest_of(user, now=NOW):
    found = [digest for digest in reminder_digests(now=now) if digest.user == user]
    return found[0] if found else None


def titles(digest):
    return {item.title for item in digest.next_actions}


# --- Who gets what -------------------------------------------------------------------------


def test_overdue_next_action_is_in_the_digest(cast):
    opportunity(cast, title="Late", next_action_at=at(-2, 10))
    assert titles(digest_of(cast.owner)) == {"Late"}


def test_next_action_due_later_today_is_in_the_digest(cast):
    opportunity(cast, title="This afternoon", next_action_at=at(0, 15))
    assert titles(digest_of(cast.owner)) == {"This afternoon"}


def test_next_action_due_just_before_midnight_local_time_is_today(cast):
    opportunity(cast, title="Late evening", next_action_at=at(0, 23, 59))
    assert titles(digest_of(cast.owner)) == {"Late evening"}


def test_next_action_due_tomorrow_is_not_in_the_digest(cast):
    opportunity(cast, title="Tomorrow", next_action_at=at(1, 0))
    assert digest_of(cast.owner) is None


def test_standby_until_a_later_day_is_not_in_the_digest(cast):
    opportunity(cast, title="Parked", status="standby", next_action_at=at(3, 9))
    assert digest_of(cast.owner) is None


def test_standby_coming_back_today_is_in_the_digest(cast):
    opportunity(cast, title="Back today", status="standby", next_action_at=at(0, 9))
    assert titles(digest_of(cast.owner)) == {"Back today"}


def test_closed_opportunities_are_not_in_the_digest(cast):
    opportunity(cast, title="Won", status="won", won_amount=100, closed_at=at(-1, 9))
    opportunity(
        cast,
        title="Lost",
        status="lost",
        lost_reason=LostReasonFactory(),
        closed_at=at(-1, 9),
    )
    opportunity(cast, title="Cancelled", status="cancelled", closed_at=at(-1, 9))
    assert digest_of(cast.owner) is None


def test_only_the_owner_gets_their_next_actions(cast):
    opportunity(cast, title="Mine", next_action_at=at(-1, 9))
    digests = reminder_digests(now=NOW)
    assert [digest.user for digest in digests] == [cast.owner]


def test_inactive_users_get_no_digest(cast):
    cast.owner.is_active = False
    cast.owner.save()
    opportunity(cast, next_action_at=at(-1, 9))
    plan(opportunity(cast, owner=cast.teammate), cast.owner, at(0, 15))
    assert reminder_digests(now=NOW) == []


def test_next_actions_come_overdue_first(cast):
    opportunity(cast, title="Today", next_action_at=at(0, 15))
    opportunity(cast, title="Yesterday", next_action_at=at(-1, 9))
    items = digest_of(cast.owner).next_actions
    assert [(item.title, item.overdue) for item in items] == [
        ("Yesterday", True),
        ("Today", False),
    ]


def test_planned_activity_due_today_is_in_the_digest(cast):
    opp = opportunity(cast, title="Deal", next_action_at=at(5, 9))
    plan(opp, cast.owner, at(0, 11), note="Call the buyer")
    digest = digest_of(cast.owner)
    assert [(item.title, item.note, item.activity_type) for item in digest.activities] == [
        ("Deal", "Call the buyer", "Call")
    ]
    assert digest.next_actions == []


def test_planned_activity_due_another_day_is_not_in_the_digest(cast):
    opp = opportunity(cast, next_action_at=at(5, 9))
    plan(opp, cast.owner, at(1, 0))
    plan(opp, cast.owner, at(-1, 23, 59))
    assert digest_of(cast.owner) is None


def test_done_activity_is_not_in_the_digest(cast):
    opp = opportunity(cast, next_action_at=at(5, 9))
    plan(opp, cast.owner, at(0, 11), done_at=at(0, 6))
    assert digest_of(cast.owner) is None


def test_planned_activity_goes_to_its_assignee_not_the_owner(cast):
    opp = opportunity(cast, title="Shared", next_action_at=at(5, 9))
    plan(opp, cast.teammate, at(0, 11))
    Account.objects.update_or_create(pk=1, defaults={"visibility": VisibilityPolicy.TEAM})
    digests = reminder_digests(now=NOW)
    assert [(digest.user, [item.title for item in digest.activities]) for digest in digests] == [
        (cast.teammate, ["Shared"])
    ]


@pytest.mark.parametrize("policy", [VisibilityPolicy.OWN, VisibilityPolicy.TEAM])
def test_planned_activities_follow_what_their_user_may_see(cast, policy):
    # The digest writes the visibility rule over all users at once: it must agree with the
    # door, `visible_opportunities(user)`, for every role and policy.
    Account.objects.update_or_create(pk=1, defaults={"visibility": policy})
    loner = UserFactory(username="loner")
    people = [cast.owner, cast.teammate, cast.other, cast.manager, cast.admin, loner]
    opportunities = [
        opportunity(cast, owner=owner, next_action_at=at(5, 9))
        for owner in (cast.owner, cast.other, cast.manager, loner)
    ]
    for user in people:
        for opp in opportunities:
            plan(opp, user, at(0, 11))
    digests = {digest.user: digest for digest in reminder_digests(now=NOW)}
    for user in people:
        digest = digests.get(user)
        seen = {item.opportunity_id for item in digest.activities} if digest else set()
        visible = set(
            visible_opportunities(user)
            .filter(pk__in=[opp.pk for opp in opportunities])
            .values_list("pk", flat=True)
        )
        assert seen == visible, user.username


def test_long_lists_are_capped_and_counted(cast, monkeypatch):
    monkeypatch.setattr(reminders, "DIGEST_LIMIT", 2)
    for hour in (8, 9, 10, 11, 12):
        opportunity(cast, title=f"At {hour}", next_action_at=at(0, hour))
    digest = digest_of(cast.owner)
    assert [item.title for item in digest.next_actions] == ["At 8", "At 9"]
    assert (digest.next_action_count, digest.more_next_actions) == (5, 3)


def test_user_option_keeps_one_users_digest(cast):
    opportunity(cast, next_action_at=at(-1, 9))
    opportunity(cast, owner=cast.teammate, next_action_at=at(-1, 9))
    assert [d.user for d in reminder_digests(now=NOW, username="teammate")] == [cast.teammate]


# --- The email ------------------------------------------------------------------------------


def test_each_user_with_something_due_gets_one_email(cast, mailoutbox):
    opportunity(cast, next_action_at=at(-1, 9))
    opportunity(cast, next_action_at=at(0, 9))
    opportunity(cast, owner=cast.teammate, next_action_at=at(0, 9))
    opportunity(cast, owner=cast.other, next_action_at=at(1, 9))
    send_reminder_digests(now=NOW)
    assert sorted(message.to[0] for message in mailoutbox) == [
        cast.owner.email,
        cast.teammate.email,
    ]


def test_email_is_written_in_the_users_language(cast, mailoutbox):
    cast.owner.language = "it"
    cast.owner.save()
    opportunity(cast, next_action_at=at(-1, 9))
    opportunity(cast, owner=cast.teammate, next_action_at=at(-1, 9))
    send_reminder_digests(now=NOW)
    body = {message.to[0]: message.body for message in mailoutbox}
    assert "In ritardo" in body[cast.owner.email]
    assert "Overdue" in body[cast.teammate.email]
    assert translation.get_language() == "en"


def test_email_links_are_absolute_from_the_base_url(cast, mailoutbox, settings):
    settings.OPPORTUNA_BASE_URL = "https://crm.example.com"
    opp = opportunity(cast, next_action_at=at(-1, 9))
    send_reminder_digests(now=NOW)
    (message,) = mailoutbox
    link = f"https://crm.example.com/o/{opp.pk}/"
    assert link in message.body
    assert f'href="{link}"' in message.alternatives[0].content


def test_user_text_is_escaped_in_the_html_part_and_plain_in_the_text_part(cast, mailoutbox):
    opportunity(cast, title="<b>Rossi</b> & Figli", next_action_at=at(-1, 9))
    send_reminder_digests(now=NOW)
    (message,) = mailoutbox
    html = message.alternatives[0].content
    assert "&lt;b&gt;Rossi&lt;/b&gt; &amp; Figli" in html
    assert "<b>Rossi</b>" not in html
    assert "<b>Rossi</b> & Figli" in message.body


def test_subject_counts_everything_due(cast, mailoutbox):
    opp = opportunity(cast, next_action_at=at(-1, 9))
    plan(opp, cast.owner, at(0, 11))
    send_reminder_digests(now=NOW)
    assert "2 things to do" in mailoutbox[0].subject


def test_user_without_email_is_left_out_and_reported(cast, mailoutbox):
    cast.owner.email = ""
    cast.owner.save()
    opportunity(cast, next_action_at=at(-1, 9))
    result = send_reminder_digests(now=NOW)
    assert mailoutbox == []
    assert [digest.user for digest in result.without_email] == [cast.owner]


@pytest.mark.parametrize("users", [1, 30])
def test_digests_take_two_queries_whatever_the_number_of_users(
    cast, users, mailoutbox, django_assert_num_queries
):
    for n in range(users):
        user = UserFactory(username=f"seller{n}", language="it" if n % 2 else "")
        opportunity(cast, owner=user, next_action_at=at(-1, 9))
        opp = opportunity(cast, owner=user, next_action_at=at(0, 15))
        plan(opp, user, at(0, 11))
    # 1: due opportunities of every user; 2: planned activities of every user.
    with django_assert_num_queries(2):
        send_reminder_digests(now=NOW)
    assert len(mailoutbox) == users


# --- The command and the task ---------------------------------------------------------------


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("send_reminders", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def due_now(cast, **kwargs):
    # The command works on the real "now": put the next action an hour ago.
    return opportunity(cast, next_action_at=timezone.now() - timedelta(hours=1), **kwargs)


def test_command_sends_the_digests(cast, mailoutbox):
    due_now(cast)
    out, _err = run()
    assert len(mailoutbox) == 1
    assert "Sent 1 reminder email." in out


def test_dry_run_sends_nothing_and_lists_who_would_get_what(cast, mailoutbox):
    due_now(cast, title="Rossi renewal")
    out, _err = run("--dry-run")
    assert mailoutbox == []
    assert "owner" in out
    assert "Rossi renewal" in out


def test_dry_run_as_json(cast, mailoutbox):
    opp = due_now(cast, title="Rossi renewal")
    out, _err = run("--dry-run", "--format", "json")
    (digest,) = json.loads(out)
    assert digest["user"] == "owner"
    assert digest["email"] == cast.owner.email
    assert [item["opportunity_id"] for item in digest["next_actions"]] == [opp.pk]
    assert mailoutbox == []


def test_dry_run_as_csv_defuses_formulas(cast, mailoutbox):
    due_now(cast, title="=HYPERLINK(1)")
    out, _err = run("--dry-run", "--format", "csv")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["title"] == "'=HYPERLINK(1)"
    assert row["user"] == "owner"
    assert mailoutbox == []


def test_user_option_sends_only_that_users_digest(cast, mailoutbox):
    due_now(cast)
    due_now(cast, owner=cast.teammate)
    run("--user", "teammate")
    assert [message.to for message in mailoutbox] == [[cast.teammate.email]]


def test_unknown_user_is_an_error(cast):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("--user", "nobody")


def test_command_reports_users_without_email(cast, mailoutbox):
    cast.owner.email = ""
    cast.owner.save()
    due_now(cast)
    _out, err = run()
    assert "owner: no email address" in err


def test_help_says_what_the_command_does():
    parser = load_command_class("opportuna.sales", "send_reminders").create_parser(
        "opportuna", "send_reminders"
    )
    text = parser.format_help()
    assert "--dry-run" in text
    assert "--user" in text
    assert "{table,json,csv}" in text
    assert "overdue or due today" in text


def test_task_sends_the_digests(cast, mailoutbox):
    due_now(cast)
    result = send_reminder_digests_task.enqueue()
    assert result.return_value == 1
    assert len(mailoutbox) == 1


# --- The worker runs the queued task --------------------------------------------------------


def opportuna(*args, data_dir, **variables):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("OPPORTUNA_")
        and name not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(OPPORTUNA_DATA_DIR=str(data_dir), **variables)
    # The arguments come from the tests themselves, never from outside.
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "opportuna", *args],
        env=env,
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_worker_runs_the_queued_digest_task(tmp_path):
    queued = {"OPPORTUNA_TASKS_BACKEND": "django_tasks_db.DatabaseBackend"}
    assert opportuna("migrate", "-v0", data_dir=tmp_path).returncode == 0
    enqueue = opportuna(
        "shell",
        "-c",
        "from opportuna.sales.tasks import send_reminder_digests as t; print(t.enqueue().id)",
        data_dir=tmp_path,
        **queued,
    )
    assert enqueue.returncode == 0, enqueue.stderr
    worker = opportuna("worker", "--batch", "--no-startup-delay", data_dir=tmp_path, **queued)
    assert worker.returncode == 0, worker.stderr
    state = opportuna(
        "shell",
        "-c",
        "from django_tasks_db.models import DBTaskResult as R; "
        "print([(r.status, r.return_value) for r in R.objects.all()])",
        data_dir=tmp_path,
        **queued,
    )
    assert "[('SUCCESSFUL', 0)]" in state.stdout, state.stdout + state.stderr


def test_worker_explains_that_immediate_tasks_need_no_worker(tmp_path):
    done = opportuna("worker", "--batch", data_dir=tmp_path)
    assert done.returncode != 0
    assert "OPPORTUNA_TASKS_BACKEND=django_tasks_db.DatabaseBackend" in done.stderr
