"""Steps the ledger's operations share: find or start an account, replay a stored result,
keep totals in range, charge usage, free a hold.

Every step that changes state runs only after its operation's checks passed (see
``apply.py``), so a refused operation leaves nothing behind.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from smartspace_budget.errors import IdempotencyConflictError, InvalidAmountError
from smartspace_budget.ledger.batch import Batch
from smartspace_budget.ledger.buckets import day_bucket, hour_bucket
from smartspace_budget.ledger.ids import new_id
from smartspace_budget.ledger.ops import AccountKey, KeyedOp, UsageRecord
from smartspace_budget.ledger.state import AccountState, HoldState, entry_model, stored_result
from smartspace_budget.models import LedgerEntry
from smartspace_budget.money import MAX_NANO, from_nano

__all__ = [
    "account_state",
    "buckets_of",
    "in_range",
    "release_hold",
    "replay",
    "usage_entry",
]

_UTC = ZoneInfo("UTC")


def account_state(
    batch: Batch,
    key: AccountKey,
    now: datetime,
    *,
    timezone: str = "UTC",
    zone: ZoneInfo = _UTC,
    currency: str = "USDC",
) -> AccountState:
    """The account's state, or an unregistered new one (kept only if the operation succeeds)."""
    state = batch.accounts.get(key)
    if state is not None:
        return state
    return AccountState(
        row_id=None,
        user_id=key[0],
        project_id=key[1],
        currency=currency,
        timezone=timezone,
        zone=zone,
        balance=0,
        reserved=0,
        spent=0,
        per_request=None,
        daily=None,
        monthly=None,
        low_balance=None,
        created_at=now,
        updated_at=now,
        new=True,
    )


def replay(batch: Batch, account: AccountState, op: KeyedOp) -> str | None:
    """The stored result of an earlier identical request, or ``None`` if the key is new."""
    stored = batch.idem.get((account.key, op.key))
    if stored is None:
        return None
    fingerprint, result = stored
    if fingerprint != op.fingerprint:
        raise IdempotencyConflictError(
            f"idempotency key {op.key!r} was already used with a different request",
            idempotency_key=op.key,
            operation=op.operation,
        )
    return result


def in_range(value: int, what: str) -> int:
    if abs(value) > MAX_NANO:
        raise InvalidAmountError(f"{what} would leave the ledger's range of ±{from_nano(MAX_NANO)}")
    return value


def buckets_of(account: AccountState, instant: datetime) -> tuple[datetime, datetime]:
    """The local hour and local day of ``instant`` in the account's timezone (UTC starts)."""
    hour = hour_bucket(instant, account.timezone, account.zone)
    return hour, day_bucket(hour, account.timezone, account.zone)


def usage_entry(
    batch: Batch,
    account: AccountState,
    op: KeyedOp,
    usage: UsageRecord,
    *,
    hold: HoldState | None,
) -> LedgerEntry:
    """Charge ``usage`` to ``account`` (and free ``hold``); returns the entry."""
    balance = in_range(account.balance - usage.cost_nano, "the balance")
    spent = in_range(account.spent + usage.cost_nano, "total spending")
    occurred = usage.occurred_at or op.now
    buckets = buckets_of(account, occurred)
    batch.adopt(account, op.now)
    account.balance = balance
    account.spent = spent
    request_id = usage.request_id
    predicted = missed = 0
    if hold is not None:
        account.reserved -= hold.amount
        request_id = request_id or hold.request_id
        if usage.predicted_output is not None:
            predicted = 1
            missed = 1 if usage.cost_nano > hold.amount else 0
    row = batch.add_entry(
        account,
        entry_id=new_id(),
        kind="usage",
        amount_nano=-usage.cost_nano,
        hold_nano=0 if hold is None else -hold.amount,
        balance_after_nano=balance,
        occurred_at=occurred,
        recorded_at=op.now,
        bucket_start=buckets[0],
        day_start=buckets[1],
        provider=usage.provider,
        model=usage.model,
        input_tokens=usage.tokens[0],
        output_tokens=usage.tokens[1],
        cached_input_tokens=usage.tokens[2],
        cache_write_tokens=usage.tokens[3],
        reasoning_tokens=usage.tokens[4],
        estimated_cost_nano=usage.estimated_nano,
        cost_is_estimate=usage.cost_is_estimate,
        price_version=usage.price_version,
        request_id=request_id,
        reservation_id=None if hold is None else hold.reservation_id,
        tags=usage.tags_json,
        idempotency_key=op.key,
        usage_detail=usage.detail_json,
        predicted_output_tokens=usage.predicted_output if predicted else None,
    )
    batch.add_rollup(
        account,
        buckets,
        usage.provider,
        usage.model,
        usage.cost_nano,
        1,
        (*usage.tokens, predicted, missed),
    )
    if not usage.cost_is_estimate:  # a charge at the hold knows no real output
        batch.add_output(account, usage.provider, usage.model, usage.tokens[1])
    if hold is not None:
        hold.status = "settled"
        hold.settled = usage.cost_nano
        hold.resolved_at = op.now
        hold.usage_entry_id = row["entry_id"]
        hold.dirty = True
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def release_hold(
    batch: Batch, hold: HoldState, now: datetime, status: str, key: str | None
) -> dict[str, Any]:
    """Free ``hold`` with a ``release`` entry; ``status`` is ``released`` or ``expired``."""
    account = hold.account
    batch.adopt(account, now)
    account.reserved -= hold.amount
    hold.status = status
    hold.resolved_at = now
    hold.dirty = True
    return batch.add_entry(
        account,
        entry_id=new_id(),
        kind="release",
        hold_nano=-hold.amount,
        balance_after_nano=account.balance,
        occurred_at=now,
        recorded_at=now,
        reservation_id=hold.reservation_id,
        request_id=hold.request_id,
        reason="expired" if status == "expired" else None,
        idempotency_key=key,
    )
