"""Turning SDK request arguments into plain ``{"role", "content"}`` messages for estimation.

What is sent as text is counted: message text, system prompts and instructions, tool (and
legacy function) definitions as their JSON, tool calls' arguments and tool results. Images,
audio and files are not: there is no exact tokenizer for them here, so a request carrying
them is held for its text only and the provider's reported usage, charged at settlement,
includes them. The JSON of a tool definition is close to what the provider feeds the model,
but each provider wraps it in its own hidden prompt, so the real count can differ by a few
tokens per tool either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "anthropic_messages",
    "content_text",
    "openai_messages",
    "responses_messages",
    "tools_message",
]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _plain(value: Any) -> Any:
    """SDK objects (pydantic models) as plain data, so they can be written as JSON."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Compact JSON of request data, as it travels to the provider."""
    if isinstance(value, str):
        return value
    return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False, default=str)


def _block_text(block: Any) -> list[str]:
    parts: list[str] = []
    text = _get(block, "text")
    if isinstance(text, str):
        parts.append(text)
    # Anthropic tool_use blocks carry their arguments as ``input``.
    arguments = _get(block, "input") if _get(block, "type") == "tool_use" else None
    if arguments is not None:
        parts.append(json_text(arguments))
    nested = _get(block, "content")
    if nested is not None:
        parts.append(content_text(nested))
    return parts


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of text/tool blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            else:
                parts.extend(_block_text(block))
        return "\n".join(p for p in parts if p)
    return ""


def _message(role: Any, content: Any) -> dict[str, str]:
    return {"role": str(role or "user"), "content": content_text(content)}


def tools_message(*definitions: Any) -> list[dict[str, str]]:
    """The tool definitions (each argument a list of them, or None) as one system message."""
    given = [d for d in definitions if d]
    if not given:
        return []
    return [{"role": "system", "content": "\n".join(json_text(d) for d in given)}]


def _openai_message(message: Any) -> dict[str, str]:
    result = _message(_get(message, "role"), _get(message, "content"))
    calls = _get(message, "tool_calls") or []
    legacy = _get(message, "function_call")
    functions = [_get(c, "function") for c in calls] + ([legacy] if legacy else [])
    extra = [
        f"{_get(f, 'name') or ''}{_get(f, 'arguments') or ''}" for f in functions if f is not None
    ]
    if extra:
        result["content"] = "\n".join(p for p in (result["content"], *extra) if p)
    return result


def openai_messages(
    messages: Iterable[Any], tools: Any = None, functions: Any = None
) -> list[dict[str, str]]:
    """Chat Completions ``messages``, ``tools`` and legacy ``functions`` as plain messages."""
    return tools_message(tools, functions) + [_openai_message(m) for m in messages]


def responses_messages(input_: Any, instructions: Any, tools: Any = None) -> list[dict[str, str]]:
    """Responses API ``input`` (a string or a list of items), ``instructions`` and ``tools``."""
    result: list[dict[str, str]] = tools_message(tools)
    if isinstance(instructions, str) and instructions:
        result.append({"role": "system", "content": instructions})
    if isinstance(input_, str):
        result.append({"role": "user", "content": input_})
    elif isinstance(input_, Iterable):
        for item in input_:
            if isinstance(item, str):
                result.append({"role": "user", "content": item})
                continue
            kind = _get(item, "type")
            if kind == "function_call":
                text = f"{_get(item, 'name') or ''}{_get(item, 'arguments') or ''}"
                result.append({"role": "assistant", "content": text})
            elif kind == "function_call_output":
                result.append({"role": "tool", "content": json_text(_get(item, "output") or "")})
            else:
                result.append(_message(_get(item, "role"), _get(item, "content")))
    return result


def anthropic_messages(
    messages: Iterable[Any], system: Any, tools: Any = None
) -> list[dict[str, str]]:
    """Messages API ``messages`` with ``system`` and ``tools`` as system messages."""
    result: list[dict[str, str]] = tools_message(tools)
    system_text = content_text(system)
    if system_text:
        result.append({"role": "system", "content": system_text})
    result.extend(_message(_get(m, "role"), _get(m, "content")) for m in messages)
    return result
