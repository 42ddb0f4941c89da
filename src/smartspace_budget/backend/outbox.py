"""A durable outbox for the ledger writes that must not be lost: settlements and usage.

Why: when a guarded call is settled, the provider has already made (and billed) the call. If
the ledger cannot be told at that moment (the service is down, the database unreachable, the
process killed), the usage must still reach the ledger, and exactly once. So every such write
is **journaled before it is sent**: one row in a small SQLite file (WAL,
``synchronous=FULL``: the row is on disk when :meth:`Outbox.journal` returns) holding the
write's idempotency key and its whole body. The row is deleted once the ledger acknowledges
the write (a 2xx, or the replayed answer of an earlier identical request); until then a
background task on the caller's event loop sends it again, with exponential backoff and
jitter, and the next process that opens the same outbox for the same ledger delivers what an
earlier one left (killed, or ended before the ledger came back). A definitive refusal
(a 4xx: unknown reservation, key reused with another body, bad input, wrong key) is kept as
*dead*, shown by ``smartspace-budget outbox``, and never retried on its own.

Nothing is charged twice: every delivery of an entry carries the same idempotency key and the
same body, so the ledger answers a repeat with its first result. A settlement whose hold is
gone by the time it arrives (it expired, or was released) is recorded as usage without the
hold under a second fixed key, as the guard does inline; one already settled is done.

Entries name the ledger they are for (``target``: the SQLite file, the PostgreSQL database
without its password, or the service's URL), so one outbox file can serve several ledgers
and an entry is only ever delivered to its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from smartspace_budget.backend.base import LedgerClient
from smartspace_budget.config import Settings
from smartspace_budget.errors import (
    BackendError,
    InvalidInputError,
    RateLimitedError,
    ReservationResolvedError,
    SmartspaceBudgetError,
)
from smartspace_budget.models import LedgerEntry, UsageEvent

__all__ = [
    "Delivery",
    "Outbox",
    "OutboxEntry",
    "OutboxWriter",
    "default_outbox_path",
    "outbox_target",
]

log = logging.getLogger("smartspace_budget.outbox")

Operation = Literal["settle", "record_usage"]
State = Literal["delivered", "queued", "dead", "lost"]

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


@dataclass(frozen=True)
class Delivery:
    """What became of one durable write.

    ``delivered``: the ledger acknowledged it (``entry`` is its answer; ``None`` when the hold
    had been settled by another write already). ``queued``: the ledger could not be reached;
    the write waits in the outbox and is delivered in the background. ``dead``: the ledger
    refused it for good (``error``); it stays in the outbox, shown, never retried on its own.
    ``lost``: neither the ledger nor the outbox file could take it (logged as an error).
    """

    state: State
    entry: LedgerEntry | None = None
    error: BaseException | None = None


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


def _definitive(exc: BaseException) -> bool:
    """A refusal that sending the same request again cannot change (a 4xx but 429)."""
    if isinstance(exc, BackendError | RateLimitedError):
        return False
    return isinstance(exc, SmartspaceBudgetError)


def _describe(exc: BaseException) -> str:
    detail = exc.detail if isinstance(exc, SmartspaceBudgetError) else str(exc)
    return f"{type(exc).__name__}: {' '.join(detail.split()) or 'no detail'}"[:500]


async def deliver(backend: LedgerClient, entry: OutboxEntry) -> LedgerEntry | None:
    """Send ``entry`` once; its answer, or ``None`` when its hold was settled already.

    A settlement whose hold expired or was released is recorded as usage without the hold
    (under ``entry.fallback_key``): the provider was used all the same.
    """
    usage = entry.usage
    if entry.operation == "record_usage":
        return await backend.record_usage(
            entry.user_id, entry.project_id, usage, idempotency_key=entry.key
        )
    assert entry.reservation_id is not None
    try:
        return await backend.settle(entry.reservation_id, usage, idempotency_key=entry.key)
    except ReservationResolvedError as exc:
        status = exc.context.get("status") or exc.detail.rsplit(" ", 1)[-1]
        if status == "settled" or entry.fallback_key is None:
            log.warning("%s was settled already; not charging it again", entry.key)
            return None
        log.warning(
            "the hold of %s was %s before its settlement arrived; recording the usage without it",
            usage.request_id or entry.key,
            status,
        )
        return await backend.record_usage(
            entry.user_id, entry.project_id, usage, idempotency_key=entry.fallback_key
        )


class Outbox:
    """The journal file (see the module docstring). Safe to share between threads.

    ``path`` is the SQLite file (created with its directory), or ``":memory:"`` for a journal
    that lasts as long as the process (backends with no :func:`outbox_target`).
    ``base_delay`` and ``max_delay`` bound the background delivery's backoff in seconds.
    """

    _shared: ClassVar[dict[str, Outbox]] = {}
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
        self._conn = sqlite3.connect(
            str(self.path), timeout=10, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            if not self.memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
        self._in_flight: set[tuple[str, str]] = set()
        self._couriers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Courier]]
        self._couriers = weakref.WeakKeyDictionary()

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
                    _describe(error),
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
    def _sending(self, entry: OutboxEntry) -> Iterator[None]:
        """Mark ``entry`` as being sent by this process: the background task leaves it."""
        marker = (entry.target, entry.key)
        with self._lock:
            self._in_flight.add(marker)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(marker)

    def courier(self, backend: LedgerClient, target: str) -> _Courier:
        """The background delivery of ``target``'s entries on the running event loop."""
        loop = asyncio.get_running_loop()
        per_loop = self._couriers.setdefault(loop, {})
        courier = per_loop.get(target)
        if courier is None:
            courier = per_loop[target] = _Courier(self, backend, target, loop)
        return courier


async def attempt(outbox: Outbox, backend: LedgerClient, entry: OutboxEntry) -> Delivery:
    """Send ``entry`` once and file the outcome in the outbox."""
    with outbox._sending(entry):
        try:
            answer = await deliver(backend, entry)
        except Exception as exc:
            dead = _definitive(exc)
            outbox.attempted(entry, exc, dead=dead)
            if dead:
                log.error(
                    "the ledger refused %s for good (%s); it stays in the outbox as dead: "
                    "see `smartspace-budget outbox`",
                    entry.key,
                    _describe(exc),
                )
                return Delivery("dead", error=exc)
            return Delivery("queued", error=exc)
    outbox.acknowledge(entry)
    return Delivery("delivered", answer)


class _Courier:
    """Delivers one ledger's pending entries in a task on one event loop, until none is left.

    On a failure that may pass (the ledger unreachable, rate limited) it waits, doubling the
    wait each time up to the outbox's ``max_delay``, with jitter (a random half of the wait
    more or less) so many processes coming back at once do not arrive together.
    """

    def __init__(
        self,
        outbox: Outbox,
        backend: LedgerClient,
        target: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.outbox, self.backend, self.target, self.loop = outbox, backend, target, loop
        self.task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Start delivering if nothing is running (call on the courier's loop)."""
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run(), name=f"outbox:{self.target}")

    async def _run(self) -> None:
        delay = self.outbox.base_delay
        while True:
            batch = self.outbox.entries(
                self.target, status="pending", limit=100, skip_in_flight=True
            )
            if not batch:
                return
            blocked: Delivery | None = None
            for entry in batch:
                outcome = await attempt(self.outbox, self.backend, entry)
                if outcome.state == "queued":
                    blocked = outcome
                    break
            if blocked is None:
                delay = self.outbox.base_delay
                continue
            wait = delay * (0.5 + random.random())
            log.warning(
                "the ledger is still unreachable (%s); %d outbox entries wait, next try in %.1f s",
                _describe(blocked.error) if blocked.error else "unknown",
                self.outbox.count(self.target, "pending"),
                wait,
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.outbox.max_delay)


class OutboxWriter:
    """Durable ``settle`` and ``record_usage`` through one backend (see the module docstring).

    Each write is journaled, then sent (``attempts`` times, ``retry_delay`` apart); if the
    ledger cannot be reached it is left to the background delivery, which
    :meth:`resume` also starts for what earlier processes left.
    """

    def __init__(
        self,
        backend: LedgerClient,
        outbox: Outbox,
        target: str,
        *,
        attempts: int = 1,
        retry_delay: float = 0.05,
    ) -> None:
        self.backend = backend
        self.outbox = outbox
        self.target = target
        self.attempts = attempts
        self.retry_delay = retry_delay
        self._resumed: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    @classmethod
    def for_backend(
        cls, backend: LedgerClient, outbox: Outbox | None = None, settings: Settings | None = None
    ) -> OutboxWriter:
        """A writer over ``backend`` with its configured outbox (or ``outbox``)."""
        if outbox is None:
            outbox, target = Outbox.for_backend(backend, settings)
        else:
            target = outbox_target(backend) or f"memory:{type(backend).__qualname__}"
        return cls(backend, outbox, target)

    async def settle(
        self,
        user_id: str,
        project_id: str,
        reservation_id: str,
        usage: UsageEvent,
        *,
        idempotency_key: str,
        fallback_key: str | None = None,
    ) -> Delivery:
        """Settle the hold with ``usage``; a hold gone by then: record it (``fallback_key``)."""
        return await self._write(
            idempotency_key,
            "settle",
            user_id,
            project_id,
            usage,
            reservation_id=reservation_id,
            fallback_key=fallback_key,
        )

    async def record_usage(
        self, user_id: str, project_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> Delivery:
        """Charge ``usage`` without a hold."""
        return await self._write(idempotency_key, "record_usage", user_id, project_id, usage)

    async def _write(
        self,
        key: str,
        operation: Operation,
        user_id: str,
        project_id: str,
        usage: UsageEvent,
        *,
        reservation_id: str | None = None,
        fallback_key: str | None = None,
    ) -> Delivery:
        try:
            entry = self.outbox.journal(
                self.target,
                key,
                operation,
                user_id=user_id,
                project_id=project_id,
                usage=usage,
                reservation_id=reservation_id,
                fallback_key=fallback_key,
            )
        except sqlite3.Error as exc:
            return await self._unjournaled(key, operation, user_id, project_id, usage, exc)
        outcome = Delivery("queued")
        try:
            for tried in range(self.attempts):
                if tried:
                    await asyncio.sleep(self.retry_delay * 2 ** (tried - 1))
                outcome = await attempt(self.outbox, self.backend, entry)
                if outcome.state != "queued":
                    return outcome
        finally:
            if outcome.state == "queued":
                # Also when cancelled midway: the entry is on disk, the courier sends it.
                self.courier_wake()
        log.warning(
            "the ledger could not be reached (%s); %s is kept in the outbox %s and will be "
            "delivered when it can be",
            _describe(outcome.error) if outcome.error else "cancelled",
            key,
            self.outbox.path,
        )
        return outcome

    async def _unjournaled(
        self,
        key: str,
        operation: Operation,
        user_id: str,
        project_id: str,
        usage: UsageEvent,
        problem: sqlite3.Error,
    ) -> Delivery:
        """The outbox file failed: send directly, and say loudly if that fails too."""
        log.error(
            "cannot write the outbox %s (%s); sending %s directly", self.outbox.path, problem, key
        )
        entry = OutboxEntry(
            target=self.target,
            key=key,
            operation=operation,
            user_id=user_id,
            project_id=project_id,
            reservation_id=None,
            fallback_key=None,
            body=usage.to_json(),
            created_at=_now(),
        )
        try:
            return Delivery("delivered", await deliver(self.backend, entry))
        except Exception as exc:
            log.error("%s is lost: neither the ledger nor the outbox could take it", key)
            return Delivery("lost", error=exc)

    def courier_wake(self) -> None:
        """Start the background delivery on the running loop (no-op without one)."""
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to start
            self.outbox.courier(self.backend, self.target).wake()

    def resume(self) -> None:
        """Deliver, in the background, what is pending for this ledger (once per loop).

        Called when a guard is built and when it is first used on a loop: the next process
        start delivers what an earlier one left.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop in self._resumed:
            return
        self._resumed.add(loop)
        if self.outbox.count(self.target, "pending"):
            self.outbox.courier(self.backend, self.target).wake()

    def pending(self) -> list[OutboxEntry]:
        """This ledger's entries waiting for delivery."""
        return self.outbox.entries(self.target, status="pending")

    async def flush(self, *, include_dead: bool = False) -> int:
        """Deliver what is pending now, in order; stops at the first failure that may pass.

        Returns how many entries of this ledger remain (pending and dead).
        """
        if include_dead:
            self.outbox.requeue_dead(self.target)
        for entry in self.outbox.entries(self.target, status="pending", skip_in_flight=True):
            outcome = await attempt(self.outbox, self.backend, entry)
            if outcome.state == "queued":
                break
        return self.outbox.count(self.target)

    async def wait_delivered(self, within: float) -> bool:
        """Wait up to ``within`` seconds until nothing of this ledger is pending (shutdown,
        tests); ``False`` if something still is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.outbox.count(self.target, "pending"):
            if loop.time() >= deadline:
                return False
            self.courier_wake()
            await asyncio.sleep(0.05)
        return True
