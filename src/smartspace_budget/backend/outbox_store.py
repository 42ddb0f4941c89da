"""The outbox's file: journaled ledger writes, on disk before the caller goes on.

One SQLite file (WAL, ``synchronous=FULL`` for journal rows: a row is on disk when
:meth:`Outbox.journal` returns) holds each write with its idempotency key, its whole body,
the ledger it is for (``target``) and how delivery went so far. Delivering the rows is
``outbox.py``'s job; this module only keeps them. See the README's "Nothing is lost".
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from smartspace_budget.config import Settings
from smartspace_budget.errors import InvalidInputError, SmartspaceBudgetError
from smartspace_budget.models import UsageEvent

__all__ = [
    "Operation",
    "Outbox",
    "OutboxEntry",
    "default_outbox_path",
    "describe_error",
    "outbox_target",
]

Operation = Literal["settle", "record_usage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_entries (
    target TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('settle', 'record_usage')),
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    reservation_id TEXT,
    fallback_key TEXT,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dead')),
    PRIMARY KEY (target, idempotency_key)
)
"""
_COLUMNS = (
    "target, idempotency_key, operation, user_id, project_id, reservation_id, fallback_key, "
    "body, created_at, attempts, last_attempt_at, last_error, status"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class OutboxEntry:
    """One journaled write: what to send, to which ledger, and how delivery went so far."""

    target: str
    key: str
    operation: str
    user_id: str
    project_id: str
    reservation_id: str | None
    fallback_key: str | None
    body: str
    created_at: datetime
    attempts: int = 0
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    status: str = "pending"

    @property
    def usage(self) -> UsageEvent:
        """The usage the write charges (the exact body sent every time)."""
        return UsageEvent.from_json(self.body)

    def to_data(self) -> dict[str, Any]:
        """The entry as plain data (``outbox --json``); amounts stay exact Decimals."""
        usage = self.usage
        return {
            "target": self.target,
            "idempotency_key": self.key,
            "operation": self.operation,
            "status": self.status,
            "user_id": self.user_id,
            "project_id": self.project_id,
            "reservation_id": self.reservation_id,
            "provider": usage.provider,
            "model": usage.model,
            "request_id": usage.request_id,
            "amount": usage.actual_cost,
            "created_at": self.created_at,
            "attempts": self.attempts,
            "last_attempt_at": self.last_attempt_at,
            "last_error": self.last_error,
        }

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> OutboxEntry:
        created = _instant(row[8])
        assert created is not None
        return cls(
            target=row[0],
            key=row[1],
            operation=row[2],
            user_id=row[3],
            project_id=row[4],
            reservation_id=row[5],
            fallback_key=row[6],
            body=row[7],
            created_at=created,
            attempts=row[9],
            last_attempt_at=_instant(row[10]),
            last_error=row[11],
            status=row[12],
        )


def outbox_target(backend: object) -> str | None:
    """The name of the ledger ``backend`` writes to, or ``None`` if it has none (a test fake).

    Backends give it as an ``outbox_target`` attribute; only a stable name makes journaled
    writes deliverable by another process.
    """
    target = getattr(backend, "outbox_target", None)
    return target if isinstance(target, str) and target else None


def default_outbox_path(target: str | None, settings: Settings | None = None) -> Path:
    """Where the outbox of ``target`` lives unless ``SMARTSPACE_BUDGET_OUTBOX_PATH`` says.

    Beside the ledger for a SQLite ledger (``ledger.sqlite3`` → ``ledger.outbox.sqlite3``),
    else ``outbox.sqlite3`` in the data directory.
    """
    config = settings if settings is not None else Settings()
    if config.outbox_path is not None:
        return config.outbox_path.expanduser()
    if target is not None and target.startswith("sqlite:///"):
        ledger = Path(target.removeprefix("sqlite:///"))
        return ledger.with_name(f"{ledger.stem}.outbox{ledger.suffix or '.sqlite3'}")
    return config.data_dir.expanduser() / "outbox.sqlite3"


def describe_error(exc: BaseException) -> str:
    detail = exc.detail if isinstance(exc, SmartspaceBudgetError) else str(exc)
    return f"{type(exc).__name__}: {' '.join(detail.split()) or 'no detail'}"[:500]


class Outbox:
    """The journal file (see the module docstring). Safe to share between threads.

    ``path`` is the SQLite file (created with its directory), or ``":memory:"`` for a journal
    that lasts as long as the process (backends with no :func:`outbox_target`).
    ``base_delay`` and ``max_delay`` bound the background delivery's backoff in seconds.
    """

    # Shared while in use: an outbox no guard holds any more is closed (``__del__``).
    _shared: ClassVar[weakref.WeakValueDictionary[str, Outbox]] = weakref.WeakValueDictionary()
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, path: str | Path = ":memory:", *, base_delay: float = 0.25, max_delay: float = 60.0
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise InvalidInputError("outbox delays need 0 < base_delay <= max_delay")
        self.memory = str(path) == ":memory:"
        self.path = Path(":memory:") if self.memory else Path(path).expanduser().resolve()
        self.base_delay = base_delay
        self.max_delay = max_delay
        if not self.memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.registry_lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=10, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            if not self.memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
        self._in_flight: set[tuple[str, str]] = set()
        # The background deliveries of this outbox, per event loop and ledger (outbox.py).
        self.couriers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]]
        self.couriers = weakref.WeakKeyDictionary()

    @classmethod
    def at(cls, path: str | Path, *, max_delay: float = 60.0) -> Outbox:
        """The process's one :class:`Outbox` on ``path`` (shared by every guard using it)."""
        resolved = str(Path(path).expanduser().resolve())
        with cls._shared_lock:
            outbox = cls._shared.get(resolved)
            if outbox is None:
                outbox = cls._shared[resolved] = cls(resolved, max_delay=max_delay)
            return outbox

    @classmethod
    def in_memory(cls) -> Outbox:
        """The process's journal in memory, for backends no other process could deliver to."""
        with cls._shared_lock:
            outbox = cls._shared.get(":memory:")
            if outbox is None:
                outbox = cls._shared[":memory:"] = cls()
            return outbox

    @classmethod
    def for_backend(cls, backend: object, settings: Settings | None = None) -> tuple[Outbox, str]:
        """The configured outbox of ``backend``'s ledger and the target name to file under.

        A backend without an ``outbox_target`` gets a journal of its own in memory: it is
        still delivered in the background, but not by another process.
        """
        target = outbox_target(backend)
        if target is None:
            return cls.in_memory(), f"memory:{type(backend).__qualname__}:{id(backend):x}"
        config = settings if settings is not None else Settings()
        return cls.at(default_outbox_path(target, config), max_delay=config.outbox_max_delay), (
            target
        )

    def close(self) -> None:
        """Close the file (an outbox shared through :meth:`at` is reopened on next use)."""
        with self._shared_lock:
            if self._shared.get(str(self.path)) is self:
                del self._shared[str(self.path)]
        with self._lock:
            self._conn.close()

    def __del__(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextmanager
    def _durability(self, full: bool) -> Iterator[sqlite3.Connection]:
        """The connection, with commits fsynced (``full``) or not: losing an acknowledgement
        or an attempt count in a crash only means one more idempotent delivery."""
        with self._lock:
            if not full:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                yield self._conn
            finally:
                if not full:
                    self._conn.execute("PRAGMA synchronous=FULL")

    # -- the journal -------------------------------------------------------------------------

    def journal(
        self,
        target: str,
        key: str,
        operation: Operation,
        *,
        user_id: str,
        project_id: str,
        usage: UsageEvent,
        reservation_id: str | None = None,
        fallback_key: str | None = None,
    ) -> OutboxEntry:
        """Write the entry durably (fsynced before this returns) and return it.

        The same ``(target, key)`` journaled twice keeps the first body: that is the one the
        ledger may already have received.
        """
        entry = OutboxEntry(
            target=target,
            key=key,
            operation=operation,
            user_id=user_id,
            project_id=project_id,
            reservation_id=reservation_id,
            fallback_key=fallback_key,
            body=usage.to_json(),
            created_at=_now(),
        )
        with self._durability(full=True) as conn:
            conn.execute(
                f"INSERT OR IGNORE INTO outbox_entries ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, 'pending')",
                (
                    target,
                    key,
                    operation,
                    user_id,
                    project_id,
                    reservation_id,
                    fallback_key,
                    entry.body,
                    entry.created_at.isoformat(),
                ),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox_entries WHERE target = ? AND idempotency_key = ?",
                (target, key),
            ).fetchone()
        return OutboxEntry._from_row(row)

    def acknowledge(self, entry: OutboxEntry) -> None:
        """The ledger has it: forget the entry."""
        with self._durability(full=False) as conn:
            conn.execute(
                "DELETE FROM outbox_entries WHERE target = ? AND idempotency_key = ?",
                (entry.target, entry.key),
            )

    def attempted(self, entry: OutboxEntry, error: BaseException, *, dead: bool = False) -> None:
        """Count a failed attempt; ``dead``: the ledger refused it for good."""
        with self._durability(full=dead) as conn:
            conn.execute(
                "UPDATE outbox_entries SET attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = ?, status = ? WHERE target = ? AND idempotency_key = ?",
                (
                    _now().isoformat(),
                    describe_error(error),
                    "dead" if dead else "pending",
                    entry.target,
                    entry.key,
                ),
            )

    def entries(
        self,
        target: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        skip_in_flight: bool = False,
    ) -> list[OutboxEntry]:
        """Entries oldest first, of one ledger (``target``) or all, of one ``status`` or all."""
        where, params = [], []
        if target is not None:
            where.append("target = ?")
            params.append(target)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {_COLUMNS} FROM outbox_entries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, rowid"
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
            in_flight = set(self._in_flight) if skip_in_flight else set()
        found = [OutboxEntry._from_row(row) for row in rows if (row[0], row[1]) not in in_flight]
        return found if limit is None else found[:limit]

    def count(self, target: str | None = None, status: str | None = None) -> int:
        """How many entries there are (of ``target``, of ``status``)."""
        return len(self.entries(target, status=status))

    def requeue_dead(self, target: str | None = None) -> int:
        """Turn dead entries back into pending ones (after fixing what refused them)."""
        with self._durability(full=True) as conn:
            sql = "UPDATE outbox_entries SET status = 'pending' WHERE status = 'dead'"
            params: tuple[str, ...] = ()
            if target is not None:
                sql += " AND target = ?"
                params = (target,)
            return conn.execute(sql, params).rowcount

    def discard_dead(self, target: str | None = None) -> int:
        """Delete dead entries (the operator charged or dismissed them by hand)."""
        with self._durability(full=True) as conn:
            sql = "DELETE FROM outbox_entries WHERE status = 'dead'"
            params: tuple[str, ...] = ()
            if target is not None:
                sql += " AND target = ?"
                params = (target,)
            return conn.execute(sql, params).rowcount

    @contextmanager
    def sending(self, entry: OutboxEntry) -> Iterator[None]:
        """Mark ``entry`` as being sent by this process: the background task leaves it."""
        marker = (entry.target, entry.key)
        with self._lock:
            self._in_flight.add(marker)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(marker)
