"""Settling a guarded call in the ledger: journaled first, idempotent, never lost.

The settlement goes through the durable outbox (``backend/outbox.py``): it is written to disk
with its idempotency key before it is sent, so neither a ledger that cannot be reached nor a
process killed midway loses the usage; it is delivered later, exactly once by its key. A
hold that is gone before the call finished (the call outlived ``reservation_ttl``, or an
operator released it) does not make the usage free: it is recorded without the hold, under
a second fixed key.
"""

from __future__ import annotations

import logging

from smartspace_budget.backend.outbox import Delivery, OutboxWriter
from smartspace_budget.guard.call import GuardedCall
from smartspace_budget.models import UsageEvent

__all__ = ["settle"]

log = logging.getLogger("smartspace_budget.guard")


async def settle(
    outbox: OutboxWriter, user_id: str, project_id: str, call: GuardedCall, event: UsageEvent
) -> Delivery:
    """Charge ``event`` against the call's hold, through the outbox."""
    delivery = await outbox.settle(
        user_id,
        project_id,
        call.reservation.reservation_id,
        event,
        idempotency_key=f"guard:{call.call_id}:settle",
        fallback_key=f"guard:{call.call_id}:usage",
    )
    if delivery.state == "queued":
        log.warning(
            "%s (%s) waits in the outbox; its hold of %s covers it until delivered",
            call.request_id,
            event.actual_cost,
            call.reserved_amount,
        )
    return delivery
