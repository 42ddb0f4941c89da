"""One write transaction: load what a batch touches, decide each operation, write the changes.

:meth:`Batch.plan` is a generator of :class:`~smartspace_budget.ledger.sql.Call` objects: the
driver runs each call and sends back its result, so the same plan runs synchronously in the
SQLite writer thread and asynchronously over asyncpg.

Loading locks the accounts first (``SELECT ... FOR UPDATE`` in id order on PostgreSQL, so two
transactions never wait on each other in a cycle; on SQLite the transaction already holds the
write lock). Everything read after the account locks is stable until commit, because every
write of an account's holds, entries, rollups and idempotency keys locks that account first.
:mod:`smartspace_budget.ledger.apply` then decides each operation against this state, and
the changes are written with one statement per table.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, cast

from smartspace_budget.errors import IdempotencyConflictError, SmartspaceBudgetError
from smartspace_budget.ledger.buckets import utc_window_of
from smartspace_budget.ledger.ops import (
    AccountKey,
    Adjust,
    Deposit,
    Expire,
    KeyedOp,
    Op,
    RecordUsage,
    Refund,
    Release,
    Reserve,
    Settle,
)
from smartspace_budget.ledger.sql import ENTRY_COLUMNS, Call, Changes, SqlDialect
from smartspace_budget.ledger.state import AccountState, HoldState, UsageTarget
from smartspace_budget.models.output_sketch import bucket_of
from smartspace_budget.periods import SpendingPeriod

__all__ = ["Batch", "Contended", "Failure", "Plan", "decides_on_account_only"]

_ENTRY_DEFAULTS: dict[str, Any] = dict.fromkeys(ENTRY_COLUMNS[1:])
_ENTRY_DEFAULTS.update(amount_nano=0, hold_nano=0, cost_is_estimate=False)

_ACCOUNT_ONLY: frozenset[type[Op]] = frozenset({RecordUsage, Deposit, Adjust})
_ON_HOLD: frozenset[type[Op]] = frozenset({Settle, Release})
"""Operations naming a hold by its reservation id."""
_ON_HOLDS: frozenset[type[Op]] = frozenset({Reserve, Settle, Release})
"""Operations on holds: every pending hold of their accounts due by then is loaded."""
_HOLDS_DUE: frozenset[type[Op]] = _ON_HOLDS | {Deposit, RecordUsage, Refund, Adjust}
"""Operations before which the account's overdue holds are expired (an account holding
nothing has none, so the other writes load holds only for accounts with some reserved)."""
RollupKey = tuple[AccountKey, datetime, str, str]
WindowKey = tuple[int, datetime, datetime]
Plan = Generator[Call, Any, list[Any]]


class Failure:
    """The outcome of a refused operation: the error its caller gets."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Contended(Exception):
    """An optimistic batch cannot stand: the account changed since it was read, or the batch
    creates an account. Nothing was written; the batch is to run again under locks."""


def decides_on_account_only(op: Op) -> bool:
    """Whether ``op``'s outcome depends on nothing but its account row and its own
    idempotency key: then a read without locks, and a write that checks the account still
    holds what was read, decide it exactly as a locked transaction would."""
    kind = type(op)
    if kind is Refund:
        return cast(Refund, op).usage_entry_id is None
    return kind in _ACCOUNT_ONLY


class Batch:
    """Rows of one transaction: loaded state, then the changes to write.

    An ``optimistic`` batch (one operation for which :func:`decides_on_account_only`) reads
    without locks and writes with :meth:`SqlDialect.write_checked`, a statement that commits
    on its own: two round trips instead of BEGIN, lock, write and COMMIT. If the account
    changed in between, the write stores nothing and :class:`Contended` is raised.
    """

    def __init__(self, sql: SqlDialect, *, optimistic: bool = False) -> None:
        self.sql = sql
        self.optimistic = optimistic
        self.accounts: dict[AccountKey, AccountState] = {}
        self.by_row: dict[int, AccountState] = {}
        self.new_accounts: list[AccountState] = []
        self.holds: dict[str, HoldState] = {}
        self.targets: dict[str, UsageTarget] = {}
        self.idem: dict[tuple[AccountKey, str], tuple[str, str]] = {}
        self.window_spend: dict[WindowKey, int] = {}
        self.expire_candidates: list[HoldState] = []
        self.entry_rows: list[tuple[AccountState, dict[str, Any]]] = []
        self.rollup_deltas: dict[RollupKey, list[int]] = {}
        self.daily_deltas: dict[RollupKey, list[int]] = {}
        self.rollup_accounts: dict[AccountKey, AccountState] = {}
        self.sketch_deltas: dict[tuple[AccountKey, str, str, int], int] = {}
        self.idem_rows: list[tuple[AccountState, tuple[Any, ...]]] = []

    def plan(self, ops: Sequence[Op], apply: Any) -> Plan:
        """Load, apply each of ``ops`` with ``apply(batch, op)``, write; returns the outcomes.

        A refusal (a :class:`SmartspaceBudgetError`) becomes that operation's
        :class:`Failure`; any other exception aborts the transaction.
        """
        yield from self._load(ops)
        outcomes: list[Any] = []
        for op in ops:
            try:
                outcomes.append(apply(self, op))
            except SmartspaceBudgetError as refusal:
                outcomes.append(Failure(refusal))
        if self.sql.joined_reads_may_be_stale and not self.optimistic:
            yield from self._recheck_refusals(ops, outcomes, apply)
        yield from self._flush()
        return outcomes

    def _recheck_refusals(
        self, ops: Sequence[Op], outcomes: list[Any], apply: Any
    ) -> Generator[Call, Any, None]:
        """Decide again, from the stored results as of now, each refused keyed operation
        whose key was not found.

        On PostgreSQL the stored results joined to the account lock may predate the lock
        (``SqlDialect.joined_reads_may_be_stale``): a copy of a request that waited for the
        account while the first copy committed would see the first copy's effects (a hold
        settled, an entry refunded) but not its key, and be refused. Its key is read again
        now, under the lock: found, the copy gets the stored answer (or the conflict error if
        its body differs). A refusal changed nothing, so deciding again is safe; a copy that
        succeeded on the stale read cannot stand either, as storing its key then breaks the
        key's uniqueness and the whole batch runs again.
        """
        pending: list[tuple[int, KeyedOp, AccountState]] = []
        for index, (op, outcome) in enumerate(zip(ops, outcomes, strict=True)):
            if not isinstance(outcome, Failure) or isinstance(
                outcome.error, IdempotencyConflictError
            ):
                continue
            key = getattr(op, "key", None)
            account = self._account_of(op)
            if key is None or account is None or account.row_id is None:
                continue
            if (account.key, key) not in self.idem:
                pending.append((index, cast(KeyedOp, op), account))
        if not pending:
            return
        pairs = sorted({(cast(int, account.row_id), op.key) for _, op, account in pending})
        rows = yield self.sql.load_stored_results(pairs)
        for account_id, key, fingerprint, result in rows:
            self.idem[(self.by_row[account_id].key, key)] = (fingerprint, result)
        for index, op, account in pending:
            if (account.key, op.key) not in self.idem:
                continue
            try:
                outcomes[index] = apply(self, op)
            except SmartspaceBudgetError as refusal:
                outcomes[index] = Failure(refusal)

    def _account_of(self, op: Op) -> AccountState | None:
        """The loaded account an operation writes to (a hold's account for settle/release)."""
        if type(op) in _ON_HOLD:
            hold = self.holds.get(cast(Settle | Release, op).reservation_id)
            return None if hold is None else hold.account
        key = getattr(op, "account", None)
        return None if key is None else self.accounts.get(key)

    # -- loading ---------------------------------------------------------------------------

    def _load(self, ops: Sequence[Op]) -> Generator[Call, Any, None]:
        keys: set[AccountKey] = set()
        hold_ids: set[str] = set()
        refund_targets: set[str] = set()
        idem_keys: set[str] = set()
        expire: Expire | None = None
        overdue_at: datetime | None = None
        on_holds = False
        # By exact type, as ``apply`` dispatches (no operation class subclasses another): an
        # ``isinstance`` check against these classes goes through ``ABCMeta`` (``KeyedOp``)
        # and this loop made eight of them per operation.
        for op in ops:
            kind = type(op)
            account = getattr(op, "account", None)
            if account is not None:
                keys.add(account)
            key = getattr(op, "key", None)  # a KeyedOp's idempotency key
            if key is not None:
                idem_keys.add(key)
            if kind in _ON_HOLD:
                hold_ids.add(cast(Settle | Release, op).reservation_id)
            if kind is Refund:
                target = cast(Refund, op).usage_entry_id
                if target is not None:
                    refund_targets.add(target)
            elif kind is Expire and (expire is None or op.now > expire.now):
                expire = cast(Expire, op)
            if kind in _HOLDS_DUE:
                overdue_at = op.now if overdue_at is None else max(overdue_at, op.now)
                on_holds = on_holds or kind in _ON_HOLDS

        row_ids: set[int] = set()
        if expire is not None:
            rows = yield self.sql.expire_candidates(expire.now, expire.limit)
            for reservation_id, account_id in rows:
                hold_ids.add(reservation_id)
                row_ids.add(account_id)
        if keys or row_ids or hold_ids:
            rows = yield self.sql.lock_accounts(
                sorted(keys),
                sorted(row_ids),
                sorted(hold_ids),
                sorted(idem_keys),
                lock=not self.optimistic,
            )
            self._read_accounts(rows)
        holding: list[int] = []
        if overdue_at is not None:
            holding = sorted(
                row for row, state in self.by_row.items() if on_holds or state.reserved > 0
            )
        if hold_ids or holding:
            rows = yield self.sql.load_holds(sorted(hold_ids), holding, overdue_at)
            self._read_holds(rows, None if expire is None else expire.now)
            if self.optimistic and any(
                hold.status == "pending"
                and overdue_at is not None
                and hold.expires_at <= overdue_at
                for hold in self.holds.values()
            ):
                # Expiring writes hold rows, which the one-statement write does not.
                raise Contended("overdue holds are expired under locks")
        if refund_targets:
            rows = yield self.sql.load_targets(sorted(refund_targets))
            for entry_id, account_id, amount, provider, model, refunded in rows:
                self.targets[entry_id] = UsageTarget(
                    entry_id, account_id, -amount, int(refunded), provider or "", model or ""
                )
        for key in sorted(self._windows_needed(ops)):
            total = yield self.sql.window_spend(*key)
            self.window_spend[key] = int(total or 0)

    def _read_accounts(self, rows: Sequence[Sequence[Any]]) -> None:
        width = len(rows[0]) - 3 if rows else 0
        for row in rows:
            account_id = row[0]
            state = self.by_row.get(account_id)
            if state is None:
                state = AccountState.from_row(row[:width], self.sql.ts_out)
                self.accounts[state.key] = state
                self.by_row[account_id] = state
            key, fingerprint, result = row[width:]
            if key is not None:
                self.idem[(state.key, key)] = (fingerprint, result)

    def _read_holds(self, rows: Sequence[Sequence[Any]], expire_at: datetime | None) -> None:
        for row in rows:
            values = self.sql.decode_hold(row)
            account = self.by_row.get(values["account_id"])
            if account is None or values["reservation_id"] in self.holds:
                continue
            hold = HoldState.from_values(values, account)
            self.holds[hold.reservation_id] = hold
            if expire_at is not None and hold.status == "pending" and hold.expires_at <= expire_at:
                self.expire_candidates.append(hold)
        self.expire_candidates.sort(key=lambda hold: hold.expires_at)

    def _windows_needed(self, ops: Sequence[Op]) -> set[WindowKey]:
        """The day and month of each reservation on an account with a positive limit."""
        wanted: set[WindowKey] = set()
        for op in ops:
            if type(op) is not Reserve:
                continue
            state = self.accounts.get(op.account)
            if state is None or state.row_id is None:
                continue
            for limit, period in (
                (state.daily, SpendingPeriod.DAILY),
                (state.monthly, SpendingPeriod.MONTHLY),
            ):
                if limit:
                    start, end = utc_window_of(period, op.now, state.zone)
                    wanted.add((state.row_id, start, end))
        return wanted

    # -- recording changes -------------------------------------------------------------------

    def adopt(self, state: AccountState, now: datetime) -> None:
        """Mark an account changed; a new one is registered (an operation succeeded on it)."""
        if state.new and state.key not in self.accounts:
            self.accounts[state.key] = state
            self.new_accounts.append(state)
        state.updated_at = now
        state.dirty = True

    def add_entry(self, account: AccountState, **values: Any) -> dict[str, Any]:
        row = dict(_ENTRY_DEFAULTS)
        row.update(values)
        self.entry_rows.append((account, row))
        return row

    def add_rollup(
        self,
        account: AccountState,
        buckets: tuple[datetime, datetime],
        provider: str,
        model: str,
        spent: int,
        requests: int,
        tokens: Sequence[int],
    ) -> None:
        """Add to the hourly and the daily bucket (``buckets``) of ``account``."""
        self.rollup_accounts[account.key] = account
        for deltas, bucket in zip((self.rollup_deltas, self.daily_deltas), buckets, strict=True):
            key = (account.key, bucket, provider, model)
            delta = deltas.get(key)
            if delta is None:
                deltas[key] = [spent, requests, *tokens]
                continue
            delta[0] += spent
            delta[1] += requests
            for index, count in enumerate(tokens, start=2):
                delta[index] += count

    def add_output(self, account: AccountState, provider: str, model: str, tokens: int) -> None:
        """Count one call that produced ``tokens`` output tokens in the account's sketch."""
        self.rollup_accounts[account.key] = account
        key = (account.key, provider, model, bucket_of(tokens))
        self.sketch_deltas[key] = self.sketch_deltas.get(key, 0) + 1

    def pending_spend(self, account: AccountState, start: datetime, end: datetime) -> int:
        """Net spending this batch added to ``account`` in ``[start, end)`` (whole local days)
        that is not written yet."""
        total = 0
        for (key, day, _, _), delta in self.daily_deltas.items():
            if key == account.key and start <= day < end:
                total += delta[0]
        return total

    def remember(self, account: AccountState, op: KeyedOp, result_json: str, now: datetime) -> None:
        self.idem[(account.key, op.key)] = (op.fingerprint, result_json)
        self.idem_rows.append((account, (op.key, op.operation, op.fingerprint, result_json, now)))

    # -- writing ---------------------------------------------------------------------------

    def _flush(self) -> Generator[Call, Any, None]:
        if self.optimistic and self.new_accounts:
            raise Contended("a new account is created under locks")
        for state in self.new_accounts:
            state.row_id = yield self.sql.insert_account(state.insert_values())
            state.new = False
            state.dirty = False
        changes = Changes()
        changes.accounts = [
            state.update_values() for state in self.accounts.values() if state.dirty
        ]
        changes.entries = [(account.row_id, *row.values()) for account, row in self.entry_rows]
        for hold in self.holds.values():
            if hold.new:
                changes.holds_new.append(hold.insert_values())
            elif hold.dirty:
                changes.holds_resolved.append(hold.update_values())
        for target, deltas in (
            (changes.rollups, self.rollup_deltas),
            (changes.daily_rollups, self.daily_deltas),
        ):
            target.extend(
                (self.rollup_accounts[key].row_id, bucket, provider, model, *delta)
                for (key, bucket, provider, model), delta in deltas.items()
            )
        changes.sketches = [
            (self.rollup_accounts[key].row_id, provider, model, bucket, calls)
            for (key, provider, model, bucket), calls in self.sketch_deltas.items()
        ]
        changes.idempotency = [(account.row_id, *row) for account, row in self.idem_rows]
        if not self.optimistic:
            yield from self.sql.write(changes)
            return
        if not changes.accounts:
            return  # a replay or a refusal: nothing to write
        (account,) = (state for state in self.accounts.values() if state.dirty)
        call = self.sql.write_checked(changes, account.loaded)
        if call is None or (yield call) != 1:
            raise Contended(f"account {account.row_id} changed since it was read")
