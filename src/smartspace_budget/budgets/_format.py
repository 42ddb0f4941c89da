"""How amounts read in alert and violation messages: exact, without exponents or zero tails."""

from __future__ import annotations

from decimal import Decimal

__all__ = ["usd"]

_CENTS = Decimal("0.01")


def usd(amount: Decimal) -> str:
    """``$12.50``, ``$0.000000001``, ``-$3.00``: every significant digit, at least cents.

    ``str(Decimal)`` would print ``1E-9`` or ``100.000000000``; neither belongs in a message
    a person reads.
    """
    if not amount.is_finite():
        return f"${amount}"
    value = amount.normalize()
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(_CENTS)
    text = f"{abs(value):f}"
    return f"-${text}" if value < 0 else f"${text}"
