"""One in-memory :class:`Backend` for every test: accounts, spending events, prices, a clock.

The fake answers the read protocol the way the ledger and the price book do, so what a test
sees through it is what it would see through ``LocalBackend``: spending is summed over the
same calendar windows in the account's timezone, a refund is negative spending in its hour
(one tied to no provider and model counts only in the totals), a usage event is one request,
every amount has the ledger's nine decimal places, unknown accounts are
:class:`NotFoundError`, and prices resolve by effective date with the price book's errors and
history rules. ``tests/contract/test_fake_conformance.py`` holds it to that: the same events
are written into a real ledger (SQLite and PostgreSQL) and seeded into the fake, and every
read method must answer the same fields.

What it has that a ledger has not, for tests:

- seeding helpers that file events directly (``deposit``, ``spend``, ``refund``,
  ``set_policy``, ``add_price``; ``account()`` to set ``reserved``, ``timezone``,
  ``currency``): they bypass the ledger's write rules on purpose, so a test can build a
  state such as a refund larger than the day's spending;
- ``spend(..., requests=n)``: one event standing for ``n`` calls, so a year of hourly
  usage is a few ten thousand events instead of hundreds of thousands;
- a settable clock (``FakeClock``; ``now``), and events filed after it do not count yet;
- ``calls`` (reads per method), ``reached(name, count)`` (an ``asyncio.Event`` set once a
  method was read that often), ``fail_with`` (every read raises it), ``series_calls``.

Only the read side (``Backend``) is implemented; the write protocol (``LedgerClient``) is
faked for the guard in ``tests/guard/guard_fakes.py``.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from smartspace_budget.errors import (
    InvalidInputError,
    MissingPricingError,
    NotFoundError,
    UnknownModelError,
    UnknownProviderError,
)
from smartspace_budget.ledger.reads import MAX_SERIES_WINDOWS
from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetStatus,
    PredictionStats,
    PricingData,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
)
from smartspace_budget.money import quantize
from smartspace_budget.periods import (
    SpendingPeriod,
    parse_period,
    window_containing,
    windows_between,
)

__all__ = ["START", "Account", "Event", "FakeBackend", "FakeClock"]

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
"""A Monday noon, so weeks and months are easy to reason about."""

USER, PROJECT = "user_001", "proj_001"
"""The account the seeding helpers use when none is named."""

# Typical window lengths, to refuse an over-long series before building it (as the ledger).
_NOMINAL = {
    SpendingPeriod.HOURLY: timedelta(hours=1),
    SpendingPeriod.DAILY: timedelta(days=1),
    SpendingPeriod.WEEKLY: timedelta(weeks=1),
    SpendingPeriod.MONTHLY: timedelta(days=28),
    SpendingPeriod.YEARLY: timedelta(days=365),
}


def _nano(amount: Decimal) -> Decimal:
    """An amount as the ledger returns it: exactly nine decimal places (``from_nano``)."""
    return quantize(amount)


def _limit(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else _nano(amount)


def _policy(policy: BudgetPolicy) -> BudgetPolicy:
    return BudgetPolicy(
        per_request_limit=_limit(policy.per_request_limit),
        daily_limit=_limit(policy.daily_limit),
        monthly_limit=_limit(policy.monthly_limit),
        low_balance_threshold=_limit(policy.low_balance_threshold),
    )


class FakeClock:
    """A settable clock; ``advance`` moves it forward."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass(frozen=True, slots=True)
class Event:
    """Spending at an instant: positive is usage, negative a refund.

    ``requests`` is how many calls it stands for (1 for a usage event, 0 for a refund). A
    ``provider``/``model`` of ``None`` (an untied refund) counts only in the totals.
    ``predicted`` marks a call settled against a hold sized by an output prediction, and
    ``missed`` one that cost more than that hold (the analytics' ``predictions``).
    """

    at: datetime
    amount: Decimal
    provider: str | None = "openai"
    model: str | None = "gpt-4"
    requests: int = 1
    predicted: bool = False
    missed: bool = False

    @property
    def is_request(self) -> bool:
        return self.requests > 0


@dataclass
class Account:
    """One account's money, limits and events; reads index the events by time on demand."""

    deposits: Decimal = Decimal(0)  # every credit that is not spending (deposits, adjustments)
    reserved: Decimal = Decimal(0)
    policy: BudgetPolicy = field(default_factory=BudgetPolicy)
    timezone: str = "UTC"
    currency: str = "USDC"
    events: list[Event] = field(default_factory=list)
    _indexed: tuple[int, int] = field(default=(0, -1), repr=False)  # (id, len) of events
    _sorted: list[Event] = field(default_factory=list, repr=False)
    _times: list[datetime] = field(default_factory=list, repr=False)
    _amounts: list[Decimal] = field(default_factory=list, repr=False)
    _requests: list[int] = field(default_factory=list, repr=False)

    def _index(self) -> None:
        """Sort the events and keep prefix sums (the fake's rollup); redone when ``events``
        grows, shrinks or is replaced by another list (append events, never overwrite one)."""
        if self._indexed == (id(self.events), len(self.events)):
            return
        self._sorted = sorted(self.events, key=lambda e: e.at)
        self._times = [e.at for e in self._sorted]
        self._amounts, self._requests = [Decimal(0)], [0]
        for event in self._sorted:
            self._amounts.append(self._amounts[-1] + event.amount)
            self._requests.append(self._requests[-1] + event.requests)
        self._indexed = (id(self.events), len(self.events))

    def _span(self, start: datetime, end: datetime) -> tuple[int, int]:
        self._index()
        return bisect.bisect_left(self._times, start), bisect.bisect_left(self._times, end)

    def total(self, start: datetime, end: datetime) -> tuple[Decimal, int]:
        """Spent and requests in ``[start, end)``."""
        lo, hi = self._span(start, end)
        return self._amounts[hi] - self._amounts[lo], self._requests[hi] - self._requests[lo]

    def between(self, start: datetime, end: datetime) -> list[Event]:
        lo, hi = self._span(start, end)
        return self._sorted[lo:hi]

    def spent_until(self, now: datetime) -> Decimal:
        """Net spending of every event filed at or before ``now``."""
        self._index()
        return self._amounts[bisect.bisect_right(self._times, now)]


class FakeBackend:
    """The read side of ``Backend`` over in-memory accounts and prices (module docstring)."""

    def __init__(self, clock: Callable[[], datetime] | datetime = START) -> None:
        self.clock: Callable[[], datetime] = (
            FakeClock(clock) if isinstance(clock, datetime) else clock
        )
        self.accounts: dict[tuple[str, str], Account] = {}
        self.prices: dict[tuple[str, str], list[PricingData]] = {}
        self.calls: dict[str, int] = {}
        self.series_calls: list[tuple[SpendingPeriod, datetime, datetime]] = []
        self.fail_with: BaseException | None = None
        self._waiters: list[tuple[str, int, asyncio.Event]] = []

    @property
    def now(self) -> datetime:
        return self.clock()

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
    def account(self, user_id: str = USER, project_id: str = PROJECT) -> Account:
        """The account, created (UTC, no limits, nothing spent) if new."""
        return self.accounts.setdefault((user_id, project_id), Account())

    def deposit(
        self, amount: str | Decimal, user_id: str = USER, project_id: str = PROJECT
    ) -> None:
        self.account(user_id, project_id).deposits += Decimal(amount)

    def spend(
        self,
        amount: str | Decimal,
        at: datetime | None = None,
        *,
        provider: str | None = "openai",
        model: str | None = "gpt-4",
        requests: int = 1,
        user_id: str = USER,
        project_id: str = PROJECT,
        predicted: bool = False,
        missed: bool = False,
    ) -> None:
        """File spending at ``at`` (now by default); see :class:`Event`."""
        when = at or self.clock()
        self.account(user_id, project_id).events.append(
            Event(when, Decimal(amount), provider, model, requests, predicted, missed)
        )

    def refund(
        self,
        amount: str | Decimal,
        at: datetime | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        user_id: str = USER,
        project_id: str = PROJECT,
    ) -> None:
        """Negative spending at ``at``; tied to ``provider``/``model`` when they are given."""
        self.spend(
            -Decimal(amount),
            at,
            provider=provider,
            model=model,
            requests=0,
            user_id=user_id,
            project_id=project_id,
        )

    def set_policy(
        self, user_id: str = USER, project_id: str = PROJECT, **limits: str | Decimal | None
    ) -> None:
        values = {k: (None if v is None else Decimal(v)) for k, v in limits.items()}
        self.account(user_id, project_id).policy = BudgetPolicy(**values)

    def add_price(self, pricing: PricingData) -> None:
        """Add a price version (kept in effective-date order)."""
        versions = self.prices.setdefault((pricing.provider, pricing.model_name), [])
        versions.append(pricing)
        versions.sort(key=lambda v: v.effective_date)

    def add_prices(self, prices: Iterable[PricingData]) -> None:
        for pricing in prices:
            self.add_price(pricing)

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
            raise NotFoundError(
                f"no account for user {user_id!r}, project {project_id!r}",
                user_id=user_id,
                project_id=project_id,
            ) from None

    def _versions(self, provider: str, model: str) -> list[PricingData]:
        versions = self.prices.get((provider, model))
        if versions:
            return versions
        if not any(p == provider for p, _ in self.prices):
            raise UnknownProviderError(f"unknown provider {provider!r}")
        raise UnknownModelError(f"unknown model {model!r} of provider {provider!r}")

    # Backend -----------------------------------------------------------------------------
    async def get_balance(self, user_id: str, project_id: str) -> Balance:
        self._enter("get_balance")
        acc = self._get(user_id, project_id)
        total = acc.deposits - acc.spent_until(self.clock())
        return Balance(
            total_balance=_nano(total),
            available_balance=_nano(total - acc.reserved),
            reserved_amount=_nano(acc.reserved),
            currency=acc.currency,
        )

    async def get_budget_status(self, user_id: str, project_id: str) -> BudgetStatus:
        self._enter("get_budget_status")
        acc = self._get(user_id, project_id)
        now = self.clock()
        spent = acc.spent_until(now)
        total = acc.deposits - spent
        today = window_containing(SpendingPeriod.DAILY, now, acc.timezone)
        month = window_containing(SpendingPeriod.MONTHLY, now, acc.timezone)
        policy = _policy(acc.policy)
        return BudgetStatus(
            total_balance=_nano(total),
            available_balance=_nano(total - acc.reserved),
            reserved_amount=_nano(acc.reserved),
            spent_today=_nano(acc.total(today.start, today.end)[0]),
            spent_this_month=_nano(acc.total(month.start, month.end)[0]),
            spent_total=_nano(spent),
            daily_limit=policy.daily_limit,
            monthly_limit=policy.monthly_limit,
            per_request_limit=policy.per_request_limit,
            low_balance_threshold=policy.low_balance_threshold,
            currency=acc.currency,
            timezone=acc.timezone,
        )

    async def get_spending(
        self, user_id: str, project_id: str, period: SpendingPeriod, *, at: datetime | None = None
    ) -> SpendingSummary:
        self._enter("get_spending")
        period = parse_period(period)
        acc = self._get(user_id, project_id)
        window = window_containing(period, at or self.clock(), acc.timezone)
        spent, requests = acc.total(window.start, window.end)
        return SpendingSummary(
            period=period,
            period_start=window.start,
            period_end=window.end,
            total_spent=_nano(spent),
            request_count=requests,
            currency=acc.currency,
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
        period = parse_period(period)
        acc = self._get(user_id, project_id)
        window = window_containing(period, at or self.clock(), acc.timezone)
        total, count = acc.total(window.start, window.end)
        by_provider: dict[str, Decimal] = {}
        req_provider: dict[str, int] = {}
        by_model: dict[str, Decimal] = {}
        req_model: dict[str, int] = {}
        predictions: dict[str, tuple[int, int]] = {}
        for e in acc.between(window.start, window.end):
            if e.predicted:  # per "provider/model", as the ledger's rollups count them
                name = f"{e.provider}/{e.model}"
                predicted, missed = predictions.get(name, (0, 0))
                predictions[name] = (predicted + 1, missed + e.missed)
            if e.provider:
                by_provider[e.provider] = by_provider.get(e.provider, Decimal(0)) + e.amount
                req_provider[e.provider] = req_provider.get(e.provider, 0) + e.requests
            if e.model:
                by_model[e.model] = by_model.get(e.model, Decimal(0)) + e.amount
                req_model[e.model] = req_model.get(e.model, 0) + e.requests
        return SpendingAnalytics(
            total_spent=_nano(total),
            request_count=count,
            average_per_request=_nano(total / count if count else Decimal(0)),
            spending_by_provider={k: _nano(v) for k, v in by_provider.items()},
            requests_by_provider=req_provider,
            spending_by_model={k: _nano(v) for k, v in by_model.items()},
            requests_by_model=req_model,
            period=period,
            period_start=window.start,
            period_end=window.end,
            currency=acc.currency,
            predictions=PredictionStats.of(
                sum(p for p, _ in predictions.values()), sum(m for _, m in predictions.values())
            ),
            predictions_by_model={k: PredictionStats.of(*v) for k, v in predictions.items()},
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
        granularity = parse_period(granularity)
        acc = self._get(user_id, project_id)
        self.series_calls.append((granularity, start, end))
        if (end - start) / _NOMINAL[granularity] > MAX_SERIES_WINDOWS:
            raise InvalidInputError(
                f"too many {granularity} windows from {start} to {end}; "
                f"at most {MAX_SERIES_WINDOWS}"
            )
        buckets = []
        for window in windows_between(granularity, start, end, acc.timezone):
            spent, requests = acc.total(window.start, window.end)
            buckets.append(
                SpendingBucket(
                    start=window.start, end=window.end, spent=_nano(spent), request_count=requests
                )
            )
        return buckets

    async def get_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        self._enter("get_policy")
        return _policy(self._get(user_id, project_id).policy)

    async def list_accounts(self) -> list[AccountRef]:
        self._enter("list_accounts")
        return [
            AccountRef(user_id=u, project_id=p, currency=a.currency, timezone=a.timezone)
            for (u, p), a in self.accounts.items()
        ]

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        self._enter("get_pricing")
        versions = self._versions(provider, model)
        instant = at or self.clock()
        index = bisect.bisect_right([v.effective_date for v in versions], instant)
        if not index:
            raise MissingPricingError(
                f"no price for {provider}/{model} in force at {instant.isoformat()}",
                provider=provider,
                model=model,
            )
        return versions[index - 1].model_copy(deep=True)

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        """Versions in force at some moment of the last ``days`` days, future ones too."""
        self._enter("get_price_history")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            raise InvalidInputError(f"days must be a non-negative integer, got {days!r}")
        versions = self._versions(provider, model)
        since = None if days is None else self.clock() - timedelta(days=days)
        visible = []
        for index, version in enumerate(versions):
            end = versions[index + 1].effective_date if index + 1 < len(versions) else None
            if end is not None and end <= version.effective_date:
                continue  # never in force
            if since is not None and end is not None and end <= since:
                continue  # replaced before the window
            visible.append(version.model_copy(deep=True))
        return visible

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        self._enter("list_models")
        if provider is not None and not any(p == provider for p, _ in self.prices):
            raise UnknownProviderError(f"unknown provider {provider!r}")
        return sorted(pair for pair in self.prices if provider is None or pair[0] == provider)
