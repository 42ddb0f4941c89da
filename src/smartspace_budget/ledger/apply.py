"""The ledger's rules: how each write changes the loaded state of a batch (holds: ``holds.py``).

Each handler first checks everything that can refuse the operation, and only then changes
state and records rows, so a refused operation leaves nothing behind. (Releasing a hold found
past its expiry is the one change made before a refusal: the hold is expired whatever the
operation turns out to be, exactly as :meth:`Ledger.expire_reservations` would. Every
write of an account expires the account's overdue holds first.)

Rules, in ledger units (nano-USDC):

- ``reserve``, ``settle``, ``release`` and expiry: see ``holds.py``.
- ``record_usage``/``settle`` always record the cost (the money was spent), even above the
  hold or the balance, which may then be negative.
- ``refund(amount, usage_entry_id)``: at most the entry's cost minus earlier refunds of it,
  else :class:`ConflictError` (the request conflicts with what is recorded, it is not
  malformed). The entry must be a usage entry of the same account (:class:`NotFoundError`).
- every balance and total stays within the BIGINT range, else :class:`InvalidAmountError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from smartspace_budget.errors import ConflictError, NotFoundError
from smartspace_budget.ledger import holds
from smartspace_budget.ledger.batch import Batch
from smartspace_budget.ledger.ids import new_id
from smartspace_budget.ledger.ops import (
    Adjust,
    Deposit,
    EnsureAccount,
    Expire,
    Op,
    RecordUsage,
    Refund,
    Release,
    Reserve,
    SetPolicy,
    Settle,
)
from smartspace_budget.ledger.state import entry_model, stored_result
from smartspace_budget.ledger.steps import (
    account_state,
    buckets_of,
    in_range,
    replay,
    usage_entry,
)
from smartspace_budget.models import LedgerEntry
from smartspace_budget.money import from_nano

__all__ = ["apply"]

_NO_TOKENS = (0, 0, 0, 0, 0, 0, 0)
"""A refund's counts in a rollup: tokens, predicted and missed calls."""


def apply(batch: Batch, op: Op) -> Any:
    """Apply ``op`` to the batch's state and return its result, or raise the refusal."""
    # One dict lookup by exact type (no operation class subclasses another): a chain of
    # ``isinstance`` checks against them (ABCs, through ``KeyedOp``) costs microseconds.
    handler = _HANDLERS.get(type(op))
    if handler is None:
        raise TypeError(f"not a ledger operation: {op!r}")
    return handler(batch, op)


def _deposit(batch: Batch, op: Deposit) -> LedgerEntry:
    return _balance_entry(batch, op, "deposit", op.reference)


def _adjust(batch: Batch, op: Adjust) -> LedgerEntry:
    return _balance_entry(batch, op, "adjustment", op.reason)


def _balance_entry(
    batch: Batch, op: Deposit | Adjust, kind: str, reason: str | None
) -> LedgerEntry:
    """An entry that moves only the balance (no hold, no spending, no rollup)."""
    account = account_state(batch, op.account, op.now)
    stored = replay(batch, account, op)
    if stored is not None:
        return LedgerEntry.from_json(stored)
    holds.expire_overdue(batch, account, op.now)
    balance = in_range(account.balance + op.amount, "the balance")
    batch.adopt(account, op.now)
    account.balance = balance
    row = batch.add_entry(
        account,
        entry_id=new_id(),
        kind=kind,
        amount_nano=op.amount,
        balance_after_nano=balance,
        occurred_at=op.now,
        recorded_at=op.now,
        reason=reason,
        idempotency_key=op.key,
    )
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def _record_usage(batch: Batch, op: RecordUsage) -> LedgerEntry:
    account = account_state(batch, op.account, op.now)
    stored = replay(batch, account, op)
    if stored is not None:
        return LedgerEntry.from_json(stored)
    assert op.usage is not None
    holds.expire_overdue(batch, account, op.now)
    return usage_entry(batch, account, op, op.usage, hold=None)


def _refund(batch: Batch, op: Refund) -> LedgerEntry:
    account = account_state(batch, op.account, op.now)
    stored = replay(batch, account, op)
    if stored is not None:
        return LedgerEntry.from_json(stored)
    holds.expire_overdue(batch, account, op.now)
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
    elif op.amount > account.spent:
        # A refund credits back earlier usage: untied to an entry, it may return at most
        # what the account has spent net of earlier refunds, never invent money.
        raise ConflictError(
            f"refund of {from_nano(op.amount)} exceeds the account's net spending "
            f"({from_nano(max(account.spent, 0))}); a credit beyond it is a deposit",
            refundable=from_nano(max(account.spent, 0)),
        )
    balance = in_range(account.balance + op.amount, "the balance")
    spent = in_range(account.spent - op.amount, "total spending")
    buckets = buckets_of(account, op.now)
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
    batch.add_rollup(account, buckets, provider, model, -op.amount, 0, _NO_TOKENS)
    entry = entry_model(account.user_id, account.project_id, row)
    batch.remember(account, op, stored_result(entry), op.now)
    return entry


def _set_policy(batch: Batch, op: SetPolicy) -> Any:
    account = account_state(batch, op.account, op.now)
    batch.adopt(account, op.now)
    account.per_request, account.daily, account.monthly, account.low_balance = op.limits
    return account.policy()


def _ensure_account(batch: Batch, op: EnsureAccount) -> Any:
    account = batch.accounts.get(op.account)
    if account is None:
        account = account_state(
            batch,
            op.account,
            op.now,
            timezone=op.timezone,
            zone=ZoneInfo(op.timezone),
            currency=op.currency,
        )
        batch.adopt(account, op.now)
    return account.ref()


_HANDLERS: dict[type[Op], Callable[[Batch, Any], Any]] = {
    RecordUsage: _record_usage,
    Reserve: holds.reserve,
    Settle: holds.settle,
    Release: holds.release,
    Deposit: _deposit,
    Refund: _refund,
    Adjust: _adjust,
    SetPolicy: _set_policy,
    EnsureAccount: _ensure_account,
    Expire: holds.expire_due,
}
