"""Backends: where the spec's components read and the guard writes.

:func:`default_backend` picks one from the environment:

- ``SMARTSPACE_BUDGET_URL`` set: :class:`HttpBackend` to that service (with
  ``SMARTSPACE_BUDGET_API_KEY``);
- else ``SMARTSPACE_BUDGET_DATABASE_URL`` set: :class:`LocalBackend` on that database;
- else :class:`LocalBackend` on the embedded SQLite file in the user's data directory.

The choice is made at once but nothing is opened: the ledger (or the HTTP connection pool)
opens on first use, inside the caller's event loop, so synchronous constructors such as
``BudgetTracker()`` can call this.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from smartspace_budget.backend.base import AccountRef, Backend, LedgerClient, SpendingBucket
from smartspace_budget.config import Settings

__all__ = [
    "AccountRef",
    "Backend",
    "LedgerBackend",
    "LedgerClient",
    "SpendingBucket",
    "default_backend",
]


@runtime_checkable
class LedgerBackend(Backend, LedgerClient, Protocol):
    """Both protocols at once: what ``LocalBackend``, ``HttpBackend`` and the service offer."""


def default_backend(settings: Settings | None = None) -> LedgerBackend:
    """The backend the environment asks for (see the module docstring); opens nothing yet."""
    config = settings if settings is not None else Settings()
    if config.url:
        from smartspace_budget.backend.http import HttpBackend

        key = config.api_key.get_secret_value() if config.api_key else None
        return HttpBackend(
            config.url,
            key,
            deadline=config.deadline,
            max_retries=config.max_retries,
            status_ttl=config.status_ttl,
            pricing_ttl=config.pricing_ttl,
        )
    from smartspace_budget.backend.local import LocalBackend

    return LocalBackend.default(config)
