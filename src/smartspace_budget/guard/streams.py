"""Streams that settle their call exactly once: at the end, on early close, on error, on GC,
at process exit.

The wrapper passes every event through unchanged and shows each one to a usage observer.
Whatever way the stream stops, the call is settled: with the usage the provider reported
when it reached the end; left before the end (closed, dropped, still open at exit), with
what the provider reported so far plus the output streamed when the API reports usage as it
goes (Anthropic's ``message_start``); otherwise at the reservation (flagged as an estimate).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from smartspace_budget.guard import at_exit
from smartspace_budget.guard.core import Guard, GuardedCall
from smartspace_budget.guard.costing import ProviderUsage
from smartspace_budget.guard.usage import PartialUsage, streamed_pieces

__all__ = ["GuardedAsyncStream", "GuardedStream", "UsageObserver"]

UsageObserver = Callable[[Any], None]


class _Settlement:
    """The part shared by the sync and async wrappers: what was seen and whether it is settled."""

    def __init__(
        self,
        guard: Guard,
        call: GuardedCall,
        observe: UsageObserver,
        result: Callable[[], ProviderUsage | None],
        partial: Callable[[], PartialUsage | None] | None = None,
    ) -> None:
        self.guard = guard
        self.call = call
        self.observe = observe
        self.result = result
        self.partial = partial
        self.done = False
        self.loop: asyncio.AbstractEventLoop | None = None
        at_exit.track(self)

    def claim(self) -> bool:
        """True once: the caller is the one who settles."""
        if self.done:
            return False
        self.done = True
        at_exit.untrack(self)
        return True

    def left_usage(self) -> ProviderUsage | PartialUsage | None:
        """The final usage, else (the stream was left before its end) what was reported so
        far with the output streamed, when the API tells."""
        final = self.result()
        if final is not None or self.partial is None:
            return final
        return self.partial()

    def settle_at_exit(self) -> None:
        """The process is exiting with the stream still open: settle it now."""
        if self.claim():
            usage = self.left_usage()
            at_exit.run_settlement(
                self.guard.finish_call(self.call, usage), self.loop, self.guard.portal
            )


class GuardedStream:
    """Wraps a synchronous SDK ``Stream``; settles through the guard's portal."""

    def __init__(self, inner: Any, settlement: _Settlement) -> None:
        self._inner = inner
        self._settlement = settlement
        self._iterator: Iterator[Any] | None = None

    @property
    def call(self) -> GuardedCall:
        """The guarded call behind this stream."""
        return self._settlement.call

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = iter(self._inner)
        try:
            event = next(self._iterator)
        except StopIteration:
            self._settle(self._settlement.left_usage())
            raise
        except BaseException:
            self._settle(None)
            raise
        self._settlement.observe(event)
        self._settlement.call.streamed_output_tokens += streamed_pieces(event)
        return event

    def _settle(self, usage: ProviderUsage | PartialUsage | None) -> None:
        if self._settlement.claim():
            guard = self._settlement.guard
            guard.portal.run(guard.finish_call(self._settlement.call, usage))

    def close(self) -> None:
        """Stop reading: the connection is closed and the call settled."""
        try:
            self._inner.close()
        finally:
            self._settle(self._settlement.left_usage())

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        settlement = getattr(self, "_settlement", None)
        if settlement is not None and settlement.claim():
            with contextlib.suppress(Exception):
                self._inner.close()
            settlement.guard.settle_later(settlement.call, settlement.left_usage(), settlement.loop)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GuardedAsyncStream:
    """Wraps an ``AsyncStream``; settles on the running loop."""

    def __init__(self, inner: Any, settlement: _Settlement) -> None:
        self._inner = inner
        self._settlement = settlement
        self._iterator: AsyncIterator[Any] | None = None
        settlement.loop = asyncio.get_running_loop()

    @property
    def call(self) -> GuardedCall:
        """The guarded call behind this stream."""
        return self._settlement.call

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._inner.__aiter__()
        try:
            event = await self._iterator.__anext__()
        except StopAsyncIteration:
            await self._settle(self._settlement.left_usage())
            raise
        except BaseException:
            await self._settle(None)
            raise
        self._settlement.observe(event)
        self._settlement.call.streamed_output_tokens += streamed_pieces(event)
        return event

    async def _settle(self, usage: ProviderUsage | PartialUsage | None) -> None:
        if self._settlement.claim():
            await self._settlement.guard.finish_call(self._settlement.call, usage)

    async def close(self) -> None:
        """Stop reading: the connection is closed and the call settled."""
        try:
            await self._inner.close()
        finally:
            await self._settle(self._settlement.left_usage())

    async def aclose(self) -> None:
        """Same as :meth:`close` (async-generator spelling)."""
        await self.close()

    async def __aenter__(self) -> GuardedAsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        settlement = getattr(self, "_settlement", None)
        if settlement is not None and settlement.claim():
            settlement.guard.settle_later(settlement.call, settlement.left_usage(), settlement.loop)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def new_settlement(
    guard: Guard,
    call: GuardedCall,
    observe: UsageObserver,
    result: Callable[[], ProviderUsage | None],
    partial: Callable[[], PartialUsage | None] | None = None,
) -> _Settlement:
    """Shared state for a stream wrapper."""
    return _Settlement(guard, call, observe, result, partial)
