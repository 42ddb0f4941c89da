"""Reading token usage out of OpenAI and Anthropic responses and stream events.

The SDKs' response objects are read by attribute (plain dicts are accepted too), so the
guard works with any SDK version that keeps the documented field names. A function returns
``None`` when the object carries no usage: the caller then charges the reservation.
"""

from __future__ import annotations

from typing import Any

from smartspace_budget.guard.costing import ProviderUsage

__all__ = [
    "AnthropicStreamUsage",
    "anthropic_usage",
    "openai_chat_usage",
    "openai_responses_usage",
    "openai_stream_event_usage",
]


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: Any, name: str) -> int:
    value = _get(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def openai_chat_usage(usage: Any) -> ProviderUsage | None:
    """Chat Completions ``usage``: prompt includes cached tokens, completion includes reasoning."""
    if usage is None or _get(usage, "prompt_tokens") is None:
        return None
    prompt = _int(usage, "prompt_tokens")
    completion = _int(usage, "completion_tokens")
    details = _get(usage, "prompt_tokens_details")
    cached = min(_int(details, "cached_tokens"), prompt)
    written = min(_int(details, "cache_write_tokens"), prompt - cached)
    reasoning = min(_int(_get(usage, "completion_tokens_details"), "reasoning_tokens"), completion)
    return ProviderUsage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def openai_responses_usage(usage: Any) -> ProviderUsage | None:
    """Responses API ``usage``: ``input_tokens`` includes cached, output includes reasoning."""
    if usage is None or _get(usage, "input_tokens") is None:
        return None
    prompt = _int(usage, "input_tokens")
    completion = _int(usage, "output_tokens")
    cached = min(_int(_get(usage, "input_tokens_details"), "cached_tokens"), prompt)
    reasoning = min(_int(_get(usage, "output_tokens_details"), "reasoning_tokens"), completion)
    return ProviderUsage(
        input_tokens=prompt,
        output_tokens=completion,
        cached_input_tokens=cached,
        reasoning_tokens=reasoning,
    )


def openai_stream_event_usage(event: Any) -> ProviderUsage | None:
    """Usage carried by one streamed chat chunk or Responses event, if any.

    A chat stream with ``include_usage`` ends with a chunk whose ``usage`` is set; a Responses
    stream ends with ``response.completed`` (or ``.incomplete``/``.failed``) holding the usage.
    """
    event_type = _get(event, "type")
    if isinstance(event_type, str) and event_type.startswith("response."):
        if event_type in ("response.completed", "response.incomplete", "response.failed"):
            return openai_responses_usage(_get(_get(event, "response"), "usage"))
        return None
    return openai_chat_usage(_get(event, "usage"))


def anthropic_usage(usage: Any) -> ProviderUsage | None:
    """Messages ``usage``: ``input_tokens`` excludes cache reads and writes, so they are added."""
    if usage is None or _get(usage, "input_tokens") is None:
        return None
    fresh = _int(usage, "input_tokens")
    cache_read = _int(usage, "cache_read_input_tokens")
    cache_write = _int(usage, "cache_creation_input_tokens")
    output = _int(usage, "output_tokens")
    reasoning = min(_int(_get(usage, "output_tokens_details"), "reasoning_tokens"), output)
    return ProviderUsage(
        input_tokens=fresh + cache_read + cache_write,
        output_tokens=output,
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


class AnthropicStreamUsage:
    """Accumulates usage over a Messages stream.

    ``message_start`` carries the input side (and a provisional output count);
    ``message_delta`` carries the cumulative output count (and, in newer API versions, the
    final input counts). The usage is complete once a ``message_delta`` with usage arrived.
    """

    def __init__(self) -> None:
        self._fields: dict[str, int] = {}
        self.complete = False

    def observe(self, event: Any) -> None:
        """Take what one stream event says about usage."""
        event_type = _get(event, "type")
        if event_type == "message_start":
            self._merge(_get(_get(event, "message"), "usage"))
        elif event_type == "message_delta":
            usage = _get(event, "usage")
            if usage is not None:
                self._merge(usage)
                self.complete = True

    def _merge(self, usage: Any) -> None:
        if usage is None:
            return
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ):
            value = _get(usage, name)
            if isinstance(value, int) and not isinstance(value, bool):
                self._fields[name] = value

    def result(self) -> ProviderUsage | None:
        """The final usage, or ``None`` while the stream has not reported it."""
        if not self.complete or "input_tokens" not in self._fields:
            return None
        return anthropic_usage(self._fields)
