"""Turning SDK request arguments into plain ``{"role", "content"}`` messages for estimation.

Only text counts toward the estimate: images, files and tool definitions have no exact
tokenizer here, so they are left out (the provider's reported usage, charged at settlement,
includes them). The reservation can then be lower than the final charge for such requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["anthropic_messages", "content_text", "openai_messages", "responses_messages"]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of text blocks/parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
                continue
            text = _get(block, "text")
            if isinstance(text, str):
                parts.append(text)
            nested = _get(block, "content")
            if nested is not None and not isinstance(block, str):
                parts.append(content_text(nested))
        return "\n".join(p for p in parts if p)
    return ""


def _message(role: Any, content: Any) -> dict[str, str]:
    return {"role": str(role or "user"), "content": content_text(content)}


def openai_messages(messages: Iterable[Any]) -> list[dict[str, str]]:
    """Chat Completions ``messages`` as plain text messages."""
    return [_message(_get(m, "role"), _get(m, "content")) for m in messages]


def responses_messages(input_: Any, instructions: Any) -> list[dict[str, str]]:
    """Responses API ``input`` (a string or a list of items) and ``instructions``."""
    result: list[dict[str, str]] = []
    if isinstance(instructions, str) and instructions:
        result.append({"role": "system", "content": instructions})
    if isinstance(input_, str):
        result.append({"role": "user", "content": input_})
    elif isinstance(input_, Iterable):
        for item in input_:
            if isinstance(item, str):
                result.append({"role": "user", "content": item})
            else:
                result.append(_message(_get(item, "role"), _get(item, "content")))
    return result


def anthropic_messages(messages: Iterable[Any], system: Any) -> list[dict[str, str]]:
    """Messages API ``messages`` with ``system`` (string or text blocks) as a system message."""
    result: list[dict[str, str]] = []
    system_text = content_text(system)
    if system_text:
        result.append({"role": "system", "content": system_text})
    result.extend(_message(_get(m, "role"), _get(m, "content")) for m in messages)
    return result
