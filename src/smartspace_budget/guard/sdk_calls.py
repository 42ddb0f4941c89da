"""One SDK call under the guard: what to read from each method, and the call itself.

``guarded_sync``/``guarded_async`` open the guarded call (estimate and hold), make the SDK
call, and settle it from the response's usage, or hand back a stream that settles when it
stops. A request the provider answers with an HTTP error, or that the SDK refuses before
sending it (missing or impossible arguments), is not billed by the provider, so its hold is
released; any other failure (connection lost, timeout, error midway through a stream) leaves
the real usage unknown, so the reservation is charged as an estimate.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartspace_budget.errors import InvalidInputError
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
    PartialUsage,
    anthropic_usage,
    openai_chat_completion_usage,
    openai_images_usage,
    openai_response_usage,
    openai_stream_event_usage,
)

__all__ = [
    "ANTHROPIC_MESSAGES",
    "OPENAI_CHAT",
    "OPENAI_IMAGES",
    "OPENAI_RESPONSES",
    "Method",
    "Proxy",
    "RawResponse",
    "guarded_async",
    "guarded_sync",
    "image_output_tokens",
    "open_guarded_call",
    "provider_refused",
    "with_usage",
]

Observer = tuple[
    Callable[[Any], None],
    Callable[[], ProviderUsage | None],
    Callable[[], PartialUsage | None] | None,
]
"""A stream's usage observer: take an event, the final usage, what was reported so far."""


@dataclass(frozen=True)
class Method:
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

    return observe, lambda: seen[-1] if seen else None, None


def _anthropic_stream_observer() -> Observer:
    acc = AnthropicStreamUsage()
    return acc.observe, acc.result, acc.partial


def with_usage(stream_options: Any) -> dict[str, Any]:
    return {**(stream_options or {}), "include_usage": True}


def _include_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("stream"):
        kwargs = {**kwargs, "stream_options": with_usage(kwargs.get("stream_options"))}
    return kwargs


def _max_of(kwargs: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = kwargs.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


OPENAI_CHAT = Method(
    provider="openai",
    read_request=lambda kw: (
        openai_messages(kw.get("messages") or [], kw.get("tools"), kw.get("functions")),
        _max_of(kw, "max_completion_tokens", "max_tokens"),
    ),
    response_usage=openai_chat_completion_usage,
    new_observer=_openai_stream_observer,
    adjust=_include_usage,
)
OPENAI_RESPONSES = Method(
    provider="openai",
    read_request=lambda kw: (
        responses_messages(kw.get("input"), kw.get("instructions"), kw.get("tools")),
        _max_of(kw, "max_output_tokens"),
    ),
    response_usage=openai_response_usage,
    new_observer=_openai_stream_observer,
)
ANTHROPIC_MESSAGES = Method(
    provider="anthropic",
    read_request=lambda kw: (
        anthropic_messages(kw.get("messages") or [], kw.get("system"), kw.get("tools")),
        _max_of(kw, "max_tokens"),
    ),
    response_usage=lambda response: anthropic_usage(getattr(response, "usage", None)),
    new_observer=_anthropic_stream_observer,
)


# Output tokens of one image of the gpt-image models, by size and quality (OpenAI's image
# generation guide). "auto" (or a size the table does not know) is held at the largest.
_IMAGE_TOKENS = {
    "1024x1024": {"low": 272, "medium": 1056, "high": 4160},
    "1024x1536": {"low": 408, "medium": 1584, "high": 6240},
    "1536x1024": {"low": 400, "medium": 1568, "high": 6208},
}


def image_output_tokens(kwargs: dict[str, Any]) -> int:
    """The most image tokens an Images API call can produce: per image by its size and
    quality (the largest where they are ``auto`` or unknown), times ``n``."""
    sizes = [kwargs["size"]] if kwargs.get("size") in _IMAGE_TOKENS else list(_IMAGE_TOKENS)
    quality = kwargs.get("quality")
    qualities = [quality] if quality in ("low", "medium", "high") else ["high"]
    per_image = max(_IMAGE_TOKENS[size][q] for size in sizes for q in qualities)
    n = kwargs.get("n")
    images = n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1
    return per_image * images


def _openai_image_stream_observer() -> Observer:
    seen: list[ProviderUsage] = []

    def observe(event: Any) -> None:
        kind = getattr(event, "type", None)
        if isinstance(kind, str) and kind.endswith(".completed"):
            usage = openai_images_usage(event)
            if usage is not None:
                seen.append(usage)

    return observe, lambda: seen[-1] if seen else None, None


OPENAI_IMAGES = Method(
    provider="openai",
    read_request=lambda kw: (
        [{"role": "user", "content": kw.get("prompt") or ""}],
        image_output_tokens(kw),
    ),
    response_usage=openai_images_usage,
    new_observer=_openai_image_stream_observer,
)
"""``images.generate`` and ``images.edit``: the prompt is held as input, the largest output
the request can produce as output; input images of an edit are charged as reported."""


def provider_refused(exc: BaseException) -> bool:
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


def open_guarded_call(guard: Guard, spec: Method, kwargs: dict[str, Any]) -> Any:
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
    spec: Method,
    method: Callable[..., Any],
    kwargs: dict[str, Any],
    raw: bool = False,
) -> Any:
    """Run one synchronous SDK call under the guard (``raw``: through ``with_raw_response``)."""
    call: GuardedCall = guard.portal.run(open_guarded_call(guard, spec, kwargs))
    kwargs = spec.adjust(kwargs)
    try:
        result = method(**kwargs)
        body = _body(result, raw)
    except BaseException as exc:
        if provider_refused(exc):
            guard.portal.run(guard.release_call(call))
        else:
            guard.portal.run(guard.finish_call(call, None))
        raise
    if kwargs.get("stream"):
        observe, usage, partial = spec.new_observer()
        stream = GuardedStream(body, new_settlement(guard, call, observe, usage, partial))
        return RawResponse(result, stream) if raw else stream
    guard.portal.run(guard.finish_call(call, spec.response_usage(body)))
    return result


async def guarded_async(
    guard: Guard,
    spec: Method,
    method: Callable[..., Any],
    kwargs: dict[str, Any],
    raw: bool = False,
) -> Any:
    """Run one asynchronous SDK call under the guard (``raw``: through ``with_raw_response``)."""
    call: GuardedCall = await open_guarded_call(guard, spec, kwargs)
    kwargs = spec.adjust(kwargs)
    try:
        result = await method(**kwargs)
        body = _body(result, raw)
        parse_is_async = inspect.isawaitable(body)
        if parse_is_async:
            body = await body  # Anthropic's async raw responses parse in a coroutine
    except BaseException as exc:
        if provider_refused(exc):
            await guard.release_call(call)
        else:
            await guard.finish_call(call, None)
        raise
    if kwargs.get("stream"):
        observe, usage, partial = spec.new_observer()
        stream = GuardedAsyncStream(body, new_settlement(guard, call, observe, usage, partial))
        return RawResponse(result, stream, parse_is_async) if raw else stream
    await guard.finish_call(call, spec.response_usage(body))
    return result


class Proxy:
    """Forwards every attribute it does not define to the wrapped object."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class RawResponse(Proxy):
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
