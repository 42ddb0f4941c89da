"""What the spec's components read, and what the guard writes: two protocols, many backends.

:class:`Backend` has one read method per endpoint of the spec (plus the policy, account list
and spending series the analysis needs). :class:`LedgerClient` has the writes the spec leaves
to the backend. ``LocalBackend`` implements both in process over the ``Ledger``;
``HttpBackend`` implements both over the service's REST API; tests may use any object with
these methods.

Every method raises the package's typed errors (``errors.py``). A backend that cannot answer
raises :class:`~smartspace_budget.errors.BackendError`; it never returns a made-up value.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Protocol, runtime_checkable

from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    LedgerEntry,
    PricingData,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
    UsageEvent,
)
from smartspace_budget.periods import SpendingPeriod

__all__ = ["AccountRef", "Backend", "LedgerClient", "SpendingBucket"]


@runtime_checkable
class Backend(Protocol):
    """Read side. ``at`` defaults to now; windows follow the account's timezone."""

    async def get_balance(self, user_id: str, project_id: str) -> Balance:
        """``GET .../balance``: total, available and reserved."""
        ...

    async def get_budget_status(self, user_id: str, project_id: str) -> BudgetStatus:
        """``GET .../status``: balances, today's/month's/total spend and the limits."""
        ...

    async def get_spending(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod,
        *,
        at: datetime | None = None,
    ) -> SpendingSummary:
        """``GET .../spending/{period}``: spend in the window of ``period`` containing ``at``."""
        ...

    async def get_analytics(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod = SpendingPeriod.MONTHLY,
        *,
        at: datetime | None = None,
    ) -> SpendingAnalytics:
        """``GET .../analytics``: totals and breakdowns for the window (trend/anomaly unset)."""
        ...

    async def get_spending_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        """Spend per window of ``granularity`` from ``start`` to ``end``, empty windows included."""
        ...

    async def get_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        """The account's budget policy (all limits ``None`` when none was set)."""
        ...

    async def list_accounts(self) -> list[AccountRef]:
        """Every account the caller may see (the monitor walks them)."""
        ...

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        """``GET /api/v1/pricing/provider/{provider}/model/{model}``: the version in force."""
        ...

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        """``GET .../history``: versions of the last ``days`` (all if None), oldest first."""
        ...

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        """Known (provider, model) pairs, for listings and comparisons."""
        ...


@runtime_checkable
class LedgerClient(Protocol):
    """Write side. Every call takes the caller's ``idempotency_key``."""

    async def deposit(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        reference: str | None = None,
    ) -> LedgerEntry:
        """Credit the account."""
        ...

    async def record_usage(
        self, user_id: str, project_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        """Charge one provider call that had no reservation."""
        ...

    async def refund(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        usage_entry_id: str | None = None,
        reason: str = "",
    ) -> LedgerEntry:
        """Credit back earlier usage (counted as negative spending in its period)."""
        ...

    async def adjust(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        reason: str,
        idempotency_key: str,
    ) -> LedgerEntry:
        """A signed correction with a reason."""
        ...

    async def reserve(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        ttl_seconds: int = 300,
        idempotency_key: str,
        request_id: str | None = None,
    ) -> BudgetReservation:
        """Hold funds; :class:`BudgetExceededError`/:class:`PolicyViolationError` if refused."""
        ...

    async def settle(
        self, reservation_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        """Charge the real usage once and free the hold."""
        ...

    async def release(self, reservation_id: str, *, idempotency_key: str) -> BudgetReservation:
        """Free the hold without charging."""
        ...

    async def set_policy(self, user_id: str, project_id: str, policy: BudgetPolicy) -> BudgetPolicy:
        """Replace the account's policy (creating the account if needed)."""
        ...
