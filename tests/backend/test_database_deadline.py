"""The direct database path answers within the same deadline as ``HttpBackend``.

Fake PostgreSQL servers on loopback: one that accepts connections and never answers, one
that answers half the handshake and stops, and a proxy in front of the real server that
stops forwarding (or forwards half of each answer, then stops) once the ledger is open.
Every read and write through the library, ``BudgetTracker``'s checks included, raises
:class:`BackendTimeoutError` within the deadline. A SQLite database whose lock another
process holds does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import BudgetPolicy, BudgetTracker
from smartspace_budget.config import Settings
from smartspace_budget.errors import BackendTimeoutError
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import UsageEvent
from smartspace_budget.periods import SpendingPeriod

DEADLINE = 0.5
SLACK = 1.0
"""Generous: the machine is shared; a hang would take minutes, not a second."""

Call = Callable[[LocalBackend], Awaitable[Any]]


def _usage() -> UsageEvent:
    return UsageEvent(
        provider="openai",
        model="gpt-4o",
        input_tokens=10,
        output_tokens=5,
        actual_cost=Decimal("0.01"),
    )


def _calls(reservation_id: str, entry_id: str) -> dict[str, Call]:
    """Every read and write of the library's backend (LocalBackend)."""
    now = datetime.now(UTC)
    return {
        "get_balance": lambda b: b.get_balance("ann", "p"),
        "get_budget_status": lambda b: b.get_budget_status("ann", "p"),
        "get_spending": lambda b: b.get_spending("ann", "p", SpendingPeriod.DAILY),
        "get_analytics": lambda b: b.get_analytics("ann", "p"),
        "get_spending_series": lambda b: b.get_spending_series(
            "ann", "p", SpendingPeriod.HOURLY, now - timedelta(hours=2), now
        ),
        "get_policy": lambda b: b.get_policy("ann", "p"),
        "list_accounts": lambda b: b.list_accounts(),
        "get_reservation": lambda b: b.get_reservation(reservation_id),
        "deposit": lambda b: b.deposit("ann", "p", Decimal(1), idempotency_key="d-late"),
        "record_usage": lambda b: b.record_usage("ann", "p", _usage(), idempotency_key="u-late"),
        "refund": lambda b: b.refund(
            "ann", "p", Decimal("0.01"), usage_entry_id=entry_id, idempotency_key="r-late"
        ),
        "adjust": lambda b: b.adjust("ann", "p", Decimal(1), reason="x", idempotency_key="a-late"),
        "reserve": lambda b: b.reserve("ann", "p", Decimal(1), idempotency_key="h-late"),
        "settle": lambda b: b.settle(reservation_id, _usage(), idempotency_key="s-late"),
        "release": lambda b: b.release(reservation_id, idempotency_key="l-late"),
        "set_policy": lambda b: b.set_policy("ann", "p", BudgetPolicy(daily_limit=Decimal(5))),
        "check_sufficient_budget": lambda b: BudgetTracker(backend=b).check_sufficient_budget(
            "ann", "p", Decimal(1)
        ),
        "check_against_policy": lambda b: BudgetTracker(backend=b).check_against_policy(
            "ann", "p", Decimal(1), BudgetPolicy.fetch_from_backend("ann", "p")
        ),
    }


async def _each_times_out(backend: LocalBackend, calls: dict[str, Call]) -> None:
    """Every call, all at once, raises BackendTimeoutError within the deadline (each timed
    on its own)."""

    async def timed(name: str, call: Call) -> None:
        started = time.monotonic()
        with pytest.raises(BackendTimeoutError):
            await call(backend)
        took = time.monotonic() - started
        assert took < DEADLINE + SLACK, f"{name} took {took:.2f} s"

    await asyncio.gather(*(timed(name, call) for name, call in calls.items()))


def _backend(url: str) -> LocalBackend:
    return LocalBackend.default(
        Settings(database_url=url, deadline=DEADLINE, status_ttl=0, pricing_ttl=0)
    )


async def _opened(url: str) -> LocalBackend:
    """A backend whose ledger is open (its first opening imports and checks the schema:
    on a loaded machine that alone may take longer than this test's short deadline)."""
    return await LocalBackend.open(url, status_ttl=0, pricing_ttl=0, deadline=DEADLINE)


# -- fake servers and a proxy, on a loop of their own ------------------------------------


class Loopback:
    """An asyncio server on 127.0.0.1 in a thread of its own; ``handle`` serves each client.
    Leaving the block cancels every client's task and closes every connection."""

    def __init__(self, handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]):
        self._handle = handle
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    def __enter__(self) -> Loopback:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> asyncio.Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                await self._handle(reader, writer)
            except (Exception, asyncio.CancelledError):
                pass
            finally:
                writer.transport.abort()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/test"

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        pass
    await asyncio.sleep(3600)


async def _half_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """No SSL, authentication accepted, then silence (no ReadyForQuery, ever)."""
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    body = await reader.readexactly(length - 4)
    if struct.unpack("!I", body[:4])[0] == 80877103:  # SSLRequest
        writer.write(b"N")
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        await reader.readexactly(length - 4)
    writer.write(b"R" + struct.pack("!II", 8, 0))  # AuthenticationOk
    writer.write(b"S" + struct.pack("!I", 4 + 15 + 5) + b"server_version\x0016.\x00")
    await writer.drain()
    await _never_answer(reader, writer)


class Proxy:
    """Forwards to the real PostgreSQL until :meth:`freeze`; then either nothing more
    (``half=False``) or half of each answer's bytes, then nothing."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.half = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen:
            await _never_answer(reader, writer)
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, answers=False),
                self._pipe(up_reader, writer, answers=True),
            )
        finally:
            up_writer.transport.abort()

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        stopped = False
        while data := await source.read(65536):
            if stopped:
                continue
            if self.frozen:
                if not (answers and self.half):
                    continue
                data, stopped = data[: max(1, len(data) // 2)], True
            sink.write(data)
            await sink.drain()
        await asyncio.sleep(3600)


@pytest.fixture
def postgres_port(postgres_url: str) -> int:
    port = postgres_url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]
    return int(port)


@contextlib.contextmanager
def _timer(limit: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < limit, f"took {took:.2f} s"


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("server", [_never_answer, _half_handshake], ids=["silent", "half"])
async def test_a_server_that_does_not_answer_fails_every_call(server: Any) -> None:
    with Loopback(server) as fake:
        with _timer(DEADLINE + SLACK), pytest.raises(BackendTimeoutError):
            await Ledger.connect(fake.url(), deadline=DEADLINE)
        backend = _backend(fake.url())
        try:
            await _each_times_out(backend, _calls("r-1", "e-1"))
        finally:
            with _timer(DEADLINE + SLACK):
                await backend.aclose()


@pytest.mark.postgres
@pytest.mark.parametrize("half", [False, True], ids=["silent", "half-answer"])
async def test_a_server_that_stops_answering_fails_every_call(
    postgres_url: str, postgres_port: int, half: bool
) -> None:
    proxy = Proxy(postgres_port)
    with Loopback(proxy.handle) as front:
        url = postgres_url.replace(f":{postgres_port}/", f":{front.port}/")
        backend = await _opened(url)
        try:
            await backend.deposit("ann", "p", Decimal(100), idempotency_key="fund")
            used = await backend.record_usage("ann", "p", _usage(), idempotency_key="use")
            hold = await backend.reserve("ann", "p", Decimal(1), idempotency_key="hold")
            proxy.frozen, proxy.half = True, half
            await _each_times_out(backend, _calls(hold.reservation_id, used.entry_id))
        finally:
            with _timer(DEADLINE + SLACK + 2.0):
                await backend.aclose()


def _hold_lock(path: Path, exclusive: bool) -> sqlite3.Connection:
    """Another process's connection holding the write lock (or every lock) of the file."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if exclusive:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("UPDATE ledger_accounts SET updated_at = updated_at")
    else:
        conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_a_busy_sqlite_database_fails_within_the_deadline(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    backend = await _opened(f"sqlite+aiosqlite:///{path}")
    try:
        await backend.deposit("ann", "p", Decimal(100), idempotency_key="fund")
        used = await backend.record_usage("ann", "p", _usage(), idempotency_key="use")
        hold = await backend.reserve("ann", "p", Decimal(1), idempotency_key="hold")
        calls = _calls(hold.reservation_id, used.entry_id)
        writes = {
            name: calls[name]
            for name in (
                "deposit",
                "record_usage",
                "refund",
                "adjust",
                "reserve",
                "settle",
                "release",
                "set_policy",
            )
        }
        holder = await asyncio.to_thread(_hold_lock, path, False)
        try:
            await _each_times_out(backend, writes)  # reads go on under WAL: not blocked
            assert (await backend.get_balance("ann", "p")).total_balance == Decimal("99.99")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        # The lock is free again: the ledger answers, and the late writes answer as usual.
        entry = await backend.deposit("ann", "p", Decimal(1), idempotency_key="after")
        assert entry.amount == Decimal(1)
    finally:
        await backend.aclose()


async def test_the_deadline_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DEADLINE", "0.3")
    monkeypatch.delenv("SMARTSPACE_BUDGET_URL", raising=False)
    with Loopback(_never_answer) as fake:
        monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", fake.url())
        tracker = BudgetTracker()
        started = time.monotonic()
        with pytest.raises(BackendTimeoutError) as caught:
            await tracker.check_sufficient_budget("ann", "p", Decimal(1))
        assert time.monotonic() - started < 0.3 + SLACK
        assert caught.value.context.get("deadline") == 0.3
        await tracker.backend.aclose()  # type: ignore[attr-defined]
