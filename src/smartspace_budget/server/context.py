"""What every route needs from the running service, and the helpers they share.

``create_app`` puts one :class:`ServiceContext` on ``app.state.context``; routes receive it
through the ``Ctx`` dependency. Keeping it here (not in ``app.py``) lets the route modules,
including the dashboard's, import it without importing the app factory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from pydantic import BaseModel

from smartspace_budget.backend import LedgerBackend
from smartspace_budget.config import Settings
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import BudgetReservation, SpecModel
from smartspace_budget.models._base import loads_request
from smartspace_budget.models.ids import check_id
from smartspace_budget.server.middleware import decode_segment
from smartspace_budget.server.responses import ErrorBody
from smartspace_budget.server.telemetry import ServiceMetrics

if TYPE_CHECKING:
    from smartspace_budget.ledger.alert_state import AlertState

__all__ = [
    "READ_ERRORS",
    "SERIES_ERRORS",
    "WRITE_ERRORS",
    "Ctx",
    "ServiceContext",
    "body_doc",
    "documented_bodies",
    "error_responses",
    "path_id",
    "read_body",
    "refuse_unknown_query",
]


@dataclass
class ServiceContext:
    """The service's backend (reads and writes), reservation lookup, health probe, metrics,
    and the alert state monitors share (``routes/alerts.py``)."""

    settings: Settings
    backend: LedgerBackend
    get_reservation: Callable[[str], Awaitable[BudgetReservation]]
    ping: Callable[[], Awaitable[None]]
    metrics: ServiceMetrics
    alerts: AlertState | None = None


async def _context(request: Request) -> ServiceContext:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, which
    # cost every request a thread hop (a third of a status read's time under load).
    context: ServiceContext = request.app.state.context
    return context


Ctx = Annotated[ServiceContext, Depends(_context)]


_DECLARED_QUERY: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """400 for a query parameter the route does not declare (``?api_key=``, a typo of
    ``extended``): what the OpenAPI document does not allow is refused, not ignored.
    Installed on every route by ``create_app``."""
    if not request.scope.get("query_string"):
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    declared = _DECLARED_QUERY.get(id(route))
    if declared is None:
        declared = frozenset(_query_names(dependant))
        _DECLARED_QUERY[id(route)] = declared
    unknown = sorted(key for key in request.query_params if key not in declared)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        known = ", ".join(sorted(declared)) or "none"
        raise InvalidInputError(
            f"unknown query parameter(s) {shown}; this route takes: {known}", field=unknown[0]
        )


def path_id(value: str, name: str) -> str:
    """A decoded id from the path in the id grammar (:mod:`smartspace_budget.models.ids`);
    400 naming ``name`` otherwise, including escapes that are not UTF-8."""
    try:
        decoded = decode_segment(value)
    except UnicodeDecodeError:
        raise InvalidInputError(
            f"{name} is not percent-encoded UTF-8: {value[:60]!r}", field=name
        ) from None
    return check_id(decoded, name)


async def read_body(request: Request, model: type[M]) -> M:
    """The request body as ``model``, read strictly (:func:`~smartspace_budget.models.
    loads_request`: no duplicate keys, numbers from their raw text, depth bounded);
    400 for bytes that are not UTF-8 JSON."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("the request body is not UTF-8 text") from None
    return model.from_data(loads_request(text), wire=True)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Invalid input (InvalidInputError and its subclasses)",
        401: "Missing or invalid API key",
        402: "Budget exceeded or policy violated",
        403: "The key's scope does not allow this",
        404: "Not found, or not visible to this key",
        409: "Idempotency conflict or reservation already resolved",
        413: "Request body too large",
        422: "Well-formed values that contradict each other (InconsistentInputError)",
        429: "Rate limited; see Retry-After",
        503: "Ledger database unavailable",
        504: "Ledger database timed out",
    }
    return {code: {"model": ErrorBody, "description": described[code]} for code in codes}


READ_ERRORS = error_responses(400, 401, 403, 404, 429, 503, 504)
WRITE_ERRORS = error_responses(400, 401, 402, 403, 404, 409, 413, 422, 429, 503, 504)
SERIES_ERRORS = error_responses(400, 401, 403, 404, 422, 429, 503, 504)

M = TypeVar("M", bound=SpecModel)

documented_bodies: dict[str, type[BaseModel]] = {}
"""Request body models by name, added to the OpenAPI components by ``server.openapi``."""


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON body the route reads itself (exact Decimals)."""
    documented_bodies[model.__name__] = model
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }
