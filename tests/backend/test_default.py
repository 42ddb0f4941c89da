"""default_backend(): the environment picks the backend; nothing opens until first use."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from smartspace_budget.backend import LedgerBackend, default_backend
from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.pricing.pricing_engine import PricingEngine


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("URL", "API_KEY", "DATABASE_URL"):
        monkeypatch.delenv(f"SMARTSPACE_BUDGET_{name}", raising=False)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path / "data"))


def test_url_selects_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_URL", "http://ledger.internal:8000/")
    monkeypatch.setenv("SMARTSPACE_BUDGET_API_KEY", "ssb_k")
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", "sqlite+aiosqlite:///ignored.db")
    backend = default_backend()
    assert isinstance(backend, HttpBackend)
    assert backend.base_url == "http://ledger.internal:8000"
    assert isinstance(backend, LedgerBackend)


def test_embedded_default_opens_in_the_data_dir_on_first_use(tmp_path: Path) -> None:
    backend = default_backend()  # in sync code: nothing is opened yet
    assert isinstance(backend, LocalBackend)
    database = tmp_path / "data" / "ledger.sqlite3"
    assert not database.exists()

    async def deposit() -> Decimal:
        await backend.deposit("u", "p", Decimal("1.5"), idempotency_key="k1")
        return (await backend.get_balance("u", "p")).total_balance

    # Two event loops in a row, as a script calling asyncio.run twice would.
    assert asyncio.run(deposit()) == Decimal("1.5")
    assert database.exists()
    assert asyncio.run(deposit()) == Decimal("1.5")  # same key: written once
    asyncio.run(backend.aclose())


def test_database_url_selects_that_ledger(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "chosen.sqlite3"
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", f"sqlite+aiosqlite:///{target}")
    backend = default_backend()
    assert isinstance(backend, LocalBackend)

    async def use() -> None:
        await backend.deposit("u", "p", Decimal(2), idempotency_key="k")
        await backend.aclose()

    asyncio.run(use())
    assert target.exists()
    assert not (tmp_path / "data" / "ledger.sqlite3").exists()


def test_pricing_engine_without_arguments_uses_the_default_backend() -> None:
    engine = PricingEngine()
    assert isinstance(engine.backend, LocalBackend)

    async def price() -> Decimal | None:
        pricing = await engine.get_provider_pricing("openai", "gpt-4")
        assert isinstance(engine.backend, LocalBackend)
        await engine.backend.aclose()
        return pricing.input_price_per_1k

    assert asyncio.run(price()) == Decimal("0.03")
