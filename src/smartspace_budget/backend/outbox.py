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
(a 4xx about the write: unknown reservation, key reused with another body, bad input) is
kept as *dead*, shown by ``smartspace-budget outbox``, and never retried on its own. A
refused API key (401, 403) is not the write's fault: the entry waits, retried, until the
client's key is fixed.

Nothing is charged twice: every delivery of an entry carries the same idempotency key and the
same body, so the ledger answers a repeat with its first result. A settlement whose hold is
gone by the time it arrives (it expired, or was released) is recorded as usage without the
hold under a second fixed key, as the guard does inline; one already settled is done.

Entries name the ledger they are for (``target``: the SQLite file, the PostgreSQL database
without its password, or the service's URL), so one outbox file can serve several ledgers
and an entry is only ever delivered to its own.

This module delivers; ``outbox_store.py`` keeps the file (:class:`Outbox`, re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from smartspace_budget.backend.base import LedgerClient
from smartspace_budget.backend.outbox_store import (
    Operation,
    Outbox,
    OutboxEntry,
    default_outbox_path,
    describe_error,
    outbox_target,
)
from smartspace_budget.config import Settings
from smartspace_budget.errors import (
    BackendError,
    ForbiddenError,
    RateLimitedError,
    ReservationResolvedError,
    SmartspaceBudgetError,
    UnauthorizedError,
)
from smartspace_budget.models import LedgerEntry, UsageEvent

__all__ = [
    "Delivery",
    "Outbox",
    "OutboxEntry",
    "OutboxWriter",
    "default_outbox_path",
    "deliver",
    "outbox_target",
]

log = logging.getLogger("smartspace_budget.outbox")

State = Literal["delivered", "queued", "dead", "lost"]


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


def _definitive(exc: BaseException) -> bool:
    """A refusal of the write itself, which sending it again cannot change (a 4xx but 429,
    and but the 401/403 of a client whose key is wrong: fixing the key delivers it)."""
    if isinstance(exc, BackendError | RateLimitedError | UnauthorizedError | ForbiddenError):
        return False
    return isinstance(exc, SmartspaceBudgetError)


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


async def attempt(outbox: Outbox, backend: LedgerClient, entry: OutboxEntry) -> Delivery:
    """Send ``entry`` once and file the outcome in the outbox."""
    with outbox.sending(entry):
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
                    describe_error(exc),
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
                "outbox delivery failed (%s); %d entries wait, next try in %.1f s",
                describe_error(blocked.error) if blocked.error else "unknown",
                self.outbox.count(self.target, "pending"),
                wait,
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.outbox.max_delay)


def _courier(outbox: Outbox, backend: LedgerClient, target: str) -> _Courier:
    """The background delivery of ``target``'s entries on the running event loop."""
    loop = asyncio.get_running_loop()
    with outbox.registry_lock:
        per_loop = outbox.couriers.setdefault(loop, {})
        courier = per_loop.get(target)
        if courier is None:
            courier = per_loop[target] = _Courier(outbox, backend, target, loop)
    assert isinstance(courier, _Courier)
    return courier


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
            describe_error(outcome.error) if outcome.error else "cancelled",
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
            created_at=datetime.now(UTC),
        )
        try:
            return Delivery("delivered", await deliver(self.backend, entry))
        except Exception as exc:
            log.error("%s is lost: neither the ledger nor the outbox could take it", key)
            return Delivery("lost", error=exc)

    def courier_wake(self) -> None:
        """Start the background delivery on the running loop (no-op without one)."""
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to start
            _courier(self.outbox, self.backend, self.target).wake()

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
            _courier(self.outbox, self.backend, self.target).wake()

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
