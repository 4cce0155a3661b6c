"""Money in the admin: cents inside, currency units on screen and in forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet, Subquery

from opportuna.accounts.models import Account
from opportuna.core.money import format_money, from_cents, to_cents


def with_currency(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Annotate the account currency: money columns format without a query per row."""
    currency = Account.objects.filter(pk=1).values("currency")[:1]
    return queryset.annotate(currency=Subquery(currency))


def money(obj: Any, cents: int | None) -> str:
    currency = getattr(obj, "currency", None) or Account.load().currency
    return format_money(cents, currency)


class MoneyField(forms.DecimalField):
    """An amount typed in currency units, cleaned to integer cents."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=0, max_digits=15, decimal_places=2, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        # Initial values come from the model in cents; typed data is already in units.
        return from_cents(value) if isinstance(value, int) else value

    def has_changed(self, initial: Any, data: Any) -> bool:
        return super().has_changed(self.prepare_value(initial), data)

    def clean(self, value: Any) -> Any:
        units = super().clean(value)
        return None if units is None else to_cents(units)
