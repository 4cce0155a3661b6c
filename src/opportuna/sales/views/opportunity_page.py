"""The opportunity page as the views render it: its context, forms and timeline sentences.

Every action of the page re-renders it the same way, so an error shows the page with the
failed form open and its messages, and an htmx request gets the page partial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from opportuna.accounts.models import Account
from opportuna.core.templatetags.opportuna import money
from opportuna.sales import forms
from opportuna.sales.models import (
    Contact,
    EventKind,
    FieldKind,
    Opportunity,
    OpportunityEvent,
    Status,
)
from opportuna.sales.selectors.opportunity import (
    OpportunityPage,
    References,
    TimelineItem,
    opportunity_page,
)

PAGE_TEMPLATE = "sales/opportunity_detail.html"

FIELD_LABELS = {
    "title": gettext_lazy("title"),
    "client": gettext_lazy("client folder"),
    "owner": gettext_lazy("owner"),
    "amount": gettext_lazy("amount"),
    "won_amount": gettext_lazy("won amount"),
    "product": gettext_lazy("product"),
    "expected_close_date": gettext_lazy("expected close"),
    "next_action_at": gettext_lazy("next action"),
    "next_action_note": gettext_lazy("next action note"),
    "description": gettext_lazy("description"),
    "external_id": gettext_lazy("external id"),
    "probability": gettext_lazy("probability"),
    "step": gettext_lazy("step"),
    "status": gettext_lazy("status"),
    "lost_reason": gettext_lazy("lost reason"),
    "lost_note": gettext_lazy("note"),
    "name": gettext_lazy("name"),
    "role": gettext_lazy("role"),
    "email": gettext_lazy("email"),
    "phone": gettext_lazy("phone"),
}
# Bookkeeping columns that change with a status and would only repeat the sentence.
QUIET_FIELDS = {"closed_at", "probability_is_manual", "version", "status"}


def optional_url(name: str, *args: Any) -> str:
    """The URL of a screen that may not be built yet; empty until it is."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def parse_cursor(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if timezone.is_aware(moment) else None


def load_page(request: HttpRequest, pk: int) -> OpportunityPage:
    """The page's data for this user; 404 when the opportunity is not theirs to see."""
    try:
        return opportunity_page(
            user=request.user,  # type: ignore[arg-type]
            pk=pk,
            until=parse_cursor(request.GET.get("until")),
        )
    except Opportunity.DoesNotExist as exc:
        raise Http404 from exc


def action_forms(page: OpportunityPage, currency: str) -> dict[str, Any]:
    """The page's small forms, unbound, prefilled from the opportunity."""
    opp = page.opportunity
    tomorrow = timezone.localtime() + timedelta(days=1)
    return {
        "comment": forms.CommentForm(activity_types=page.activity_types),
        "activity_log": forms.ActivityLogForm(activity_types=page.activity_types),
        "activity_plan": forms.ActivityPlanForm(
            activity_types=page.activity_types,
            initial={"due_at": tomorrow.replace(hour=9, minute=0, second=0, microsecond=0)},
        ),
        "next_action": forms.NextActionForm(
            initial={"at": opp.next_action_at, "note": opp.next_action_note}
        ),
        "standby": forms.StandbyForm(initial={"until": timezone.localdate() + timedelta(days=30)}),
        "move": forms.MoveForm(steps=page.steps, initial={"step": opp.step_id}),
        "probability": forms.ProbabilityForm(
            initial={"probability": opp.probability, "follow_step": not opp.probability_is_manual}
        ),
        "won": forms.WonForm(initial={"won_amount": opp.amount}),
        "lost": forms.LostForm(reasons=page.lost_reasons),
        "cancel": forms.CancelForm(),
        "reopen": forms.ReopenForm(),
        "contact_add": forms.ContactForm(prefix="new-contact"),
        "tag_add": forms.TagForm(),
    }


def field_row(label: str, value: Any, kind: str) -> dict[str, str]:
    """A default field for display, with a link when its kind makes one safe."""
    text = str(value)
    href = ""
    if kind == FieldKind.EMAIL:
        href = f"mailto:{text}"
    elif kind == FieldKind.PHONE:
        href = "tel:" + re.sub(r"[^0-9+]", "", text)
    elif kind == FieldKind.URL and re.match(r"https?://", text, re.IGNORECASE):
        href = text
    return {"label": label, "value": text, "href": href, "kind": kind}


@dataclass
class ContactRow:
    contact: Contact
    dialog: str
    main: bool
    tel: str
    up_order: list[int] | None
    form: forms.ContactForm


def contact_rows(page: OpportunityPage, bound: dict[int, forms.ContactForm]) -> list[ContactRow]:
    ids = [c.pk for c in page.contacts]
    rows = []
    for index, contact in enumerate(page.contacts):
        up = None
        if index:
            up = [*ids[: index - 1], contact.pk, ids[index - 1], *ids[index + 1 :]]
        form = bound.get(contact.pk) or forms.ContactForm(
            prefix=f"contact-{contact.pk}",
            initial={k: getattr(contact, k) for k in ("name", "role", "email", "phone")},
        )
        rows.append(
            ContactRow(
                contact=contact,
                dialog=f"contact-{contact.pk}",
                main=index == 0,
                tel=re.sub(r"[^0-9+]", "", contact.phone),
                up_order=up,
                form=form,
            )
        )
    return rows


def page_context(
    request: HttpRequest,
    page: OpportunityPage,
    *,
    bound: dict[str, Any] | None = None,
    open_dialog: str = "",
    contact_forms: dict[int, forms.ContactForm] | None = None,
) -> dict[str, Any]:
    opp = page.opportunity
    currency = Account.load().currency
    page_forms = {**action_forms(page, currency), **(bound or {})}
    values = opp.fields or {}
    field_rows = [
        field_row(d.label, values[d.key], d.kind)
        for d in sorted(page.field_definitions, key=lambda d: (d.position, d.pk))
        if values.get(d.key)
    ]
    known = {d.key for d in page.field_definitions}
    field_rows += [field_row(k, v, "text") for k, v in values.items() if k not in known and v]
    older_url = ""
    if page.older is not None:
        query = urlencode({"until": page.older.isoformat()})
        older_url = f"{reverse('sales:opportunity_detail', args=[opp.pk])}?{query}#timeline"
    return {
        "opp": opp,
        "page": page,
        "currency": currency,
        "forms": page_forms,
        "open_dialog": open_dialog,
        "field_rows": field_rows,
        "contacts": contact_rows(page, contact_forms or {}),
        "timeline": [describe(item, page.refs, currency) for item in page.timeline],
        "older_url": older_url,
        "client_url": optional_url("sales:client_detail", opp.client_id) if opp.client_id else "",
        "now": timezone.now(),
    }


def render_page(
    request: HttpRequest,
    pk: int,
    *,
    bound: dict[str, Any] | None = None,
    open_dialog: str = "",
    status: int = 200,
    contact_forms: dict[int, forms.ContactForm] | None = None,
) -> HttpResponse:
    """The page, or for htmx its `page` partial, optionally with a bound form open."""
    page = load_page(request, pk)
    context = page_context(
        request, page, bound=bound, open_dialog=open_dialog, contact_forms=contact_forms
    )
    template = f"{PAGE_TEMPLATE}#page" if request.htmx else PAGE_TEMPLATE  # type: ignore[attr-defined]
    return render(request, template, context, status=status)


def done(request: HttpRequest, pk: int, message: str, *, anchor: str = "") -> HttpResponse:
    """After a successful action: post/redirect/get, or the fresh page partial for htmx."""
    messages.success(request, message)
    if request.htmx:  # type: ignore[attr-defined]
        response = render_page(request, pk)
        response["HX-Trigger"] = "opportunity-changed"
        return response
    url = reverse("sales:opportunity_detail", args=[pk])
    return redirect(f"{url}#{anchor}" if anchor else url)


def failed(
    request: HttpRequest,
    pk: int,
    name: str,
    form: Any,
    *,
    contact_forms: dict[int, forms.ContactForm] | None = None,
) -> HttpResponse:
    """A form did not pass: the page again, that form open with its errors, status 422."""
    return render_page(
        request,
        pk,
        bound={name: form} if form is not None else None,
        open_dialog=name,
        status=422,
        contact_forms=contact_forms,
    )


# Timeline sentences -----------------------------------------------------------------------


@dataclass
class Line:
    """A timeline entry ready for the template: a sentence, detail lines, maybe a link."""

    item: TimelineItem
    text: str = ""
    details: list[str] = field(default_factory=list)
    link_url: str = ""
    link_text: str = ""

    @property
    def kind(self) -> str:
        return self.item.kind


def describe(item: TimelineItem, refs: References, currency: str) -> Line:
    if item.event is None:
        return Line(item=item)
    return describe_event(item, item.event, refs, currency)


def _name(mapping: dict[int, Any], value: Any) -> str:
    if value is None:
        return _("none")
    obj = mapping.get(value) if isinstance(value, int) else None
    if obj is None:
        return _("#%(id)s") % {"id": value}
    return obj.name if hasattr(obj, "name") else str(obj)


def _date(value: Any) -> str:
    if not value:
        return _("none")
    try:
        return formats.date_format(date.fromisoformat(str(value)[:10]), "SHORT_DATE_FORMAT")
    except ValueError:
        return str(value)


def _datetime(value: Any) -> str:
    if not value:
        return _("none")
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return formats.date_format(moment, "SHORT_DATETIME_FORMAT")


def _text(value: Any) -> str:
    return f"“{value}”" if value not in (None, "") else _("empty")


def format_value(name: str, value: Any, refs: References, currency: str) -> str:
    """One value of the event log ({field: [before, after]}) as people read it."""
    if name in {"amount", "won_amount"}:
        return money(value, currency) if isinstance(value, int) else _("none")
    if name == "probability":
        return str(value)
    if name == "step":
        return _name(refs.steps, value)
    if name == "owner":
        user = refs.users.get(value) if isinstance(value, int) else None
        return str(user) if user is not None else _name({}, value)
    if name == "client":
        return _name(refs.clients, value)
    if name == "product":
        return _name(refs.products, value)
    if name == "lost_reason":
        return _name(refs.lost_reasons, value)
    if name == "expected_close_date":
        return _date(value)
    if name == "next_action_at":
        return _datetime(value)
    if name == "status":
        return str(dict(Status.choices).get(value, value))
    return _text(value)


def change_details(changes: dict[str, Any], refs: References, currency: str) -> list[str]:
    """One "field: before → after" line per recorded change; default fields by label."""
    lines = []
    for name, pair in changes.items():
        if name in QUIET_FIELDS:
            continue
        if not isinstance(pair, list) or len(pair) != 2:
            continue
        before, after = pair
        label = str(FIELD_LABELS.get(name, name))
        if name == "description":
            lines.append(_("description changed"))
        elif name == "fields":
            lines += _field_changes(before or {}, after or {}, refs)
        else:
            lines.append(
                _("%(field)s: %(before)s → %(after)s")
                % {
                    "field": label,
                    "before": format_value(name, before, refs, currency),
                    "after": format_value(name, after, refs, currency),
                }
            )
    return lines


def _field_changes(before: dict[str, Any], after: dict[str, Any], refs: References) -> list[str]:
    lines = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key, ""), after.get(key, "")
        if old != new:
            lines.append(
                _("%(field)s: %(before)s → %(after)s")
                % {
                    "field": refs.field_labels.get(key, key),
                    "before": _text(old),
                    "after": _text(new),
                }
            )
    return lines


def describe_event(
    item: TimelineItem, event: OpportunityEvent, refs: References, currency: str
) -> Line:
    """A human sentence for one event, with its details; every kind has one."""
    actor = str(event.actor) if event.actor is not None else _("Someone")
    changes: dict[str, Any] = event.changes or {}
    data: dict[str, Any] = event.data or {}
    line = Line(item=item)
    kind = event.kind
    values = {"actor": actor}

    def pair(name: str) -> tuple[Any, Any]:
        value = changes.get(name)
        return (value[0], value[1]) if isinstance(value, list) and len(value) == 2 else (None, None)

    if kind == EventKind.CREATED:
        line.text = _("%(actor)s created the opportunity") % values
        if data.get("step"):
            line.details.append(
                _("step %(step)s, amount %(amount)s")
                % {
                    "step": _name(refs.steps, data.get("step")),
                    "amount": money(data.get("amount") or 0, currency),
                }
            )
    elif kind == EventKind.MOVED:
        before, after = pair("step")
        line.text = _("%(actor)s moved it from %(before)s to %(after)s") % {
            **values,
            "before": _name(refs.steps, before),
            "after": _name(refs.steps, after),
        }
        if "probability" in changes:
            p_before, p_after = pair("probability")
            line.details.append(
                _("probability %(before)s → %(after)s") % {"before": p_before, "after": p_after}
            )
    elif kind == EventKind.PROBABILITY:
        before, after = pair("probability")
        if "probability" in changes:
            line.text = _("%(actor)s changed the probability from %(before)s to %(after)s") % {
                **values,
                "before": before,
                "after": after,
            }
        else:
            line.text = _("%(actor)s changed how the probability is set") % values
        manual = pair("probability_is_manual")[1]
        if manual is False:
            line.details.append(_("it follows the step again"))
        elif manual is True:
            line.details.append(_("set by hand"))
    elif kind == EventKind.NEXT_ACTION:
        at = pair("next_action_at")[1] if "next_action_at" in changes else None
        if at:
            line.text = _("%(actor)s planned the next action for %(when)s") % {
                **values,
                "when": _datetime(at),
            }
        else:
            line.text = _("%(actor)s changed the next action") % values
        note = pair("next_action_note")[1]
        if note:
            line.details.append(note)
        if pair("status")[0] == Status.STANDBY:
            line.details.append(_("back from standby"))
    elif kind == EventKind.STANDBY:
        line.text = _("%(actor)s put it on standby until %(date)s") % {
            **values,
            "date": _date(pair("next_action_at")[1]),
        }
        note = pair("next_action_note")[1]
        if note:
            line.details.append(note)
    elif kind == EventKind.WON:
        line.text = _("%(actor)s closed it as won for %(amount)s") % {
            **values,
            "amount": format_value("won_amount", pair("won_amount")[1], refs, currency),
        }
    elif kind == EventKind.LOST:
        line.text = _("%(actor)s closed it as lost: %(reason)s") % {
            **values,
            "reason": _name(refs.lost_reasons, pair("lost_reason")[1]),
        }
        if pair("lost_note")[1]:
            line.details.append(pair("lost_note")[1])
    elif kind == EventKind.CANCELLED:
        line.text = _("%(actor)s cancelled it") % values
        if pair("lost_note")[1]:
            line.details.append(pair("lost_note")[1])
    elif kind == EventKind.REOPENED:
        line.text = _("%(actor)s reopened it") % values
    elif kind == EventKind.UPDATED:
        if data.get("proposal") and "amount" in changes:
            line.text = _("%(actor)s set the amount from an accepted proposal") % values
        else:
            line.text = _("%(actor)s edited it") % values
        line.details = change_details(changes, refs, currency)
    elif kind == EventKind.DUPLICATED:
        other = data.get("from") if data.get("direction") == "to" else data.get("to")
        if data.get("direction") == "to":
            line.text = _("%(actor)s created it as a copy of") % values
        else:
            line.text = _("%(actor)s duplicated it into") % values
        if isinstance(other, int):
            line.link_url = reverse("sales:opportunity_detail", args=[other])
            line.link_text = refs.opportunities.get(other) or _("#%(id)s") % {"id": other}
    elif kind in (EventKind.COMMENT_PINNED, EventKind.COMMENT_UNPINNED):
        if kind == EventKind.COMMENT_PINNED:
            line.text = _("%(actor)s pinned a comment") % values
        else:
            line.text = _("%(actor)s unpinned a comment") % values
    elif kind == EventKind.COMMENT_DELETED:
        line.text = _("%(actor)s deleted a comment") % values
    elif kind in (EventKind.CONTACT_ADDED, EventKind.CONTACT_REMOVED, EventKind.CONTACT_UPDATED):
        contact = refs.contacts.get(data.get("contact"))  # type: ignore[arg-type]
        name = data.get("name") or (contact.name if contact else _("a contact"))
        if kind == EventKind.CONTACT_UPDATED and "name" in changes:
            name = pair("name")[1]
        sentence = {
            EventKind.CONTACT_ADDED: _("%(actor)s added the contact %(name)s"),
            EventKind.CONTACT_REMOVED: _("%(actor)s removed the contact %(name)s"),
            EventKind.CONTACT_UPDATED: _("%(actor)s updated the contact %(name)s"),
        }[kind]
        line.text = sentence % {**values, "name": name}
        if kind == EventKind.CONTACT_UPDATED:
            line.details = change_details(changes, refs, currency)
    elif kind == EventKind.CONTACTS_REORDERED:
        line.text = _("%(actor)s reordered the contacts") % values
        order = pair("contacts")[1]
        if isinstance(order, list) and order and order[0] in refs.contacts:
            line.details.append(
                _("main contact: %(name)s") % {"name": refs.contacts[order[0]].name}
            )
    elif kind in (EventKind.TAG_ADDED, EventKind.TAG_REMOVED):
        sentence = (
            _("%(actor)s added the tag %(name)s")
            if kind == EventKind.TAG_ADDED
            else _("%(actor)s removed the tag %(name)s")
        )
        line.text = sentence % {**values, "name": data.get("name", "")}
    elif kind == EventKind.PROPOSAL_CREATED:
        line.text = _("%(actor)s wrote proposal v%(number)s for %(total)s") % {
            **values,
            "number": data.get("number", "?"),
            "total": money(data.get("total") or 0, currency),
        }
    elif kind in (
        EventKind.PROPOSAL_SENT,
        EventKind.PROPOSAL_ACCEPTED,
        EventKind.PROPOSAL_DECLINED,
    ):
        sentence = {
            EventKind.PROPOSAL_SENT: _("%(actor)s sent proposal v%(number)s"),
            EventKind.PROPOSAL_ACCEPTED: _(
                "%(actor)s recorded that the client accepted proposal v%(number)s"
            ),
            EventKind.PROPOSAL_DECLINED: _(
                "%(actor)s recorded that the client declined proposal v%(number)s"
            ),
        }[kind]
        line.text = sentence % {**values, "number": data.get("number", "?")}
    elif kind == EventKind.CLIENT_CHANGED:
        before, after = pair("client")
        line.text = _("%(actor)s moved it from client folder %(before)s to %(after)s") % {
            **values,
            "before": _name(refs.clients, before),
            "after": _name(refs.clients, after),
        }
    else:
        label = dict(EventKind.choices).get(kind, kind)
        line.text = _("%(actor)s: %(what)s") % {**values, "what": label}
        line.details = change_details(changes, refs, currency)
    return line
