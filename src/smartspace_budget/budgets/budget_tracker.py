"""BudgetTracker: the spec's balance, status, spending and policy checks, read from a backend.

The tracker never writes. It answers "may this account spend X?" from the backend's budget
status (cached ``status_ttl`` seconds, 30 by default as the spec says, one fetch in flight
per account) and "where did the money go?" from the backend's analytics and spending series.

A read that fails raises the backend's typed error
(:class:`~smartspace_budget.errors.BackendError`); no method ever answers "available" for
spending it could not verify. The check here is advice given before a request: the ledger's
reservation is what finally holds the money.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Self

from smartspace_budget.backend._cached import CachedReads
from smartspace_budget.backend.base import Backend
from smartspace_budget.backend.cache import TTLCache
from smartspace_budget.budgets import analysis
from smartspace_budget.budgets._backend import backend_call, default_backend
from smartspace_budget.budgets.policy import BackendPolicy, plain_policy, policy_from_status
from smartspace_budget.budgets.rules import evaluate_policy, insufficient_balance
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import (
    BudgetCheck,
    BudgetPolicy,
    BudgetStatus,
    SpendingAnalytics,
    SpendingBucket,
)
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.usage import MAX_ID_LENGTH
from smartspace_budget.money import Amount, parse_amount
from smartspace_budget.periods import (
    SpendingPeriod,
    parse_period,
    previous_windows,
    window_containing,
)

__all__ = ["TREND_BASIS", "BudgetTracker"]

Clock = Callable[[], datetime]

TREND_BASIS: dict[SpendingPeriod, tuple[SpendingPeriod, int, int | None]] = {
    SpendingPeriod.HOURLY: (SpendingPeriod.HOURLY, 24, None),
    SpendingPeriod.DAILY: (SpendingPeriod.DAILY, 14, 7),
    SpendingPeriod.WEEKLY: (SpendingPeriod.DAILY, 28, 7),
    SpendingPeriod.MONTHLY: (SpendingPeriod.DAILY, 28, 7),
    SpendingPeriod.YEARLY: (SpendingPeriod.MONTHLY, 12, None),
}
"""For analytics of each period: the series granularity, how many complete windows of it
the trend is fitted on, and the season smoothed out first (a week of days)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


# Checks are built from values computed here with their final types: the request parsed
# once, the status's own validated amounts, the rules' violations (models/_trusted.py).
_budget_check = builder(BudgetCheck)


def _account(user_id: str, project_id: str) -> tuple[str, str]:
    for name, value in (("user_id", user_id), ("project_id", project_id)):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
            raise InvalidInputError(
                f"{name} must be a non-empty string of at most {MAX_ID_LENGTH} characters",
                field=name,
            )
    return user_id, project_id


class BudgetTracker:
    """Balances, limits and spending of accounts, read through a :class:`Backend`.

    ``backend=None`` uses the configured default backend (the embedded ledger unless
    ``SMARTSPACE_BUDGET_*`` settings say otherwise), created on first use. ``status_ttl`` is
    how long a budget status is reused (0 disables the cache, concurrent readers still share
    one fetch). By default it is 30 s, except over our own backends, which already cache the
    status for 30 s and drop it on writes: a second layer would let it go 60 s stale, so
    there the tracker keeps none and reads the backend's (a check then consults one cache).
    ``clock`` is for tests: it dates analytics and drives the cache's expiry.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        status_ttl: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        backend_caches = backend is None or isinstance(backend, CachedReads)
        if status_ttl is None:
            status_ttl = 0.0 if backend_caches else 30.0
        self._backend = backend
        self._owns_backend = backend is None
        self._clock: Clock = clock or _utc_now
        cache_clock: Callable[[], float] = (
            time.monotonic if clock is None else (lambda: self._clock().timestamp())
        )
        # None: the backend's own cache (with its single flight) is the only one.
        self._status_cache: TTLCache[BudgetStatus] | None = (
            None if status_ttl == 0 and backend_caches else TTLCache(status_ttl, clock=cache_clock)
        )

    @property
    def backend(self) -> Backend:
        """The backend read from (the default one is created on first access)."""
        if self._backend is None:
            self._backend = default_backend()
        return self._backend

    async def aclose(self) -> None:
        """Close the default backend if this tracker created it (a given one is the caller's)."""
        if self._status_cache is not None:
            self._status_cache.invalidate()
        backend = self._backend
        if self._owns_backend and backend is not None:
            self._backend = None
            close = getattr(backend, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def now(self) -> datetime:
        """The tracker's clock (UTC, timezone-aware)."""
        return self._clock()

    def invalidate(self, user_id: str | None = None, project_id: str | None = None) -> None:
        """Forget cached statuses: of one account, or all when no account is given.

        Call it after writing to the ledger through another path when the next check must
        see the write. A tracker without a cache of its own forgets the backend's.
        """
        cache = self._status_cache
        if cache is None:
            backend = self._backend
            if isinstance(backend, CachedReads):
                if user_id is None or project_id is None:
                    backend.invalidate_all()
                else:
                    backend.invalidate_account(user_id, project_id)
        elif user_id is None or project_id is None:
            cache.invalidate()
        else:
            cache.invalidate(self._key(user_id, project_id))

    def _cached_status(self, user_id: str, project_id: str) -> BudgetStatus | None:
        """The status a check may reuse now, from the one cache there is (no fetch)."""
        cache = self._status_cache
        if cache is not None:
            return cache.peek(self._key(user_id, project_id))
        backend = self._backend
        if isinstance(backend, CachedReads):
            return backend.peek_status(user_id, project_id)
        return None

    @staticmethod
    def _key(user_id: str, project_id: str) -> str:
        return f"{len(user_id)}:{user_id}/{project_id}"

    async def get_available_balance(self, user_id: str, project_id: str) -> Decimal:
        """Total balance minus open reservations, fresh from the backend (not cached).

        Over our own backends the read skips their 30 s cache (``fresh=True``), so a deposit
        made by another process a moment ago is seen.
        """
        _account(user_id, project_id)
        backend = self.backend
        read = (
            backend.get_balance(user_id, project_id, fresh=True)
            if isinstance(backend, CachedReads)
            else backend.get_balance(user_id, project_id)
        )
        balance = await backend_call(read, f"the balance of {user_id}/{project_id}")
        return balance.available_balance

    async def check_sufficient_budget(
        self, user_id: str, project_id: str, amount: Amount
    ) -> BudgetCheck:
        """Whether the available balance covers ``amount`` (limits are not looked at).

        ``amount`` is a Decimal, int or decimal string, not negative; floats are refused
        with :class:`~smartspace_budget.errors.InvalidAmountError`.
        """
        requested = parse_amount(amount, name="amount", allow_negative=False)
        available = await self.get_available_balance(user_id, project_id)
        short = insufficient_balance(requested, available)
        details = [] if short is None else [short]
        return _budget_check(
            {
                "user_id": user_id,
                "project_id": project_id,
                "requested_amount": requested,
                "available": not details,
                "available_balance": available,
                "violations": [v.message for v in details],
                "violation_details": details,
                "policy": None,
                "checked_at": self._clock(),
            }
        )

    async def get_budget_status(self, user_id: str, project_id: str) -> BudgetStatus:
        """The account's balances, spend and limits (reused for up to ``status_ttl`` seconds)."""
        _account(user_id, project_id)

        async def fetch() -> BudgetStatus:
            return await backend_call(
                self.backend.get_budget_status(user_id, project_id),
                f"the budget status of {user_id}/{project_id}",
            )

        if self._status_cache is None:
            return await fetch()
        return await self._status_cache.get_or_fetch(self._key(user_id, project_id), fetch)

    async def get_spending_by_period(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod | str,
        *,
        at: datetime | None = None,
    ) -> Decimal:
        """Net spend (usage minus refunds, so possibly negative) in the current ``period``.

        ``at`` picks another window: the one of ``period`` containing that instant.
        """
        _account(user_id, project_id)
        kind = parse_period(period)
        summary = await backend_call(
            self.backend.get_spending(user_id, project_id, kind, at=at),
            f"the {kind.value} spending of {user_id}/{project_id}",
        )
        return summary.total_spent

    async def get_spending_analytics(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod | str = SpendingPeriod.MONTHLY,
        *,
        at: datetime | None = None,
    ) -> SpendingAnalytics:
        """Totals and breakdowns for the current ``period``, with trend and anomaly filled in.

        The trend is fitted on the complete windows listed in :data:`TREND_BASIS`; the
        anomaly flag compares today's spend with the trailing 28 days (see
        :mod:`~smartspace_budget.budgets.analysis` for both thresholds).
        """
        _account(user_id, project_id)
        kind = parse_period(period)
        moment = at or self.now()

        async def recent_days() -> tuple[str, list[SpendingBucket]]:
            # The account's timezone (from its status), then its days: meanwhile the
            # analytics read, which needs neither, is already on its way.
            tz = await self._timezone(user_id, project_id)
            return tz, await self._recent_days(user_id, project_id, moment, tz)

        analytics, (tz, days) = await asyncio.gather(
            backend_call(
                self.backend.get_analytics(user_id, project_id, kind, at=moment),
                f"the {kind.value} analytics of {user_id}/{project_id}",
            ),
            recent_days(),
        )
        today = window_containing(SpendingPeriod.DAILY, moment, tz)
        granularity, count, season = TREND_BASIS[kind]
        if granularity is SpendingPeriod.DAILY and count <= analysis.BASELINE_DAYS:
            series = [b for b in days if b.end <= today.start][-count:]
        else:
            history = previous_windows(granularity, moment, count, tz)
            series = await self.spending_series(
                user_id, project_id, granularity, history[0].start, history[-1].end
            )
        trend = analysis.spending_trend(
            [b.spent for b in analysis.active_tail(series)], season=season
        )
        anomaly = analysis.current_anomaly(days, today.start)
        return analytics.model_copy(
            update={"spending_trend": trend.trend, "anomaly_detected": anomaly.is_anomaly}
        )

    async def daily_anomaly(
        self, user_id: str, project_id: str, *, at: datetime | None = None
    ) -> analysis.AnomalyResult:
        """Today's spend so far against the trailing 28 complete days (robust z-score)."""
        moment = at or self.now()
        tz = await self._timezone(user_id, project_id)
        days = await self._recent_days(user_id, project_id, moment, tz)
        return analysis.current_anomaly(days, window_containing("daily", moment, tz).start)

    async def _recent_days(
        self, user_id: str, project_id: str, moment: datetime, tz: str
    ) -> list[SpendingBucket]:
        """The anomaly baseline's days and the day of ``moment``, in one read."""
        today = window_containing(SpendingPeriod.DAILY, moment, tz)
        start = today.start - timedelta(days=analysis.BASELINE_DAYS + 1)
        return await self.spending_series(
            user_id, project_id, SpendingPeriod.DAILY, start, today.end
        )

    async def spending_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        """Spend per window of ``granularity`` over ``[start, end)``, empty windows included."""
        _account(user_id, project_id)
        return await backend_call(
            self.backend.get_spending_series(user_id, project_id, granularity, start, end),
            f"the {granularity.value} spending series of {user_id}/{project_id}",
        )

    async def _timezone(self, user_id: str, project_id: str) -> str:
        status = await self.get_budget_status(user_id, project_id)
        return status.timezone or "UTC"

    async def check_against_policy(
        self,
        user_id: str,
        project_id: str,
        requested_amount: Amount,
        policy: BudgetPolicy | None = None,
    ) -> BudgetCheck:
        """Check ``requested_amount`` against the balance and every limit of ``policy``.

        ``policy`` may be a caller's own :class:`BudgetPolicy`, the marker returned by
        ``BudgetPolicy.fetch_from_backend(...)``, or ``None`` for the account's own policy;
        the limits of the account itself come from the same status as its balances.

        Rules, in order: available balance, per-request limit, daily limit, monthly limit.
        Every broken rule is listed with its amounts, except that a **critical** violation
        returns at once (the spec's early exit): an available balance below the request, or
        a limit of zero (the account may not spend at all). Spending already made counts as
        net of refunds but never below zero, so refunds of an earlier period never raise a
        limit. Amounts exactly at a limit pass; one nano-USDC over fails.
        """
        _account(user_id, project_id)
        requested = parse_amount(requested_amount, name="requested_amount", allow_negative=False)
        status = self._cached_status(user_id, project_id)
        if status is None:
            status = await self.get_budget_status(user_id, project_id)
        if policy is None or (
            isinstance(policy, BackendPolicy) and policy.refers_to(user_id, project_id)
        ):
            effective = policy_from_status(status)
            if isinstance(policy, BackendPolicy):
                policy.fill(effective)
        elif isinstance(policy, BackendPolicy):
            effective = await policy.resolve(self.backend)
        else:
            effective = plain_policy(policy)
        details = evaluate_policy(requested, status, effective)
        return _budget_check(
            {
                "user_id": user_id,
                "project_id": project_id,
                "requested_amount": requested,
                "available": not details,
                "available_balance": status.available_balance,
                "violations": [v.message for v in details],
                "violation_details": details,
                "policy": effective,
                "checked_at": self._clock(),
            }
        )
