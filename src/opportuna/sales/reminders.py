"""Daily reminder digests: one email per user with their overdue and today's next actions and
today's planned activities, in the user's language, with links back to Opportuna.

"Today" is the local day in the account's time zone (settings.TIME_ZONE), cut exactly as the
to-do list cuts it (`Bounds`). Two queries find every user's digest, whatever the number of
users; each list is capped per user in SQL and the rest is only counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.conf import settings
from django.core import mail
from django.db.models import Count, Exists, F, OuterRef, Q, Window
from django.db.models.expressions import OrderBy
from django.db.models.functions import RowNumber
from django.template import Engine
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import ngettext

from opportuna.accounts.models import Account, Role, Team, User, VisibilityPolicy
from opportuna.sales.models import Activity, Opportunity
from opportuna.sales.selectors.todo import Bounds

# Items of each list in one email; a longer list ends with "and N more" and the to-do link.
DIGEST_LIMIT = 50

# The plain-text part is plain text: HTML-escaping it would print "&amp;" for "&". It is
# sent as text/plain, so nothing in it is ever read as markup; the HTML part is autoescaped.
TEXT_TEMPLATES = Engine(
    app_dirs=True,
    autoescape=False,
    libraries={"i18n": "django.templatetags.i18n", "l10n": "django.templatetags.l10n"},
)


@dataclass(frozen=True)
class Item:
    """One line of a digest: a next action or a planned activity, with its absolute link."""

    kind: str  # "next_action" or "activity"
    pk: int
    opportunity_id: int
    title: str
    client: str
    due_at: datetime
    overdue: bool
    note: str
    activity_type: str
    url: str


@dataclass
class Digest:
    """What one user has to do today."""

    user: User
    day: date
    next_actions: list[Item] = field(default_factory=list)
    next_action_count: int = 0
    activities: list[Item] = field(default_factory=list)
    activity_count: int = 0

    @property
    def count(self) -> int:
        return self.next_action_count + self.activity_count

    @property
    def more_next_actions(self) -> int:
        return self.next_action_count - len(self.next_actions)

    @property
    def more_activities(self) -> int:
        return self.activity_count - len(self.activities)

    @property
    def language(self) -> str:
        return self.user.language or settings.LANGUAGE_CODE


@dataclass(frozen=True)
class SendResult:
    sent: list[Digest]
    without_email: list[Digest]


def absolute_url(path: str) -> str:
    return f"{settings.OPPORTUNA_BASE_URL.rstrip('/')}{path}"


def _capped(order: list[OrderBy], partition: str) -> dict[str, Window]:
    """Row number and row count per user, so the cap is applied by the database."""
    return {
        "digest_rank": Window(RowNumber(), partition_by=[F(partition)], order_by=order),
        "digest_total": Window(Count("pk"), partition_by=[F(partition)]),
    }


def seen_by_assignee() -> Q:
    """Activities on opportunities their assigned user may see, for all users at once.

    `visible_owner_filter(user)` written once over every user, with the same rules: an admin
    sees everything, a manager their own and their teams', a salesperson their own, and their
    team's under the team policy. A per-user door would cost one query per user.
    """
    managed = Team.managers.through.objects.filter(
        user_id=OuterRef("user_id"), team_id=OuterRef("opportunity__owner__team_id")
    )
    team_policy = Exists(Account.objects.filter(visibility=VisibilityPolicy.TEAM))
    return (
        Q(opportunity__owner_id=F("user_id"))
        | Q(user__is_superuser=True)
        | Q(user__role=Role.ADMIN)
        | (Q(user__role=Role.MANAGER) & Q(Exists(managed)))
        | (
            Q(user__role=Role.SALESPERSON, user__team_id__isnull=False)
            & Q(opportunity__owner__team_id=F("user__team_id"))
            & Q(team_policy)
        )
    )


def due_next_actions(*, bounds: Bounds, username: str | None = None) -> list[Opportunity]:
    """Open opportunities of active users whose next action is overdue or due today, at most
    DIGEST_LIMIT per owner (each carries `digest_total`), by owner then due time. ONE query.

    An owner always sees their own opportunities, so no visibility door is needed per user.
    """
    queryset = Opportunity.objects.open().filter(
        owner__is_active=True, next_action_at__lt=bounds.tomorrow
    )
    if username is not None:
        queryset = queryset.filter(owner__username=username)
    return list(
        queryset.select_related("owner", "client")
        .annotate(**_capped([F("next_action_at").asc(), F("pk").asc()], "owner_id"))
        .filter(digest_rank__lte=DIGEST_LIMIT)
        .order_by("owner_id", "next_action_at", "pk")
    )


def due_activities(
    *, start: datetime, end: datetime, username: str | None = None
) -> list[Activity]:
    """Planned activities of active users due in [start, end) on opportunities they may see,
    at most DIGEST_LIMIT per user (each carries `digest_total`). ONE query."""
    queryset = (
        Activity.objects.planned()
        .filter(user__is_active=True, due_at__gte=start, due_at__lt=end)
        .filter(seen_by_assignee())
    )
    if username is not None:
        queryset = queryset.filter(user__username=username)
    return list(
        queryset.select_related("user", "type", "opportunity", "opportunity__client")
        .annotate(**_capped([F("due_at").asc(), F("pk").asc()], "user_id"))
        .filter(digest_rank__lte=DIGEST_LIMIT)
        .order_by("user_id", "due_at", "pk")
    )


def _opportunity_url(pk: int) -> str:
    return absolute_url(reverse("sales:opportunity_detail", args=[pk]))


def reminder_digests(*, now: datetime | None = None, username: str | None = None) -> list[Digest]:
    """Every active user's digest for the local day of `now` (only users with something due),
    ordered by username; TWO queries whatever the number of users."""
    bounds = Bounds.at(now)
    day = timezone.localtime(bounds.now).date()
    start = timezone.make_aware(datetime.combine(day, time.min))
    digests: dict[int, Digest] = {}

    def digest_of(user: User) -> Digest:
        if user.pk not in digests:
            digests[user.pk] = Digest(user=user, day=day)
        return digests[user.pk]

    for opp in due_next_actions(bounds=bounds, username=username):
        assert opp.next_action_at is not None  # open opportunities always have one
        digest = digest_of(opp.owner)
        digest.next_action_count = opp.digest_total
        digest.next_actions.append(
            Item(
                kind="next_action",
                pk=opp.pk,
                opportunity_id=opp.pk,
                title=opp.title,
                client=opp.client.name if opp.client else "",
                due_at=opp.next_action_at,
                overdue=opp.next_action_at < bounds.now,
                note=opp.next_action_note,
                activity_type="",
                url=_opportunity_url(opp.pk),
            )
        )
    for activity in due_activities(start=start, end=bounds.tomorrow, username=username):
        assert activity.due_at is not None  # planned activities always have one
        digest = digest_of(activity.user)
        digest.activity_count = activity.digest_total
        opp = activity.opportunity
        digest.activities.append(
            Item(
                kind="activity",
                pk=activity.pk,
                opportunity_id=opp.pk,
                title=opp.title,
                client=opp.client.name if opp.client else "",
                due_at=activity.due_at,
                overdue=activity.due_at < bounds.now,
                note=activity.note,
                activity_type=activity.type.name,
                url=_opportunity_url(opp.pk),
            )
        )
    return sorted(digests.values(), key=lambda digest: digest.user.username)


def digest_subject(digest: Digest) -> str:
    """The subject line, in the active language."""
    return ngettext(
        "Opportuna: %(count)d thing to do on %(day)s",
        "Opportuna: %(count)d things to do on %(day)s",
        digest.count,
    ) % {"count": digest.count, "day": date_format(digest.day, "DATE_FORMAT")}


def digest_message(
    digest: Digest, *, connection: mail.backends.base.BaseEmailBackend | None = None
) -> mail.EmailMultiAlternatives:
    """The email for one digest, written in the user's language (text and HTML parts)."""
    with translation.override(digest.language):
        context = {
            "digest": digest,
            "name": digest.user.first_name or str(digest.user),
            "todo_url": absolute_url(reverse("sales:todo")),
            "settings_url": absolute_url(reverse("accounts:my_account")),
        }
        subject = digest_subject(digest)
        text = TEXT_TEMPLATES.render_to_string("sales/email/reminder_digest.txt", context)
        html = render_to_string("sales/email/reminder_digest.html", context)
    message = mail.EmailMultiAlternatives(
        subject=subject, body=text, to=[digest.user.email], connection=connection
    )
    message.attach_alternative(html, "text/html")
    return message


def send_reminder_digests(
    *, now: datetime | None = None, username: str | None = None
) -> SendResult:
    """Send today's digests by email (settings.EMAIL_BACKEND; the console by default).

    Users without an email address are left out and returned apart.
    """
    digests = reminder_digests(now=now, username=username)
    sendable = [digest for digest in digests if digest.user.email]
    if sendable:
        with mail.get_connection() as connection:
            connection.send_messages(
                [digest_message(digest, connection=connection) for digest in sendable]
            )
    return SendResult(
        sent=sendable, without_email=[digest for digest in digests if not digest.user.email]
    )


__all__ = [
    "DIGEST_LIMIT",
    "Digest",
    "Item",
    "SendResult",
    "digest_message",
    "digest_subject",
    "due_activities",
    "due_next_actions",
    "reminder_digests",
    "seen_by_assignee",
    "send_reminder_digests",
]
