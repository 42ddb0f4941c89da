"""Budget test fixtures: an in-memory Backend seeded with spending, and a movable clock.

The fake computes every read (balance, status, spending, analytics, series) from its list of
events with the same calendar windows as the real ledger, so the tracker and the monitor are
tested on figures that are easy to check by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from smartspace_budget.backend.base import AccountRef, SpendingBucket
from smartspace_budget.errors import NotFoundError, UnknownProviderError
from smartspace_budget.models import (
    Balance,
    BudgetPolicy,
    BudgetStatus,
    PricingData,
    SpendingAnalytics,
    SpendingSummary,
)
from smartspace_budget.periods import SpendingPeriod, window_containing, windows_between

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
"""A Monday noon, so weeks and months are easy to reason about."""


class FakeClock:
    """A settable clock; ``advance`` moves it forward."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Event:
    at: datetime
    amount: Decimal  # positive: usage; negative: refund
    provider: str = "openai"
    model: str = "gpt-4"

    @property
    def is_request(self) -> bool:
        return self.amount > 0


@dataclass
class Account:
    deposits: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    policy: BudgetPolicy = field(default_factory=BudgetPolicy)
    timezone: str = "UTC"
    events: list[Event] = field(default_factory=list)


class FakeBackend:
    """Implements the read side of ``Backend`` over in-memory accounts."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.accounts: dict[tuple[str, str], Account] = {}
        self.calls: dict[str, int] = {}
        self.fail_with: BaseException | None = None
        self._waiters: list[tuple[str, int, asyncio.Event]] = []

    def reached(self, name: str, count: int) -> asyncio.Event:
        """An event set once ``name`` has been called ``count`` times."""
        event = asyncio.Event()
        self._waiters.append((name, count, event))
        self._wake()
        return event

    def _wake(self) -> None:
        for name, count, event in self._waiters:
            if self.calls.get(name, 0) >= count:
                event.set()

    # seeding -----------------------------------------------------------------------------
    def account(self, user_id: str = "user_001", project_id: str = "proj_001") -> Account:
        return self.accounts.setdefault((user_id, project_id), Account())

    def deposit(self, amount: str, user_id: str = "user_001", project_id: str = "proj_001") -> None:
        self.account(user_id, project_id).deposits += Decimal(amount)

    def spend(
        self,
        amount: str | Decimal,
        at: datetime | None = None,
        *,
        provider: str = "openai",
        model: str = "gpt-4",
        user_id: str = "user_001",
        project_id: str = "proj_001",
    ) -> None:
        when = at or self.clock()
        self.account(user_id, project_id).events.append(
            Event(when, Decimal(amount), provider, model)
        )

    def refund(self, amount: str, at: datetime | None = None, **kw: Any) -> None:
        self.spend(-Decimal(amount), at, **kw)

    def set_policy(
        self, user_id: str = "user_001", project_id: str = "proj_001", **limits: str | None
    ) -> None:
        values = {k: (None if v is None else Decimal(v)) for k, v in limits.items()}
        self.account(user_id, project_id).policy = BudgetPolicy(**values)

    # helpers -----------------------------------------------------------------------------
    def _enter(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self._wake()
        if self.fail_with is not None:
            raise self.fail_with

    def _get(self, user_id: str, project_id: str) -> Account:
        try:
            return self.accounts[(user_id, project_id)]
        except KeyError:
            raise NotFoundError(f"no account {user_id}/{project_id}") from None

    @staticmethod
    def _between(acc: Account, start: datetime, end: datetime) -> list[Event]:
        return [e for e in acc.events if start <= e.at < end]

    def _spent_in(self, acc: Account, period: SpendingPeriod, at: datetime) -> Decimal:
        window = window_containing(period, at, acc.timezone)
        return sum((e.amount for e in self._between(acc, window.start, window.end)), Decimal(0))

    # Backend -----------------------------------------------------------------------------
    async def get_balance(self, user_id: str, project_id: str) -> Balance:
        self._enter("get_balance")
        acc = self._get(user_id, project_id)
        spent = sum((e.amount for e in acc.events if e.at <= self.clock()), Decimal(0))
        total = acc.deposits - spent
        return Balance(
            total_balance=total,
            available_balance=total - acc.reserved,
            reserved_amount=acc.reserved,
        )

    async def get_budget_status(self, user_id: str, project_id: str) -> BudgetStatus:
        self._enter("get_budget_status")
        acc = self._get(user_id, project_id)
        now = self.clock()
        spent = sum((e.amount for e in acc.events if e.at <= now), Decimal(0))
        total = acc.deposits - spent
        return BudgetStatus(
            total_balance=total,
            available_balance=total - acc.reserved,
            reserved_amount=acc.reserved,
            spent_today=self._spent_in(acc, SpendingPeriod.DAILY, now),
            spent_this_month=self._spent_in(acc, SpendingPeriod.MONTHLY, now),
            spent_total=spent,
            daily_limit=acc.policy.daily_limit,
            monthly_limit=acc.policy.monthly_limit,
            per_request_limit=acc.policy.per_request_limit,
            low_balance_threshold=acc.policy.low_balance_threshold,
            timezone=acc.timezone,
        )

    async def get_spending(
        self, user_id: str, project_id: str, period: SpendingPeriod, *, at: datetime | None = None
    ) -> SpendingSummary:
        self._enter("get_spending")
        acc = self._get(user_id, project_id)
        window = window_containing(period, at or self.clock(), acc.timezone)
        events = self._between(acc, window.start, window.end)
        return SpendingSummary(
            period=period,
            period_start=window.start,
            period_end=window.end,
            total_spent=sum((e.amount for e in events), Decimal(0)),
            request_count=sum(1 for e in events if e.is_request),
        )

    async def get_analytics(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod = SpendingPeriod.MONTHLY,
        *,
        at: datetime | None = None,
    ) -> SpendingAnalytics:
        self._enter("get_analytics")
        acc = self._get(user_id, project_id)
        window = window_containing(period, at or self.clock(), acc.timezone)
        events = self._between(acc, window.start, window.end)
        total = sum((e.amount for e in events), Decimal(0))
        count = sum(1 for e in events if e.is_request)
        by_provider: dict[str, Decimal] = {}
        by_model: dict[str, Decimal] = {}
        req_provider: dict[str, int] = {}
        for e in events:
            by_provider[e.provider] = by_provider.get(e.provider, Decimal(0)) + e.amount
            by_model[e.model] = by_model.get(e.model, Decimal(0)) + e.amount
            if e.is_request:
                req_provider[e.provider] = req_provider.get(e.provider, 0) + 1
        return SpendingAnalytics(
            total_spent=total,
            request_count=count,
            average_per_request=total / count if count else Decimal(0),
            spending_by_provider=by_provider,
            requests_by_provider=req_provider,
            spending_by_model=by_model,
            period=period,
            period_start=window.start,
            period_end=window.end,
        )

    async def get_spending_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        self._enter("get_spending_series")
        acc = self._get(user_id, project_id)
        buckets = []
        for window in windows_between(granularity, start, end, acc.timezone):
            events = self._between(acc, window.start, window.end)
            buckets.append(
                SpendingBucket(
                    start=window.start,
                    end=window.end,
                    spent=sum((e.amount for e in events), Decimal(0)),
                    request_count=sum(1 for e in events if e.is_request),
                )
            )
        return buckets

    async def get_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        self._enter("get_policy")
        return self._get(user_id, project_id).policy

    async def list_accounts(self) -> list[AccountRef]:
        self._enter("list_accounts")
        return [
            AccountRef(user_id=u, project_id=p, timezone=a.timezone)
            for (u, p), a in self.accounts.items()
        ]

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        raise UnknownProviderError(f"the fake backend has no prices ({provider})")

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        raise UnknownProviderError(f"the fake backend has no prices ({provider})")

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> FakeBackend:
    return FakeBackend(clock)
