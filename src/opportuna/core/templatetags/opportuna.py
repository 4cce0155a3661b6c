"""Template filters shared by every screen: `money` and `initials`."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format

from opportuna.core.money import from_cents

register = template.Library()


@register.filter
def money(cents: int | None, currency: str | None = None) -> str:
    """Integer cents as a localized amount with two decimals and the currency code.

    Pass the currency (`{{ amount|money:currency }}`) in loops: without it the account's
    currency is read from the database on every use.
    """
    if cents is None or cents == "":
        return ""
    if currency is None:
        from opportuna.accounts.models import Account

        currency = Account.load().currency
    amount = number_format(from_cents(int(cents)), 2, use_l10n=True, force_grouping=True)
    return f"{amount} {currency}"


@register.filter
def initials(value: object) -> str:
    """A user's initials (their own property) or the first letters of a name's words."""
    own = getattr(value, "initials", None)
    if isinstance(own, str):
        return own
    words = str(value or "").split()
    return "".join(word[0] for word in words[:2]).upper()
