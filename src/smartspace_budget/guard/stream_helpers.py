"""The SDKs' stream helpers under the guard: Anthropic's ``messages.stream(...)`` and
OpenAI's ``chat.completions.stream(...)`` / ``responses.stream(...)``.

Each helper's stream keeps a snapshot of what it received, usage included; the usage is
final once the stream reached its end (Anthropic: ``stop_reason`` set by ``message_delta``;
OpenAI chat: the last chunk, with ``include_usage`` requested; Responses:
``response.completed``). When the ``with`` block exits, the call is settled with that usage,
or at the reservation when the caller left before the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from smartspace_budget.guard import at_exit
from smartspace_budget.guard.core import Guard, GuardedCall
from smartspace_budget.guard.costing import ProviderUsage
from smartspace_budget.guard.sdk_calls import open_guarded_call, provider_refused
from smartspace_budget.guard.usage import (
    PartialUsage,
    anthropic_snapshot_partial,
    anthropic_usage,
    openai_chat_completion_usage,
    openai_response_usage,
)

__all__ = [
    "GuardedAsyncMessageStreamManager",
    "GuardedMessageStreamManager",
    "UsageReader",
    "anthropic_final_usage",
    "openai_chat_final_usage",
    "openai_responses_final_usage",
]

UsageReader = Callable[[Any], ProviderUsage | PartialUsage | None]


def openai_chat_final_usage(stream: Any) -> ProviderUsage | None:
    """The usage chunk's counts, kept in the chat stream's snapshot."""
    try:
        snapshot = stream.current_completion_snapshot
    except Exception:  # nothing received yet
        return None
    return openai_chat_completion_usage(snapshot)


def openai_responses_final_usage(stream: Any) -> ProviderUsage | None:
    """The usage of ``response.completed``, kept by the Responses stream's state."""
    completed = getattr(getattr(stream, "_state", None), "_completed_response", None)
    return openai_response_usage(completed)


def anthropic_final_usage(stream: Any) -> ProviderUsage | PartialUsage | None:
    """The final usage; left before the end, what ``message_start`` reported and the
    output streamed so far."""
    snapshot_of = getattr(stream, "_current_snapshot_or_none", None)
    snapshot = snapshot_of() if callable(snapshot_of) else None
    if snapshot is None:
        return None
    if getattr(snapshot, "stop_reason", None) is None:
        return anthropic_snapshot_partial(snapshot)
    return anthropic_usage(getattr(snapshot, "usage", None))


class _GuardedStreamManager:
    """What the sync and async stream managers share: their state and the failed-open rule."""

    def __init__(
        self,
        guard: Guard,
        spec: Any,
        resource: Any,
        kwargs: dict[str, Any],
        final_usage: UsageReader = anthropic_final_usage,
    ) -> None:
        self._guard, self._spec, self._resource, self._kwargs = guard, spec, resource, kwargs
        self._final_usage = final_usage
        self._manager: Any = None
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.call: GuardedCall | None = None

    def settle_at_exit(self) -> None:
        """The process is exiting inside the ``with`` block: settle with what is known."""
        call = self.call
        if call is not None and self._stream is not None and not call.finished:
            usage = self._final_usage(self._stream)
            at_exit.run_settlement(
                self._guard.finish_call(call, usage), self._loop, self._guard.portal
            )

    def _close_unopened(self, call: GuardedCall, exc: BaseException) -> Coroutine[Any, Any, None]:
        """A stream that never opened: released if the SDK refused before sending, else charged
        at the reservation (the request may have reached the provider)."""
        if provider_refused(exc):
            return self._guard.release_call(call)
        return self._guard.finish_call(call, None)


class GuardedMessageStreamManager(_GuardedStreamManager):
    """``with client.messages.stream(...) as stream:``: reserve on enter, settle on exit."""

    def __enter__(self) -> Any:
        call = self._guard.portal.run(open_guarded_call(self._guard, self._spec, self._kwargs))
        self.call = call
        try:
            self._manager = self._resource.stream(**self._kwargs)
            self._stream = self._manager.__enter__()
        except BaseException as exc:
            self._guard.portal.run(self._close_unopened(call, exc))
            raise
        at_exit.track(self)
        return self._stream

    def __exit__(self, *exc_info: Any) -> None:
        at_exit.untrack(self)
        try:
            self._manager.__exit__(*exc_info)
        finally:
            if self.call is not None:
                usage = self._final_usage(self._stream)
                self._guard.portal.run(self._guard.finish_call(self.call, usage))


class GuardedAsyncMessageStreamManager(_GuardedStreamManager):
    """``async with ....stream(...) as stream:``: reserve on enter, settle on exit."""

    async def __aenter__(self) -> Any:
        call = await open_guarded_call(self._guard, self._spec, self._kwargs)
        self.call = call
        try:
            self._manager = self._resource.stream(**self._kwargs)
            self._stream = await self._manager.__aenter__()
        except BaseException as exc:
            await self._close_unopened(call, exc)
            raise
        self._loop = asyncio.get_running_loop()
        at_exit.track(self)
        return self._stream

    async def __aexit__(self, *exc_info: Any) -> None:
        at_exit.untrack(self)
        try:
            await self._manager.__aexit__(*exc_info)
        finally:
            if self.call is not None:
                await self._guard.finish_call(self.call, self._final_usage(self._stream))
