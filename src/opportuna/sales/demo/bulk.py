"""The bulk of the demo: opportunities simulated from creation to today, written in batches.

Each opportunity is played forward from its creation: activities, step moves, comments and,
when its cycle ended before today, the outcome; won ones may come back as a renewal or an
upsell made by duplication (see `market`). Rows and events have exactly the shapes the
services write (see `sales/services/_common.py` `record` and `set_fields`), with past
timestamps; `rows` writes them fast.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.utils import timezone

from opportuna.accounts.models import Role, User
from opportuna.sales.demo import vocabulary as words
from opportuna.sales.demo.configuration import DIRECT, PRODUCT_ODDS, RENEWALS, Cast
from opportuna.sales.demo.market import ClientProfile, Deal, Market
from opportuna.sales.demo.rows import DAY, Rows
from opportuna.sales.models import Activity, Client, Comment, EventKind, Opportunity, Status

WORKDAY_START = 8 * 60 + 30  # a working day is 8:30-18:30
WORKDAY_LENGTH = 10 * 60
HISTORY_DAYS = 3 * 365
HORIZON_DAYS = 540  # expected close dates reach 18 months ahead

# The signal the statistics should find: the chance of winning a deal that reached a demo, by
# the number of visits before its first demo (0, 1, 2 or more); owner and product shift it.
WIN_BY_VISITS_BEFORE_DEMO = (0.18, 0.34, 0.64)
RENEWAL_WIN = 0.8
EARLY_DROP = 0.22  # direct deals lost or cancelled before any demo

Event = tuple[int, int, str, dict[str, Any], dict[str, Any]]  # minute, actor, kind, changes, data


@dataclass
class Life:
    """One opportunity being played: its id, owner, step, version and events so far."""

    id: int
    owner: User
    step: int = 0
    version: int = 1
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.owner_id: int = self.owner.pk

    def record(
        self,
        minute: int,
        kind: str,
        *,
        changes: Any = None,
        data: Any = None,
        actor: User | None = None,
    ) -> None:
        actor_id = self.owner_id if actor is None else actor.pk
        self.events.append((minute, actor_id, str(kind), changes or {}, data or {}))


class Bulk:
    """Plans opportunities one by one in time order and writes them every `batch_size`."""

    def __init__(self, *, cast: Cast, rng: random.Random, today: date, batch_size: int) -> None:
        self.cast = cast
        self.rng = rng
        self.today = today.toordinal()
        self.now = self.today * DAY  # local midnight: everything done happened before it
        self.batch_size = batch_size
        self.rows = Rows(timezone.get_current_timezone())
        # Renewals and upsells waiting for their time: (minute, source id, deal), a heap.
        self.due: list[tuple[int, int, Deal]] = []
        self.source_key = next(d.key for d in cast.fields if d.label == "Fonte")
        self.types = {key: t.pk for key, t in cast.activity_types.items()}
        self.product_names = [p.name for p in cast.products]

    def workday(self, day: int) -> int:
        """A random minute in working hours of `day`, moved back to Friday at weekends."""
        weekday = (day - 1) % 7  # date.fromordinal(1) is a Monday
        if weekday >= 5:
            day -= weekday - 4
        return day * DAY + WORKDAY_START + self.rng.randrange(WORKDAY_LENGTH)

    # The run -------------------------------------------------------------------------------

    def run(self, count: int, progress: Callable[[int], object]) -> None:
        """Plan and write `count` opportunities created over the last three years."""
        rng = self.rng
        self.market = Market(
            cast=self.cast,
            rng=rng,
            clients=max(20, round(count * 0.075)),
            used_names=Client.objects.values_list("name", flat=True),
        )
        span = HISTORY_DAYS * DAY
        start = self.now - span
        # Business grows: creation times are denser towards today.
        days = sorted(int((start + span * rng.random() ** 0.8) // DAY) for _ in range(count))
        pending = 0
        for day in days:
            t0 = self.workday(day)
            deal = None
            if self.due and self.due[0][0] <= t0 and rng.random() < 0.85:
                deal = heapq.heappop(self.due)[2]
            self._opportunity(t0, deal or self.market.new_deal())
            pending += 1
            if pending == self.batch_size:
                self.rows.write()
                progress(pending)
                pending = 0
        self.rows.write()
        progress(pending)

    # One opportunity -----------------------------------------------------------------------

    def _script(self, deal: Deal, skill: float) -> tuple[list[tuple[str, int | None]], str, str]:
        """The activities in order (with the step each one reaches) and the outcome if closed."""
        rng = self.rng
        odds = PRODUCT_ODDS[self.product_names[deal.product]][0]
        if deal.pipeline == RENEWALS:
            actions: list[tuple[str, int | None]] = [("call", None)]
            if rng.random() < 0.5:
                actions.append(("email", None))
            if rng.random() < 0.2:
                actions.append(("visit", None))
            actions.append(("proposal_sent", 1))
            if rng.random() < RENEWAL_WIN * (1 + (skill - 1) / 2) * odds:
                return [*actions, ("call", 2)], Status.WON, ""
            if rng.random() < 0.2:
                return actions, Status.CANCELLED, ""
            return actions, Status.LOST, rng.choice(["Price", "Chose a competitor", "No budget"])
        source = deal.fields.get(self.source_key, "")
        first = "info_request" if source in ("Sito web", "Campagna email") else "call"
        actions = [(first, 1)]
        if rng.random() < 0.4:
            actions.append((rng.choice(("email", "call")), None))
        if rng.random() < EARLY_DROP:
            if rng.random() < 0.3:
                actions.append(("visit", 2))
            if rng.random() < 0.15:
                return actions, Status.CANCELLED, ""
            return actions, Status.LOST, rng.choice(["No budget", "Timing", "No decision"])
        visits = rng.choices((0, 1, 2, 3), weights=(30, 30, 25, 15))[0]
        for index in range(visits):
            actions.append(("visit", 2 if index == 0 else None))
            if rng.random() < 0.35:
                actions.append((rng.choice(("email", "call")), None))
        actions.append(("demo", 3))
        chance = WIN_BY_VISITS_BEFORE_DEMO[min(visits, 2)] * skill * odds
        if rng.random() < min(max(chance, 0.03), 0.92):
            actions.append(("proposal_sent", 4))
            if rng.random() < 0.3:
                actions.append(("email", None))
            return [*actions, ("call", 5)], Status.WON, ""
        if rng.random() < 0.06:
            return actions, Status.CANCELLED, ""
        if rng.random() < 0.5:
            return actions, Status.LOST, rng.choice(["Chose a competitor", "No decision"])
        actions.append(("proposal_sent", 4))
        if rng.random() < 0.4:
            actions.append(("call", 5))
        return actions, Status.LOST, rng.choice(["Price", "Chose a competitor", "Timing"])

    def _cycle(self, t0: int, deal: Deal, steps: int) -> tuple[int, int, date]:
        """First working day, length in days and expected close date of the deal's cycle.

        A renewal is opened soon after the contract is won and worked in the weeks before
        its anniversary; other deals start at once and last longer the more steps they take.
        """
        rng = self.rng
        day0 = t0 // DAY
        if deal.renews_on is not None:
            start = max(day0 + 1, deal.renews_on - rng.randint(30, 75))
            length = max(deal.renews_on + rng.randint(-20, 15) - start, 5)
            return start, length, date.fromordinal(deal.renews_on)
        base = PRODUCT_ODDS[self.product_names[deal.product]][1]
        if deal.pipeline == RENEWALS:
            base = 30
        elif rng.random() < 0.05:
            base *= 3  # a strategic project, a year or more
        length = base * (0.5 + 0.12 * steps) * math.exp(rng.gauss(0, 0.45))
        length = min(max(int(length), 5), HORIZON_DAYS)
        estimate = min(day0 + int(length * rng.uniform(0.6, 1.3)), self.today + HORIZON_DAYS)
        return day0, length, date.fromordinal(estimate)

    def _schedule(self, t0: int, start: int, length: int, count: int) -> tuple[list[int], int]:
        """Minutes of `count` activities spread over the cycle, in order, and of its end."""
        rng = self.rng
        times = []
        last = t0
        for position in sorted(rng.uniform(0.02, 0.95) for _ in range(count)):
            minute = self.workday(start + int(length * position))
            if minute <= last:  # two on one day, or a weekend moved back to Friday
                minute = last + rng.randrange(20, 120)
            times.append(minute)
            last = minute
        end = self.workday(start + length)
        if end <= last:
            end = last + rng.randrange(30, 180)
        return times, end

    def _opportunity(self, t0: int, deal: Deal) -> None:
        """Play one opportunity from `t0` to its close or to today, and queue its rows."""
        rng, cast = self.rng, self.cast
        life = Life(id=self.rows.take(Opportunity), owner=deal.owner)
        if deal.client.id is None:
            deal.client.id = self.rows.take(Client)
            self._client_row(deal.client, t0 - 5)
        steps = cast.steps[deal.pipeline]
        actions, outcome, reason = self._script(deal, cast.skill[deal.owner.pk])
        start, length, expected = self._cycle(t0, deal, len(actions))
        times, end = self._schedule(t0, start, length, len(actions))
        closed = end < self.now
        done = len(times) if closed else bisect.bisect_left(times, self.now)
        # The next action given at creation: the first call, a few days on.
        if deal.renews_on is not None:
            planned = max(times[0], t0 + 30)
        else:
            planned = max(self.workday(t0 // DAY + rng.randint(1, 3)), t0 + 30)

        life.record(
            t0,
            EventKind.CREATED,
            data={
                "title": deal.title,
                "pipeline": cast.pipelines[deal.pipeline].pk,
                "step": steps[0].pk,
                "owner": deal.owner.pk,
                "amount": deal.amount,
                "probability": steps[0].probability,
                "expected_close_date": expected.isoformat(),
                "tags": deal.tags,
            },
        )
        if deal.duplicated_from is not None:
            life.record(
                t0, EventKind.DUPLICATED, data={"from": deal.duplicated_from, "direction": "to"}
            )
            self.rows.events.rows.append(
                (
                    deal.duplicated_from,
                    deal.owner.pk,
                    self.rows.stamp(t0),
                    EventKind.DUPLICATED.value,
                    self.rows.json({}),
                    self.rows.json({"to": life.id, "direction": "from"}),
                )
            )
        for (key, reaches), minute in zip(actions[:done], times, strict=False):
            self._activity_done(life, key, minute)
            if reaches is not None and reaches > life.step:
                old, new = steps[life.step], steps[reaches]
                life.record(
                    minute + 2,
                    EventKind.MOVED,
                    changes={
                        "step": [old.pk, new.pk],
                        "probability": [old.probability, new.probability],
                    },
                )
                life.step = reaches
                life.version += 1
        self._comments(life, t0, end if closed else self.now - 1)

        if closed:
            row = self._close(life, deal, outcome, reason, end, planned)
            row["expected"] = expected
        else:
            after = min((times[done - 1] if done else t0) + 10, self.now - 1)
            row = self._keep_open(life, deal, expected, planned, after)

        life.events.sort(key=lambda e: e[0])
        self.rows.events.rows.extend(
            (
                life.id,
                actor,
                self.rows.stamp(minute),
                kind,
                self.rows.json(changes),
                self.rows.json(data),
            )
            for minute, actor, kind, changes, data in life.events
        )
        step = steps[life.step]
        self.rows.opportunities.rows.append(  # in the column order of `Rows.opportunities`
            (
                life.id,
                deal.title,
                deal.client.id,
                deal.owner.pk,
                cast.pipelines[deal.pipeline].pk,
                step.pk,
                row["status"],
                deal.amount,
                row.get("won_amount"),
                step.probability,
                False,
                cast.products[deal.product].pk,
                self.rows.date(row["expected"]),
                row.get("next_action_at"),
                row.get("note", ""),
                self.rows.json(deal.fields),
                deal.description,
                row.get("lost_reason"),
                row.get("lost_note", ""),
                deal.duplicated_from,
                "",
                self.rows.stamp(t0),
                self.rows.stamp(life.events[-1][0]),
                row.get("closed_at"),
                life.version,
            )
        )
        self.rows.contacts.rows.extend(
            (life.id, position, p["name"], p["role"], p["email"], p["phone"])
            for position, p in enumerate(deal.contacts)
        )
        self.rows.tags.rows.extend((life.id, tag) for tag in deal.tags)

    def _activity_done(self, life: Life, key: str, minute: int) -> None:
        aid = self.rows.take(Activity)
        note = self.rng.choice(words.ACTIVITY_NOTES[key])
        at = self.rows.stamp(minute)
        self.rows.activities.rows.append(
            (aid, life.id, self.types[key], life.owner_id, life.owner_id, None, at, note, at)
        )
        data = {"activity": aid, "type": key, "done_at": self.rows.iso(minute)}
        life.record(minute, EventKind.ACTIVITY_LOGGED, data=data)

    def _close(
        self, life: Life, deal: Deal, outcome: str, reason: str, end: int, planned: int
    ) -> dict[str, Any]:
        """Won, lost or cancelled at `end`: the event `_close` in the services records."""
        rng = self.rng
        outcome = Status(outcome).value
        row: dict[str, Any] = {"status": outcome}
        changes: dict[str, list[Any]] = {"status": [Status.TODO.value, outcome]}
        lost_note = ""
        if outcome == Status.WON:
            won = deal.amount
            if rng.random() < 0.4:
                won = round(deal.amount * rng.uniform(0.85, 0.98) / 100) * 100
            changes["won_amount"] = [None, won]
            row["won_amount"] = won
            follow_up = self.market.follow_up(life.id, deal, end, won)
            if follow_up is not None:
                heapq.heappush(self.due, (follow_up[0], life.id, follow_up[1]))
        elif outcome == Status.LOST:
            row["lost_reason"] = self.cast.lost_reasons[reason].pk
            changes["lost_reason"] = [None, row["lost_reason"]]
            lost_note = words.LOST_NOTES[reason]
        else:
            lost_note = rng.choice(words.CANCEL_NOTES)
        if lost_note:
            changes["lost_note"] = ["", lost_note]
            row["lost_note"] = lost_note
        changes["closed_at"] = [None, self.rows.iso(end)]
        changes["next_action_at"] = [self.rows.iso(planned), None]
        life.record(end, outcome, changes=changes)
        life.version += 1
        row["closed_at"] = self.rows.stamp(end)
        return row

    def _keep_open(
        self, life: Life, deal: Deal, expected: date, planned: int, after: int
    ) -> dict[str, Any]:
        """Still open today: push a slipped close date, plan the next action or park it."""
        rng = self.rng
        if expected.toordinal() <= self.today:
            pushed = date.fromordinal(self.today + rng.randint(7, 90))
            changes = {"expected_close_date": [expected.isoformat(), pushed.isoformat()]}
            life.record(after, EventKind.UPDATED, changes=changes)
            life.version += 1
            expected = pushed
        row: dict[str, Any] = {"status": Status.TODO.value, "expected": expected}
        if planned > self.now + 7 * DAY:  # planned at creation, still weeks ahead
            row["next_action_at"] = self.rows.stamp(planned)
            return row
        choice = rng.random()
        if choice < 0.1:
            until = self.today + rng.randint(7, 120)
            minute, note = until * DAY + 9 * 60, rng.choice(words.STANDBY_NOTES)
            row["status"] = Status.STANDBY.value
        else:
            if choice < 0.22:
                minute = self.workday(self.today - rng.randint(1, 12))  # overdue
            elif choice < 0.36:
                minute = self.now + WORKDAY_START + rng.randrange(WORKDAY_LENGTH)  # today
            else:
                minute = self.workday(self.today + rng.randint(1, 30))
            note = rng.choice(words.NEXT_ACTION_NOTES)
            if rng.random() < 0.45:
                self._activity_planned(life, deal, minute, note, after)
        changes: dict[str, list[Any]] = {
            "next_action_at": [self.rows.iso(planned), self.rows.iso(minute)],
            "next_action_note": ["", note],
        }
        kind = EventKind.NEXT_ACTION
        if row["status"] == Status.STANDBY:
            changes = {"status": [Status.TODO.value, Status.STANDBY.value], **changes}
            kind = EventKind.STANDBY
        life.record(after + 1, kind, changes=changes)
        life.version += 1
        row["next_action_at"] = self.rows.stamp(minute)
        row["note"] = note
        return row

    def _activity_planned(self, life: Life, deal: Deal, due: int, note: str, at: int) -> None:
        if deal.pipeline == DIRECT:
            key = ("call", "visit", "demo", "call", "call", "call")[life.step]
        else:
            key = "call" if life.step else "email"
        aid = self.rows.take(Activity)
        self.rows.activities.rows.append(
            (
                aid,
                life.id,
                self.types[key],
                life.owner_id,
                life.owner_id,
                self.rows.stamp(due),
                None,
                note,
                self.rows.stamp(at),
            )
        )
        data = {"activity": aid, "type": key, "due_at": self.rows.iso(due)}
        life.record(at, EventKind.ACTIVITY_PLANNED, data=data)

    def _client_row(self, client: ClientProfile, minute: int) -> None:
        rng = self.rng
        vat = f"IT{rng.randrange(10**10, 10**11):011d}" if client.country == "Italia" else ""
        self.rows.clients.rows.append(
            (
                client.id,
                client.name,
                vat,
                f"info@{client.domain}",
                f"{client.phone_prefix} {rng.randrange(100_000, 9_999_999)}",
                f"https://www.{client.domain}",
                f"{rng.choice(words.STREETS)} {rng.randint(1, 120)}",
                client.city,
                client.country,
                "",
                "",
                self.rows.stamp(minute),
            )
        )

    def _comments(self, life: Life, start: int, end: int) -> None:
        rng = self.rng
        for _ in range(rng.choices((0, 1, 2), weights=(65, 25, 10))[0]):
            minute = start + 1 + rng.randrange(max(1, end - start - 1))
            author = life.owner
            if rng.random() < 0.25:
                author = self.cast.admin
                if life.owner.role == Role.SALESPERSON:
                    author = self.cast.managers_of_team.get(life.owner.team_id or 0, author)
            pinned = rng.random() < 0.12
            cid = self.rows.take(Comment)
            body = rng.choice(words.COMMENTS)
            data = {"comment": cid, "pinned": pinned}
            life.record(minute, EventKind.COMMENT_ADDED, data=data, actor=author)
            # A few are reworded or deleted later by their author: chosen by count, not by
            # the random stream, so everything else stays as it was.
            self.comments_made = getattr(self, "comments_made", 0) + 1
            later = max(minute, min(end - 1, minute + 90))
            edited_at = None
            if self.comments_made % 41 == 0:
                life.record(
                    later,
                    EventKind.COMMENT_DELETED,
                    actor=author,
                    data={**data, "author": author.pk},
                )
                continue
            if self.comments_made % 23 == 0:
                reworded = f"{body} (confermato)"
                changes = {"body": [body, reworded]}
                life.record(
                    later,
                    EventKind.COMMENT_EDITED,
                    changes=changes,
                    data={"comment": cid},
                    actor=author,
                )
                body, edited_at = reworded, self.rows.stamp(later)
            self.rows.comments.rows.append(
                (cid, life.id, author.pk, body, pinned, self.rows.stamp(minute), edited_at)
            )
