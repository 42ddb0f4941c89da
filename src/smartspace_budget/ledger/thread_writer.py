"""Group commit for SQLite: one thread owns the write connection and drains the queue itself;
a lone writer runs its transaction on the caller's own thread instead.

SQLite has one write lock, so one writer is all there is to have. Callers put their
operation on a ``queue.SimpleQueue`` and wait on a future; the thread takes everything
queued (up to ``max_batch``), runs it as one transaction (``run_sqlite_plan``), commits, and
hands every caller its outcome with one ``call_soon_threadsafe`` per event loop. No asyncio
task sits in between: on this machine each hop through the event loop costs more than the
statements of a write. Retries and the isolation of a failing operation follow
:mod:`smartspace_budget.ledger.writer`.

**A lone write runs inline.** The two thread hops of the queue (waking the writer thread,
then waking the event loop with the answer) cost 100-150 µs on this machine, a third of a
whole durable usage write. When a caller's write is the only one not yet answered, no other
writer is ready to run on its event loop (the caller yields once first, so writers that are
ready submit theirs and the write is queued with them, to share their commit), and its loop
has nothing else ready, the caller runs the transaction itself under the connection's lock.
The price is that this loop waits for the write, disk flush included (~0.3 ms), instead of
polling meanwhile: it had nothing ready to run, but I/O that arrives in that time is served
after the write. Concurrent writers still group-commit through the thread, exactly as before.
The inline attempt never waits on anything but its own statements: it takes the connection's
lock only if it is free, and sets ``busy_timeout`` to 0 so that another process holding the
database's write lock sends the write to the queue (whose thread waits for the lock, with the
usual timeout and retries) instead of blocking the event loop. Nor does it checkpoint the
WAL, which takes milliseconds: inline commits leave ``wal_autocheckpoint`` off, and every
``CHECKPOINT_EVERY`` of them the writer thread is asked to run the checkpoint the default
setting would have run after about as many usage writes (~9 pages each, 1000 pages). A
loop that does not show its ready callbacks (anything but asyncio's own; uvloop, which
uvicorn picks when it is installed, among them) cannot be known to be idle: its writes are
all queued, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from smartspace_budget.errors import BackendUnavailableError
from smartspace_budget.ledger import apply as rules
from smartspace_budget.ledger.batch import Batch, Failure
from smartspace_budget.ledger.driver import connect_sqlite, is_retryable, run_sqlite_plan
from smartspace_budget.ledger.engine import BUSY_TIMEOUT_MS
from smartspace_budget.ledger.ops import Op
from smartspace_budget.ledger.sql import SqlDialect
from smartspace_budget.ledger.writer import MAX_ATTEMPTS, failure

__all__ = ["CHECKPOINT_EVERY", "ThreadWriter"]

log = logging.getLogger(__name__)

_Job = tuple[Op, "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_CHECKPOINT = "checkpoint"  # queued by inline commits: the thread checkpoints the WAL
_QUEUED = object()  # the inline attempt stood aside: the write goes through the queue
CHECKPOINT_EVERY = 100
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default wal_autocheckpoint


def _settle_all(settlements: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in settlements:
        if future.done():  # the caller gave up; its write happened all the same
            continue
        if isinstance(outcome, Failure):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)


def _waited(jobs: Sequence[_Job]) -> bool:
    """Whether some caller still waits for one of ``jobs`` (read from the writer thread: a
    caller that gave up only ever turns a future done)."""
    return not all(future.done() for _, future, _ in jobs)


def _loop_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` has no callback ready to run (asyncio's own loops only: others are
    taken as busy, so their writes are always queued)."""
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready


class ThreadWriter:
    """The write side of a SQLite ``Ledger``: a queue and the one thread draining it, or the
    caller itself when its write is alone (see the module docstring)."""

    def __init__(
        self,
        path: str,
        sql: SqlDialect,
        *,
        max_batch: int = 256,
        inline: bool = True,
        busy_ms: int = BUSY_TIMEOUT_MS,
    ) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._sql = sql
        self._max_batch = max_batch
        self._inline = inline
        self._jobs: queue.SimpleQueue[_Job | str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="ledger-writer", daemon=True)
        self._start_lock = threading.Lock()
        self._started = False
        self._closed = False
        # The write connection and the state below are used only by whoever holds ``_lock``:
        # the writer thread for a batch, or a caller running its lone write inline.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # The connection's settings for the thread (busy_timeout ``busy_ms``, automatic
        # checkpoints) or for inline writes (busy_timeout 0, none), and inline commits made
        # since the thread last checkpointed.
        self._thread_settings = True
        self._inline_commits = 0
        # Writes submitted and not yet answered, queued or running, from any thread.
        self._count_lock = threading.Lock()
        self._unanswered = 0
        self.batches = 0
        self.operations = 0

    async def submit(self, op: Op) -> Any:
        """Run ``op`` and return its result once its transaction is committed (or raise its
        refusal): inline when it is alone, else queued for the writer thread."""
        if self._closed:
            raise BackendUnavailableError("the ledger is closed")
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._thread.start()
                    self._started = True
        loop = asyncio.get_running_loop()
        with self._count_lock:
            self._unanswered += 1
            alone = self._unanswered == 1
        if alone and self._inline:
            try:
                # Writers of this loop that are ready to run submit theirs meanwhile; then
                # this write is no longer alone and shares their commit through the queue.
                # The yield also lets the loop poll its I/O: a caller writing in a loop never
                # holds the event loop for more than one write at a time.
                await asyncio.sleep(0)
            except BaseException:
                self._answered(1)
                raise
            outcome = self._run_inline(op, loop)
            if outcome is not _QUEUED:
                if isinstance(outcome, Failure):
                    raise outcome.error
                return outcome
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((op, future, loop))
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the thread and close its connection."""
        self._closed = True
        if self._started:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)

    def _answered(self, count: int) -> None:
        with self._count_lock:
            self._unanswered -= count

    def _run_inline(self, op: Op, loop: asyncio.AbstractEventLoop) -> Any:
        """``op``'s outcome, run on the caller's thread; ``_QUEUED`` if it must be queued
        after all (another write came, the loop has work, or the database is busy)."""
        if self._unanswered != 1 or not _loop_idle(loop) or not self._lock.acquire(False):
            return _QUEUED
        queued = False
        try:
            if self._closed:
                return Failure(BackendUnavailableError("the ledger is closed"))
            try:
                conn = self._connection()
                if self._thread_settings:
                    conn.execute("PRAGMA busy_timeout=0")
                    conn.execute("PRAGMA wal_autocheckpoint=0")
                    self._thread_settings = False
                outcome = run_sqlite_plan(conn, lambda: Batch(self._sql).plan([op], rules.apply))
            except Exception as exc:
                if is_retryable(exc):  # another process holds the write lock: the thread waits
                    queued = True
                    return _QUEUED
                return failure(exc)
            self.batches += 1
            self.operations += 1
            self._inline_commits += 1
            if self._inline_commits >= CHECKPOINT_EVERY:
                self._inline_commits = 0
                self._jobs.put(_CHECKPOINT)
            return outcome[0]
        finally:
            self._lock.release()
            if not queued:
                self._answered(1)

    def _connection(self) -> sqlite3.Connection:
        """The write connection, opened on first use (by the holder of ``_lock``)."""
        if self._conn is None:
            self._conn = connect_sqlite(self._path, reader=False, busy_ms=self._busy_ms)
            self._thread_settings = True
        return self._conn

    def _thread_connection(self) -> sqlite3.Connection:
        """The write connection with the thread's settings: it may wait for the lock, and its
        commits checkpoint the WAL when it is long."""
        conn = self._connection()
        if not self._thread_settings:
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
            self._thread_settings = True
        return conn

    def _serve(self) -> None:
        stopping = False
        try:
            while not stopping:
                jobs: list[_Job] = []
                checkpoint = False
                job = self._jobs.get()
                while True:
                    if job is None:
                        stopping = True
                        break
                    if isinstance(job, str):
                        checkpoint = True
                    else:
                        jobs.append(job)
                        if len(jobs) == self._max_batch:
                            break
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                if jobs:
                    with self._lock:
                        try:
                            outcomes = self._run(
                                self._thread_connection(),
                                [j[0] for j in jobs],
                                wanted=functools.partial(_waited, jobs),
                            )
                        except Exception as exc:  # never leave a caller waiting forever
                            outcomes = [failure(exc)] * len(jobs)
                    self._answer(jobs, outcomes)
                if checkpoint:
                    self._checkpoint()
        finally:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
            self._refuse_leftovers()

    def _checkpoint(self) -> None:
        """Copy the WAL's pages into the database, as an automatic checkpoint would (inline
        commits leave that to this thread); the next write then starts the WAL over."""
        with self._lock:
            try:
                self._thread_connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next checkpoint, or the next commit, tries again
                log.warning("ledger WAL checkpoint failed: %r", exc)

    def _refuse_leftovers(self) -> None:
        """Writes queued as the ledger closed get an answer too: it is closed."""
        leftovers = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and not isinstance(job, str):
                leftovers.append(job)
        if leftovers:
            closed = Failure(BackendUnavailableError("the ledger is closed"))
            self._answer(leftovers, [closed] * len(leftovers))

    def _answer(self, jobs: list[_Job], outcomes: list[Any]) -> None:
        self._answered(len(jobs))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for (_, future, loop), outcome in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settlements in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(_settle_all, settlements)

    def _run(
        self,
        conn: sqlite3.Connection,
        ops: Sequence[Op],
        *,
        wanted: Callable[[], bool] = lambda: True,
    ) -> list[Any]:
        """Run ``ops`` in one transaction, again while worth retrying and ``wanted()`` (a
        caller still waits: one whose deadline passed has its answer already)."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                outcomes = run_sqlite_plan(conn, lambda: Batch(self._sql).plan(ops, rules.apply))
            except Exception as exc:
                if not wanted():
                    return [failure(exc)] * len(ops)
                if is_retryable(exc) and attempt + 1 < MAX_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.002 * 2**attempt))
                    continue
                if len(ops) > 1:  # run each alone, so only the faulty one fails
                    return [self._run(conn, [op])[0] for op in ops]
                return [failure(exc)]
            self.batches += 1
            self.operations += len(ops)
            return outcomes
        raise AssertionError("unreachable: the last attempt returns or fails")
