"""In-memory state of the rows one write transaction works on.

The writer loads the accounts, holds and usage entries a batch touches (locked on
PostgreSQL), applies the operations to these objects one after another in Python, and
writes what changed at the end. Nothing here talks to the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from smartspace_budget.ledger.ops import AccountKey
from smartspace_budget.models import (
    AccountRef,
    BudgetPolicy,
    BudgetReservation,
    EntryKind,
    LedgerEntry,
    ReservationStatus,
    SpecModel,
)
from smartspace_budget.models._trusted import builder
from smartspace_budget.money import from_nano

__all__ = [
    "AccountState",
    "HoldState",
    "UsageTarget",
    "entry_model",
    "policy_from_nano",
    "stored_result",
]


def _money(nano: int | None) -> Any:
    return None if nano is None else from_nano(nano)


def policy_from_nano(
    per_request: int | None, daily: int | None, monthly: int | None, low_balance: int | None
) -> BudgetPolicy:
    """The policy as the API shows it (``None`` limits are unlimited)."""
    return BudgetPolicy(
        per_request_limit=_money(per_request),
        daily_limit=_money(daily),
        monthly_limit=_money(monthly),
        low_balance_threshold=_money(low_balance),
    )


@dataclass(slots=True, eq=False)
class AccountState:
    """An account row; ``row_id`` is ``None`` until a new account is inserted."""

    row_id: int | None
    user_id: str
    project_id: str
    currency: str
    timezone: str
    zone: ZoneInfo
    balance: int
    reserved: int
    spent: int
    per_request: int | None
    daily: int | None
    monthly: int | None
    low_balance: int | None
    created_at: datetime
    updated_at: datetime
    new: bool = False
    dirty: bool = False
    loaded: tuple[int | None, ...] = ()

    @property
    def key(self) -> AccountKey:
        return (self.user_id, self.project_id)

    def mutable_values(self) -> tuple[int | None, ...]:
        """Everything a write may change and a rule may read, in ``ACCOUNT_STATE_COLUMNS`` order."""
        return (
            self.balance,
            self.reserved,
            self.spent,
            self.per_request,
            self.daily,
            self.monthly,
            self.low_balance,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any], ts_out: Callable[[Any], datetime | None]) -> AccountState:
        """From a row of ``ACCOUNT_COLUMNS`` as the driver returns it (``ts_out`` decodes its
        instants), read by position: every write loads its account. ``loaded`` keeps the
        values as read, which an optimistic write checks are still the stored ones."""
        (
            row_id,
            user_id,
            project_id,
            currency,
            timezone,
            balance,
            reserved,
            spent,
            per_request,
            daily,
            monthly,
            low_balance,
            created_at,
            updated_at,
        ) = row
        state = cls(
            row_id=row_id,
            user_id=user_id,
            project_id=project_id,
            currency=currency,
            timezone=timezone,
            zone=ZoneInfo(timezone),
            balance=balance,
            reserved=reserved,
            spent=spent,
            per_request=per_request,
            daily=daily,
            monthly=monthly,
            low_balance=low_balance,
            created_at=cast(datetime, ts_out(created_at)),
            updated_at=cast(datetime, ts_out(updated_at)),
        )
        state.loaded = state.mutable_values()
        return state

    def insert_values(self) -> tuple[Any, ...]:
        """The row in ``ACCOUNT_COLUMNS`` order, without the id the database assigns."""
        return (
            self.user_id,
            self.project_id,
            self.currency,
            self.timezone,
            *self.mutable_values(),
            self.created_at,
            self.updated_at,
        )

    def update_values(self) -> tuple[Any, ...]:
        """What a write changes, in ``ACCOUNT_UPDATE_COLUMNS`` order."""
        return (self.row_id, *self.mutable_values(), self.updated_at)

    def ref(self) -> AccountRef:
        return AccountRef(
            user_id=self.user_id,
            project_id=self.project_id,
            currency=self.currency,
            timezone=self.timezone,
        )

    def policy(self) -> BudgetPolicy:
        return policy_from_nano(self.per_request, self.daily, self.monthly, self.low_balance)


@dataclass(slots=True, eq=False)
class HoldState:
    """A reservation row; ``new`` holds are inserted, changed ones updated."""

    reservation_id: str
    account: AccountState
    amount: int
    status: str
    created_at: datetime
    expires_at: datetime
    request_id: str | None
    settled: int | None = None
    resolved_at: datetime | None = None
    usage_entry_id: str | None = None
    new: bool = False
    dirty: bool = False

    @classmethod
    def from_values(cls, row: dict[str, Any], account: AccountState) -> HoldState:
        """From a row of ``HOLD_COLUMNS`` (instants already decoded)."""
        return cls(
            reservation_id=row["reservation_id"],
            account=account,
            amount=row["amount_nano"],
            status=row["status"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            request_id=row["request_id"],
            settled=row["settled_nano"],
            resolved_at=row["resolved_at"],
            usage_entry_id=row["usage_entry_id"],
        )

    def insert_values(self) -> tuple[Any, ...]:
        """The row in ``HOLD_COLUMNS`` order."""
        return (
            self.reservation_id,
            self.account.row_id,
            self.amount,
            self.status,
            self.created_at,
            self.expires_at,
            self.request_id,
            self.settled,
            self.resolved_at,
            self.usage_entry_id,
        )

    def update_values(self) -> tuple[Any, ...]:
        """How it was resolved, in ``HOLD_UPDATE_COLUMNS`` order."""
        return (
            self.reservation_id,
            self.status,
            self.settled,
            self.resolved_at,
            self.usage_entry_id,
        )

    def to_model(self) -> BudgetReservation:
        return BudgetReservation.model_construct(
            reservation_id=self.reservation_id,
            user_id=self.account.user_id,
            project_id=self.account.project_id,
            amount=from_nano(self.amount),
            status=ReservationStatus(self.status),
            created_at=self.created_at,
            expires_at=self.expires_at,
            request_id=self.request_id,
            settled_amount=_money(self.settled),
            resolved_at=self.resolved_at,
        )


@dataclass(slots=True, eq=False)
class UsageTarget:
    """A usage entry a refund points at: what it cost and how much was refunded already."""

    entry_id: str
    account_id: int
    cost: int
    refunded: int
    provider: str
    model: str


def stored_result(result: SpecModel) -> str:
    """A result as kept for idempotent replay: amounts as exact strings, read back by
    ``from_json`` of the same model (and cheaper to write than JSON numbers).

    pydantic-core writes the JSON itself: the same compact document as ``json.dumps`` of
    ``model_dump(mode="json")`` at less than half the cost, on every write's path.
    """
    return result.model_dump_json()


# LedgerEntry.model_construct for values naming every field, without its per-field walk
# over aliases and defaults, which cost 4 µs of every write (models/_trusted.py; a test
# compares the two).
_entry = builder(LedgerEntry)


def entry_model(user_id: str, project_id: str, row: Any) -> LedgerEntry:
    """An entry as the API shows it, from a row mapping (stored or about to be); the values
    come from the ledger's own rows, so the model is built without validating them again.

    ``amount`` is the signed change to the balance; for ``reservation`` and ``release``
    entries, which leave the balance alone, it is the amount held or freed.
    """
    kind = EntryKind(row["kind"])
    if kind in (EntryKind.RESERVATION, EntryKind.RELEASE):
        amount = abs(row["hold_nano"])
    else:
        amount = row["amount_nano"]
    return _entry(
        {
            "entry_id": row["entry_id"],
            "user_id": user_id,
            "project_id": project_id,
            "kind": kind,
            "amount": from_nano(amount),
            "balance_after": from_nano(row["balance_after_nano"]),
            "occurred_at": row["occurred_at"],
            "provider": row["provider"] or None,
            "model": row["model"] or None,
            "reservation_id": row["reservation_id"],
            "request_id": row["request_id"],
            "reason": row["reason"],
        }
    )
