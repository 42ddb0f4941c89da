"""The spec's budget endpoints (``/api/v1/budgets/...``) and the extra reads of the Backend.

Paths and JSON shapes are the spec's: status and analytics answer exactly the spec's keys,
with our extensions only for ``?extended=true``. Every account route first asks the caller's
:class:`~smartspace_budget.server.auth.Principal` whether it may see the account; a key for
another tenant gets the same 404 a missing account would.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import Response

from smartspace_budget.budgets.budget_tracker import BudgetTracker
from smartspace_budget.errors import InconsistentInputError, InvalidInputError
from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetStatus,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
)
from smartspace_budget.models._base import IsoDatetime
from smartspace_budget.models.ids import MAX_ID_LENGTH, TARGET_PATTERN, Identifier
from smartspace_budget.models.output_sketch import DEFAULT_MIN_SAMPLES, OutputHistory
from smartspace_budget.models.replay import ReplayReport, UsageShape
from smartspace_budget.periods import SpendingPeriod
from smartspace_budget.pricing.prediction import OutputHistorySource
from smartspace_budget.pricing.replay import UsageShapeSource, parse_target
from smartspace_budget.server.auth import Caller
from smartspace_budget.server.context import READ_ERRORS, SERIES_ERRORS, Ctx, path_id
from smartspace_budget.server.responses import DecimalJSONResponse, Extended, spec_shaped

__all__ = ["MAX_REPLAY_TARGETS", "MAX_SERIES_WINDOWS", "router"]

router = APIRouter(prefix="/api/v1/budgets", tags=["budgets"])

ACCOUNT = "/user/{user_id}/project/{project_id}"
MAX_SERIES_WINDOWS = 10_000
"""Most windows one series request may ask for (a year of hours is 8,784)."""

_SHORTEST = {
    SpendingPeriod.HOURLY: timedelta(minutes=30),  # half-hour DST shifts make short hours
    SpendingPeriod.DAILY: timedelta(hours=22),
    SpendingPeriod.WEEKLY: timedelta(days=6),
    SpendingPeriod.MONTHLY: timedelta(days=27),
    SpendingPeriod.YEARLY: timedelta(days=364),
}

At = Annotated[
    IsoDatetime | None,
    Query(description="Instant whose window is wanted (timezone-aware); default now."),
]


def _account(caller: Caller, user_id: str, project_id: str) -> tuple[str, str]:
    user, project = path_id(user_id, "user_id"), path_id(project_id, "project_id")
    caller.require_read(user, project)
    return user, project


@router.get(ACCOUNT + "/balance", response_model=Balance, responses=READ_ERRORS)
async def get_balance(user_id: str, project_id: str, caller: Caller, ctx: Ctx) -> Response:
    """Total, available and reserved balance of the account."""
    user, project = _account(caller, user_id, project_id)
    return DecimalJSONResponse(await ctx.backend.get_balance(user, project))


@router.get(ACCOUNT + "/status", response_model=BudgetStatus, responses=READ_ERRORS)
async def get_budget_status(
    user_id: str, project_id: str, caller: Caller, ctx: Ctx, extended: Extended = False
) -> Response:
    """The spec's budget status: balances, today's, this month's and total spend, limits.

    Answered by ``fast_status.BudgetReadFastPath`` whenever the app runs with it; this route
    documents the endpoint and answers the same when it does not.
    """
    user, project = _account(caller, user_id, project_id)
    status = await ctx.backend.get_budget_status(user, project)
    ctx.metrics.observe_status(user, project, status)
    return DecimalJSONResponse(spec_shaped(status, extended))


@router.get(ACCOUNT + "/spending/{period}", response_model=SpendingSummary, responses=READ_ERRORS)
async def get_spending(
    user_id: str, project_id: str, period: SpendingPeriod, caller: Caller, ctx: Ctx, at: At = None
) -> Response:
    """Net spending and request count in the calendar window of ``period`` containing ``at``."""
    user, project = _account(caller, user_id, project_id)
    return DecimalJSONResponse(await ctx.backend.get_spending(user, project, period, at=at))


@router.get(ACCOUNT + "/analytics", response_model=SpendingAnalytics, responses=READ_ERRORS)
async def get_analytics(
    user_id: str,
    project_id: str,
    caller: Caller,
    ctx: Ctx,
    period: SpendingPeriod = SpendingPeriod.MONTHLY,
    at: At = None,
    extended: Extended = False,
) -> Response:
    """The spec's spending analytics for one period window (monthly by default).

    ``spending_trend`` and ``anomaly_detected`` are computed here exactly as
    ``BudgetTracker.get_spending_analytics`` computes them, so the endpoint, the library and
    the CLI agree on one account.
    """
    user, project = _account(caller, user_id, project_id)
    tracker = BudgetTracker(ctx.backend, status_ttl=0)
    analytics = await tracker.get_spending_analytics(user, project, period, at=at)
    return DecimalJSONResponse(spec_shaped(analytics, extended))


@router.get(ACCOUNT + "/series", response_model=list[SpendingBucket], responses=SERIES_ERRORS)
async def get_spending_series(
    user_id: str,
    project_id: str,
    granularity: SpendingPeriod,
    start: Annotated[IsoDatetime, Query(description="First instant (RFC 3339 with offset).")],
    end: Annotated[IsoDatetime, Query(description="Last instant (RFC 3339 with offset).")],
    caller: Caller,
    ctx: Ctx,
) -> Response:
    """Spending per window of ``granularity`` from ``start`` to ``end``, empty windows included."""
    user, project = _account(caller, user_id, project_id)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInputError("start and end must be timezone-aware")
    if end < start:
        raise InconsistentInputError("end is before start", field="end")
    if (end - start) / _SHORTEST[granularity] > MAX_SERIES_WINDOWS:
        raise InconsistentInputError(
            f"at most {MAX_SERIES_WINDOWS} windows per request; use a coarser granularity"
        )
    series = await ctx.backend.get_spending_series(user, project, granularity, start, end)
    return DecimalJSONResponse(series)


@router.get(ACCOUNT + "/policy", response_model=BudgetPolicy, responses=READ_ERRORS)
async def get_policy(user_id: str, project_id: str, caller: Caller, ctx: Ctx) -> Response:
    """The account's budget policy (limits are null when unlimited)."""
    user, project = _account(caller, user_id, project_id)
    return DecimalJSONResponse(await ctx.backend.get_policy(user, project))


@router.get("/accounts", response_model=list[AccountRef], responses=READ_ERRORS)
async def list_accounts(caller: Caller, ctx: Ctx) -> Response:
    """The accounts this key may see (all for an admin key, its own for an account key)."""
    caller.require_account_reader()
    accounts = await ctx.backend.list_accounts()
    return DecimalJSONResponse([a for a in accounts if caller.owns(a.user_id, a.project_id)])


@router.get(ACCOUNT + "/output-history", response_model=OutputHistory, responses=READ_ERRORS)
async def get_output_history(
    user_id: str,
    project_id: str,
    caller: Caller,
    ctx: Ctx,
    provider: Annotated[Identifier, Query(description="Provider id (the id grammar).")],
    model: Annotated[Identifier, Query(description="Model id (the id grammar).")],
    min_samples: Annotated[int, Query(ge=1, le=1_000_000)] = DEFAULT_MIN_SAMPLES,
) -> Response:
    """How many output tokens past calls to ``provider/model`` produced (a log-bucket
    sketch): the account's, else its project's, else every account's, the first with
    ``min_samples`` calls. What output predictions (``estimate_cost``, the guard) read.
    Other accounts appear only as a bucketed count of calls, never by name or amount."""
    user, project = _account(caller, user_id, project_id)
    backend = ctx.backend
    if not isinstance(backend, OutputHistorySource):
        raise InvalidInputError("this service's backend keeps no output history")
    history = await backend.get_output_history(
        user, project, provider, model, min_samples=min_samples
    )
    return DecimalJSONResponse(history)


Start = Annotated[IsoDatetime, Query(description="First instant (RFC 3339 with offset).")]
End = Annotated[IsoDatetime, Query(description="End of the window, excluded (RFC 3339).")]


@router.get(ACCOUNT + "/usage-shapes", response_model=list[UsageShape], responses=SERIES_ERRORS)
async def get_usage_shapes(
    user_id: str, project_id: str, start: Start, end: End, caller: Caller, ctx: Ctx
) -> Response:
    """The account's usage in ``[start, end)`` grouped by model, UTC minute and usage in
    every dimension, with the calls and what they were charged (what a replay re-prices).
    An ``end`` before ``start`` is a 422."""
    user, project = _account(caller, user_id, project_id)
    if end < start:
        raise InconsistentInputError("end is before start", field="end")
    backend = ctx.backend
    if not isinstance(backend, UsageShapeSource):
        raise InvalidInputError("this service's backend cannot group usage")
    return DecimalJSONResponse(await backend.get_usage_shapes(user, project, start, end))


MAX_REPLAY_TARGETS = 50
"""Most targets one replay request may name."""

Target = Annotated[
    str,
    Field(
        min_length=3,
        max_length=2 * MAX_ID_LENGTH + 1,
        json_schema_extra={"pattern": TARGET_PATTERN},
    ),
]


@router.get(ACCOUNT + "/replay", response_model=ReplayReport, responses=SERIES_ERRORS)
async def get_replay(
    user_id: str,
    project_id: str,
    caller: Caller,
    ctx: Ctx,
    target: Annotated[
        list[Target] | None,
        Query(
            max_length=MAX_REPLAY_TARGETS,
            description=(
                "provider/model to re-price on (split at the first '/', each part an id), "
                f"repeatable up to {MAX_REPLAY_TARGETS} times; default: the models used"
            ),
        ),
    ] = None,
    period: Annotated[
        SpendingPeriod | None,
        Query(description="Calendar window to replay (default monthly); not with start/end."),
    ] = None,
    at: Annotated[
        IsoDatetime | None,
        Query(
            description="Instant whose period window is wanted (default now); not with start/end."
        ),
    ] = None,
    start: Annotated[
        IsoDatetime | None, Query(description="First instant of an explicit window (with end).")
    ] = None,
    end: Annotated[
        IsoDatetime | None, Query(description="End of an explicit window, excluded (with start).")
    ] = None,
) -> Response:
    """The account's real usage in a period re-priced on each target model.

    The window is the account's ``period`` containing ``at`` (the current month by
    default), or ``start``-``end``: both or neither, and not together with ``period`` or
    ``at`` (422 otherwise, and for an ``end`` before ``start``). Every recorded dimension of
    every call is priced on each target at the prices in force at the call's minute, each
    call rounded as a charge is; calls a target cannot serve are counted by reason. See
    ``PricingEngine.replay``.
    """
    from smartspace_budget.pricing.pricing_engine import PricingEngine

    targets = None if target is None else [parse_target(item) for item in target]
    user, project = _account(caller, user_id, project_id)
    window: SpendingPeriod | tuple[datetime, datetime] = period or SpendingPeriod.MONTHLY
    if start is not None or end is not None:
        if start is None or end is None:
            missing = "start" if start is None else "end"
            raise InconsistentInputError("start and end go together", field=missing)
        if period is not None or at is not None:
            raise InconsistentInputError(
                "give either period (and at) or start and end, not both",
                field="period" if period is not None else "at",
            )
        window = (start, end)
    report = await PricingEngine(ctx.backend).replay(user, project, window, targets, at=at)
    return DecimalJSONResponse(report)
