"""Status and balance answers remembered while the database has provably not changed.

Budget status is what every budget check fetches, and between two writes it is the same
answer. On SQLite, ``PRAGMA data_version`` on a connection of our own tells in a few
microseconds, on the caller's thread, whether *any* connection (this process's writer,
another worker, the CLI) has committed since we last looked. While it has not, and the
clock is still inside the day the answer was computed for, the remembered answer is exact:
it is returned with ``as_of`` set to now, with no thread hop and no statement. Any commit
anywhere forgets every remembered answer at once.

The version is read *before* the statement whose answer is remembered under it, so an answer
can only be newer than its version, never older: a commit that lands in between makes the
next look see a new version and read again. A version that cannot be read at once (the file
is busy, gone, or locked by a recovery) is a miss, never a guess: the read then goes the
normal way and fails or waits there.

Under a server's load even that look adds up (about a tenth of a cached status answer), so
a memo made with ``per_iteration=True`` reads the version at most once per event-loop
iteration and shares it with every read of that iteration (:meth:`ReadMemo.version`). That
is exact when every read answers something that reached the loop over I/O or a callback,
as a server's requests do: such a read was asked for by bytes that arrived before this
iteration's callbacks began, so after whatever commit its sender had seen acknowledged; and
the version, read during this iteration, is later still. The callback that forgets the
version is queued *before* it is read, so anything queued after the read (the next
iteration's requests, a write's answer from the writer thread) runs after it is forgotten.
Every write through a ``Ledger`` also forgets all versions
of the iteration when it returns (:func:`forget_iteration_versions`). It is *not* exact for
code that learns of another process's commit without the loop (it waits for a subprocess
that writes, say) and reads again in the same step, which is why it is off unless asked
for: by default every read looks again.

On PostgreSQL the version is the server's snapshot (``pg_current_snapshot()``: the next
transaction id and those in progress), which any commit anywhere on the server changes.
Reading it is a round trip, as a status read is, so it is shared differently: one snapshot
query at a time per event loop, and every read that comes while it runs waits for the next
one, which is sent as soon as the running one is answered and serves all of them
(:class:`_SnapshotRounds`). Each read's version is thus taken by a query sent after the
read was asked for, which is all exactness needs, and the server sees at most one such
query per round trip per worker however many reads there are. A read that finds nothing
remembered then costs two round trips instead of one, and the snapshot changes with any
transaction on the server, other databases' included: on a busy shared server most looks
miss. So a PostgreSQL memo watches its looks, and when fewer than a quarter of the last 64
found their answer it reads without looking for the next 256 reads (:meth:`ReadMemo.paused`)
before trying again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Hashable
from datetime import datetime
from typing import Any, TypeVar, cast

from smartspace_budget.ledger.driver import ReadDriver, connect_sqlite
from smartspace_budget.models import Balance, BudgetStatus

__all__ = [
    "MAX_REMEMBERED",
    "MIN_HITS",
    "PAUSE_READS",
    "SAMPLE_LOOKS",
    "PostgresVersion",
    "ReadMemo",
    "SqliteVersion",
    "forget_iteration_versions",
]

MAX_REMEMBERED = 10_000
"""Most answers remembered at once; past it the memo starts afresh (a burst of misses)."""

SAMPLE_LOOKS = 64
"""A fetched-version memo judges its hit rate over this many looks ..."""
MIN_HITS = 16
"""... and when fewer found their answer ..."""
PAUSE_READS = 256
"""... reads this many times without looking (each look would cost a round trip)."""

A = TypeVar("A", Balance, BudgetStatus)

Version = Hashable
"""What tells two states of the database apart: equal versions, no commit in between."""

# The version each memo read in the current iteration of each event loop (see the module).
_THIS_ITERATION: dict[tuple[asyncio.AbstractEventLoop, object], Version] = {}


def forget_iteration_versions() -> None:
    """Make every memo read its version again: a write in this process just committed."""
    _THIS_ITERATION.clear()


# (answer type, account row id) -> (data version, valid from, valid until, answer)
_Entry = tuple[Version, datetime | None, datetime | None, Balance | BudgetStatus]
_Key = tuple[type[Balance | BudgetStatus], int]


class SqliteVersion:
    """``PRAGMA data_version`` of a read-only connection of its own, opened on first use.

    The connection never waits for a lock (``busy_timeout=0``): the caller's thread is an
    event loop, which must not block. Whatever stops an immediate answer gives ``None``.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one statement at a time, from any event loop

    def __call__(self) -> int | None:
        with self._lock:
            try:
                conn = self._conn
                if conn is None:
                    conn = self._conn = connect_sqlite(self._path, reader=True)
                    conn.execute("PRAGMA busy_timeout=0")
                row = conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return None
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()


class PostgresVersion:
    """The server's current snapshot, as text; ``None`` when it cannot be read."""

    def __init__(self, reader: ReadDriver) -> None:
        self._reader = reader

    async def __call__(self) -> str | None:
        try:
            rows = await self._reader.fetch("SELECT pg_current_snapshot()::text", ())
        except Exception:  # the status read that follows reports the failure
            return None
        return str(rows[0][0])


class _SnapshotRounds:
    """Version queries one at a time per event loop; callers meanwhile share the next one."""

    def __init__(self, fetch: Callable[[], Coroutine[Any, Any, Version | None]]) -> None:
        self._fetch = fetch
        self._in_flight: dict[asyncio.AbstractEventLoop, asyncio.Task[Version | None]] = {}
        self._next: dict[asyncio.AbstractEventLoop, asyncio.Task[Version | None]] = {}

    async def version(self) -> Version | None:
        loop = asyncio.get_running_loop()
        round_ = self._next.get(loop)
        if round_ is None:
            round_ = self._next[loop] = loop.create_task(
                self._round(loop, self._in_flight.get(loop))
            )
        # shield: a caller that gives up must not cancel the others' version.
        return await asyncio.shield(round_)

    async def _round(
        self, loop: asyncio.AbstractEventLoop, previous: asyncio.Task[Version | None] | None
    ) -> Version | None:
        if previous is not None:
            await asyncio.wait([previous])
        # The task version() made for this round.
        current = cast("asyncio.Task[Version | None]", asyncio.current_task())
        # From here on this round's query is under way: later callers start the next round.
        if self._next.get(loop) is current:
            del self._next[loop]
        self._in_flight[loop] = current
        try:
            return await self._fetch()
        finally:
            if self._in_flight.get(loop) is current:
                del self._in_flight[loop]


class ReadMemo:
    """Remembered status and balance answers per account, valid for one data version.

    ``version`` reads the database's version at once (SQLite); ``fetch_version`` reads it
    with a round trip (PostgreSQL). Give one of them. ``per_iteration`` shares a ``version``
    read among the reads of one event-loop iteration (see the module docstring for when that
    is exact).
    """

    def __init__(
        self,
        version: Callable[[], Version | None] | None = None,
        *,
        fetch_version: Callable[[], Coroutine[Any, Any, Version | None]] | None = None,
        per_iteration: bool = False,
    ) -> None:
        if (version is None) == (fetch_version is None):
            raise ValueError("give version or fetch_version")
        self._read_version = version
        self._per_iteration = per_iteration
        self._rounds = None if fetch_version is None else _SnapshotRounds(fetch_version)
        self._version: Version | None = None
        self._entries: dict[_Key, _Entry] = {}
        self._token = object()  # this memo's part of _THIS_ITERATION
        # Fetched versions only: looks and hits of the current sample, reads left unlooked.
        self._looks = 0
        self._hits = 0
        self._paused = 0

    def paused(self) -> bool:
        """Whether to read without looking for now (fetched versions whose looks mostly
        missed lately; see the module docstring). Each call counts as one such read."""
        if self._paused:
            self._paused -= 1
            return True
        return False

    async def version(self) -> Version | None:
        """The database's version now; forgets everything remembered under an older one.

        Read now, at most once per event-loop iteration (``per_iteration``), or (fetched) by a
        shared round (see the module docstring).
        """
        version: Version | None
        if self._rounds is not None:
            version = await self._rounds.version()
        elif not self._per_iteration and self._read_version is not None:
            version = self._read_version()
        else:
            loop = asyncio.get_running_loop()
            key = (loop, self._token)
            version = _THIS_ITERATION.get(key)
            if version is None and self._read_version is not None:
                loop.call_soon(_THIS_ITERATION.pop, key, None)  # queued before the read
                version = self._read_version()
                if version is not None:
                    _THIS_ITERATION[key] = version
        if version != self._version:
            self._entries.clear()
            self._version = version
        return version

    def recall(
        self, kind: type[A], row_id: int, version: Version | None, now: datetime
    ) -> A | None:
        """The answer remembered for ``version``, as of ``now``; ``None`` if there is none."""
        answer = self._find(kind, row_id, version, now)
        if self._rounds is not None:
            self._judge(answer is not None)
        return None if answer is None else cast(A, answer.model_copy(update={"as_of": now}))

    def _find(
        self, kind: type[A], row_id: int, version: Version | None, now: datetime
    ) -> Balance | BudgetStatus | None:
        if version is None:
            return None
        entry = self._entries.get((kind, row_id))
        if entry is None or entry[0] != version:
            return None
        _, start, end, answer = entry
        if (start is not None and now < start) or (end is not None and now >= end):
            return None
        return answer

    def _judge(self, hit: bool) -> None:
        self._looks += 1
        self._hits += hit
        if self._looks >= SAMPLE_LOOKS:
            if self._hits < MIN_HITS:
                self._paused = PAUSE_READS
            self._looks = self._hits = 0

    def remember(
        self,
        row_id: int,
        version: Version | None,
        answer: Balance | BudgetStatus,
        *,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> None:
        """Keep ``answer`` (read after ``version`` was) for the instants in the given range."""
        if version is None or version != self._version:
            return  # a commit was seen since: the answer may already be stale
        if len(self._entries) >= MAX_REMEMBERED:
            self._entries.clear()
        self._entries[(type(answer), row_id)] = (version, valid_from, valid_until, answer)
