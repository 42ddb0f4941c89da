"""Guarded proxies of ``openai`` and ``anthropic`` clients, sync and async.

``guard.wrap(client)`` returns a proxy: the guarded methods are ``create``, ``parse`` and
the ``stream`` helper of ``chat.completions`` and ``responses`` (OpenAI), and
``messages.create`` and ``messages.stream`` (Anthropic), streaming or not, also through
``with_raw_response``, and OpenAI's ``images.generate`` and ``images.edit``;
``with_streaming_response`` is refused (its usage cannot be seen). Everything else is the
client's own attribute, untouched. The client itself is not modified.
How one call is guarded is :mod:`smartspace_budget.guard.sdk_calls`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard.core import Guard
from smartspace_budget.guard.sdk_calls import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_IMAGES,
    OPENAI_RESPONSES,
    Method,
    Proxy,
    guarded_async,
    guarded_sync,
    with_usage,
)
from smartspace_budget.guard.stream_helpers import (
    GuardedAsyncMessageStreamManager,
    GuardedMessageStreamManager,
    UsageReader,
    openai_chat_final_usage,
    openai_responses_final_usage,
)

__all__ = ["GuardedAnthropic", "GuardedOpenAI", "wrap_client"]


class _GuardedRaw(Proxy):
    """``with_raw_response``: the same guarded calls, the raw HTTP response back."""

    def __init__(self, target: Any, guard: Guard, spec: Method, is_async: bool) -> None:
        super().__init__(target)
        self._guard, self._spec, self._is_async = guard, spec, is_async

    def _run(self, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if self._is_async:
            return guarded_async(self._guard, self._spec, method, kwargs, raw=True)
        return guarded_sync(self._guard, self._spec, method, kwargs, raw=True)

    def create(self, **kwargs: Any) -> Any:
        """``create`` under the guard; the usage is read from the parsed body."""
        return self._run(self._target.create, kwargs)

    def parse(self, **kwargs: Any) -> Any:
        """``parse`` under the guard; the usage is read from the parsed body."""
        return self._run(self._target.parse, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "stream":
            raise InvalidInputError(
                "with_raw_response.stream is not guarded; use .stream(...) or "
                "with_raw_response.create(stream=True)"
            )
        return getattr(self._target, name)


class _Guarded(Proxy):
    """A resource whose ``create`` (and for Anthropic ``stream``) are guarded."""

    def __init__(self, target: Any, guard: Guard, spec: Method, is_async: bool) -> None:
        super().__init__(target)
        self._guard, self._spec, self._is_async = guard, spec, is_async

    def create(self, **kwargs: Any) -> Any:
        """The SDK's ``create``, under the guard (same arguments, same result)."""
        if self._is_async:
            return guarded_async(self._guard, self._spec, self._target.create, kwargs)
        return guarded_sync(self._guard, self._spec, self._target.create, kwargs)

    @property
    def with_raw_response(self) -> Any:
        """The SDK's ``with_raw_response``, guarded (``create`` and ``parse``)."""
        raw = self._target.with_raw_response
        return _GuardedRaw(raw, self._guard, self._spec, self._is_async)

    @property
    def with_streaming_response(self) -> Any:
        """Refused: its body is read by the caller as bytes, so its usage cannot be seen."""
        raise InvalidInputError(
            "with_streaming_response is not guarded (the guard cannot see its usage); use "
            "create(stream=True) or with_raw_response"
        )


class _GuardedImages(_Guarded):
    """OpenAI's Images API: ``generate`` and ``edit`` under the guard."""

    def generate(self, **kwargs: Any) -> Any:
        """The SDK's ``images.generate``, under the guard (same arguments, same result)."""
        return self._run(self._target.generate, kwargs)

    def edit(self, **kwargs: Any) -> Any:
        """The SDK's ``images.edit``, under the guard (same arguments, same result)."""
        return self._run(self._target.edit, kwargs)

    def _run(self, method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if self._is_async:
            return guarded_async(self._guard, self._spec, method, kwargs)
        return guarded_sync(self._guard, self._spec, method, kwargs)


class _GuardedMessages(_Guarded):
    def stream(self, **kwargs: Any) -> Any:
        """Anthropic's ``messages.stream`` helper, under the guard."""
        if self._is_async:
            return GuardedAsyncMessageStreamManager(self._guard, self._spec, self._target, kwargs)
        return GuardedMessageStreamManager(self._guard, self._spec, self._target, kwargs)


class _GuardedOpenAIResource(_Guarded):
    """Chat completions or responses: ``create``, ``parse`` and the ``stream`` helper."""

    def __init__(
        self,
        target: Any,
        guard: Guard,
        spec: Method,
        is_async: bool,
        final_usage: UsageReader,
        wants_usage: bool,
    ) -> None:
        super().__init__(target, guard, spec, is_async)
        self._final_usage, self._wants_usage = final_usage, wants_usage

    def parse(self, **kwargs: Any) -> Any:
        """The SDK's ``parse`` (structured output), under the guard."""
        if self._is_async:
            return guarded_async(self._guard, self._spec, self._target.parse, kwargs)
        return guarded_sync(self._guard, self._spec, self._target.parse, kwargs)

    def stream(self, **kwargs: Any) -> Any:
        """The SDK's ``stream`` helper, under the guard (chat: ``include_usage`` requested)."""
        if self._wants_usage:
            kwargs = {**kwargs, "stream_options": with_usage(kwargs.get("stream_options"))}
        manager = (
            GuardedAsyncMessageStreamManager if self._is_async else GuardedMessageStreamManager
        )
        return manager(self._guard, self._spec, self._target, kwargs, self._final_usage)


class _OpenAIChat(Proxy):
    def __init__(self, target: Any, guard: Guard, is_async: bool) -> None:
        super().__init__(target)
        self.completions = _GuardedOpenAIResource(
            target.completions, guard, OPENAI_CHAT, is_async, openai_chat_final_usage, True
        )


class _GuardedClient(Proxy):
    """Copies made with ``with_options``/``copy`` stay guarded."""

    guard: Guard

    def with_options(self, **kwargs: Any) -> Any:
        """The SDK's ``with_options``, wrapped again."""
        return wrap_client(self.guard, self._target.with_options(**kwargs))

    def copy(self, **kwargs: Any) -> Any:
        """The SDK's ``copy``, wrapped again."""
        return wrap_client(self.guard, self._target.copy(**kwargs))

    @property
    def with_streaming_response(self) -> Any:
        """Refused: its bodies are read by the caller as bytes, so usage cannot be seen."""
        raise InvalidInputError(
            "with_streaming_response is not guarded (the guard cannot see its usage); use "
            "create(stream=True) or with_raw_response"
        )


class _RawChat(Proxy):
    def __init__(self, target: Any, completions: Any) -> None:
        super().__init__(target)
        self.completions = completions


class _RawOpenAI(Proxy):
    """``client.with_raw_response`` of a guarded OpenAI client."""

    def __init__(self, target: Any, guarded: GuardedOpenAI) -> None:
        super().__init__(target)
        self.chat = _RawChat(target.chat, guarded.chat.completions.with_raw_response)
        self.responses = guarded.responses.with_raw_response


class _RawAnthropic(Proxy):
    """``client.with_raw_response`` of a guarded Anthropic client."""

    def __init__(self, target: Any, guarded: GuardedAnthropic) -> None:
        super().__init__(target)
        self.messages = guarded.messages.with_raw_response


class GuardedOpenAI(_GuardedClient):
    """An ``OpenAI``/``AsyncOpenAI`` client whose chat completions, responses and images
    (``generate``, ``edit``) are guarded."""

    def __init__(self, client: Any, guard: Guard, is_async: bool) -> None:
        super().__init__(client)
        self.guard = guard
        self.chat = _OpenAIChat(client.chat, guard, is_async)
        self.responses = _GuardedOpenAIResource(
            client.responses, guard, OPENAI_RESPONSES, is_async, openai_responses_final_usage, False
        )
        self.images = _GuardedImages(client.images, guard, OPENAI_IMAGES, is_async)

    @property
    def with_raw_response(self) -> Any:
        """The SDK's ``with_raw_response``, with chat completions and responses guarded."""
        return _RawOpenAI(self._target.with_raw_response, self)


class GuardedAnthropic(_GuardedClient):
    """An ``Anthropic``/``AsyncAnthropic`` client whose messages are guarded."""

    def __init__(self, client: Any, guard: Guard, is_async: bool) -> None:
        super().__init__(client)
        self.guard = guard
        self.messages = _GuardedMessages(client.messages, guard, ANTHROPIC_MESSAGES, is_async)

    @property
    def with_raw_response(self) -> Any:
        """The SDK's ``with_raw_response``, with messages guarded."""
        return _RawAnthropic(self._target.with_raw_response, self)


def is_async_client(client: Any) -> bool:
    """Both SDKs derive every async client (Azure, Bedrock, Vertex...) from ``AsyncAPIClient``."""
    return any(cls.__name__ == "AsyncAPIClient" for cls in type(client).__mro__)


def wrap_client(guard: Guard, client: Any) -> Any:
    """Return the guarded proxy for ``client``; :class:`InvalidInputError` for other objects."""
    package = type(client).__module__.split(".", 1)[0]
    if package == "openai":
        return GuardedOpenAI(client, guard, is_async_client(client))
    if package == "anthropic":
        return GuardedAnthropic(client, guard, is_async_client(client))
    raise InvalidInputError(
        f"cannot guard a {type(client).__name__}: expected an openai or anthropic client"
    )
