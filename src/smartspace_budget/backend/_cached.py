"""The read half of every backend, written once: cache keys, TTLs and invalidation.

``LocalBackend`` and ``HttpBackend`` differ only in how they fetch (a ledger query or an
HTTP request); what is cached, for how long, and what a write forgets is the same for
both, so it lives here. Subclasses implement the ``_fetch_*`` methods and call
:meth:`CachedReads._written` after every write.

Account reads (balance, status, spending, analytics, series, policy) are kept
``status_ttl`` seconds (the spec's 30); prices ``pricing_ttl`` seconds (the spec's 5
minutes). A write forgets every cached read of its account, and the account list.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from smartspace_budget.backend.base import Backend
from smartspace_budget.backend.cache import TTLCache
from smartspace_budget.errors import MissingPricingError, UnknownModelError
from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetStatus,
    PricingData,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
)
from smartspace_budget.periods import SpendingPeriod

__all__ = ["CachedReads", "current_prices"]

T = TypeVar("T")
_ACCOUNTS_KEY = "accounts"


def _account_prefix(user_id: str, project_id: str) -> str:
    # Length-prefixed, so no pair of ids can produce another pair's prefix.
    return f"a:{len(user_id)}:{user_id}:{len(project_id)}:{project_id}:"


def _key(prefix: str, *parts: object) -> str:
    return prefix + "|".join("" if p is None else str(p) for p in parts)


class CachedReads(ABC):
    """Backend read methods with the spec's caching; see the module docstring."""

    def __init__(
        self,
        *,
        status_ttl: float = 30.0,
        pricing_ttl: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        self._account_cache: TTLCache[Any] = TTLCache(status_ttl, **extra)
        self._pricing_cache: TTLCache[Any] = TTLCache(pricing_ttl, **extra)

    def invalidate_account(self, user_id: str, project_id: str) -> None:
        """Forget every cached read of one account (after a write, or on demand)."""
        self._account_cache.invalidate(prefix=_account_prefix(user_id, project_id))
        self._account_cache.invalidate(_ACCOUNTS_KEY)

    def invalidate_pricing(self) -> None:
        """Forget every cached price (after an operator changed one)."""
        self._pricing_cache.invalidate()

    @staticmethod
    def pricing_key(provider: str, model: str) -> str:
        """The cache key of the price in force for ``provider``/``model`` (see
        :meth:`peek_pricing`)."""
        return _key("p:", "pricing", len(provider), provider, model, None)

    def peek_pricing(self, key: str) -> PricingData | None:
        """The cached price under ``key`` while it is fresh, without fetching.

        ``PricingEngine`` reads prices through this instead of keeping a cache of its own,
        so a price is never older than this backend's ``pricing_ttl``.
        """
        value: PricingData | None = self._pricing_cache.peek(key)
        return value

    def peek_status(self, user_id: str, project_id: str) -> BudgetStatus | None:
        """The cached budget status of an account while it is fresh, without fetching.

        ``BudgetTracker`` checks read it first: a cached check then costs no await.
        """
        key = _account_prefix(user_id, project_id) + "status"  # _key(prefix, "status")
        value: BudgetStatus | None = self._account_cache.peek(key)
        return value

    def invalidate_all(self) -> None:
        """Forget everything cached, accounts and prices."""
        self._account_cache.invalidate()
        self._pricing_cache.invalidate()

    def _written(self, user_id: str | None, project_id: str | None) -> None:
        if user_id is None or project_id is None:
            # A write whose account is unknown (it failed before we learned it): be safe.
            self._account_cache.invalidate()
        else:
            self.invalidate_account(user_id, project_id)

    async def _account_read(
        self, user_id: str, project_id: str, fetch: Callable[[], Awaitable[T]], *parts: object
    ) -> T:
        key = _key(_account_prefix(user_id, project_id), *parts)
        result: T = await self._account_cache.get_or_fetch(key, fetch)
        return result

    async def _pricing_read(self, fetch: Callable[[], Awaitable[T]], *parts: object) -> T:
        result: T = await self._pricing_cache.get_or_fetch(_key("p:", *parts), fetch)
        return result

    # -- Backend (read) -------------------------------------------------------------------

    async def get_balance(self, user_id: str, project_id: str, *, fresh: bool = False) -> Balance:
        """``GET .../balance``: total, available and reserved (cached ``status_ttl``).

        ``fresh=True`` reads it anew (the cached copy is replaced), for callers that promise
        a balance not older than the call, such as ``BudgetTracker.get_available_balance``.
        """
        if fresh:
            self._account_cache.invalidate(_key(_account_prefix(user_id, project_id), "balance"))
        return await self._account_read(
            user_id, project_id, lambda: self._fetch_balance(user_id, project_id), "balance"
        )

    async def get_budget_status(self, user_id: str, project_id: str) -> BudgetStatus:
        """``GET .../status`` (cached ``status_ttl``)."""
        return await self._account_read(
            user_id, project_id, lambda: self._fetch_status(user_id, project_id), "status"
        )

    async def get_spending(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod,
        *,
        at: datetime | None = None,
    ) -> SpendingSummary:
        """``GET .../spending/{period}`` (cached ``status_ttl``)."""
        return await self._account_read(
            user_id,
            project_id,
            lambda: self._fetch_spending(user_id, project_id, period, at),
            "spending",
            str(period),
            at.isoformat() if at else None,
        )

    async def get_analytics(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod = SpendingPeriod.MONTHLY,
        *,
        at: datetime | None = None,
    ) -> SpendingAnalytics:
        """``GET .../analytics`` (cached ``status_ttl``)."""
        return await self._account_read(
            user_id,
            project_id,
            lambda: self._fetch_analytics(user_id, project_id, period, at),
            "analytics",
            str(period),
            at.isoformat() if at else None,
        )

    async def get_spending_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        """Spend per window from ``start`` to ``end`` (cached ``status_ttl``)."""
        return await self._account_read(
            user_id,
            project_id,
            lambda: self._fetch_series(user_id, project_id, granularity, start, end),
            "series",
            str(granularity),
            start.isoformat(),
            end.isoformat(),
        )

    async def get_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        """The account's budget policy (cached ``status_ttl``)."""
        return await self._account_read(
            user_id, project_id, lambda: self._fetch_policy(user_id, project_id), "policy"
        )

    async def list_accounts(self) -> list[AccountRef]:
        """Every account the caller may see (cached ``status_ttl``)."""
        result: list[AccountRef] = await self._account_cache.get_or_fetch(
            _ACCOUNTS_KEY, self._fetch_accounts
        )
        return list(result)

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        """The price version in force (cached ``pricing_ttl``)."""
        if at is None:
            result: PricingData = await self._pricing_cache.get_or_fetch(
                self.pricing_key(provider, model),
                lambda: self._fetch_pricing(provider, model, None),
            )
            return result
        return await self._pricing_read(
            lambda: self._fetch_pricing(provider, model, at),
            "pricing",
            len(provider),
            provider,
            model,
            at.isoformat(),
        )

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        """Price versions, oldest first (cached ``pricing_ttl``)."""
        result: list[PricingData] = await self._pricing_read(
            lambda: self._fetch_price_history(provider, model, days),
            "history",
            len(provider),
            provider,
            model,
            days,
        )
        return list(result)

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        """Known (provider, model) pairs (cached ``pricing_ttl``)."""
        result: list[tuple[str, str]] = await self._pricing_read(
            lambda: self._fetch_models(provider), "models", provider
        )
        return list(result)

    async def list_prices(
        self, provider: str | None = None
    ) -> list[tuple[str, str, PricingData | None]]:
        """Every known model with the version in force now (``None`` when it has none), read
        in one pass rather than one lookup per model (cached ``pricing_ttl``)."""
        result: list[tuple[str, str, PricingData | None]] = await self._pricing_read(
            lambda: self._fetch_prices(provider), "prices", provider
        )
        return list(result)

    # -- what subclasses fetch ------------------------------------------------------------

    @abstractmethod
    async def _fetch_prices(
        self, provider: str | None
    ) -> list[tuple[str, str, PricingData | None]]: ...

    @abstractmethod
    async def _fetch_balance(self, user_id: str, project_id: str) -> Balance: ...

    @abstractmethod
    async def _fetch_status(self, user_id: str, project_id: str) -> BudgetStatus: ...

    @abstractmethod
    async def _fetch_spending(
        self, user_id: str, project_id: str, period: SpendingPeriod, at: datetime | None
    ) -> SpendingSummary: ...

    @abstractmethod
    async def _fetch_analytics(
        self, user_id: str, project_id: str, period: SpendingPeriod, at: datetime | None
    ) -> SpendingAnalytics: ...

    @abstractmethod
    async def _fetch_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]: ...

    @abstractmethod
    async def _fetch_policy(self, user_id: str, project_id: str) -> BudgetPolicy: ...

    @abstractmethod
    async def _fetch_accounts(self) -> list[AccountRef]: ...

    @abstractmethod
    async def _fetch_pricing(
        self, provider: str, model: str, at: datetime | None
    ) -> PricingData: ...

    @abstractmethod
    async def _fetch_price_history(
        self, provider: str, model: str, days: int | None
    ) -> list[PricingData]: ...

    @abstractmethod
    async def _fetch_models(self, provider: str | None) -> list[tuple[str, str]]: ...


async def current_prices(
    backend: Backend, provider: str | None = None
) -> list[tuple[str, str, PricingData | None]]:
    """Every known model of ``backend`` with its price in force now (``None`` if it has none).

    Our backends read them in one pass (:meth:`CachedReads.list_prices`); any other
    ``Backend`` is asked model by model.
    """
    if isinstance(backend, CachedReads):
        return await backend.list_prices(provider)
    rows: list[tuple[str, str, PricingData | None]] = []
    for p, m in await backend.list_models(provider):
        try:
            price: PricingData | None = await backend.get_pricing(p, m)
        except (UnknownModelError, MissingPricingError):
            price = None
        rows.append((p, m, price))
    return rows
