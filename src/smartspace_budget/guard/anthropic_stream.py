"""Anthropic's ``messages.stream(...)`` helper under the guard.

The helper's ``MessageStream`` keeps a snapshot of the message it is receiving, usage
included; the usage is final once ``stop_reason`` is set (``message_delta``). When the
``with`` block exits, the call is settled with that usage, or at the reservation when the
caller left before the end.
"""

from __future__ import annotations

from typing import Any

from smartspace_budget.guard.core import Guard, GuardedCall
from smartspace_budget.guard.costing import ProviderUsage
from smartspace_budget.guard.usage import anthropic_usage

__all__ = ["GuardedAsyncMessageStreamManager", "GuardedMessageStreamManager"]


def _final_usage(stream: Any) -> ProviderUsage | None:
    snapshot_of = getattr(stream, "_current_snapshot_or_none", None)
    snapshot = snapshot_of() if callable(snapshot_of) else None
    if snapshot is None or getattr(snapshot, "stop_reason", None) is None:
        return None
    return anthropic_usage(getattr(snapshot, "usage", None))


class GuardedMessageStreamManager:
    """``with client.messages.stream(...) as stream:``: reserve on enter, settle on exit."""

    def __init__(self, guard: Guard, spec: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        self._guard, self._spec, self._messages, self._kwargs = guard, spec, messages, kwargs
        self._manager: Any = None
        self._stream: Any = None
        self.call: GuardedCall | None = None

    def __enter__(self) -> Any:
        from smartspace_budget.guard.wrappers import _open, _provider_refused

        self.call = self._guard.portal.run(_open(self._guard, self._spec, self._kwargs))
        self._manager = self._messages.stream(**self._kwargs)
        try:
            self._stream = self._manager.__enter__()
        except BaseException as exc:
            if _provider_refused(exc):
                self._guard.portal.run(self._guard.release_call(self.call))
            else:
                self._guard.portal.run(self._guard.finish_call(self.call, None))
            raise
        return self._stream

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._manager.__exit__(*exc_info)
        finally:
            if self.call is not None:
                usage = _final_usage(self._stream)
                self._guard.portal.run(self._guard.finish_call(self.call, usage))


class GuardedAsyncMessageStreamManager:
    """``async with client.messages.stream(...) as stream:``: reserve on enter, settle on exit."""

    def __init__(self, guard: Guard, spec: Any, messages: Any, kwargs: dict[str, Any]) -> None:
        self._guard, self._spec, self._messages, self._kwargs = guard, spec, messages, kwargs
        self._manager: Any = None
        self._stream: Any = None
        self.call: GuardedCall | None = None

    async def __aenter__(self) -> Any:
        from smartspace_budget.guard.wrappers import _open, _provider_refused

        self.call = await _open(self._guard, self._spec, self._kwargs)
        self._manager = self._messages.stream(**self._kwargs)
        try:
            self._stream = await self._manager.__aenter__()
        except BaseException as exc:
            if _provider_refused(exc):
                await self._guard.release_call(self.call)
            else:
                await self._guard.finish_call(self.call, None)
            raise
        return self._stream

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._manager.__aexit__(*exc_info)
        finally:
            if self.call is not None:
                await self._guard.finish_call(self.call, _final_usage(self._stream))
