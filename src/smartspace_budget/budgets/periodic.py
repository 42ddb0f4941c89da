"""Periodic monitoring: check accounts every interval until told to stop.

This is the loop behind ``smartspace-budget monitor --every 5m``. Each round checks every
account the backend lists (or the ones named) with
:meth:`SpendingMonitor.check_spending_status`, which delivers new alerts to the registered
handlers. One account that cannot be read is logged and skipped; the round goes on. A round
in progress finishes the account it is on when ``stop`` is set, then the loop returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from smartspace_budget.budgets._backend import backend_call
from smartspace_budget.budgets.spending_monitor import SpendingMonitor
from smartspace_budget.errors import InvalidInputError

__all__ = ["run_monitor", "stop_on_signals"]

logger = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[bool]:
    """Set ``stop`` on SIGINT/SIGTERM while inside; yields whether the handlers were installed.

    Only the main thread of a process may handle signals; elsewhere (or on a loop that does
    not support it) nothing is installed and the caller must set ``stop`` itself. The
    previous handlers come back on exit.
    """
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, Any] = {}
    try:
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                break
            installed[sig] = previous
        yield len(installed) == len(_SIGNALS)
    finally:
        for sig, previous in installed.items():
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)


async def run_monitor(
    monitor: SpendingMonitor,
    *,
    every: timedelta,
    accounts: list[tuple[str, str]] | None,
    stop: asyncio.Event,
    concurrency: int = 4,
    install_signal_handlers: bool = True,
) -> None:
    """Check ``accounts`` (all the backend lists when ``None``) every ``every`` until ``stop``.

    The first round starts at once; the next one ``every`` after the previous one started
    (or at once if a round took longer). Up to ``concurrency`` accounts are checked at the
    same time. SIGINT and SIGTERM set ``stop`` (unless ``install_signal_handlers`` is
    false), so the loop ends cleanly. Raises :class:`InvalidInputError` for an interval
    that is not positive.
    """
    if every <= timedelta(0):
        raise InvalidInputError(f"the monitoring interval must be positive, got {every}")
    if concurrency < 1:
        raise InvalidInputError(f"concurrency must be at least 1, got {concurrency}")
    with contextlib.ExitStack() as stack:
        if install_signal_handlers:
            stack.enter_context(stop_on_signals(stop))
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            started = loop.time()
            await _round(monitor, accounts, stop, concurrency)
            delay = every.total_seconds() - (loop.time() - started)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)


async def _round(
    monitor: SpendingMonitor,
    accounts: list[tuple[str, str]] | None,
    stop: asyncio.Event,
    concurrency: int,
) -> None:
    if accounts is None:
        try:
            refs = await backend_call(monitor.tracker.backend.list_accounts(), "the accounts")
        except Exception:
            logger.exception("cannot list accounts; trying again next round")
            return
        targets = [(ref.user_id, ref.project_id) for ref in refs]
    else:
        targets = list(accounts)
    gate = asyncio.Semaphore(concurrency)

    async def check(user_id: str, project_id: str) -> None:
        async with gate:
            if stop.is_set():
                return
            try:
                alerts = await monitor.check_spending_status(user_id, project_id)
            except Exception:
                logger.exception("checking %s/%s failed; skipped this round", user_id, project_id)
                return
            logger.debug("checked %s/%s: %d alert(s) in force", user_id, project_id, len(alerts))

    await asyncio.gather(*(check(user_id, project_id) for user_id, project_id in targets))
