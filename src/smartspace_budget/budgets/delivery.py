"""Alert delivery in the background: a bounded queue per handler and one retry policy.

Why: a handler that hangs (a webhook that never answers) or refuses (a receiver that is
down) must never hold up the code that raised the alert: a guarded provider call, or a
monitor's check. :meth:`AlertDelivery.submit` only queues the alert and returns at once;
a worker task per handler, in the event loop that submitted, delivers its queue in order.
A handler that fails holds up only its own queue, never another handler's.

**Retries.** Every handler is retried by one policy, :class:`RetryPolicy`: exponential
backoff with full jitter (a random wait between 0 and ``first_delay x 2^n``, at most
``max_delay``), each attempt bounded by ``attempt_timeout``, until ``deadline`` seconds after
the first attempt (or ``max_attempts``, if set). Each failed attempt logs one line (no
traceback): the handler, the alert, the attempt, the reason, and what happens next. The
bundled notifiers (webhook, Slack, email, Apprise) make one attempt each time
(``deliver_once``), so their own retries never nest inside this policy. An error that says
retrying will not help (a receiver's 4xx refusal, ``NotificationError.retryable`` false)
ends the alert's delivery at once.

**Overflow.** Each handler's queue holds at most ``queue_size`` alerts waiting. When it is
full, the *oldest* waiting alert is dropped for the new one (the newest describe the account
as it is now), with a warning log line, and counted in :attr:`DeliveryStats.dropped`.

**Sync handlers** (plain functions) run in a worker thread, so one that blocks does not
block the event loop; coroutine functions and the notifiers run on the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import SpendingAlert

__all__ = ["AlertDelivery", "AlertHandler", "DeliveryStats", "RetryPolicy", "handler_name"]

logger = logging.getLogger("smartspace_budget.budgets.delivery")

AlertHandler = Callable[[SpendingAlert], Any]
"""A callable taking the alert; it may return an awaitable, which is awaited."""


@dataclass(frozen=True)
class RetryPolicy:
    """How every alert handler is retried (see the module docstring); times in seconds."""

    first_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 300.0
    attempt_timeout: float = 10.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.first_delay < 0 or self.max_delay < 0:
            raise InvalidInputError("retry delays must be >= 0")
        if self.deadline < 0 or self.attempt_timeout <= 0:
            raise InvalidInputError("the retry deadline must be >= 0 and attempt_timeout > 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InvalidInputError("max_attempts must be at least 1")

    def _stop(self) -> stop_base:
        stop: stop_base = stop_after_delay(self.deadline)
        if self.max_attempts is not None:
            stop = stop | stop_after_attempt(self.max_attempts)
        return stop


@dataclass
class DeliveryStats:
    """Counts since the delivery started (for metrics and tests)."""

    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    dropped: int = 0


def handler_name(handler: AlertHandler) -> str:
    """A handler's name for logs: a notifier's description, else its qualified name."""
    describe = getattr(handler, "describe", None)
    if callable(describe):
        return str(describe())
    return str(getattr(handler, "__qualname__", None) or type(handler).__name__)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "no answer in time"
    text = str(exc) or type(exc).__name__
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


def _retryable(exc: BaseException) -> bool:
    # tenacity's attempt swallows every exception, cancellation included: only an Exception
    # is retried, so a cancelled worker stops instead of retrying forever.
    return isinstance(exc, Exception) and bool(getattr(exc, "retryable", True))


@dataclass
class _Channel:
    """One handler's queue and its worker."""

    handler: AlertHandler
    name: str
    waiting: deque[SpendingAlert] = field(default_factory=deque)
    current: SpendingAlert | None = None
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event | None = None
    undelivered: int = 0
    """Alerts this handler never accepted: given up on, or dropped from its queue."""

    @property
    def pending(self) -> int:
        return len(self.waiting) + (self.current is not None)


class AlertDelivery:
    """Background delivery of alerts to handlers (see the module docstring)."""

    def __init__(self, policy: RetryPolicy | None = None, *, queue_size: int = 1000) -> None:
        if queue_size < 1:
            raise InvalidInputError("queue_size must be at least 1")
        self.policy = policy or RetryPolicy()
        self.queue_size = queue_size
        self.stats = DeliveryStats()
        self._channels: dict[int, _Channel] = {}

    def submit(self, alert: SpendingAlert, handlers: Sequence[AlertHandler]) -> None:
        """Queue ``alert`` for each of ``handlers`` and return at once (inside an event loop)."""
        loop = asyncio.get_running_loop()
        for handler in handlers:
            channel = self._channel(handler)
            if len(channel.waiting) >= self.queue_size:
                dropped = channel.waiting.popleft()
                channel.undelivered += 1
                self.stats.dropped += 1
                logger.warning(
                    "alert queue of %s is full (%d waiting): dropped the oldest alert %s",
                    channel.name,
                    self.queue_size,
                    dropped.alert_id,
                )
            channel.waiting.append(alert)
            self._start(channel, loop)

    def pending(self) -> int:
        """Alerts queued or being delivered, over all handlers."""
        return sum(channel.pending for channel in self._channels.values())

    def undelivered(self, handler: AlertHandler) -> int:
        """Alerts ``handler`` has not accepted: given up on, dropped, or still pending."""
        channel = self._channels.get(id(handler))
        return 0 if channel is None else channel.undelivered + channel.pending

    async def join(self, within: float | None = None) -> bool:
        """Wait until every queued alert is delivered or given up on; ``False`` if some are
        still pending after ``within`` seconds (``None``: as long as it takes)."""
        deadline = None if within is None else time.monotonic() + within
        pause = 0.001
        while self.pending():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(
                pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            )
            pause = min(pause * 2, 0.05)
        return True

    async def aclose(self) -> None:
        """Stop the workers; alerts still pending are abandoned (and logged)."""
        tasks = []
        for channel in self._channels.values():
            if channel.pending:
                logger.warning(
                    "%d alert(s) for %s abandoned at shutdown", channel.pending, channel.name
                )
                channel.undelivered += channel.pending
                self.stats.dropped += channel.pending
                channel.waiting.clear()
                channel.current = None
            if channel.task is not None and not channel.task.done():
                channel.task.cancel()
                tasks.append(channel.task)
        for task in tasks:
            if task.get_loop() is asyncio.get_running_loop():
                await asyncio.gather(task, return_exceptions=True)

    def forget(self, handler: AlertHandler) -> None:
        """Stop delivering to ``handler``: its queue is dropped and its worker stopped."""
        channel = self._channels.pop(id(handler), None)
        if channel is not None and channel.task is not None:
            channel.task.cancel()

    # -- workers -------------------------------------------------------------------------

    def _channel(self, handler: AlertHandler) -> _Channel:
        channel = self._channels.get(id(handler))
        if channel is None or channel.handler is not handler:
            channel = _Channel(handler, handler_name(handler))
            self._channels[id(handler)] = channel
        return channel

    def _start(self, channel: _Channel, loop: asyncio.AbstractEventLoop) -> None:
        task = channel.task
        if task is None or task.done() or task.get_loop() is not loop:
            if channel.current is not None:  # its loop ended mid-delivery: deliver it again
                channel.waiting.appendleft(channel.current)
                channel.current = None
            channel.wake = asyncio.Event()
            channel.task = loop.create_task(
                self._work(channel), name=f"alert-delivery:{channel.name}"
            )
        assert channel.wake is not None
        channel.wake.set()

    async def _work(self, channel: _Channel) -> None:
        wake = channel.wake
        assert wake is not None
        while True:
            while not channel.waiting:
                wake.clear()
                await wake.wait()
            alert = channel.waiting.popleft()
            channel.current = alert
            try:
                await self._deliver(channel, alert)
            finally:
                channel.current = None

    async def _deliver(self, channel: _Channel, alert: SpendingAlert) -> None:
        policy = self.policy
        started = time.monotonic()

        def log_attempt(state: RetryCallState) -> None:
            self.stats.failed_attempts += 1
            assert state.outcome is not None
            assert state.next_action is not None
            logger.warning(
                "alert %s to %s: attempt %d failed (%s); retrying in %.1f s",
                alert.alert_id,
                channel.name,
                state.attempt_number,
                _reason(state.outcome.exception() or RuntimeError("failed")),
                state.next_action.sleep,
            )

        retrying = AsyncRetrying(
            stop=policy._stop(),
            wait=wait_random_exponential(multiplier=policy.first_delay, max=policy.max_delay),
            retry=retry_if_exception(_retryable),
            before_sleep=log_attempt,
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    async with asyncio.timeout(policy.attempt_timeout):
                        await _call_once(channel.handler, alert)
        except Exception as exc:
            self.stats.failed_attempts += 1
            self.stats.gave_up += 1
            channel.undelivered += 1
            logger.error(
                "alert %s to %s: attempt %d failed (%s); gave up after %.1f s",
                alert.alert_id,
                channel.name,
                attempts,
                _reason(exc),
                time.monotonic() - started,
            )
            return
        self.stats.delivered += 1


async def _call_once(handler: AlertHandler, alert: SpendingAlert) -> None:
    """One attempt: a notifier's ``deliver_once``, a coroutine function awaited on the loop,
    a plain function in a worker thread (its awaitable result, if any, awaited here)."""
    once = getattr(handler, "deliver_once", None)
    if callable(once):
        await once(alert)
        return
    call = getattr(handler, "__call__", None)  # noqa: B004  (a callable object's own method)
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call):
        await handler(alert)
        return
    result = await asyncio.to_thread(handler, alert)
    if inspect.isawaitable(result):
        await result
