"""The ledger benchmark's "statements alone" row replays usage writes with no ledger code.

That row is the ceiling a sequential SQLite writer could reach with this storage, so it is
only honest if the replay stores exactly what ``record_usage`` stores: the entry, the
account's totals, both rollups and the idempotency row. These tests run the benchmark's own
replay and check that the ledger reads it back as its own writes, whole.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from smartspace_budget.ledger import Ledger
from smartspace_budget.models import SpendingPeriod

BENCH = Path(__file__).resolve().parents[2] / "bench" / "ledger.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ledger", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Floor:
    bench: ModuleType
    ledger: Ledger
    url: str

    async def balance(self) -> Decimal:
        return (await self.ledger.get_balance(self.bench.FLOOR_USER, "bench")).total_balance


@pytest.fixture
async def floor(tmp_path: Path) -> AsyncIterator[Floor]:
    """A SQLite ledger with the benchmark's floor account funded and written once."""
    bench = load_bench()
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = await Ledger.connect(url)
    try:
        await bench.prepare_floor(ledger)
        yield Floor(bench, ledger, url)
    finally:
        await ledger.close()


async def test_replayed_writes_read_back_as_usage(floor: Floor) -> None:
    bench, ledger = floor.bench, floor.ledger
    rate = await bench.statements_alone(ledger, floor.url, 25, "replay")
    assert rate > 0

    report = await ledger.check_integrity()
    assert report.ok, report
    cost = bench.BENCH_EVENT.actual_cost
    balance = await floor.balance()
    assert balance == bench.FLOOR_DEPOSIT - 26 * cost
    today = await ledger.get_spending(
        bench.FLOOR_USER, "bench", SpendingPeriod.DAILY, at=datetime.now(UTC)
    )
    assert (today.total_spent, today.request_count) == (26 * cost, 26)
    analytics = await ledger.get_analytics(bench.FLOOR_USER, "bench", SpendingPeriod.MONTHLY)
    assert analytics.requests_by_model == {"gpt-4o": 26}

    # The replay stored each key as the ledger would: the ledger answers a replayed key from
    # it, without writing again.
    again = await ledger.record_usage(
        bench.FLOOR_USER, "bench", bench.BENCH_EVENT, idempotency_key="replay-3"
    )
    assert again.amount == -cost
    assert await floor.balance() == balance


async def test_a_replayed_key_is_refused_by_the_database(floor: Floor) -> None:
    bench, ledger = floor.bench, floor.ledger
    await bench.statements_alone(ledger, floor.url, 3, "once")
    with pytest.raises(sqlite3.IntegrityError):
        await bench.statements_alone(ledger, floor.url, 3, "once")
    report = await ledger.check_integrity()
    assert report.ok, report
    assert await floor.balance() == bench.FLOOR_DEPOSIT - 4 * bench.BENCH_EVENT.actual_cost
