"""Group commit: concurrent writes share transactions, and one faulty write fails alone."""

from __future__ import annotations

import asyncio

import pytest
from ledger_helpers import T0, D

from smartspace_budget.errors import BackendUnavailableError
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger import apply as rules
from smartspace_budget.ledger.ops import Deposit, Op


async def test_concurrent_writes_share_commits(ledger: Ledger) -> None:
    await ledger.deposit("kim", "p", D("1"), idempotency_key="warm", now=T0)
    before = ledger.writer_stats
    entries = await asyncio.gather(
        *(ledger.deposit("kim", "p", D("1"), idempotency_key=f"d{n}", now=T0) for n in range(64))
    )
    batches, operations = (
        now - then for now, then in zip(ledger.writer_stats, before, strict=True)
    )
    assert operations == 64
    assert batches < 64
    # Each caller got its own entry, in the order the writes were applied.
    assert sorted(entry.balance_after for entry in entries) == [D(n) for n in range(2, 66)]


async def test_a_faulty_write_fails_alone(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    real_apply = rules.apply

    def apply(batch: object, op: Op) -> object:
        if isinstance(op, Deposit) and op.key == "poison":
            raise RuntimeError("a defect in one operation")
        return real_apply(batch, op)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "apply", apply)
    results = await asyncio.gather(
        *(
            ledger.deposit("kim", "p", D("1"), idempotency_key=key, now=T0)
            for key in ("a", "b", "poison", "c", "d")
        ),
        return_exceptions=True,
    )
    assert isinstance(results[2], BackendUnavailableError)
    assert not [
        result
        for index, result in enumerate(results)
        if index != 2 and isinstance(result, BaseException)
    ]
    assert (await ledger.get_balance("kim", "p")).total_balance == D("4")
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_writes_after_close_are_refused(database_url: str) -> None:
    closed = await Ledger.connect(database_url, migrate=False)
    await closed.deposit("kim", "p", D("1"), idempotency_key="d", now=T0)
    await closed.close()
    with pytest.raises(BackendUnavailableError):
        await closed.deposit("kim", "p", D("1"), idempotency_key="d2", now=T0)


async def test_a_lost_connection_is_replaced(ledger: Ledger, database_url: str) -> None:
    """The writer retries on a new connection; the idempotency key keeps the retry exact."""
    await ledger.deposit("kim", "p", D("1"), idempotency_key="d1", now=T0)
    if database_url.startswith("postgresql"):
        async with ledger.engine.connect() as conn:
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    await ledger.deposit("kim", "p", D("2"), idempotency_key="d2", now=T0)
    assert (await ledger.get_balance("kim", "p")).total_balance == D("3")
