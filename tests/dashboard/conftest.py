"""A seeded in-memory Backend for the dashboard's tests: a year of hourly usage, one account.

The fake answers the read protocol from hourly rows the way the ledger answers from its
rollups, so the dashboard is exercised against the contract, not against one backend.
"""

from __future__ import annotations

import bisect
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import uvicorn
from fastapi import FastAPI

from smartspace_budget.backend.base import AccountRef, SpendingBucket
from smartspace_budget.errors import NotFoundError, UnknownModelError
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    Balance,
    BudgetPolicy,
    BudgetStatus,
    CostEstimate,
    PricingData,
    SpendingAlert,
    SpendingAnalytics,
    SpendingSummary,
)
from smartspace_budget.periods import SpendingPeriod, window_containing, windows_between
from smartspace_budget.server.auth import Authenticator, RateLimiter
from smartspace_budget.server.key_tables import ApiKeyInfo, Scope
from smartspace_budget.server.responses import install_error_handlers
from smartspace_budget.server.routes.dashboard import install_dashboard

from .ledger_site import SeededLedger, seed_ledger

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
USER, PROJECT = "alice", "research"
OTHER_USER, OTHER_PROJECT = "bob", "ops"
TIMEZONE = "America/New_York"
SEEDED_BALANCE = Decimal("84.20")
RESERVED = Decimal("12.50")
MODELS = {  # model -> (provider, spend per active hour)
    "gpt-4o": ("openai", Decimal("0.0042")),
    "claude-3-5-sonnet": ("anthropic", Decimal("0.0018")),
    "gemini-1.5-flash": ("google", Decimal("0.0002")),
}
PRICES = {  # (provider, model) -> (input per 1k, output per 1k)
    ("openai", "gpt-4o"): (Decimal("0.0025"), Decimal("0.01")),
    ("openai", "gpt-4o-mini"): (Decimal("0.00015"), Decimal("0.0006")),
    ("anthropic", "claude-3-5-sonnet"): (Decimal("0.003"), Decimal("0.015")),
    ("google", "gemini-1.5-flash"): (Decimal("0.000075"), Decimal("0.0003")),
}


@dataclass
class Account:
    ref: AccountRef
    balance: Decimal
    reserved: Decimal
    policy: BudgetPolicy
    rows: list[tuple[datetime, str, str, Decimal, int]] = field(default_factory=list)
    hours: list[datetime] = field(default_factory=list)
    cumulative: list[tuple[Decimal, int]] = field(default_factory=list)

    def index(self) -> None:
        """Sort the rows and build prefix sums per hour (the fake's 'rollup')."""
        self.rows.sort(key=lambda r: r[0])
        per_hour: dict[datetime, tuple[Decimal, int]] = {}
        for hour, _, _, spent, count in self.rows:
            total, requests = per_hour.get(hour, (Decimal(0), 0))
            per_hour[hour] = (total + spent, requests + count)
        self.hours = sorted(per_hour)
        running, count = Decimal(0), 0
        self.cumulative = [(Decimal(0), 0)]
        for hour in self.hours:
            running += per_hour[hour][0]
            count += per_hour[hour][1]
            self.cumulative.append((running, count))

    def total(self, start: datetime, end: datetime) -> tuple[Decimal, int]:
        lo = bisect.bisect_left(self.hours, start.astimezone(UTC))
        hi = bisect.bisect_left(self.hours, end.astimezone(UTC))
        return (
            self.cumulative[hi][0] - self.cumulative[lo][0],
            self.cumulative[hi][1] - self.cumulative[lo][1],
        )


class FakeBackend:
    """The read protocol over in-memory hourly rows; ``calls`` counts series reads."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now
        self.accounts: dict[tuple[str, str], Account] = {}
        self.series_calls: list[tuple[SpendingPeriod, datetime, datetime]] = []

    def _get(self, user_id: str, project_id: str) -> Account:
        try:
            return self.accounts[(user_id, project_id)]
        except KeyError:
            raise NotFoundError("no such account") from None

    async def get_balance(self, user_id: str, project_id: str) -> Balance:
        acc = self._get(user_id, project_id)
        return Balance(
            total_balance=acc.balance,
            available_balance=acc.balance - acc.reserved,
            reserved_amount=acc.reserved,
        )

    async def get_budget_status(self, user_id: str, project_id: str) -> BudgetStatus:
        acc = self._get(user_id, project_id)
        tz = acc.ref.timezone
        today = window_containing(SpendingPeriod.DAILY, self.now, tz)
        month = window_containing(SpendingPeriod.MONTHLY, self.now, tz)
        return BudgetStatus(
            total_balance=acc.balance,
            available_balance=acc.balance - acc.reserved,
            reserved_amount=acc.reserved,
            spent_today=acc.total(today.start, self.now + timedelta(seconds=1))[0],
            spent_this_month=acc.total(month.start, self.now + timedelta(seconds=1))[0],
            spent_total=acc.cumulative[-1][0],
            daily_limit=acc.policy.daily_limit,
            monthly_limit=acc.policy.monthly_limit,
            per_request_limit=acc.policy.per_request_limit,
            low_balance_threshold=acc.policy.low_balance_threshold,
            currency="USDC",
            timezone=tz,
        )

    async def get_spending(
        self, user_id: str, project_id: str, period: SpendingPeriod, *, at: datetime | None = None
    ) -> SpendingSummary:
        acc = self._get(user_id, project_id)
        window = window_containing(period, at or self.now, acc.ref.timezone)
        spent, count = acc.total(window.start, window.end)
        return SpendingSummary(
            period=period,
            period_start=window.start,
            period_end=window.end,
            total_spent=spent,
            request_count=count,
        )

    async def get_analytics(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod = SpendingPeriod.MONTHLY,
        *,
        at: datetime | None = None,
    ) -> SpendingAnalytics:
        acc = self._get(user_id, project_id)
        window = window_containing(period, at or self.now, acc.ref.timezone)
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        by_provider: dict[str, Decimal] = {}
        req_provider: dict[str, int] = {}
        by_model: dict[str, Decimal] = {}
        req_model: dict[str, int] = {}
        for hour, provider, model, spent, count in acc.rows:
            if start <= hour < end:
                by_provider[provider] = by_provider.get(provider, Decimal(0)) + spent
                req_provider[provider] = req_provider.get(provider, 0) + count
                by_model[model] = by_model.get(model, Decimal(0)) + spent
                req_model[model] = req_model.get(model, 0) + count
        total = sum(by_model.values(), Decimal(0))
        requests = sum(req_model.values())
        return SpendingAnalytics(
            total_spent=total,
            request_count=requests,
            average_per_request=total / requests if requests else Decimal(0),
            spending_by_provider=by_provider,
            requests_by_provider=req_provider,
            spending_by_model=by_model,
            requests_by_model=req_model,
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
        acc = self._get(user_id, project_id)
        self.series_calls.append((granularity, start, end))
        buckets = []
        for window in windows_between(granularity, start, end, acc.ref.timezone):
            spent, count = acc.total(window.start, window.end)
            buckets.append(
                SpendingBucket(start=window.start, end=window.end, spent=spent, request_count=count)
            )
        return buckets

    async def get_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        return self._get(user_id, project_id).policy

    async def list_accounts(self) -> list[AccountRef]:
        return [acc.ref for acc in self.accounts.values()]

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        if (provider, model) not in PRICES:
            raise UnknownModelError(f"unknown model {provider}/{model}")
        price_in, price_out = PRICES[(provider, model)]
        return PricingData(
            provider=provider,
            model_name=model,
            input_price_per_1k=price_in,
            output_price_per_1k=price_out,
            effective_date=datetime(2026, 1, 1, tzinfo=UTC),
            last_updated=datetime(2026, 1, 1, tzinfo=UTC),
        )

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        return []

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        return [pair for pair in PRICES if provider is None or pair[0] == provider]


def seed(backend: FakeBackend, *, hours: int = 366 * 24) -> Account:
    """A year of hourly usage for alice/research, plus an empty account for bob/ops."""
    acc = Account(
        ref=AccountRef(user_id=USER, project_id=PROJECT, timezone=TIMEZONE),
        balance=SEEDED_BALANCE,
        reserved=RESERVED,
        policy=BudgetPolicy(
            daily_limit=Decimal("2.50"),
            monthly_limit=Decimal("60"),
            low_balance_threshold=Decimal("50"),
        ),
    )
    first = backend.now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    for i in range(hours):
        hour = first + timedelta(hours=i)
        busy = 1 + (hour.hour % 12) + (3 if hour.day % 7 == 0 else 0)
        growth = 1 + Decimal(i) / hours  # spending doubles over the year
        for model, (provider, rate) in MODELS.items():
            spent = (rate * busy * growth).quantize(Decimal("0.000001"))
            acc.rows.append((hour, provider, model, spent, busy))
    acc.index()
    backend.accounts[(USER, PROJECT)] = acc
    other = Account(
        ref=AccountRef(user_id=OTHER_USER, project_id=OTHER_PROJECT),
        balance=Decimal("5"),
        reserved=Decimal(0),
        policy=BudgetPolicy(),
    )
    other.index()
    backend.accounts[(OTHER_USER, OTHER_PROJECT)] = other
    return acc


async def fake_compare(
    models: list[tuple[str, str]], input_tokens: int, output_tokens: int
) -> Mapping[str, CostEstimate]:
    """Priced like the PricingEngine: per-1k prices, 5% platform fee."""
    out: dict[str, CostEstimate] = {}
    for provider, model in models:
        if (provider, model) not in PRICES:
            raise UnknownModelError(f"unknown model {provider}/{model}")
        price_in, price_out = PRICES[(provider, model)]
        input_cost = price_in * input_tokens / 1000
        output_cost = price_out * output_tokens / 1000
        base = input_cost + output_cost
        fee = base * Decimal("0.05")
        out[f"{provider}/{model}"] = CostEstimate(
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            input_cost=input_cost,
            output_cost=output_cost,
            base_cost=base,
            platform_fee_percent=Decimal(5),
            platform_fee=fee,
            total_cost=base + fee,
        )
    return out


def alerts_for(now: datetime) -> Callable[[str, str], object]:
    async def alerts(user_id: str, project_id: str) -> list[SpendingAlert]:
        if (user_id, project_id) != (USER, PROJECT):
            return []
        return [
            SpendingAlert(
                user_id=user_id,
                project_id=project_id,
                alert_type=AlertType.DAILY_LIMIT,
                level=AlertLevel.WARNING,
                title="80% of the daily limit",
                message="Spent 2.00 of 2.50 today.",
                current_value=Decimal("2.00"),
                threshold_value=Decimal("2.50"),
                created_at=now - timedelta(minutes=40),
            ),
            SpendingAlert(
                user_id=user_id,
                project_id=project_id,
                alert_type=AlertType.MONTHLY_LIMIT,
                level=AlertLevel.CRITICAL,
                title="Monthly limit reached",
                message="Spent 60.00 of 60.00 this month.",
                current_value=Decimal("60.00"),
                threshold_value=Decimal("60"),
                created_at=now - timedelta(hours=5),
            ),
        ]

    return alerts


def _key(
    key_id: str, scope: Scope, user_id: str | None = None, project_id: str | None = None
) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=key_id,
        scope=scope,
        user_id=user_id,
        project_id=project_id,
        name=None,
        created_at=NOW,
        revoked_at=None,
    )


KEYS = {
    "ssb_admin_test": _key("k-admin", Scope.ADMIN),
    "ssb_alice_test": _key("k-alice", Scope.ACCOUNT_READ, USER, PROJECT),
    "ssb_pricing_test": _key("k-pricing", Scope.PRICING_READ),
}


def make_app(backend: FakeBackend, *, auth: bool = True, fakes: bool = True) -> FastAPI:
    """An app with the dashboard and the API's auth and error handling, over ``backend``.

    ``fakes=False`` leaves alerts and comparison to the dashboard's defaults: a real
    SpendingMonitor and PricingEngine over ``backend``.
    """

    async def lookup(raw: str) -> ApiKeyInfo | None:
        return KEYS.get(raw)

    app = FastAPI()
    app.state.authenticator = Authenticator(lookup, enabled=auth, cache_ttl=0)
    app.state.rate_limiter = RateLimiter(0, 1)
    install_error_handlers(app)
    install_dashboard(
        app,
        backend=backend,
        alerts=alerts_for(backend.now) if fakes else None,  # type: ignore[arg-type]
        compare=fake_compare if fakes else None,
        clock=lambda: backend.now,
    )
    return app


@pytest.fixture(scope="session")
def seeded() -> FakeBackend:
    backend = FakeBackend()
    seed(backend)
    return backend


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port, for real; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@pytest.fixture(scope="session")
def seeded_ledger(tmp_path_factory: pytest.TempPathFactory) -> SeededLedger:
    """A SQLite ledger with a year of hourly usage (see ``ledger_site``)."""
    return seed_ledger(tmp_path_factory.mktemp("dashboard-ledger"))
