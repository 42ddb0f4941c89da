"""Rules of holds: reserve against the balance and the limits, settle, release, expire.

- ``reserve(amount)`` is refused with :class:`PolicyViolationError` when ``per_request_limit``
  is 0 or below ``amount``; when ``daily_limit`` is 0 or ``spent_today + reserved + amount``
  exceeds it (``reserved`` = every open hold of the account, ``spent_today`` = usage minus
  refunds in today's window of the account's timezone); the same with ``monthly_limit`` and
  this month's window. Then it is refused with :class:`BudgetExceededError` when
  ``balance - reserved < amount``. Limits are checked in that order and the first one broken
  is reported. Holds of the account past their expiry are released first (before every
  write of the account: deposits, usage, refunds, adjustments, settlements, releases).
- ``settle`` charges the real cost once (above the hold too: the money was spent) and frees
  the hold; ``release`` frees it. Either on a hold that is resolved, or past its expiry
  (which it then expires), is :class:`ReservationResolvedError`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from smartspace_budget.errors import (
    BudgetExceededError,
    NotFoundError,
    PolicyViolationError,
    ReservationResolvedError,
)
from smartspace_budget.ledger.batch import Batch
from smartspace_budget.ledger.buckets import utc_window_of
from smartspace_budget.ledger.ids import new_id
from smartspace_budget.ledger.ops import Expire, Release, Reserve, Settle
from smartspace_budget.ledger.state import AccountState, HoldState, stored_result
from smartspace_budget.ledger.steps import account_state, release_hold, replay, usage_entry
from smartspace_budget.models import BudgetReservation, LedgerEntry
from smartspace_budget.money import from_nano
from smartspace_budget.periods import SpendingPeriod

__all__ = ["expire_due", "expire_overdue", "release", "reserve", "settle"]


def expire_overdue(batch: Batch, account: AccountState, now: datetime) -> None:
    """Release the account's pending holds past their expiry (loaded by the batch)."""
    for hold in batch.holds.values():
        if hold.account is account and hold.status == "pending" and hold.expires_at <= now:
            release_hold(batch, hold, now, "expired", None)


def _pending_hold(batch: Batch, op: Settle | Release) -> tuple[HoldState, str | None]:
    """The hold ``op`` resolves and the stored result if ``op`` is a retry."""
    hold = batch.holds.get(op.reservation_id)
    if hold is None:
        raise NotFoundError(
            f"no reservation {op.reservation_id!r}", reservation_id=op.reservation_id
        )
    stored = replay(batch, hold.account, op)
    if stored is not None:
        return hold, stored
    expire_overdue(batch, hold.account, op.now)  # this hold too, if it is overdue
    if hold.status != "pending":
        raise ReservationResolvedError(
            f"reservation {hold.reservation_id} is already {hold.status}",
            reservation_id=hold.reservation_id,
            status=hold.status,
        )
    return hold, None


def _spent_in(batch: Batch, account: AccountState, period: SpendingPeriod, now: datetime) -> int:
    start, end = utc_window_of(period, now, account.zone)
    stored = (
        0 if account.row_id is None else batch.window_spend.get((account.row_id, start, end), 0)
    )
    return stored + batch.pending_spend(account, start, end)


def _check_limits(batch: Batch, account: AccountState, op: Reserve) -> None:
    amount = op.amount
    if account.per_request is not None and (
        account.per_request == 0 or amount > account.per_request
    ):
        raise PolicyViolationError(
            f"{from_nano(amount)} exceeds the per-request limit of "
            f"{from_nano(account.per_request)}",
            kind="per_request_limit",
            limit=from_nano(account.per_request),
            requested=from_nano(amount),
        )
    for limit, period, name in (
        (account.daily, SpendingPeriod.DAILY, "daily"),
        (account.monthly, SpendingPeriod.MONTHLY, "monthly"),
    ):
        if limit is None:
            continue
        committed = (
            0 if limit == 0 else _spent_in(batch, account, period, op.now) + account.reserved
        )
        if limit == 0 or committed + amount > limit:
            detail = (
                f"the {name} limit is 0: all spending is blocked"
                if limit == 0
                else f"{from_nano(amount)} on top of {from_nano(committed)} spent or held "
                f"would exceed the {name} limit of {from_nano(limit)}"
            )
            raise PolicyViolationError(
                detail,
                kind=f"{name}_limit",
                limit=from_nano(limit),
                current=from_nano(committed),
                requested=from_nano(amount),
            )


def reserve(batch: Batch, op: Reserve) -> BudgetReservation:
    account = account_state(batch, op.account, op.now)
    stored = replay(batch, account, op)
    if stored is not None:
        return BudgetReservation.from_json(stored)
    expire_overdue(batch, account, op.now)
    _check_limits(batch, account, op)
    available = account.balance - account.reserved
    if available < op.amount:
        raise BudgetExceededError(
            f"available balance {from_nano(available)} cannot cover {from_nano(op.amount)}",
            available=from_nano(available),
            requested=from_nano(op.amount),
        )
    batch.adopt(account, op.now)
    account.reserved += op.amount
    hold = HoldState(
        reservation_id=new_id(),
        account=account,
        amount=op.amount,
        status="pending",
        created_at=op.now,
        expires_at=op.now + timedelta(seconds=op.ttl_seconds),
        request_id=op.request_id,
        new=True,
    )
    batch.holds[hold.reservation_id] = hold
    batch.add_entry(
        account,
        entry_id=new_id(),
        kind="reservation",
        hold_nano=op.amount,
        balance_after_nano=account.balance,
        occurred_at=op.now,
        recorded_at=op.now,
        request_id=op.request_id,
        reservation_id=hold.reservation_id,
        idempotency_key=op.key,
    )
    result = hold.to_model()
    batch.remember(account, op, stored_result(result), op.now)
    return result


def settle(batch: Batch, op: Settle) -> LedgerEntry:
    hold, stored = _pending_hold(batch, op)
    if stored is not None:
        return LedgerEntry.from_json(stored)
    assert op.usage is not None
    return usage_entry(batch, hold.account, op, op.usage, hold=hold)


def release(batch: Batch, op: Release) -> BudgetReservation:
    hold, stored = _pending_hold(batch, op)
    if stored is not None:
        return BudgetReservation.from_json(stored)
    release_hold(batch, hold, op.now, "released", op.key)
    result = hold.to_model()
    batch.remember(hold.account, op, stored_result(result), op.now)
    return result


def expire_due(batch: Batch, op: Expire) -> int:
    count = 0
    for hold in batch.expire_candidates:
        if hold.status == "pending" and hold.expires_at <= op.now:
            release_hold(batch, hold, op.now, "expired", None)
            count += 1
    return count
