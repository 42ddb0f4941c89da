"""The service releases reservations past their expiry without waiting for a write."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from smartspace_budget.config import Settings
from smartspace_budget.server.app import create_app
from smartspace_budget.server.sweeper import sweeping


async def test_sweeping_runs_until_the_block_ends_and_survives_failures() -> None:
    calls: list[int] = []
    third = asyncio.Event()

    async def expire() -> int:
        calls.append(1)
        if len(calls) == 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return 1

    async with sweeping(expire, 0.01):
        await asyncio.wait_for(third.wait(), timeout=5)
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == seen, "the sweep stopped with the block"


async def test_zero_interval_never_sweeps() -> None:
    calls: list[int] = []

    async def expire() -> int:
        calls.append(1)
        return 0

    async with sweeping(expire, 0):
        await asyncio.sleep(0.05)
    assert calls == []


async def test_service_expires_an_untouched_hold(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}",
        expiry_interval=0.2,
        auth_enabled=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        backend = app.state.backend
        await backend.deposit("u", "p", Decimal("10"), idempotency_key="dep")
        await backend.reserve("u", "p", Decimal("4"), ttl_seconds=1, idempotency_key="hold")
        assert (await backend.get_balance("u", "p")).reserved_amount == Decimal("4")
        for _ in range(50):
            await asyncio.sleep(0.1)
            if (await backend.get_balance("u", "p")).reserved_amount == 0:
                break
        balance = await backend.get_balance("u", "p")
    assert balance.reserved_amount == 0
    assert balance.available_balance == Decimal("10")
