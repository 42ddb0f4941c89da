"""The spec's pricing endpoints (``/api/v1/pricing/...``); any valid key may read prices.

Model names may contain slashes (``openrouter/meta-llama/llama-3-70b``), sent either as
real slashes or as ``%2F``. The history route is matched first, so ``.../history`` is never
read as part of a model name; a model whose name itself ends in ``/history`` must be sent
with its slashes encoded.

A price version is answered in exactly the spec's keys (prices and context limits we do not
know are null), with our extensions (version, source, cached-token prices, tiers...) only
for ``?extended=true``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.responses import Response

from smartspace_budget.backend._cached import current_prices
from smartspace_budget.models import PricingData
from smartspace_budget.models._base import IsoDatetime
from smartspace_budget.models.ids import Identifier
from smartspace_budget.models.pricing import MAX_HISTORY_DAYS
from smartspace_budget.server.auth import Caller
from smartspace_budget.server.context import READ_ERRORS, Ctx, path_id
from smartspace_budget.server.responses import DecimalJSONResponse, Extended, spec_shaped

__all__ = ["ModelPrice", "ModelRef", "router"]

router = APIRouter(prefix="/api/v1/pricing", tags=["pricing"])

MODEL = "/provider/{provider}/model/{model:path}"


class ModelRef(BaseModel):
    """One priced (provider, model) pair."""

    provider: str
    model: str


@router.get("/models", response_model=list[ModelRef], responses=READ_ERRORS)
async def list_models(
    caller: Caller,
    ctx: Ctx,
    provider: Annotated[Identifier | None, Query()] = None,
) -> Response:
    """Known (provider, model) pairs, optionally for one provider."""
    pairs = await ctx.backend.list_models(provider)
    return DecimalJSONResponse([{"provider": p, "model": m} for p, m in pairs])


class ModelPrice(BaseModel):
    """One known model and the price version in force (``null`` when it has none now)."""

    provider: str
    model: str
    pricing: PricingData | None


@router.get("/prices", response_model=list[ModelPrice], responses=READ_ERRORS)
async def list_prices(
    caller: Caller,
    ctx: Ctx,
    provider: Annotated[Identifier | None, Query()] = None,
    extended: Extended = False,
) -> Response:
    """Every known model with its price in force, read in one pass (``prices list``)."""
    rows = await current_prices(ctx.backend, provider)
    return DecimalJSONResponse(
        [
            {
                "provider": p,
                "model": m,
                "pricing": None if price is None else spec_shaped(price, extended),
            }
            for p, m, price in rows
        ]
    )


@router.get(MODEL + "/history", response_model=list[PricingData], responses=READ_ERRORS)
async def get_price_history(
    provider: str,
    model: str,
    caller: Caller,
    ctx: Ctx,
    days: Annotated[int | None, Query(ge=0, le=MAX_HISTORY_DAYS)] = None,
    extended: Extended = False,
) -> Response:
    """Price versions effective in the last ``days`` (all when omitted), oldest first."""
    name, model_name = path_id(provider, "provider"), path_id(model, "model")
    history = await ctx.backend.get_price_history(name, model_name, days=days)
    return DecimalJSONResponse(spec_shaped(history, extended))


@router.get(MODEL, response_model=PricingData, responses=READ_ERRORS)
async def get_pricing(
    provider: str,
    model: str,
    caller: Caller,
    ctx: Ctx,
    at: Annotated[IsoDatetime | None, Query(description="Instant (default now).")] = None,
    extended: Extended = False,
) -> Response:
    """The price version in force for the provider/model (at ``at``, default now)."""
    name, model_name = path_id(provider, "provider"), path_id(model, "model")
    pricing = await ctx.backend.get_pricing(name, model_name, at=at)
    return DecimalJSONResponse(spec_shaped(pricing, extended))
