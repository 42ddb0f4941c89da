"""How amounts read in alert and violation messages: the package's one display rule.

See :mod:`smartspace_budget.display`: cents from $1 up, four places below, two significant
digits below a cent, never an exponent. The alert's ``current_value`` and
``threshold_value`` (and a violation's amounts) keep the exact Decimal.
"""

from __future__ import annotations

from decimal import Decimal

from smartspace_budget import display

__all__ = ["usd"]


def usd(amount: Decimal) -> str:
    """``$12.50``, ``$0.0279``, ``$0.000000001``, ``-$3.00`` (see ``display.amount``)."""
    return display.amount(amount)
