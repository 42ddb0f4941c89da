"""Operational endpoints: liveness, readiness (the ledger database answers) and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.responses import Response

from smartspace_budget.errors import BackendError, BackendUnavailableError
from smartspace_budget.server.auth import MetricsCaller
from smartspace_budget.server.context import READ_ERRORS, Ctx, error_responses
from smartspace_budget.server.responses import DecimalJSONResponse

__all__ = ["Health", "router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """``ok`` when the process answers; ``ready`` when the ledger database answers too."""

    status: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is up (no database access, no key needed)."""
    return DecimalJSONResponse({"status": "ok"})


@router.get("/readyz", response_model=Health, responses=error_responses(503, 504))
async def readyz(ctx: Ctx) -> Response:
    """The ledger database answers a trivial query, and so does Redis when rate limits are
    shared through it (no key needed)."""
    try:
        await ctx.ping()
    except BackendError:
        raise
    except Exception as exc:
        raise BackendUnavailableError(
            f"ledger database not reachable: {type(exc).__name__}"
        ) from None
    return DecimalJSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **READ_ERRORS},
)
async def metrics(caller: MetricsCaller, ctx: Ctx) -> Response:
    """Prometheus text format (an admin or a ``metrics`` key): requests, latency, spend,
    budget utilisation; with ``PROMETHEUS_MULTIPROC_DIR`` set, summed over the workers."""
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
