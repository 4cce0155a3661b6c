"""Money is integer minor units (cents) inside; formatting and parsing happen at the edges."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENTS = Decimal(100)


def to_cents(value: Decimal | int | str) -> int:
    """Convert an amount in currency units ("1234.5", Decimal) to integer cents, half-up."""
    try:
        amount = Decimal(str(value).strip().replace(" ", ""))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return int((amount * CENTS).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_cents(cents: int) -> Decimal:
    """Integer cents to a Decimal in currency units with two places."""
    return (Decimal(cents) / CENTS).quantize(Decimal("0.01"))


def weighted_cents(amount: int, probability: int) -> int:
    """amount x probability / 100, rounded half-up to the cent (same as the SQL expression)."""
    return (amount * probability + 50) // 100


def format_money(cents: int | None, currency: str = "EUR") -> str:
    """Plain, locale-neutral rendering for logs, CLI tables and admin lists."""
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d} {currency}"
