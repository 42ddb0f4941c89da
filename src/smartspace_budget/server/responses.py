"""Exact JSON out, typed errors out: the response class and the exception handlers.

FastAPI's own JSON encoding turns a Decimal into a float or a string; the spec's documents
have amounts as JSON numbers, written exactly. :class:`DecimalJSONResponse` writes with
:func:`smartspace_budget.models.dumps`, and routes return it directly (their
``response_model`` only documents the shape).

Every error leaves as ``{"error": ClassName, "detail": message}`` with the class's status:
the package's errors, request validation (400 ``InvalidInputError``, not FastAPI's 422),
unknown routes (404), and anything unexpected (500, logged without request headers).

The spec's three example documents (status, pricing, analytics) are answered in exactly the
spec's keys unless the caller asks ``?extended=true`` (:data:`Extended`,
:func:`spec_shaped`); which keys those are is the model's ``SPEC_KEYS``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from smartspace_budget.errors import RateLimitedError, SmartspaceBudgetError, UnauthorizedError
from smartspace_budget.models import SpecModel, dumps

__all__ = [
    "EXTENDED_DESCRIPTION",
    "DecimalJSONResponse",
    "ErrorBody",
    "Extended",
    "RequestTooLargeError",
    "answer_error",
    "answer_unexpected",
    "error_response",
    "install_error_handlers",
    "json_body",
    "spec_shaped",
]

log = logging.getLogger("smartspace_budget.server")


class RequestTooLargeError(SmartspaceBudgetError):
    """The request body is larger than the service accepts."""

    status_code = 413


class ErrorBody(BaseModel):
    """Every error answer: the exception class name and a human message."""

    error: str
    detail: str


class DecimalJSONResponse(JSONResponse):
    """JSON with Decimals written exactly (the spec's amounts are numbers, never floats)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_body(content)


def json_body(content: Any) -> bytes:
    """The body :class:`DecimalJSONResponse` writes for ``content`` (models dumped first)."""
    if isinstance(content, BaseModel):
        content = content.model_dump(mode="python")
    elif isinstance(content, list):
        content = [
            item.model_dump(mode="python") if isinstance(item, BaseModel) else item
            for item in content
        ]
    return dumps(content).encode("utf-8")


EXTENDED_DESCRIPTION = (
    "false (default): exactly the keys of the spec's example document, null where unknown "
    "or unlimited. true: those keys plus this service's extensions that hold a value "
    "(status: currency, timezone, as_of, low_balance_threshold; pricing: currency, version, "
    "source, cached-input and cache-write prices, tiers, request_price...; analytics: "
    "period, period_start, period_end, requests_by_model, currency). HttpBackend always "
    "asks for true."
)

Extended = Annotated[bool, Query(description=EXTENDED_DESCRIPTION)]
"""The ``extended`` query parameter of the routes answering a spec example document."""


def spec_shaped(content: SpecModel | Sequence[SpecModel], extended: bool) -> Any:
    """``content`` as the spec's keys only, or with our extensions when ``extended``."""
    if isinstance(content, SpecModel):
        return content.extended_data() if extended else content.spec_data()
    return [spec_shaped(item, extended) for item in content]


_SERVER_SIDE = {
    503: "the service cannot reach its database or rate-limit store now; retry later",
    504: "the service's database did not answer in time; retry later",
}


def error_response(exc: SmartspaceBudgetError) -> DecimalJSONResponse:
    """The ``{"error", "detail"}`` answer for one of the package's errors.

    A server-side failure (5xx) answers a fixed sentence: its own message may hold the
    database driver's text, SQL or table names, which a caller must never see (the message
    is logged instead, see :func:`_on_budget_error`).
    """
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    body = exc.to_dict()
    if exc.status_code >= 500:
        body["detail"] = _SERVER_SIDE.get(exc.status_code, "internal error")
    return DecimalJSONResponse(body, status_code=exc.status_code, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)[:1000] or "invalid request"


async def _on_budget_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmartspaceBudgetError)
    if exc.status_code >= 500:
        log.warning("%s %s answered %s: %s", request.method, request.url.path, exc.status_code, exc)
    return error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    body = {"error": "InvalidInputError", "detail": _describe_validation(exc)}
    return DecimalJSONResponse(body, status_code=400)


async def _on_unicode_error(request: Request, exc: Exception) -> Response:
    # A path or query value whose escapes are not UTF-8, met before a route could name it.
    body = {"error": "InvalidInputError", "detail": "the request holds text that is not UTF-8"}
    return DecimalJSONResponse(body, status_code=400)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    name = {404: "NotFoundError", 405: "MethodNotAllowedError"}.get(exc.status_code, "HTTPError")
    return DecimalJSONResponse(
        {"error": name, "detail": str(exc.detail)},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return DecimalJSONResponse({"error": "InternalError", "detail": "internal error"}, 500)


async def answer_error(request: Request, exc: SmartspaceBudgetError) -> Response:
    """What the installed handler answers for ``exc`` (for code that runs outside FastAPI)."""
    return await _on_budget_error(request, exc)


async def answer_unexpected(request: Request, exc: Exception) -> Response:
    """What the installed handler answers (and logs) for an unexpected ``exc``."""
    return await _on_unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to ``{"error", "detail"}`` (see the module docstring)."""
    app.add_exception_handler(SmartspaceBudgetError, _on_budget_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(UnicodeDecodeError, _on_unicode_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
