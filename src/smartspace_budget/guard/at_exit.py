"""Streams still open when the process exits are settled then, not left to their hold's TTL.

Why: a guarded stream settles when it ends, is closed, or is garbage collected; a stream
still referenced when the interpreter exits does none of these before the process is gone,
so its hold would stay (until the ledger expires it) and its usage would never be charged.
Every open stream registers here, and an :mod:`atexit` hook settles the ones left, charging
what is known (the provider's final usage, else what it reported so far plus the output it
streamed, else the hold). Each settlement goes through the outbox, so one that cannot
complete before the process ends is delivered by the next process using the same outbox.

The hook runs after the interpreter has joined the program's threads, so a stream another
thread is still reading is never cut short. Settling waits at most :data:`EXIT_DEADLINE`
seconds per stream.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol

__all__ = ["EXIT_DEADLINE", "OpenAtExit", "defer", "run_settlement", "track", "untrack"]

log = logging.getLogger("smartspace_budget.guard")

EXIT_DEADLINE = 10.0

_lock = threading.Lock()
_open: weakref.WeakSet[OpenAtExit] = weakref.WeakSet()
_deferred: list[tuple[Any, Any, Any]] = []  # (guard, call, usage): their loop was gone
_registered = False


class OpenAtExit(Protocol):
    """Something that can settle its call from the exit hook (a stream, a stream manager)."""

    def settle_at_exit(self) -> None: ...


def _register() -> None:
    global _registered
    if not _registered:
        atexit.register(_settle_all)
        _registered = True


def track(item: OpenAtExit) -> None:
    """``item`` is open: settle it at exit unless it is untracked first."""
    with _lock:
        _register()
        _open.add(item)


def untrack(item: OpenAtExit) -> None:
    with _lock:
        _open.discard(item)


def defer(guard: Any, call: Any, usage: Any) -> None:
    """Settle at exit a call whose event loop closed before it could be settled there."""
    with _lock:
        _register()
        _deferred.append((guard, call, usage))


def run_settlement(
    coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop | None, portal: Any
) -> None:
    """Run ``coro`` to its end from synchronous code, on the loop its backend belongs to:
    the guard's portal (``loop`` None: a synchronous stream), ``loop`` if it still runs or
    can run, else a new loop (a backend reopens its connections there)."""
    if loop is None:
        portal.run(coro, EXIT_DEADLINE)
    elif loop.is_running():
        asyncio.run_coroutine_threadsafe(coro, loop).result(EXIT_DEADLINE)
    elif not loop.is_closed():
        loop.run_until_complete(asyncio.wait_for(coro, EXIT_DEADLINE))
    else:
        asyncio.run(asyncio.wait_for(coro, EXIT_DEADLINE))


def _settle_all() -> None:
    with _lock:
        items = list(_open)
        _open.clear()
        deferred = list(_deferred)
        _deferred.clear()
    for item in items:
        try:
            item.settle_at_exit()
        except Exception:
            log.exception("settling an open stream at exit failed (see the outbox)")
    for guard, call, usage in deferred:
        try:
            asyncio.run(asyncio.wait_for(guard.finish_call(call, usage), EXIT_DEADLINE))
        except Exception:
            log.exception("settling %s at exit failed (see the outbox)", call.request_id)
