"""What the spec promises about freshness: a fresh balance, prices at most 5 minutes old.

Issue 18: ``get_available_balance`` answered from the 30 s cache, and the engine's own
5-minute price cache sat on the backend's, so a price could be ten minutes old.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from smartspace_budget import BudgetTracker, PricingEngine
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.ledger.ledger import Ledger
from smartspace_budget.models import BudgetStatus, PricingData
from smartspace_budget.prices.catalog import PriceBook


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    ledger = await Ledger.connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    yield ledger
    await ledger.close()


async def test_available_balance_is_fresh_after_a_write_elsewhere(ledger: Ledger) -> None:
    backend = LocalBackend(ledger, PriceBook.in_memory(), status_ttl=30)
    tracker = BudgetTracker(backend)
    await ledger.deposit("u", "p", Decimal("10"), idempotency_key="d1")
    assert await tracker.get_available_balance("u", "p") == Decimal("10")
    # Another process deposits: nothing tells this backend, its 30 s cache is still warm.
    await ledger.deposit("u", "p", Decimal("5"), idempotency_key="d2")
    assert (await backend.get_balance("u", "p")).available_balance == Decimal("10")
    assert await tracker.get_available_balance("u", "p") == Decimal("15")
    # ... and the fresh read replaced the cached copy for everyone else.
    assert (await backend.get_balance("u", "p")).available_balance == Decimal("15")


async def test_a_price_is_never_older_than_the_backends_five_minutes(ledger: Ledger) -> None:
    clock = Clock()
    book = PriceBook.in_memory()
    backend = LocalBackend(ledger, book, pricing_ttl=300, clock=clock)
    engine = PricingEngine(backend, clock=clock)
    first = await backend.get_pricing("openai", "gpt-4o")  # the backend caches it at t=0
    clock.now += 299
    assert (await engine.get_provider_pricing("openai", "gpt-4o")).version == first.version
    estimate = await engine.estimate_cost("openai", "gpt-4o", input_tokens=1000)
    await book.add_price(
        PricingData(
            provider="openai",
            model_name="gpt-4o",
            input_price_per_1k=Decimal("1"),
            output_price_per_1k=Decimal("1"),
            effective_date=datetime.now(UTC) - timedelta(minutes=1),
            last_updated=datetime.now(UTC),
        ),
        force=True,
    )
    clock.now += 2  # 301 s after the backend read it: both the backend and the engine refetch
    changed = await engine.get_provider_pricing("openai", "gpt-4o")
    assert changed.input_price_per_1k == Decimal("1")
    again = await engine.estimate_cost("openai", "gpt-4o", input_tokens=1000)
    assert again.input_cost > estimate.input_cost


async def test_engine_invalidate_forgets_the_backends_prices(ledger: Ledger) -> None:
    book = PriceBook.in_memory()
    backend = LocalBackend(ledger, book)
    engine = PricingEngine(backend)
    await engine.get_provider_pricing("openai", "gpt-4o")
    await book.add_price(
        PricingData(
            provider="openai",
            model_name="gpt-4o",
            input_price_per_1k=Decimal("1"),
            output_price_per_1k=Decimal("1"),
            effective_date=datetime.now(UTC) - timedelta(minutes=1),
            last_updated=datetime.now(UTC),
        ),
        force=True,
    )
    engine.invalidate()
    assert (await backend.get_pricing("openai", "gpt-4o")).input_price_per_1k == Decimal("1")


@pytest.mark.parametrize(
    ("available", "warned"),
    [(Decimal("0.000000001"), False), (Decimal("0"), True), (Decimal("-1"), True)],
)
def test_a_balance_of_exactly_zero_warns(available: Decimal, warned: bool) -> None:
    status = BudgetStatus(
        total_balance=available,
        available_balance=available,
        reserved_amount=Decimal(0),
        spent_today=Decimal(0),
        spent_this_month=Decimal(0),
        spent_total=Decimal(0),
    )
    assert status.low_balance_warning is warned
