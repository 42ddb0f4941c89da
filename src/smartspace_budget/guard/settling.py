"""Settling a guarded call in the ledger: retried, idempotent, never lost to an expired hold.

Every write carries a key derived from the call's id, so a retry can never charge twice.
A backend that stays down is logged and the hold expires after its TTL. A hold that is gone
before the call finished (the call outlived ``reservation_ttl``, or an operator released it)
does not make the usage free: it is recorded without the hold.
"""

from __future__ import annotations

import asyncio
import logging

from smartspace_budget.errors import BackendError, ReservationResolvedError
from smartspace_budget.guard.call import GuardBackend, GuardedCall
from smartspace_budget.models import LedgerEntry, UsageEvent

__all__ = ["SETTLE_ATTEMPTS", "settle"]

log = logging.getLogger("smartspace_budget.guard")

SETTLE_ATTEMPTS = 3


async def settle(
    backend: GuardBackend, user_id: str, project_id: str, call: GuardedCall, event: UsageEvent
) -> LedgerEntry | None:
    """Charge ``event`` against the call's hold; ``None`` when the ledger could not be told."""
    key = f"guard:{call.call_id}:settle"
    for attempt in range(SETTLE_ATTEMPTS):
        try:
            return await backend.settle(call.reservation.reservation_id, event, idempotency_key=key)
        except ReservationResolvedError as exc:
            return await _charge_without_hold(backend, user_id, project_id, call, event, exc)
        except BackendError:
            if attempt + 1 == SETTLE_ATTEMPTS:
                log.exception(
                    "settling %s failed; the hold of %s expires after its TTL",
                    call.request_id,
                    call.reserved_amount,
                )
                return None
            await asyncio.sleep(0.05 * 2**attempt)
    return None


async def _charge_without_hold(
    backend: GuardBackend,
    user_id: str,
    project_id: str,
    call: GuardedCall,
    event: UsageEvent,
    exc: ReservationResolvedError,
) -> LedgerEntry | None:
    """The hold is gone: record the usage all the same, unless it was settled elsewhere."""
    status = exc.context.get("status") or exc.detail.rsplit(" ", 1)[-1]
    if status == "settled":
        log.warning("%s was settled elsewhere; not charging it again", call.request_id)
        return None
    log.warning(
        "the hold of %s was %s before the call finished; recording its usage without it",
        call.request_id,
        status,
    )
    key = f"guard:{call.call_id}:usage"
    for attempt in range(SETTLE_ATTEMPTS):
        try:
            return await backend.record_usage(user_id, project_id, event, idempotency_key=key)
        except BackendError:
            if attempt + 1 == SETTLE_ATTEMPTS:
                log.exception("recording the usage of %s failed", call.request_id)
                return None
            await asyncio.sleep(0.05 * 2**attempt)
    return None
