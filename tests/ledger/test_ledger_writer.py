"""Group commit: concurrent writes share transactions, and one faulty write fails alone."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.errors import BackendUnavailableError
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger import apply as rules
from smartspace_budget.ledger.engine import sqlite_path
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


# -- SQLite: every write runs on the writer thread ------------------------------------------


@pytest.fixture
async def sqlite_ledger(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Ledger]:
    path = tmp_path / "ledger.sqlite3"
    shutil.copyfile(sqlite_template, path)
    opened = await Ledger.connect(f"sqlite+aiosqlite:///{path}", migrate=False)
    try:
        yield opened
    finally:
        await opened.close()


def _record_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread each operation is applied on, in order."""
    threads: list[int] = []
    real_apply = rules.apply

    def apply(batch: object, op: Op) -> object:
        threads.append(threading.get_ident())
        return real_apply(batch, op)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "apply", apply)
    return threads


async def test_lone_and_concurrent_writes_run_on_the_writer_thread_sharing_commits(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = _record_threads(monkeypatch)
    for n in range(3):
        await sqlite_ledger.deposit("kim", "p", D("1"), idempotency_key=f"a{n}", now=T0)
    assert len(threads) == 3
    assert threading.get_ident() not in threads  # the event loop never runs a statement
    threads.clear()
    before = sqlite_ledger.writer_stats
    await asyncio.gather(
        *(
            sqlite_ledger.deposit("kim", "p", D("1"), idempotency_key=f"b{n}", now=T0)
            for n in range(32)
        )
    )
    batches = sqlite_ledger.writer_stats[0] - before[0]
    assert threading.get_ident() not in threads
    assert len(threads) == 32
    assert batches < 32
    # Replaying a key answers the same.
    again = await sqlite_ledger.deposit("kim", "p", D("1"), idempotency_key="b7", now=T0)
    assert (await sqlite_ledger.get_balance("kim", "p")).total_balance == D("35")
    assert again.amount == D("1")
    report = await sqlite_ledger.check_integrity()
    assert report.ok, str(report)


async def test_a_lone_write_on_a_busy_database_waits_in_the_thread_not_on_the_loop(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another connection holds the write lock: the writer thread waits for it while the
    event loop goes on running callbacks."""
    await sqlite_ledger.deposit("kim", "p", D("1"), idempotency_key="first", now=T0)
    threads = _record_threads(monkeypatch)
    other = sqlite3.connect(
        sqlite_path(sqlite_ledger.engine), isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.4, other.execute, ("COMMIT",))
    loop = asyncio.get_running_loop()
    start = loop.time()
    ticks: list[float] = []
    loop.call_later(0.05, lambda: ticks.append(loop.time() - start))
    release.start()
    try:
        await sqlite_ledger.deposit("kim", "p", D("2"), idempotency_key="second", now=T0)
    finally:
        release.join()
        other.close()
    assert loop.time() - start >= 0.35  # it did wait for the other connection's commit
    assert ticks  # while the loop went on running callbacks
    assert ticks[0] < 0.3
    assert threads
    assert threading.get_ident() not in threads
    assert (await sqlite_ledger.get_balance("kim", "p")).total_balance == D("3")


def _wal_frames(path: str) -> int:
    """How many frames the WAL file holds (its size; a checkpoint lets writes reuse it)."""
    with sqlite3.connect(path) as conn:
        page: int = conn.execute("PRAGMA page_size").fetchone()[0]
    return Path(f"{path}-wal").stat().st_size // (page + 24)


async def test_sequential_writes_keep_the_wal_near_its_usual_size(
    sqlite_ledger: Ledger,
) -> None:
    """The writer's commits checkpoint the WAL (SQLite's automatic checkpoint)."""
    path = sqlite_path(sqlite_ledger.engine)
    event = usage("0.001")
    for n in range(300):
        await sqlite_ledger.record_usage("kim", "p", event, idempotency_key=f"u{n}", now=T0)
    frames = _wal_frames(path)
    # Without checkpoints, 300 usage writes leave ~9 frames each in the WAL.
    assert frames < 1500, frames
    report = await sqlite_ledger.check_integrity()
    assert report.ok, str(report)


async def test_the_event_loop_runs_while_a_caller_writes_in_a_loop(
    sqlite_ledger: Ledger,
) -> None:
    loop = asyncio.get_running_loop()
    done: list[int] = []
    fired: list[int] = []
    loop.call_later(0, lambda: fired.append(len(done)))
    for n in range(20):
        await sqlite_ledger.deposit("kim", "p", D("1"), idempotency_key=f"d{n}", now=T0)
        done.append(n)
    assert fired == [0]  # it ran while the first write was in the writer thread


def test_writes_on_uvloop_run_on_the_writer_thread(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop (uvicorn's loop when installed) is served the same way as asyncio's own."""
    uvloop = pytest.importorskip("uvloop")
    path = tmp_path / "ledger.sqlite3"
    shutil.copyfile(sqlite_template, path)
    threads = _record_threads(monkeypatch)

    async def write() -> int:
        ledger = await Ledger.connect(f"sqlite+aiosqlite:///{path}", migrate=False)
        try:
            for n in range(3):
                await ledger.deposit("kim", "p", D("1"), idempotency_key=f"d{n}", now=T0)
            return threading.get_ident()
        finally:
            await ledger.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        caller = runner.run(write())
    assert len(threads) == 3
    assert caller not in threads
