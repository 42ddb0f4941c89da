"""One log line per request, and one per unexpected error, with what an operator searches by.

Each line carries the request id (the caller's ``X-Request-ID`` when it is a plain token,
else a new one), the method, the route *template* (never the concrete path, which holds
ids and could hold anything a client typed), the status, the duration, and — once the key
was checked — the key's id and its account. The key itself is never logged: nothing here
reads the ``Authorization`` header, the query string or the body.

Lines go to the ``smartspace_budget.requests`` logger as records whose ``request``
attribute holds those fields; ``server/log_format.py`` writes them as JSON or as text.
When that logger is off (a library embedding the app without logging configured) a
request costs one level check.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from starlette.types import Scope

from smartspace_budget.server.auth import CALLER_STATE, Principal

__all__ = [
    "REQUEST_LOGGER",
    "QueryRedactingFilter",
    "log_error",
    "log_request",
    "quiet_access_log_queries",
    "request_fields",
]

REQUEST_LOGGER = "smartspace_budget.requests"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ID_STATE = "request_id"

log = logging.getLogger(REQUEST_LOGGER)


def _request_id(scope: Scope) -> str:
    """The request's id, the same for its request line and its error line."""
    state = scope.setdefault("state", {})
    known = state.get(_ID_STATE)
    if known is not None:
        return str(known)
    chosen = None
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                chosen = text
            break
    state[_ID_STATE] = chosen = chosen or uuid.uuid4().hex
    return chosen


def request_fields(scope: Scope, template: str) -> dict[str, Any]:
    """The fields every line about this request carries (see the module docstring)."""
    caller = scope.get("state", {}).get(CALLER_STATE)
    fields: dict[str, Any] = {
        "request_id": _request_id(scope),
        "method": scope.get("method"),
        "route": template,
    }
    if isinstance(caller, Principal):
        fields["key_id"] = caller.key_id
        if caller.user_id is not None:
            fields["user_id"] = caller.user_id
            fields["project_id"] = caller.project_id
    return fields


def log_request(scope: Scope, template: str, status: int, seconds: float) -> None:
    """Log one answered request (at INFO; 5xx at ERROR)."""
    level = logging.ERROR if status >= 500 else logging.INFO
    if not log.isEnabledFor(level):
        return
    fields = request_fields(scope, template)
    fields["status"] = status
    fields["duration_ms"] = round(seconds * 1000, 3)
    log.log(level, "request", extra={"request": fields})


def log_error(scope: Scope, template: str, exc: BaseException) -> None:
    """Log an unexpected error while answering, with its traceback."""
    if not log.isEnabledFor(logging.ERROR):
        return
    fields = request_fields(scope, template)
    fields["error"] = type(exc).__name__
    log.error("unexpected error", exc_info=exc, extra={"request": fields})


class QueryRedactingFilter(logging.Filter):
    """Cut the query string out of uvicorn's access-log lines.

    ``serve`` turns uvicorn's access log off, but a deployment that runs uvicorn itself
    (``uvicorn --factory ...create_app_from_env``) gets its lines, and a client that puts a
    key in the query (``?api_key=...``, which the service refuses) would see it written
    there. The path stays; the query becomes ``?…``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            if mark:
                record.args = (*args[:2], path + "?…", *args[3:])
        return True


_ACCESS_FILTER = QueryRedactingFilter()


def quiet_access_log_queries() -> None:
    """Install :class:`QueryRedactingFilter` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if _ACCESS_FILTER not in access.filters:
        access.addFilter(_ACCESS_FILTER)
