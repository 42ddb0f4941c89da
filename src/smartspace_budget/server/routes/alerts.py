"""The shared alert state (``/api/v1/alerts/...``): what monitors over the service remember.

A :class:`~smartspace_budget.budgets.SpendingMonitor` announces each rule once per period.
Reading the ledger directly, it keeps that memory in the ledger's ``ledger_alert_state``
table; reading through this service (``HttpBackend``), it keeps it here, in the same table,
so every monitor process and replica of either kind, and a restarted one, agree on which
threshold fired in which period and which alerts were acknowledged
(``ledger/alert_state.py`` decides the claims atomically).

Who may do what, as on the other account routes: claiming, reporting and acknowledging
need an ``account`` key for the account (or an admin key); reading needs any key that may
read the account. Another tenant's account or alert answers the same 404 as one that does
not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from smartspace_budget.errors import InconsistentInputError, InvalidInputError, NotFoundError
from smartspace_budget.ledger.alert_state import AlertState
from smartspace_budget.models import SpendingAlert
from smartspace_budget.models._base import IsoDatetime
from smartspace_budget.models.alert_claims import (
    AlertAcknowledgement,
    AlertClaim,
    AlertClaimResult,
    AlertDocument,
    AlertReport,
)
from smartspace_budget.server.auth import Caller, Principal
from smartspace_budget.server.context import (
    READ_ERRORS,
    WRITE_ERRORS,
    Ctx,
    ServiceContext,
    body_doc,
    path_id,
    read_body,
)
from smartspace_budget.server.responses import DecimalJSONResponse

__all__ = ["ALERT_NOT_FOUND", "MAX_RECENT", "router"]

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

ACCOUNT = "/user/{user_id}/project/{project_id}"
ALERT_NOT_FOUND = "no such alert"
MAX_RECENT = 1000
"""Most alerts one read answers."""

Since = Annotated[
    IsoDatetime | None,
    Query(description="Alerts raised at or after this instant (RFC 3339); default an hour ago."),
]
IncludeAcknowledged = Annotated[bool, Query(description="Also list alerts already acknowledged.")]
Limit = Annotated[int, Query(ge=1, le=MAX_RECENT, description="Most alerts to answer.")]


def _state(ctx: ServiceContext) -> AlertState:
    if ctx.alerts is None:
        raise InvalidInputError("this service keeps no alert state")
    return ctx.alerts


def _spender(caller: Principal, user_id: str, project_id: str) -> tuple[str, str]:
    user, project = path_id(user_id, "user_id"), path_id(project_id, "project_id")
    caller.require_spend(user, project)
    return user, project


def _of_account(document: AlertDocument, user: str, project: str) -> SpendingAlert:
    if (document.user_id, document.project_id) != (user, project):
        raise InconsistentInputError(
            "the alert's user_id and project_id must be the account in the path", field="alert"
        )
    return document.alert()


def _since(since: datetime | None) -> datetime:
    if since is None:
        return datetime.now(UTC) - timedelta(hours=1)
    if since.tzinfo is None:
        raise InvalidInputError("since must be timezone-aware", field="since")
    return since


@router.post(
    ACCOUNT + "/claims",
    response_model=AlertClaimResult,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(AlertClaim),
)
async def claim_alert(
    user_id: str, project_id: str, request: Request, caller: Caller, ctx: Ctx
) -> Response:
    """Claim an alert for (rule, period, rank), atomically across every caller.

    ``claimed`` is true for the one caller that recorded it (and so delivers it), and for a
    retry of that same claim (same ``alert_id``); every other caller gets ``claimed: false``
    and the alert that stands for the period, at the same rank or a higher one.
    """
    user, project = _spender(caller, user_id, project_id)
    body = await read_body(request, AlertClaim)
    alert = _of_account(body.alert, user, project)
    if body.period_end <= body.period_start:
        raise InconsistentInputError("period_end must be after period_start", field="period_end")
    claimed, standing = await _state(ctx).claim(
        alert,
        rule=body.rule,
        period_start=body.period_start,
        period_end=body.period_end,
        rank=body.rank,
    )
    return DecimalJSONResponse(AlertClaimResult(claimed=claimed, alert=standing))


@router.post(
    ACCOUNT + "/reports",
    response_model=SpendingAlert,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(AlertReport),
)
async def report_alert(
    user_id: str, project_id: str, request: Request, caller: Caller, ctx: Ctx
) -> Response:
    """Keep an alert raised outside the monitor's periods (the guard's cost anomalies).

    Keeping the same alert again changes nothing; another alert under a kept id is a 409."""
    user, project = _spender(caller, user_id, project_id)
    body = await read_body(request, AlertReport)
    alert = _of_account(body.alert, user, project)
    state = _state(ctx)
    await state.record(alert, rule=body.rule)
    kept = await state.find(alert.alert_id)
    return DecimalJSONResponse(kept if kept is not None else alert)


@router.get(ACCOUNT + "/recent", response_model=list[SpendingAlert], responses=READ_ERRORS)
async def recent_alerts(
    user_id: str,
    project_id: str,
    caller: Caller,
    ctx: Ctx,
    since: Since = None,
    include_acknowledged: IncludeAcknowledged = False,
    limit: Limit = MAX_RECENT,
) -> Response:
    """The account's alerts raised at or after ``since``, newest first."""
    user, project = path_id(user_id, "user_id"), path_id(project_id, "project_id")
    caller.require_read(user, project)
    alerts = await _state(ctx).recent(
        since=_since(since),
        user_id=user,
        project_id=project,
        include_acknowledged=include_acknowledged,
        limit=limit,
    )
    return DecimalJSONResponse(alerts)


@router.get("/recent", response_model=list[SpendingAlert], responses=READ_ERRORS)
async def recent_alerts_everywhere(
    caller: Caller,
    ctx: Ctx,
    since: Since = None,
    include_acknowledged: IncludeAcknowledged = False,
    limit: Limit = MAX_RECENT,
) -> Response:
    """Alerts of every account this key may see (all for an admin key, its own for an
    account key) raised at or after ``since``, newest first."""
    caller.require_account_reader()
    state = _state(ctx)
    if caller.is_admin:
        alerts = await state.recent(
            since=_since(since), include_acknowledged=include_acknowledged, limit=limit
        )
    elif caller.user_id is not None and caller.project_id is not None:
        alerts = await state.recent(
            since=_since(since),
            user_id=caller.user_id,
            project_id=caller.project_id,
            include_acknowledged=include_acknowledged,
            limit=limit,
        )
    else:
        alerts = []
    return DecimalJSONResponse(alerts)


@router.post(
    "/{alert_id}/acknowledge",
    response_model=SpendingAlert,
    responses=WRITE_ERRORS,
    openapi_extra=body_doc(AlertAcknowledgement),
)
async def acknowledge_alert(alert_id: str, request: Request, caller: Caller, ctx: Ctx) -> Response:
    """Mark an alert handled (the first acknowledgement stands), for every monitor."""
    aid = path_id(alert_id, "alert_id")
    state = _state(ctx)
    kept = await state.find(aid)
    if kept is None or not caller.owns(kept.user_id, kept.project_id):
        raise NotFoundError(ALERT_NOT_FOUND)
    caller.require_spend(kept.user_id, kept.project_id)
    body = await read_body(request, AlertAcknowledgement)
    at = body.at if body.at is not None else datetime.now(UTC)
    return DecimalJSONResponse(await state.acknowledge(aid, at=at, by=body.by))
