"""ASGI middleware of the service: encoded slashes in ids, and the request body limit.

Both are plain ASGI (no ``BaseHTTPMiddleware``), so a GET pays nothing but a dict lookup.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartspace_budget.server.responses import RequestTooLargeError, error_response

__all__ = ["BodyLimitMiddleware", "EncodedSlashMiddleware", "decode_segment", "routing_path"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def decode_segment(value: str) -> str:
    """The original value of a path parameter kept encoded by :class:`EncodedSlashMiddleware`.

    Raises :class:`UnicodeDecodeError` when the escapes are not UTF-8 (``%FF``, a lone
    ``%C3``): such a segment is refused, never read as U+FFFD.
    """
    return unquote(value, errors="strict") if "%" in value else value


class EncodedSlashMiddleware:
    """Let ids contain ``/``: route on the raw path with ``%2F`` (and ``%25``) still encoded.

    Servers decode ``%2F`` before routing, so ``user/a%2Fb/project/p`` would look like an
    extra path segment. This keeps ``%2F`` and ``%25`` encoded in ``scope["path"]`` and
    routes decode each parameter once with :func:`decode_segment`. A model name sent with
    real slashes (``/model/meta-llama/llama-3``) still works through the ``:path`` routes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%" in raw:
                # In place, not on a copy: the metrics middleware outside reads the route
                # the router leaves in this same scope.
                scope["path"] = routing_path(raw)
        await self.app(scope, receive, send)


def routing_path(raw_path: bytes) -> str:
    """The path routes match, from the raw one: each segment decoded, then ``/`` and ``%``
    encoded again (see :class:`EncodedSlashMiddleware`)."""
    text = raw_path.decode("latin-1").split("?", 1)[0]
    return "/".join(_routing_segment(part) for part in text.split("/"))


def _routing_segment(part: str) -> str:
    try:
        decoded = unquote(part, errors="strict")
    except UnicodeDecodeError:
        # Not UTF-8: every byte kept escaped, so the route's parameter refuses it by name.
        return quote(unquote_to_bytes(part), safe="")
    return quote(decoded, safe="!$&'()*+,;=:@~-._")


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 before any route reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; let the app see the disconnect
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLargeError(f"request body is larger than {self.max_bytes} bytes")
        response = error_response(error)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
