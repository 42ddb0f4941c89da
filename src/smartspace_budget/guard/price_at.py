"""The price version a settlement uses: the one in force at the instant of the call.

A call is priced as of when it was made, not when it settled: a price change that takes
effect while a long call or stream runs does not apply to it. The version in force now
(which the pricing engine caches) is the answer almost always; only when it took effect
after the call started is the price history asked for the version before it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from smartspace_budget.models import PricingData

__all__ = ["pricing_at"]


async def pricing_at(source: Any, provider: str, model: str, at: datetime) -> PricingData:
    """The version of ``provider``/``model`` in force at ``at``.

    ``source`` is the guard's pricing engine (``get_provider_pricing``, and
    ``get_price_history`` where it has one; without it the version in force now is used).
    """
    current: PricingData = await source.get_provider_pricing(provider, model)
    if current.effective_date <= at:
        return current
    history = getattr(source, "get_price_history", None)
    if history is None:
        return current
    days = (datetime.now(UTC) - at).days + 1
    versions: list[PricingData] = await history(provider, model, days=days)
    earlier = [v for v in versions if v.effective_date <= at]
    return max(earlier, key=lambda v: v.effective_date) if earlier else current
