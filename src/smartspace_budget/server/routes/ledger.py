"""Ledger writes (``/api/v1/ledger/...``): the LedgerClient protocol over HTTP.

Every write needs an ``Idempotency-Key`` header: the same key with the same body returns the
first result and writes nothing (so clients retry safely); with another body it is a 409.
Bodies are parsed with exact Decimals (never through float).

Who may write: spending (usage, reserve, settle, release) needs an ``account`` key for the
account, or an admin key; credits (deposit, refund, adjustment) and policy changes need an
admin key, so a key handed to an agent cannot top up its own budget or lift its limits.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from starlette.responses import Response

from smartspace_budget.errors import NotFoundError
from smartspace_budget.models import (
    AdjustRequest,
    BudgetPolicy,
    BudgetReservation,
    DepositRequest,
    LedgerEntry,
    RefundRequest,
    ReserveRequest,
    SettleRequest,
    UsageEvent,
)
from smartspace_budget.models.ids import IDEMPOTENCY_KEY_PATTERN, MAX_ID_LENGTH
from smartspace_budget.server.auth import RESERVATION_NOT_FOUND, Caller, Principal
from smartspace_budget.server.context import WRITE_ERRORS, Ctx, body_doc, path_id, read_body
from smartspace_budget.server.responses import DecimalJSONResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])

ACCOUNT = "/user/{user_id}/project/{project_id}"

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "Chosen by the client (1-200 visible ASCII characters); a retry with the same "
            "key writes nothing new."
        ),
    ),
]


def _ids(user_id: str, project_id: str) -> tuple[str, str]:
    return path_id(user_id, "user_id"), path_id(project_id, "project_id")


@router.post(
    ACCOUNT + "/deposit",
    response_model=LedgerEntry,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(DepositRequest),
)
async def deposit(
    user_id: str, project_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """Credit the account (admin)."""
    user, project = _ids(user_id, project_id)
    caller.require_admin_on(user, project)
    body = await read_body(request, DepositRequest)
    entry = await ctx.backend.deposit(
        user, project, body.amount, idempotency_key=key, reference=body.reference
    )
    ctx.metrics.observe_entry(entry)
    return DecimalJSONResponse(entry)


@router.post(
    ACCOUNT + "/usage",
    response_model=LedgerEntry,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(UsageEvent),
)
async def record_usage(
    user_id: str, project_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """Charge one provider call that had no reservation."""
    user, project = _ids(user_id, project_id)
    caller.require_spend(user, project)
    usage = await read_body(request, UsageEvent)
    entry = await ctx.backend.record_usage(user, project, usage, idempotency_key=key)
    ctx.metrics.observe_entry(entry)
    return DecimalJSONResponse(entry)


@router.post(
    ACCOUNT + "/refund",
    response_model=LedgerEntry,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(RefundRequest),
)
async def refund(
    user_id: str, project_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """Credit back earlier usage (admin); counted as negative spending in its period."""
    user, project = _ids(user_id, project_id)
    caller.require_admin_on(user, project)
    body = await read_body(request, RefundRequest)
    entry = await ctx.backend.refund(
        user,
        project,
        body.amount,
        idempotency_key=key,
        usage_entry_id=body.usage_entry_id,
        reason=body.reason,
    )
    ctx.metrics.observe_entry(entry)
    return DecimalJSONResponse(entry)


@router.post(
    ACCOUNT + "/adjust",
    response_model=LedgerEntry,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(AdjustRequest),
)
async def adjust(
    user_id: str, project_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """A signed correction of the balance, with its reason (admin)."""
    user, project = _ids(user_id, project_id)
    caller.require_admin_on(user, project)
    body = await read_body(request, AdjustRequest)
    entry = await ctx.backend.adjust(
        user, project, body.amount, reason=body.reason, idempotency_key=key
    )
    ctx.metrics.observe_entry(entry)
    return DecimalJSONResponse(entry)


@router.post(
    ACCOUNT + "/reserve",
    response_model=BudgetReservation,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(ReserveRequest),
)
async def reserve(
    user_id: str, project_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """Hold funds for a request in flight; 402 when the balance or the policy refuses."""
    user, project = _ids(user_id, project_id)
    caller.require_spend(user, project)
    body = await read_body(request, ReserveRequest)
    held = await ctx.backend.reserve(
        user,
        project,
        body.amount,
        ttl_seconds=body.ttl_seconds,
        idempotency_key=key,
        request_id=body.request_id,
    )
    return DecimalJSONResponse(held)


@router.put(
    ACCOUNT + "/policy",
    response_model=BudgetPolicy,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(BudgetPolicy),
)
async def set_policy(
    user_id: str, project_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """Replace the account's budget policy (admin); creates the account if needed."""
    user, project = _ids(user_id, project_id)
    caller.require_admin_on(user, project)
    policy = await read_body(request, BudgetPolicy)
    return DecimalJSONResponse(await ctx.backend.set_policy(user, project, policy))


async def _own_reservation(caller: Principal, ctx: Ctx, reservation_id: str) -> str:
    """The reservation id if the caller may spend on its account; otherwise a uniform 404."""
    rid = path_id(reservation_id, "reservation_id")
    try:
        held = await ctx.get_reservation(rid)
    except NotFoundError:
        raise NotFoundError(RESERVATION_NOT_FOUND) from None
    if not caller.owns(held.user_id, held.project_id):
        raise NotFoundError(RESERVATION_NOT_FOUND)
    caller.require_spend(held.user_id, held.project_id)
    return rid


@router.post(
    "/reservations/{reservation_id}/settle",
    response_model=LedgerEntry,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(SettleRequest),
)
async def settle(
    reservation_id: str, request: Request, key: IdempotencyKey, caller: Caller, ctx: Ctx
) -> Response:
    """Charge the real usage of a reserved request once and free the rest of the hold."""
    rid = await _own_reservation(caller, ctx, reservation_id)
    body = await read_body(request, SettleRequest)
    entry = await ctx.backend.settle(rid, body.usage, idempotency_key=key)
    ctx.metrics.observe_entry(entry)
    return DecimalJSONResponse(entry)


@router.post(
    "/reservations/{reservation_id}/release",
    response_model=BudgetReservation,
    responses=WRITE_ERRORS,
)
async def release(reservation_id: str, key: IdempotencyKey, caller: Caller, ctx: Ctx) -> Response:
    """Free the hold without charging."""
    rid = await _own_reservation(caller, ctx, reservation_id)
    return DecimalJSONResponse(await ctx.backend.release(rid, idempotency_key=key))
