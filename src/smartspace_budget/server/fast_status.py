"""``GET .../status`` and ``GET .../balance`` answered without FastAPI's per-request machinery.

Budget status is what every budget check fetches, and balance the other read a check makes,
so they are the service's hot path. Through FastAPI one status answer cost about 0.35 ms of
CPU, 60% of it routing, dependency solving and response plumbing rather than the read
itself. :class:`BudgetReadFastPath` answers both ahead of the app's middleware with the very
same parts — :func:`~smartspace_budget.server.auth.admit` (keys and rate limits),
:func:`~smartspace_budget.server.context.path_id`, the principal's scope check, the backend
read, the metrics and the request log, the JSON :class:`DecimalJSONResponse` writes and the
installed error answers — so the answer is byte for byte the route's
(``tests/server/test_fast_status.py`` compares them) at several times the rate.

The FastAPI routes stay: they document the endpoints in OpenAPI and answer what this layer
leaves alone (any other method or path, an app whose ledger is not open yet, a request
with a body, or a status ``extended`` value that is not a boolean, which the route refuses
with its own 400). Ids with percent-escapes are matched as the encoded-slash middleware has
the routes match them. ``extended`` is read as the route reads it: the last occurrence,
through pydantic's bool.

Between two writes an account's status is the same answer (the ledger remembers it, see
``ledger/read_memo.py``), so :class:`RenderedStatus` keeps the JSON it was written as and
writes only what changed since: nothing, or the ``as_of`` instant at the end of an
``extended`` body. A status that differs in any field is written afresh.
"""

from __future__ import annotations

import re
import time
from operator import attrgetter, is_

from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from smartspace_budget.errors import SmartspaceBudgetError
from smartspace_budget.models import BudgetStatus, dumps
from smartspace_budget.server.auth import admit, bearer_token
from smartspace_budget.server.context import ServiceContext, path_id
from smartspace_budget.server.middleware import routing_path
from smartspace_budget.server.request_log import log_error, log_request
from smartspace_budget.server.responses import (
    answer_error,
    answer_unexpected,
    json_body,
    spec_shaped,
)
from smartspace_budget.server.telemetry import ServiceMetrics

__all__ = [
    "BALANCE_TEMPLATE",
    "STATUS_TEMPLATE",
    "BudgetReadFastPath",
    "LedgerService",
    "RenderedStatus",
]

STATUS_TEMPLATE = "/api/v1/budgets/user/{user_id}/project/{project_id}/status"
BALANCE_TEMPLATE = "/api/v1/budgets/user/{user_id}/project/{project_id}/balance"
# What the router's ``{user_id}`` / ``{project_id}`` (str convertor: ``[^/]+``) match.
_READ_PATH = re.compile(r"/api/v1/budgets/user/([^/]+)/project/([^/]+)/(status|balance)")


_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding"})
_JSON_TYPE = (b"content-type", b"application/json")
_BOOL = TypeAdapter(bool)
_STATUS_QUERY = frozenset({"extended"})
_NO_QUERY: frozenset[str] = frozenset()


# Everything a status body is written from but its ``as_of`` instant.
_CONTENT = attrgetter(*(name for name in BudgetStatus.model_fields if name != "as_of"))
_AS_OF_KEY = b', "as_of": '
_MAX_RENDERED = 10_000


class RenderedStatus:
    """Status bodies as last written, per (account, ``extended``), with the values they show.

    An extended body ends with ``"as_of"`` (the last field); it is kept without that tail,
    which is written anew for each answer. A body whose shape is not that (no ``as_of``, or
    other keys after it) is kept whole and reused only for a status without ``as_of``.
    """

    def __init__(self) -> None:
        self._bodies: dict[tuple[str, str, bool], tuple[tuple[object, ...], bytes, bool]] = {}

    def body(self, user: str, project: str, extended: bool, status: BudgetStatus) -> bytes:
        content = _CONTENT(status)
        key = (user, project, extended)
        kept = self._bodies.get(key)
        as_of = status.as_of if extended else None
        tail = None if as_of is None else _AS_OF_KEY + dumps(as_of).encode() + b"}"
        # The very same values (a remembered status's copies share them), not merely equal
        # ones: Decimal("1.0") == Decimal("1.00"), but they are written differently.
        if kept is not None and all(map(is_, kept[0], content)):
            _, head, timed = kept
            if tail is None and not timed:
                return head
            if tail is not None and timed:
                return head + tail
        body = json_body(spec_shaped(status, extended))
        if len(self._bodies) >= _MAX_RENDERED:
            self._bodies.clear()
        if tail is not None and body.endswith(tail):
            self._bodies[key] = (content, body[: -len(tail)], True)
        elif tail is None:
            self._bodies[key] = (content, body, False)
        return body


def _extended(query_string: bytes, allowed: frozenset[str]) -> bool | None:
    """The route's ``extended`` parameter, or ``None`` when the route would refuse it (a
    value that is not a boolean, or a query parameter the route does not declare)."""
    if not query_string:
        return False
    params = QueryParams(query_string)
    if any(key not in allowed for key in params):
        return None
    value = params.get("extended")
    if value is None:
        return False
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return None


class BudgetReadFastPath:
    """Answers ``GET`` status and balance ahead of the app's middleware (see the module).

    It wraps the whole middleware stack (:class:`LedgerService` puts it there), so it does
    itself what the stack would do for this request: it counts and times it in the request
    metrics, answers the package's errors with the installed handler's answer, and answers
    anything unexpected with the installed 500 answer before re-raising it to the server,
    which logs it (as Starlette's ``ServerErrorMiddleware`` does). Requests it leaves to the
    stack: other methods and paths, a request carrying a body, and an ``extended`` the route
    would refuse.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.rendered = RenderedStatus()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path")
        path = routing_path(raw_path) if raw_path and b"%" in raw_path else scope["path"]
        match = _READ_PATH.fullmatch(path)
        state = scope["app"].state
        context: ServiceContext | None = getattr(state, "context", None)
        if match is None or context is None:
            await self.app(scope, receive, send)
            return
        status_read = match[3] == "status"
        extended = _extended(scope["query_string"], _STATUS_QUERY if status_read else _NO_QUERY)
        if extended is None:
            await self.app(scope, receive, send)
            return
        template = STATUS_TEMPLATE if status_read else BALANCE_TEMPLATE
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:  # the first one, as the route's header lookup
                    authorization = value.decode("latin-1")
            elif name in _BODY_HEADERS:
                await self.app(scope, receive, send)
                return
        started = time.perf_counter()
        client = scope.get("client")
        try:
            caller = await admit(
                state.authenticator,
                state.rate_limiter,
                bearer_token(authorization),
                client[0] if client else "unknown",
                state=scope.setdefault("state", {}),
            )
            user, project = path_id(match[1], "user_id"), path_id(match[2], "project_id")
            caller.require_read(user, project)
            if status_read:
                status = await context.backend.get_budget_status(user, project)
                context.metrics.observe_status(user, project, status)
                body = self.rendered.body(user, project, extended, status)
            else:
                balance = await context.backend.get_balance(user, project)
                body = json_body(balance)
        except SmartspaceBudgetError as exc:
            response = await answer_error(Request(scope), exc)
            await _answer(response, context.metrics, template, scope, receive, send, started)
            return
        except Exception as exc:
            log_error(scope, template, exc)
            response = await answer_unexpected(Request(scope), exc)
            await _answer(response, context.metrics, template, scope, receive, send, started)
            raise
        # What DecimalJSONResponse sends, without building one per answer.
        headers = [(b"content-length", b"%d" % len(body)), _JSON_TYPE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        context.metrics.observe_request("GET", template, 200, seconds)
        log_request(scope, template, 200, seconds)


async def _answer(
    response: Response,
    metrics: ServiceMetrics,
    template: str,
    scope: Scope,
    receive: Receive,
    send: Send,
    started: float,
) -> None:
    """Send an error answer, count and log it, as the metrics middleware would have."""
    await response(scope, receive, send)
    seconds = time.perf_counter() - started
    metrics.observe_request("GET", template, response.status_code, seconds)
    log_request(scope, template, response.status_code, seconds)


class LedgerService(FastAPI):
    """The service's FastAPI app, with status and balance answered ahead of its middleware.

    Starlette builds the middleware stack on the first request; this wraps whatever it
    built in :class:`BudgetReadFastPath` (unless ``fast_status`` is off), which skips the
    middleware's layers for the reads every budget check makes (about a fifth of a status
    answer's time).
    """

    fast_status: bool = True

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return BudgetReadFastPath(stack) if self.fast_status else stack
