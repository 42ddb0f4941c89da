"""``guard.wrap(client, user_id=..., project_id=...)``: the common case in one line.

The full form builds a backend, a pricing engine and a ``Guard`` (five objects); most callers
want the configured default for all of them (the embedded ledger, or
``SMARTSPACE_BUDGET_URL`` / ``SMARTSPACE_BUDGET_DATABASE_URL``). This builds them and wraps the
client; the guard stays reachable as ``client.guard`` (for ``guard.request(...)``, or
``guard.close()`` after a synchronous client).

The account still needs money: a guarded call is reserved in the ledger first, so an
account with no balance is refused with ``BudgetExceededError`` before anything is sent.
"""

from __future__ import annotations

from typing import Any, TypeVar

from smartspace_budget.backend import default_backend
from smartspace_budget.guard.core import Guard
from smartspace_budget.pricing import PricingEngine

__all__ = ["wrap"]

C = TypeVar("C")


def wrap(
    client: C,
    *,
    user_id: str,
    project_id: str,
    monitor: Any | None = None,
    **options: Any,
) -> C:
    """``client`` (``openai``/``anthropic``, sync or async) guarded on the default backend.

    ``options`` are :class:`Guard`'s (``reservation_ttl``, ``on_anomaly``,
    ``default_max_output_tokens``); ``monitor`` receives cost anomalies.
    """
    backend = default_backend()
    guard = Guard(
        backend,
        PricingEngine(backend),
        user_id=user_id,
        project_id=project_id,
        monitor=monitor,
        **options,
    )
    wrapped: C = guard.wrap(client)
    return wrapped
