"""Guarded proxies of ``openai`` and ``anthropic`` clients, sync and async.

``guard.wrap(client)`` returns a proxy: the guarded methods are ``create``, ``parse`` and
the ``stream`` helper of ``chat.completions`` and ``responses`` (OpenAI), and
``messages.create`` and ``messages.stream`` (Anthropic), streaming or not; everything else
is the client's own attribute, untouched. The client itself is not modified.

A request the provider answers with an HTTP error, or that the SDK refuses before sending it
(missing or impossible arguments), is not billed by the provider, so its hold is released;
any other failure (connection lost, timeout, error midway through a stream)
leaves the real usage unknown, so the reservation is charged as an estimate.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard.anthropic_stream import (
    UsageReader,
    openai_chat_final_usage,
    openai_responses_final_usage,
)
from smartspace_budget.guard.core import Guard, GuardedCall
from smartspace_budget.guard.costing import ProviderUsage
from smartspace_budget.guard.prompts import (
    anthropic_messages,
    openai_messages,
    responses_messages,
)
from smartspace_budget.guard.streams import (
    GuardedAsyncStream,
    GuardedStream,
    new_settlement,
)
from smartspace_budget.guard.usage import (
    AnthropicStreamUsage,
    anthropic_usage,
    openai_chat_usage,
    openai_responses_usage,
    openai_stream_event_usage,
)

__all__ = ["wrap_client"]

Observer = tuple[Callable[[Any], None], Callable[[], ProviderUsage | None]]


@dataclass(frozen=True)
class _Method:
    """How to guard one SDK method: reading the request, the response and the stream."""

    provider: str
    read_request: Callable[[dict[str, Any]], tuple[list[dict[str, str]], int | None]]
    response_usage: Callable[[Any], ProviderUsage | None]
    new_observer: Callable[[], Observer]
    adjust: Callable[[dict[str, Any]], dict[str, Any]] = lambda kwargs: kwargs


def _openai_stream_observer() -> Observer:
    seen: list[ProviderUsage] = []

    def observe(event: Any) -> None:
        usage = openai_stream_event_usage(event)
        if usage is not None:
            seen.append(usage)

    return observe, lambda: seen[-1] if seen else None


def _anthropic_stream_observer() -> Observer:
    acc = AnthropicStreamUsage()
    return acc.observe, acc.result


def _with_usage(stream_options: Any) -> dict[str, Any]:
    return {**(stream_options or {}), "include_usage": True}


def _include_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("stream"):
        kwargs = {**kwargs, "stream_options": _with_usage(kwargs.get("stream_options"))}
    return kwargs


def _max_of(kwargs: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = kwargs.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


OPENAI_CHAT = _Method(
    provider="openai",
    read_request=lambda kw: (
        openai_messages(kw.get("messages") or [], kw.get("tools"), kw.get("functions")),
        _max_of(kw, "max_completion_tokens", "max_tokens"),
    ),
    response_usage=lambda response: openai_chat_usage(getattr(response, "usage", None)),
    new_observer=_openai_stream_observer,
    adjust=_include_usage,
)
OPENAI_RESPONSES = _Method(
    provider="openai",
    read_request=lambda kw: (
        responses_messages(kw.get("input"), kw.get("instructions"), kw.get("tools")),
        _max_of(kw, "max_output_tokens"),
    ),
    response_usage=lambda response: openai_responses_usage(getattr(response, "usage", None)),
    new_observer=_openai_stream_observer,
)
ANTHROPIC_MESSAGES = _Method(
    provider="anthropic",
    read_request=lambda kw: (
        anthropic_messages(kw.get("messages") or [], kw.get("system"), kw.get("tools")),
        _max_of(kw, "max_tokens"),
    ),
    response_usage=lambda response: anthropic_usage(getattr(response, "usage", None)),
    new_observer=_anthropic_stream_observer,
)


def _provider_refused(exc: BaseException) -> bool:
    """Nothing was generated or billed: the provider answered with an HTTP error status, or
    the SDK refused the arguments before sending anything.

    The SDKs check arguments before building the request: a missing required argument is a
    ``TypeError`` (Anthropic's ``max_tokens``), and Anthropic refuses a non-streaming call
    whose ``max_tokens`` could take over ten minutes with a ``ValueError``. Any other failure
    may have reached the provider, so its usage is unknown and the reservation is charged.
    """
    status = getattr(exc, "status_code", None)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "APIStatusError" in names and isinstance(status, int) and 400 <= status < 600:
        return True
    from_sdk = "OpenAIError" in names or "AnthropicError" in names
    if isinstance(exc, TypeError) and not from_sdk:
        return True
    return isinstance(exc, ValueError) and str(exc).startswith("Streaming is required")


def _model(kwargs: dict[str, Any]) -> str:
    model = kwargs.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInputError("a guarded call needs model= as a non-empty string")
    return model


def _open(guard: Guard, spec: _Method, kwargs: dict[str, Any]) -> Any:
    messages, max_tokens = spec.read_request(kwargs)
    choices = kwargs.get("n") if spec is OPENAI_CHAT else None
    return guard.open_call(
        spec.provider,
        _model(kwargs),
        messages=messages,
        max_tokens=max_tokens,
        choices=1 if choices is None else choices,
    )


def _body(result: Any, raw: bool) -> Any:
    """The SDK object of a call: a raw response's parsed body (the SDK caches it)."""
    return result.parse() if raw else result


def guarded_sync(
    guard: Guard,
    spec: _Method,
    method: Callable[..., Any],
    kwargs: dict[str, Any],
    raw: bool = False,
) -> Any:
    """Run one synchronous SDK call under the guard (``raw``: through ``with_raw_response``)."""
    call: GuardedCall = guard.portal.run(_open(guard, spec, kwargs))
    kwargs = spec.adjust(kwargs)
    try:
        result = method(**kwargs)
        body = _body(result, raw)
    except BaseException as exc:
        if _provider_refused(exc):
            guard.portal.run(guard.release_call(call))
        else:
            guard.portal.run(guard.finish_call(call, None))
        raise
    if kwargs.get("stream"):
        observe, usage = spec.new_observer()
        stream = GuardedStream(body, new_settlement(guard, call, observe, usage))
        return _RawResponse(result, stream) if raw else stream
    guard.portal.run(guard.finish_call(call, spec.response_usage(body)))
    return result


async def guarded_async(
    guard: Guard,
    spec: _Method,
    method: Callable[..., Any],
    kwargs: dict[str, Any],
    raw: bool = False,
) -> Any:
    """Run one asynchronous SDK call under the guard (``raw``: through ``with_raw_response``)."""
    call: GuardedCall = await _open(guard, spec, kwargs)
    kwargs = spec.adjust(kwargs)
    try:
        result = await method(**kwargs)
        body = _body(result, raw)
        parse_is_async = inspect.isawaitable(body)
        if parse_is_async:
            body = await body  # Anthropic's async raw responses parse in a coroutine
    except BaseException as exc:
        if _provider_refused(exc):
            await guard.release_call(call)
        else:
            await guard.finish_call(call, None)
        raise
    if kwargs.get("stream"):
        observe, usage = spec.new_observer()
        stream = GuardedAsyncStream(body, new_settlement(guard, call, observe, usage))
        return _RawResponse(result, stream, parse_is_async) if raw else stream
    await guard.finish_call(call, spec.response_usage(body))
    return result


class _Proxy:
    """Forwards every attribute it does not define to the wrapped object."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _RawResponse(_Proxy):
    """A raw response of a streamed call: ``parse()`` gives the guarded stream."""

    def __init__(self, target: Any, stream: Any, parse_is_async: bool = False) -> None:
        super().__init__(target)
        self._stream, self._parse_is_async = stream, parse_is_async

    def parse(self, **kwargs: Any) -> Any:
        """The guarded stream (reading it settles the call); awaitable where the SDK's is."""
        if kwargs:
            return self._target.parse(**kwargs)
        if self._parse_is_async:
            return self._stream_later()
        return self._stream

    async def _stream_later(self) -> Any:
        return self._stream


class _GuardedRaw(_Proxy):
    """``with_raw_response``: the same guarded calls, the raw HTTP response back."""

    def __init__(self, target: Any, guard: Guard, spec: _Method, is_async: bool) -> None:
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


class _Guarded(_Proxy):
    """A resource whose ``create`` (and for Anthropic ``stream``) are guarded."""

    def __init__(self, target: Any, guard: Guard, spec: _Method, is_async: bool) -> None:
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


class _GuardedMessages(_Guarded):
    def stream(self, **kwargs: Any) -> Any:
        """Anthropic's ``messages.stream`` helper, under the guard."""
        from smartspace_budget.guard.anthropic_stream import (
            GuardedAsyncMessageStreamManager,
            GuardedMessageStreamManager,
        )

        if self._is_async:
            return GuardedAsyncMessageStreamManager(self._guard, self._spec, self._target, kwargs)
        return GuardedMessageStreamManager(self._guard, self._spec, self._target, kwargs)


class _GuardedOpenAIResource(_Guarded):
    """Chat completions or responses: ``create``, ``parse`` and the ``stream`` helper."""

    def __init__(
        self,
        target: Any,
        guard: Guard,
        spec: _Method,
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
        from smartspace_budget.guard.anthropic_stream import (
            GuardedAsyncMessageStreamManager,
            GuardedMessageStreamManager,
        )

        if self._wants_usage:
            kwargs = {**kwargs, "stream_options": _with_usage(kwargs.get("stream_options"))}
        manager = (
            GuardedAsyncMessageStreamManager if self._is_async else GuardedMessageStreamManager
        )
        return manager(self._guard, self._spec, self._target, kwargs, self._final_usage)


class _OpenAIChat(_Proxy):
    def __init__(self, target: Any, guard: Guard, is_async: bool) -> None:
        super().__init__(target)
        self.completions = _GuardedOpenAIResource(
            target.completions, guard, OPENAI_CHAT, is_async, openai_chat_final_usage, True
        )


class _GuardedClient(_Proxy):
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


class _RawChat(_Proxy):
    def __init__(self, target: Any, completions: Any) -> None:
        super().__init__(target)
        self.completions = completions


class _RawOpenAI(_Proxy):
    """``client.with_raw_response`` of a guarded OpenAI client."""

    def __init__(self, target: Any, guarded: GuardedOpenAI) -> None:
        super().__init__(target)
        self.chat = _RawChat(target.chat, guarded.chat.completions.with_raw_response)
        self.responses = guarded.responses.with_raw_response


class _RawAnthropic(_Proxy):
    """``client.with_raw_response`` of a guarded Anthropic client."""

    def __init__(self, target: Any, guarded: GuardedAnthropic) -> None:
        super().__init__(target)
        self.messages = guarded.messages.with_raw_response


class GuardedOpenAI(_GuardedClient):
    """An ``OpenAI``/``AsyncOpenAI`` client whose chat completions and responses are guarded."""

    def __init__(self, client: Any, guard: Guard, is_async: bool) -> None:
        super().__init__(client)
        self.guard = guard
        self.chat = _OpenAIChat(client.chat, guard, is_async)
        self.responses = _GuardedOpenAIResource(
            client.responses, guard, OPENAI_RESPONSES, is_async, openai_responses_final_usage, False
        )

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


def _is_async(client: Any) -> bool:
    """Both SDKs derive every async client (Azure, Bedrock, Vertex...) from ``AsyncAPIClient``."""
    return any(cls.__name__ == "AsyncAPIClient" for cls in type(client).__mro__)


def wrap_client(guard: Guard, client: Any) -> Any:
    """Return the guarded proxy for ``client``; :class:`InvalidInputError` for other objects."""
    package = type(client).__module__.split(".", 1)[0]
    if package == "openai":
        return GuardedOpenAI(client, guard, _is_async(client))
    if package == "anthropic":
        return GuardedAnthropic(client, guard, _is_async(client))
    raise InvalidInputError(
        f"cannot guard a {type(client).__name__}: expected an openai or anthropic client"
    )
