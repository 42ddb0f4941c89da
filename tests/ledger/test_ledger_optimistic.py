"""PostgreSQL's optimistic lone write: read without locks, write only if the account is
unchanged; any change in between (another replica's write, the same key taken) ends in the
locked path with the exact result, and nothing counted twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.errors import IdempotencyConflictError
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.driver import PostgresDriver
from smartspace_budget.ledger.sql import Call

# The optimistic path is PostgreSQL's writer's (SQLite has one writer thread and no row locks).
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
async def replica(database_url: str) -> AsyncIterator[Ledger]:
    """Another process writing to the same database."""
    opened = await Ledger.connect(database_url, migrate=False)
    try:
        yield opened
    finally:
        await opened.close()


def before_checked_write(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[], Awaitable[object]]
) -> list[str]:
    """Run ``action`` once, just before the next checked write; returns the modes used."""
    real = PostgresDriver._execute
    seen: list[str] = []

    async def execute(conn: Any, call: Call) -> Any:
        if call.mode == "scalar" and "SELECT count(*) FROM w0" in call.sql:
            seen.append("checked")
            if len(seen) == 1:
                await action()
        elif "FOR UPDATE" in call.sql:
            seen.append("locked")
        return await real(conn, call)

    monkeypatch.setattr(PostgresDriver, "_execute", staticmethod(execute))
    return seen


async def test_a_lone_write_needs_no_transaction(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.deposit("kim", "p", D("10"), idempotency_key="d", now=T0)

    async def refuse(self: PostgresDriver, make_plan: object) -> object:
        raise AssertionError("a lone usage write on an existing account took the locked path")

    monkeypatch.setattr(PostgresDriver, "run", refuse)
    entry = await ledger.record_usage("kim", "p", usage("1.5"), idempotency_key="u", now=T0)
    assert entry.balance_after == D("8.5")
    again = await ledger.record_usage("kim", "p", usage("1.5"), idempotency_key="u", now=T0)
    assert again == entry
    with pytest.raises(IdempotencyConflictError):
        await ledger.record_usage("kim", "p", usage("2"), idempotency_key="u", now=T0)
    await ledger.deposit("kim", "p", D("1"), idempotency_key="d2", now=T0)
    await ledger.adjust("kim", "p", D("-0.5"), reason="fix", idempotency_key="a", now=T0)
    assert (await ledger.get_balance("kim", "p")).total_balance == D("9")
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_a_write_by_another_replica_in_between_is_counted(
    ledger: Ledger, replica: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.deposit("kim", "p", D("10"), idempotency_key="d", now=T0)
    seen = before_checked_write(
        monkeypatch,
        lambda: replica.deposit("kim", "p", D("5"), idempotency_key="other", now=T0),
    )
    entry = await ledger.record_usage("kim", "p", usage("1"), idempotency_key="u", now=T0)
    # The replica's deposit was made between the read (balance 10) and the checked write,
    # which then stored nothing; the locked path charged the balance as it really was.
    assert seen == ["checked", "checked", "locked"]  # ours, the replica's, ours under locks
    assert entry.balance_after == D("14")
    assert (await ledger.get_balance("kim", "p")).total_balance == D("14")
    report = await ledger.check_integrity()
    assert report.ok, str(report)
    assert report.entries_checked == 3


async def test_the_same_key_taken_in_between_replays_its_result(
    ledger: Ledger, replica: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.deposit("kim", "p", D("10"), idempotency_key="d", now=T0)
    first: list[object] = []

    async def take_the_key() -> None:
        first.append(
            await replica.record_usage("kim", "p", usage("1"), idempotency_key="u", now=T0)
        )

    before_checked_write(monkeypatch, take_the_key)
    entry = await ledger.record_usage("kim", "p", usage("1"), idempotency_key="u", now=T0)
    assert first == [entry]
    assert (await ledger.get_balance("kim", "p")).total_balance == D("9")
    report = await ledger.check_integrity()
    assert report.ok, str(report)
    assert report.entries_checked == 2


async def test_the_same_key_taken_with_another_body_is_a_conflict(
    ledger: Ledger, replica: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ledger.deposit("kim", "p", D("10"), idempotency_key="d", now=T0)
    before_checked_write(
        monkeypatch,
        lambda: replica.record_usage("kim", "p", usage("3"), idempotency_key="u", now=T0),
    )
    with pytest.raises(IdempotencyConflictError):
        await ledger.record_usage("kim", "p", usage("1"), idempotency_key="u", now=T0)
    assert (await ledger.get_balance("kim", "p")).total_balance == D("7")
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_concurrent_lone_writers_on_one_account_lose_nothing(
    ledger: Ledger, replica: Ledger
) -> None:
    """Two replicas writing one account at once: checked writes that lose the race go
    through the locked path; every write is counted once."""
    await ledger.deposit("kim", "p", D("100"), idempotency_key="d", now=T0)

    async def writer(target: Ledger, name: str) -> None:
        for step in range(40):
            await target.record_usage(
                "kim", "p", usage("0.25"), idempotency_key=f"{name}-{step}", now=T0
            )

    await asyncio.gather(writer(ledger, "a"), writer(replica, "b"), writer(ledger, "c"))
    assert (await ledger.get_balance("kim", "p")).total_balance == D("70")
    report = await ledger.check_integrity()
    assert report.ok, str(report)
