"""Money is counted in integer nano-yuan (1e-9 CNY): exact for every price on the list, safe to sum in SQL."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

NANO_PER_YUAN = 10**9


def to_nano(amount: Decimal | str | int | float) -> int:
    """CNY → nano-yuan; refuses values that are not numbers or that need more than 9 decimals."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not an amount of money") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not an amount of money")
    nano = value * NANO_PER_YUAN
    if nano != nano.to_integral_value():
        raise ValueError(f"{amount!r} has more than 9 decimal places")
    return int(nano)


def from_nano(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_YUAN


def format_yuan(nano: int) -> str:
    """A plain decimal string with no exponent and no trailing zeros: ``"0.0000005"``, ``"12.5"``, ``"0"``."""
    text = f"{from_nano(nano):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def cost_of(count: int, price_per_thousand: int) -> int:
    """Cost of ``count`` units at a price per 1,000 units (tokens), rounded half up to the nano-yuan."""
    return int((Decimal(count) * price_per_thousand / 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP))
