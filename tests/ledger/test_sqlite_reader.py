"""SQLite reads run on the caller's thread, and a locked file never holds up the event loop."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smartspace_budget.errors import BackendUnavailableError
from smartspace_budget.ledger import Ledger, sqlite_reader
from smartspace_budget.ledger.sqlite_reader import SqliteReader


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    opened = await Ledger.connect(f"sqlite:///{tmp_path / 'ledger.db'}")
    await opened.deposit("u", "p", Decimal("7.5"), idempotency_key="d")
    yield opened
    await opened.close()


async def test_reads_use_a_connection_of_the_calling_thread(ledger: Ledger) -> None:
    threads_before = {t.name for t in threading.enumerate()}
    status = await ledger.get_budget_status("u", "p")
    assert status.total_balance == Decimal("7.5")
    assert not any(
        t.name.startswith("ledger-reader") and t.name not in threads_before
        for t in threading.enumerate()
    ), "a plain read went to a reader thread"


async def test_a_busy_read_waits_in_a_reader_thread(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLITE_BUSY on the caller's connection (it never waits) hands the read to a thread."""
    ran_in: list[str] = []

    def busy_on_the_loop_thread(conn: sqlite3.Connection, statements: Any) -> Any:
        ran_in.append(threading.current_thread().name)
        if threading.current_thread() is threading.main_thread():
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise error
        return real_fetch_all(conn, statements)

    real_fetch_all = sqlite_reader._fetch_all
    monkeypatch.setattr(sqlite_reader, "_fetch_all", busy_on_the_loop_thread)
    balance = await ledger.get_balance("u", "p")
    assert balance.total_balance == Decimal("7.5")
    assert ran_in[0] == threading.main_thread().name
    assert ran_in[1].startswith("ledger-reader")


async def test_other_read_errors_are_not_retried(tmp_path: Path) -> None:
    reader = SqliteReader(str(tmp_path / "empty.db"))
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await reader.fetch("SELECT * FROM nowhere", [])
    await reader.close()


async def test_a_closed_reader_refuses_reads(tmp_path: Path) -> None:
    reader = SqliteReader(str(tmp_path / "empty.db"))
    assert await reader.fetch("SELECT 1", []) == [(1,)]
    await reader.close()
    with pytest.raises(BackendUnavailableError, match="closed"):
        await reader.fetch("SELECT 1", [])
