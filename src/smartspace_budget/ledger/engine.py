"""Database engines for the ledger: SQLite (the embedded default) and PostgreSQL.

Both are SQLAlchemy ``AsyncEngine`` objects; everything dialect-specific about connecting lives
here. SQLite connections are set up for durable, serialised writes:

- WAL journal with ``synchronous=FULL``: a committed transaction survives power loss, and
  readers never block the writer;
- ``busy_timeout``: a second process waits for the write lock instead of failing at once;
- ``foreign_keys=ON`` (SQLite leaves them off by default);
- the driver's own implicit ``BEGIN`` is switched off and every SQLAlchemy transaction opens
  with ``BEGIN IMMEDIATE``, which takes the write lock up front. A deferred transaction that
  reads and then writes can be refused half-way (``SQLITE_BUSY_SNAPSHOT``); an immediate one
  cannot. Pure readers pass ``execution_options(ssb_begin="none")`` (see :func:`read_options`)
  and run each statement in its own snapshot, or ``"deferred"`` for a multi-statement
  snapshot.

An in-memory SQLite URL (``sqlite+aiosqlite://`` or ``:memory:``) gets a private temporary
file instead, removed when the engine is garbage-collected: the ledger uses several
connections (a writer, readers), which an in-memory database cannot share.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smartspace_budget.errors import InvalidInputError

__all__ = [
    "APP_NAME",
    "BUSY_TIMEOUT_MS",
    "DATA_DIR_ENV",
    "busy_timeout_ms",
    "create_engine",
    "default_database_url",
    "is_sqlite",
    "normalise_url",
    "postgres_dsn",
    "postgres_timeouts",
    "read_options",
    "snapshot_options",
    "sqlite_path",
]

APP_NAME = "smartspace-budget"
DATA_DIR_ENV = "SMARTSPACE_BUDGET_DATA_DIR"
DATABASE_FILE = "ledger.sqlite3"
BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another process's write lock before failing,
when no deadline bounds it (see :func:`busy_timeout_ms`)."""


def busy_timeout_ms(deadline: float | None) -> int:
    """SQLite's ``busy_timeout`` for a ledger whose calls answer within ``deadline`` seconds:
    no connection waits for a lock longer than its caller waits for the answer."""
    if deadline is None:
        return BUSY_TIMEOUT_MS
    return max(1, min(BUSY_TIMEOUT_MS, round(deadline * 1000)))


def postgres_timeouts(deadline: float | None) -> dict[str, float]:
    """asyncpg's ``connect`` arguments bounding each connection attempt and each statement by
    ``deadline`` seconds (nothing when ``None``): a server that accepts the connection and
    never answers, or stops half-way through an answer, fails the call instead of hanging it."""
    if deadline is None:
        return {}
    return {"timeout": deadline, "command_timeout": deadline}


_BEGIN_OPTION = "ssb_begin"


def default_database_url() -> str:
    """The embedded ledger: a SQLite file in the user's data directory.

    ``SMARTSPACE_BUDGET_DATA_DIR`` replaces the directory (platformdirs' user data directory
    for "smartspace-budget" otherwise). The directory is created when the engine is.
    """
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    directory = (
        Path(configured).expanduser()
        if configured
        else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    )
    return f"sqlite+aiosqlite:///{directory.resolve() / DATABASE_FILE}"


def normalise_url(url: str | URL) -> URL:
    """Turn ``sqlite://``, ``postgres://`` and ``postgresql://`` URLs into their async drivers.

    Raises :class:`InvalidInputError` for anything that is not SQLite or PostgreSQL, or for a
    PostgreSQL URL naming a driver other than asyncpg.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(
            "not a database URL (expected sqlite:/// or postgresql://)"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite"):
            raise InvalidInputError(f"SQLite driver {driver!r} is not async; use sqlite+aiosqlite")
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "asyncpg"):
            raise InvalidInputError(
                f"PostgreSQL driver {driver!r} is not supported; use postgresql+asyncpg"
            )
        return parsed.set(drivername="postgresql+asyncpg")
    raise InvalidInputError(
        f"unsupported database {backend!r}: the ledger runs on SQLite or PostgreSQL"
    )


def _is_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in str(url.query.get("mode", ""))


def create_engine(
    url: str | URL, *, deadline: float | None = None, **engine_options: Any
) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` with the ledger's connection settings (module docstring).

    ``engine_options`` go to SQLAlchemy's ``create_async_engine`` (pool sizes, ``echo``).
    For a SQLite file, the parent directory is created if missing. ``deadline`` (seconds)
    bounds every wait of a connection: SQLite's lock waits, PostgreSQL's connection attempts,
    statements and waits for a pooled connection.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, engine_options, busy_timeout_ms(deadline))
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_pre_ping": False}
    if deadline is not None:
        options["pool_timeout"] = deadline
        options["connect_args"] = postgres_timeouts(deadline)
    options.update(engine_options)
    return create_async_engine(parsed, **options)


def _remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(path + suffix)


def _sqlite_engine(url: URL, engine_options: dict[str, Any], busy_ms: int) -> AsyncEngine:
    temporary = None
    if _is_memory(url):
        handle, temporary = tempfile.mkstemp(prefix="smartspace-budget-", suffix=".sqlite3")
        os.close(handle)
        url = url.set(database=temporary, query={})
    else:
        Path(url.database or "").expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"pool_size": 8, "max_overflow": 16}
    options.update(engine_options)
    engine = create_async_engine(url, **options)
    sync_engine = engine.sync_engine
    if temporary is not None:
        weakref.finalize(sync_engine, _remove_database, temporary)

    @event.listens_for(sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Switch off the driver's implicit BEGIN: the "begin" hook below opens transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "immediate")
        if mode == "immediate":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif mode == "deferred":
            connection.exec_driver_sql("BEGIN")

    return engine


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether the engine talks to SQLite (one writer at a time) rather than PostgreSQL."""
    return engine.dialect.name == "sqlite"


def sqlite_path(engine: AsyncEngine) -> str:
    """The file of a SQLite engine (the writer opens its own connection to it)."""
    return str(Path(engine.url.database or "").expanduser().resolve())


def postgres_dsn(engine: AsyncEngine) -> str:
    """A plain ``postgresql://`` DSN for asyncpg, from a PostgreSQL engine's URL."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def read_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options for single-statement reads: no transaction, no write lock."""
    if is_sqlite(engine):
        return {_BEGIN_OPTION: "none"}
    return {"isolation_level": "AUTOCOMMIT"}


def snapshot_options(engine: AsyncEngine) -> dict[str, Any]:
    """Execution options for several reads that must see one consistent snapshot."""
    if is_sqlite(engine):
        return {_BEGIN_OPTION: "deferred"}
    return {"isolation_level": "REPEATABLE READ"}
