"""The ledger's connections for its hot paths, straight on the database drivers.

Writes:

- SQLite: :func:`run_sqlite_plan` runs a whole plan (reads, decisions, writes, commit) in the
  writer's thread, or for a lone write in the caller's, in one go (see ``thread_writer.py``):
  no hop to the event loop per statement. ``BEGIN IMMEDIATE`` takes the write lock first.
- :class:`PostgresDriver` owns one ``asyncpg`` connection and runs the plan's statements in
  a transaction on it; several drivers (one per writer task) work concurrently. It keeps its
  connection between transactions and opens a new one after a failure.

Reads (:class:`SqliteReader`, :class:`PostgresReader`) run one statement, or a few in one
snapshot, on a small pool: reader threads with their own ``sqlite3`` connections (WAL lets
them read while the writer writes), or an ``asyncpg`` pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from smartspace_budget.ledger.batch import Plan
from smartspace_budget.ledger.engine import BUSY_TIMEOUT_MS, postgres_timeouts
from smartspace_budget.ledger.sql import Call
from smartspace_budget.ledger.threads import ConnectionThreads

__all__ = [
    "PostgresDriver",
    "PostgresReader",
    "ReadDriver",
    "SqliteReader",
    "WriteDriver",
    "connect_sqlite",
    "is_retryable",
    "run_sqlite_plan",
]

_RETRYABLE_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "23505",  # unique_violation: another transaction created the same account first
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown: the server ended this connection
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
    }
)


def is_retryable(error: BaseException) -> bool:
    """Whether running the whole transaction again may succeed (a race, not a bad request).

    PostgreSQL: serialization failures, deadlocks, lock timeouts, two transactions creating
    the same account, and a lost connection (the transaction did not commit, or committed
    and its idempotency keys make the retry answer the same). SQLite: the write lock stayed
    busy beyond ``busy_timeout`` (another process held it).
    """
    code = getattr(error, "sqlstate", None)
    if code is not None:
        return code in _RETRYABLE_SQLSTATES or str(code).startswith("08")
    if isinstance(error, sqlite3.OperationalError):
        message = str(error).lower()
        return "locked" in message or "busy" in message
    if isinstance(error, (ConnectionError, OSError)):
        return True
    return type(error).__name__ in ("ConnectionDoesNotExistError", "InterfaceError")


class WriteDriver(Protocol):
    """Runs a plan in one transaction and returns what the plan returns."""

    async def run(self, make_plan: Callable[[], Plan]) -> list[Any]: ...

    async def run_unlocked(self, make_plan: Callable[[], Plan]) -> list[Any]: ...

    async def close(self) -> None: ...


def connect_sqlite(
    path: str, *, reader: bool, busy_ms: int = BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """A connection of the ledger's own: the writer's (durable, strict) or a reader's."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    if reader:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    return conn


def run_sqlite_plan(conn: sqlite3.Connection, make_plan: Callable[[], Plan]) -> list[Any]:
    """Run a plan in one ``BEGIN IMMEDIATE`` transaction on ``conn`` (in the calling thread)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        plan = make_plan()
        result: Any = None
        while True:
            try:
                call = plan.send(result)
            except StopIteration as done:
                conn.execute("COMMIT")
                outcomes: list[Any] = done.value
                return outcomes
            result = _execute_sqlite(conn, call)
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _execute_sqlite(conn: sqlite3.Connection, call: Call) -> Any:
    if call.mode == "many":
        conn.executemany(call.sql, call.params)
        return None
    cursor = conn.execute(call.sql, call.params)
    if call.mode == "scalar":
        row = cursor.fetchone()
        return None if row is None else row[0]
    if call.mode == "rows":
        return cursor.fetchall()
    return None


class PostgresDriver:
    """One asyncpg connection used by one writer task; see the module docstring.

    ``deadline`` bounds each connection attempt and each statement (seconds; ``None``: no
    bound): a server that stops answering fails the transaction, which is then retried or
    answered as failed, instead of holding the writer task forever."""

    def __init__(self, dsn: str, *, deadline: float | None = None) -> None:
        self._dsn = dsn
        self._timeouts = postgres_timeouts(deadline)
        self._conn: Any = None

    async def _connection(self) -> Any:
        import asyncpg

        if self._conn is None or self._conn.is_closed():
            # The writer's statements are few and always the same: plan them once, instead
            # of PostgreSQL re-planning each execution of these array-parameter queries.
            self._conn = await asyncpg.connect(
                self._dsn,
                server_settings={"plan_cache_mode": "force_generic_plan"},
                **self._timeouts,
            )
        return self._conn

    async def run(self, make_plan: Callable[[], Plan]) -> list[Any]:
        conn = await self._connection()
        try:
            async with conn.transaction():
                return await self._drive(conn, make_plan())
        except BaseException:
            if conn.is_closed() or conn.is_in_transaction():
                await self._discard()
            raise

    async def run_unlocked(self, make_plan: Callable[[], Plan]) -> list[Any]:
        """Run an optimistic plan (``Batch(optimistic=True)``) outside a transaction: its read
        and its one checked write each commit on their own, saving BEGIN and COMMIT."""
        conn = await self._connection()
        try:
            return await self._drive(conn, make_plan())
        except BaseException:
            if conn.is_closed() or conn.is_in_transaction():
                await self._discard()
            raise

    async def _drive(self, conn: Any, plan: Plan) -> list[Any]:
        result: Any = None
        while True:
            try:
                call = plan.send(result)
            except StopIteration as done:
                outcomes: list[Any] = done.value
                return outcomes
            result = await self._execute(conn, call)

    @staticmethod
    async def _execute(conn: Any, call: Call) -> Any:
        if call.mode == "rows":
            return await conn.fetch(call.sql, *call.params)
        if call.mode == "scalar":
            return await conn.fetchval(call.sql, *call.params)
        if call.mode == "many":
            await conn.executemany(call.sql, call.params)
            return None
        await conn.execute(call.sql, *call.params)
        return None

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        """Say goodbye to the server, or drop the connection if it does not answer in time."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=self._timeouts.get("timeout", 60.0))
            except Exception:
                conn.terminate()


Statement = tuple[str, Sequence[Any]]


class ReadDriver(Protocol):
    """Runs read statements; several at once see one snapshot."""

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]: ...

    async def fetch_all(self, statements: Sequence[Statement]) -> list[list[Any]]: ...

    async def close(self) -> None: ...


class SqliteReader:
    """Reader threads, each with its own read-only connection to the file."""

    def __init__(self, path: str, threads: int = 3, *, busy_ms: int = BUSY_TIMEOUT_MS) -> None:
        self._threads = ConnectionThreads(
            threads,
            "ledger-reader",
            lambda: connect_sqlite(path, reader=True, busy_ms=busy_ms),
            sqlite3.Connection.close,
        )

    @staticmethod
    def _fetch_all(conn: sqlite3.Connection, statements: Sequence[Statement]) -> list[list[Any]]:
        if len(statements) == 1:
            sql, params = statements[0]
            return [conn.execute(sql, params).fetchall()]
        conn.execute("BEGIN")
        try:
            return [conn.execute(sql, params).fetchall() for sql, params in statements]
        finally:
            conn.execute("COMMIT")

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return (await self.fetch_all([(sql, params)]))[0]

    async def fetch_all(self, statements: Sequence[Statement]) -> list[list[Any]]:
        return await self._threads.call(self._fetch_all, statements)

    async def close(self) -> None:
        await self._threads.close()


class PostgresReader:
    """An asyncpg pool, opened on first use; a read on a dropped connection is tried again.

    ``deadline`` bounds each connection attempt, each statement and each wait for a pooled
    connection (seconds; ``None``: no bound)."""

    def __init__(self, dsn: str, size: int = 8, *, deadline: float | None = None) -> None:
        self._dsn = dsn
        self._size = size
        self._deadline = deadline
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._size,
                        **postgres_timeouts(self._deadline),
                    )
        return self._pool

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return (await self.fetch_all([(sql, params)]))[0]

    async def fetch_all(self, statements: Sequence[Statement]) -> list[list[Any]]:
        pool = await self._get_pool()
        for attempt in range(2):
            try:
                async with pool.acquire(timeout=self._deadline) as conn:
                    if len(statements) == 1:
                        sql, params = statements[0]
                        return [await conn.fetch(sql, *params)]
                    async with conn.transaction(isolation="repeatable_read", readonly=True):
                        return [await conn.fetch(sql, *params) for sql, params in statements]
            except Exception as exc:
                if attempt == 0 and is_retryable(exc):
                    continue  # the pooled connection was gone; the pool opens another
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def close(self) -> None:
        """Close the pool, or drop its connections if the server does not answer in time."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self._deadline):
                    await pool.close()
            except Exception:
                pool.terminate()
