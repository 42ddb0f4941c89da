"""The ledger's rules: how each write changes the loaded state of a batch.

Each handler first checks everything that can refuse the operation, and only then changes
state and records rows, so a refused operation leaves nothing behind. (Releasing a hold found
past its expiry is the one change made before a refusal: the hold is expired whatever the
operation turns out to be, exactly as :meth:`Ledger.expire_reservations` would.)

Rules, in ledger units (nano-USDC):

- ``reserve(amount)``: refused with :class:`PolicyViolationError` when ``per_request_limit``
  is 0 or below ``amount``; when ``daily_limit`` is 0 or ``spent_today + reserved + amount``
  exceeds it (``reserved`` = every open hold of the account, ``spent_today`` = usage minus
  refunds in today's window of the account's timezone); the same with ``monthly_limit`` and
  this month's window. Then refused with :class:`BudgetExceededError` when
  ``balance - reserved < amount``. Limits are checked in that order and the first one broken
  is reported.
- ``record_usage``/``settle`` always record the cost (the money was spent), even above the
  hold or the balance, which may then be negative.
- ``refund(amount, usage_entry_id)``: at most the entry's cost minus earlier refunds of it,
  else :class:`ConflictError` (the request conflicts with what is recorded, it is not
  malformed). The entry must be a usage entry of the same account (:class:`NotFoundError`).
- every balance and total stays within the BIGINT range, else :class:`InvalidAmountError`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from smartspace_budget.errors import (
    BudgetExceededError,
    ConflictError,
    IdempotencyConflictError,
    InvalidAmountError,
    NotFoundError,
    PolicyViolationError,
    ReservationResolvedError,
)
from smartspace_budget.ledger.batch import Batch
from smartspace_budget.ledger.buckets import day_bucket, hour_bucket, utc_window, window_of
from smartspace_budget.ledger.ids import new_id
from smartspace_budget.ledger.ops import (
    AccountKey,
    Adjust,
    Deposit,
    EnsureAccount,
    Expire,
    KeyedOp,
    Op,
    RecordUsage,
    Refund,
    Release,
    Reserve,
    SetPolicy,
    Settle,
    UsageRecord,
)
from smartspace_budget.ledger.state import AccountState, HoldState, entry_model, stored_result
from smartspace_budget.models import BudgetReservation, LedgerEntry
from smartspace_budget.money import MAX_NANO, from_nano
from smartspace_budget.periods import SpendingPeriod

__all__ = ["apply"]

_UTC = ZoneInfo("UTC")


def apply(batch: Batch, op: Op) -> Any:
    """Apply ``op`` to the batch's state and return its result, or raise the refusal."""
    if isinstance(op, RecordUsage):
        return _record_usage(batch, op)
    if isinstance(op, Reserve):
        return _reserve(batch, op)
    if isinstance(op, Settle):
        return _settle(batch, op)
    if isinstance(op, Release):
        return _release(batch, op)
    if isinstance(op, Deposit):
        return _deposit(batch, op)
    if isinstance(op, Refund):
        return _refund(batch, op)
    if isinstance(op, Adjust):
        return _adjust(batch, op)
    if isinstance(op, SetPolicy):
        return _set_policy(batch, op)
    if isinstance(op, EnsureAccount):
        return _ensure_account(batch, op)
    if isinstance(op, Expire):
        return _expire_due(batch, op)
    raise TypeError(f"not a ledger operation: {op!r}")


# -- shared steps ------------------------------------------------------------------------------


def _account(
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


def _replay(batch: Batch, account: AccountState, op: KeyedOp) -> str | None:
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


def _in_range(value: int, what: str) -> int:
    if abs(value) > MAX_NANO:
        raise InvalidAmountError(f"{what} would leave the ledger's range of ±{from_nano(MAX_NANO)}")
    return value


def _buckets(account: AccountState, instant: datetime) -> tuple[datetime, datetime]:
    """The local hour and local day of ``instant`` in the account's timezone (UTC starts)."""
    hour = hour_bucket(instant, account.timezone, account.zone)
    return hour, day_bucket(hour, account.timezone, account.zone)


def _usage_entry(
    batch: Batch,
    account: AccountState,
    op: KeyedOp,
    usage: UsageRecord,
    *,
    hold: HoldState | None,
) -> LedgerEntry:
    """Charge ``usage`` to ``account`` (and free ``hold``); returns the entry."""
    balance = _in_range(account.balance - usage.cost_nano, "the balance")
    spent = _in_range(account.spent + usage.cost_nano, "total spending")
    occurred = usage.occurred_at or op.now
    buckets = _buckets(account, occurred)
    batch.adopt(account, op.now)
    account.balance = balance
    account.spent = spent
    request_id = usage.request_id
    if hold is not None:
        account.reserved -= hold.amount
        request_id = request_id or hold.request_id
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
    )
    batch.add_rollup(
        account, buckets, usage.provider, usage.model, usage.cost_nano, 1, usage.tokens
    )
    if hold is not None:
        hold.status = "settled"
        hold.settled = usage.cost_nano
        hold.resolved_at = op.now
        hold.usage_entry_id = row["entry_id"]
        hold.dirty = True
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def _release_hold(
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


def _expire_overdue(batch: Batch, account: AccountState, now: datetime) -> None:
    for hold in batch.holds.values():
        if hold.account is account and hold.status == "pending" and hold.expires_at <= now:
            _release_hold(batch, hold, now, "expired", None)


def _pending_hold(batch: Batch, op: Settle | Release) -> tuple[HoldState, str | None]:
    """The hold ``op`` resolves and the stored result if ``op`` is a retry."""
    hold = batch.holds.get(op.reservation_id)
    if hold is None:
        raise NotFoundError(
            f"no reservation {op.reservation_id!r}", reservation_id=op.reservation_id
        )
    replay = _replay(batch, hold.account, op)
    if replay is not None:
        return hold, replay
    if hold.status == "pending" and hold.expires_at <= op.now:
        _release_hold(batch, hold, op.now, "expired", None)
    if hold.status != "pending":
        raise ReservationResolvedError(
            f"reservation {hold.reservation_id} is already {hold.status}",
            reservation_id=hold.reservation_id,
            status=hold.status,
        )
    return hold, None


# -- operations ----------------------------------------------------------------------------------


def _deposit(batch: Batch, op: Deposit) -> LedgerEntry:
    account = _account(batch, op.account, op.now)
    replay = _replay(batch, account, op)
    if replay is not None:
        return LedgerEntry.from_json(replay)
    balance = _in_range(account.balance + op.amount, "the balance")
    batch.adopt(account, op.now)
    account.balance = balance
    row = batch.add_entry(
        account,
        entry_id=new_id(),
        kind="deposit",
        amount_nano=op.amount,
        balance_after_nano=balance,
        occurred_at=op.now,
        recorded_at=op.now,
        reason=op.reference,
        idempotency_key=op.key,
    )
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def _adjust(batch: Batch, op: Adjust) -> LedgerEntry:
    account = _account(batch, op.account, op.now)
    replay = _replay(batch, account, op)
    if replay is not None:
        return LedgerEntry.from_json(replay)
    balance = _in_range(account.balance + op.amount, "the balance")
    batch.adopt(account, op.now)
    account.balance = balance
    row = batch.add_entry(
        account,
        entry_id=new_id(),
        kind="adjustment",
        amount_nano=op.amount,
        balance_after_nano=balance,
        occurred_at=op.now,
        recorded_at=op.now,
        reason=op.reason,
        idempotency_key=op.key,
    )
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def _record_usage(batch: Batch, op: RecordUsage) -> LedgerEntry:
    account = _account(batch, op.account, op.now)
    replay = _replay(batch, account, op)
    if replay is not None:
        return LedgerEntry.from_json(replay)
    assert op.usage is not None
    return _usage_entry(batch, account, op, op.usage, hold=None)


def _refund(batch: Batch, op: Refund) -> LedgerEntry:
    account = _account(batch, op.account, op.now)
    replay = _replay(batch, account, op)
    if replay is not None:
        return LedgerEntry.from_json(replay)
    provider = model = ""
    target = None
    if op.usage_entry_id is not None:
        target = batch.targets.get(op.usage_entry_id)
        if target is None or account.row_id is None or target.account_id != account.row_id:
            raise NotFoundError(
                f"no usage entry {op.usage_entry_id!r} on this account",
                usage_entry_id=op.usage_entry_id,
            )
        refundable = target.cost - target.refunded
        if op.amount > refundable:
            raise ConflictError(
                f"refund of {from_nano(op.amount)} exceeds what is left to refund of entry "
                f"{target.entry_id} ({from_nano(refundable)} of {from_nano(target.cost)})",
                usage_entry_id=target.entry_id,
                refundable=from_nano(refundable),
            )
        provider, model = target.provider, target.model
    balance = _in_range(account.balance + op.amount, "the balance")
    spent = _in_range(account.spent - op.amount, "total spending")
    buckets = _buckets(account, op.now)
    batch.adopt(account, op.now)
    account.balance = balance
    account.spent = spent
    if target is not None:
        target.refunded += op.amount
    row = batch.add_entry(
        account,
        entry_id=new_id(),
        kind="refund",
        amount_nano=op.amount,
        balance_after_nano=balance,
        occurred_at=op.now,
        recorded_at=op.now,
        bucket_start=buckets[0],
        day_start=buckets[1],
        provider=provider,
        model=model,
        refund_of=op.usage_entry_id,
        reason=op.reason or None,
        idempotency_key=op.key,
    )
    batch.add_rollup(account, buckets, provider, model, -op.amount, 0, (0, 0, 0, 0, 0))
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def _spent_in(batch: Batch, account: AccountState, period: SpendingPeriod, now: datetime) -> int:
    start, end = utc_window(window_of(period, now, account.zone))
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
            raise PolicyViolationError(
                f"{from_nano(amount)} on top of {from_nano(committed)} spent or held would exceed "
                f"the {name} limit of {from_nano(limit)}",
                kind=f"{name}_limit",
                limit=from_nano(limit),
                current=from_nano(committed),
                requested=from_nano(amount),
            )


def _reserve(batch: Batch, op: Reserve) -> BudgetReservation:
    account = _account(batch, op.account, op.now)
    replay = _replay(batch, account, op)
    if replay is not None:
        return BudgetReservation.from_json(replay)
    _expire_overdue(batch, account, op.now)
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


def _settle(batch: Batch, op: Settle) -> LedgerEntry:
    hold, replay = _pending_hold(batch, op)
    if replay is not None:
        return LedgerEntry.from_json(replay)
    assert op.usage is not None
    return _usage_entry(batch, hold.account, op, op.usage, hold=hold)


def _release(batch: Batch, op: Release) -> BudgetReservation:
    hold, replay = _pending_hold(batch, op)
    if replay is not None:
        return BudgetReservation.from_json(replay)
    _release_hold(batch, hold, op.now, "released", op.key)
    result = hold.to_model()
    batch.remember(hold.account, op, stored_result(result), op.now)
    return result


def _expire_due(batch: Batch, op: Expire) -> int:
    count = 0
    for hold in batch.expire_candidates:
        if hold.status == "pending" and hold.expires_at <= op.now:
            _release_hold(batch, hold, op.now, "expired", None)
            count += 1
    return count


def _set_policy(batch: Batch, op: SetPolicy) -> Any:
    account = _account(batch, op.account, op.now)
    batch.adopt(account, op.now)
    account.per_request, account.daily, account.monthly, account.low_balance = op.limits
    return account.policy()


def _ensure_account(batch: Batch, op: EnsureAccount) -> Any:
    account = batch.accounts.get(op.account)
    if account is None:
        account = _account(
            batch,
            op.account,
            op.now,
            timezone=op.timezone,
            zone=ZoneInfo(op.timezone),
            currency=op.currency,
        )
        batch.adopt(account, op.now)
    return account.ref()
