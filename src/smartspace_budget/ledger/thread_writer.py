"""Group commit for SQLite: one thread owns the write connection and drains the queue.

SQLite has one write lock, so one writer is all there is to have. Callers put their
operation on a ``queue.SimpleQueue`` and wait on a future; the thread takes everything
queued (up to ``max_batch``), runs it as one transaction (``run_sqlite_plan``), commits, and
hands every caller its outcome with one ``call_soon_threadsafe`` per event loop. No asyncio
task sits in between: on this machine each hop through the event loop costs more than the
statements of a write. Retries and the isolation of a failing operation follow
:mod:`smartspace_budget.ledger.writer`.

Every write goes through the thread, a lone one too. An earlier version ran a lone write on
the caller's thread when the event loop had nothing else ready, which it could tell only by
reading asyncio's private ``_ready`` queue; the two thread hops it saved were worth 2-3% of
a sequential writer's rate on a loaded machine (issue 20, ``docs/design-notes.md``), while
one sequential writer stays well above its floor (half the rate of a usage write's own
statements replayed with no ledger code, ``bench/ledger.py``). The event loop never runs a
statement or waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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

__all__ = ["ThreadWriter"]

_Job = tuple[Op, "asyncio.Future[Any]", asyncio.AbstractEventLoop]


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


class ThreadWriter:
    """The write side of a SQLite ``Ledger``: a queue and the one thread draining it."""

    def __init__(
        self, path: str, sql: SqlDialect, *, max_batch: int = 256, busy_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._sql = sql
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="ledger-writer", daemon=True)
        self._start_lock = threading.Lock()
        self._started = False
        self._closed = False
        self.batches = 0
        self.operations = 0

    async def submit(self, op: Op) -> Any:
        """Run ``op`` and return its result once its transaction is committed (or raise its
        refusal)."""
        if self._closed:
            raise BackendUnavailableError("the ledger is closed")
        if not self._started:
            with self._start_lock:
                if not self._started:
                    self._thread.start()
                    self._started = True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((op, future, loop))
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the thread and close its connection."""
        self._closed = True
        if self._started:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        stopping = False
        try:
            while not stopping:
                jobs: list[_Job] = []
                job = self._jobs.get()
                while True:
                    if job is None:
                        stopping = True
                        break
                    jobs.append(job)
                    if len(jobs) == self._max_batch:
                        break
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                if jobs:
                    try:
                        if conn is None:
                            conn = connect_sqlite(self._path, reader=False, busy_ms=self._busy_ms)
                        outcomes = self._run(
                            conn, [j[0] for j in jobs], wanted=functools.partial(_waited, jobs)
                        )
                    except Exception as exc:  # never leave a caller waiting forever
                        outcomes = [failure(exc)] * len(jobs)
                    self._answer(jobs, outcomes)
        finally:
            if conn is not None:
                conn.close()
            self._refuse_leftovers()

    def _refuse_leftovers(self) -> None:
        """Writes queued as the ledger closed get an answer too: it is closed."""
        leftovers = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                leftovers.append(job)
        if leftovers:
            closed = Failure(BackendUnavailableError("the ledger is closed"))
            self._answer(leftovers, [closed] * len(leftovers))

    def _answer(self, jobs: list[_Job], outcomes: list[Any]) -> None:
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
