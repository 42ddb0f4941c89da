"""How amounts and percentages read for people: alert and violation messages, notifier
texts, anomaly messages. Data (JSON, CSV, models) keeps the exact Decimal; this is only the
sentence a person reads.

- Amounts read as the CLI prints them: to the nano-USDC (half-even), trailing zeros
  dropped down to cents, never an exponent (``str(Decimal)`` gives ``0E-9``):
  ``$18.21277177``, ``$100.00``, ``$0.000000001``. A computed figure (a median, a mean)
  is rounded to the nano like any amount, never shown to ten places.
- Percentages: at most two decimals, cut toward zero so a figure just under a band's
  bound never reads as the bound (``19.9999%`` is ``19.99%``, not ``20%``); thousands
  grouped: ``1,391.31%``.

"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

__all__ = ["amount", "percent"]

_CENT = Decimal("0.01")
_NANO = Decimal("0.000000001")


def _trimmed(value: Decimal, least: int) -> str:
    """``value`` in positional notation, trailing zeros dropped down to ``least`` places."""
    text = f"{value:,f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    frac += "0" * max(0, least - len(frac))
    return f"{whole}.{frac}" if frac else whole


def amount(value: Decimal) -> str:
    """``$18.21277177``, ``-$3.00``, ``$0.000000001``, ``$0.00`` (see the module doc)."""
    if not value.is_finite():
        return f"${value}"
    size = abs(value).quantize(_NANO, rounding=ROUND_HALF_EVEN)
    sign = "-" if value < 0 and size else ""
    return f"{sign}${_trimmed(size, 2)}"


def percent(value: Decimal) -> str:
    """``60%``, ``52.5%``, ``19.99%`` (for 19.9999999), ``1,391.31%``."""
    if not value.is_finite():
        return f"{value}%"
    return _trimmed(value.quantize(_CENT, rounding=ROUND_DOWN), 0) + "%"
