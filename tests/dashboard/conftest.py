"""The dashboard's tests: the shared in-memory Backend seeded with a year of hourly usage.

The fake (``tests.fakes``, re-exported here as ``FakeBackend``) answers the read protocol
the way the ledger does, so the dashboard is exercised against the contract, not against one
backend.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import uvicorn
from fastapi import FastAPI
from tests.fakes import Account
from tests.fakes import FakeBackend as FakeBackend  # re-exported: tests import it from here

from smartspace_budget.errors import UnknownModelError
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    BudgetPolicy,
    CostEstimate,
    PricingData,
    SpendingAlert,
)
from smartspace_budget.server.auth import Authenticator, RateLimiter
from smartspace_budget.server.dashboard.view import AlertsSource
from smartspace_budget.server.key_tables import ApiKeyInfo, Scope
from smartspace_budget.server.responses import install_error_handlers
from smartspace_budget.server.routes.dashboard import install_dashboard

from .ledger_site import SeededLedger, seed_ledger

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)
USER, PROJECT = "alice", "research"
OTHER_USER, OTHER_PROJECT = "bob", "ops"
TIMEZONE = "America/New_York"
SEEDED_BALANCE = Decimal("84.200000000")  # as a ledger shows it: nine decimal places
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


def prices() -> list[PricingData]:
    """``PRICES`` as price versions in force since the start of 2026."""
    since = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        PricingData(
            provider=provider,
            model_name=model,
            input_price_per_1k=price_in,
            output_price_per_1k=price_out,
            effective_date=since,
            last_updated=since,
        )
        for (provider, model), (price_in, price_out) in PRICES.items()
    ]


def seed(backend: FakeBackend, *, hours: int = 366 * 24) -> Account:
    """A year of hourly usage for alice/research, plus an empty account for bob/ops.

    Each hour and model is one event standing for ``busy`` calls; the deposits are what
    leaves ``SEEDED_BALANCE`` after the year's spending.
    """
    acc = backend.account(USER, PROJECT)
    acc.timezone = TIMEZONE
    acc.reserved = RESERVED
    acc.policy = BudgetPolicy(
        daily_limit=Decimal("2.50"),
        monthly_limit=Decimal("60"),
        low_balance_threshold=Decimal("50"),
    )
    first = backend.now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    total = Decimal(0)
    for i in range(hours):
        hour = first + timedelta(hours=i)
        busy = 1 + (hour.hour % 12) + (3 if hour.day % 7 == 0 else 0)
        growth = 1 + Decimal(i) / hours  # spending doubles over the year
        for model, (provider, rate) in MODELS.items():
            spent = (rate * busy * growth).quantize(Decimal("0.000001"))
            backend.spend(
                spent,
                hour,
                provider=provider,
                model=model,
                requests=busy,
                user_id=USER,
                project_id=PROJECT,
            )
            total += spent
    backend.deposit(SEEDED_BALANCE + total, USER, PROJECT)
    backend.deposit(Decimal("5"), OTHER_USER, OTHER_PROJECT)
    backend.add_prices(prices())
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


def alerts_for(now: datetime) -> AlertsSource:
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
        alerts=alerts_for(backend.now) if fakes else None,
        compare=fake_compare if fakes else None,
        clock=lambda: backend.now,
    )
    return app


@pytest.fixture(scope="session")
def seeded() -> FakeBackend:
    backend = FakeBackend(NOW)
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
