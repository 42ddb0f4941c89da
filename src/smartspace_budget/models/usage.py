"""Write requests of the ledger (deposits, usage, refunds, holds) and what they return.

Every write carries an ``idempotency_key`` chosen by the caller: the same key with the same
request returns the first result and writes nothing; the same key with another request is an
:class:`~smartspace_budget.errors.IdempotencyConflictError`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, field_validator

from smartspace_budget.models._base import Money, NonNegativeMoney, SpecModel

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_TOKENS",
    "AdjustRequest",
    "DepositRequest",
    "EntryKind",
    "LedgerEntry",
    "RefundRequest",
    "ReserveRequest",
    "SettleRequest",
    "UsageEvent",
]

MAX_ID_LENGTH = 200
"""Longest accepted id (user, project, request, idempotency key, provider, model)."""

MAX_TOKENS = 10**12
"""More tokens than any request could use; larger counts are refused as malformed."""

Identifier = str
_ID = Field(min_length=1, max_length=MAX_ID_LENGTH)
_TOKENS = Field(default=0, ge=0, le=MAX_TOKENS)


class EntryKind(StrEnum):
    """Kinds of ledger entries; the ledger is append-only, corrections are new entries."""

    DEPOSIT = "deposit"
    USAGE = "usage"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    RESERVATION = "reservation"
    RELEASE = "release"


class UsageEvent(SpecModel):
    """One provider call as billed: tokens, actual cost and how it was priced.

    ``actual_cost`` is in USDC. ``cost_is_estimate`` marks a charge made at the reservation
    because the real usage was unknown (cancelled stream, missing usage).
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"estimated_cost", "price_version", "request_id", "occurred_at"}
    )

    provider: str = _ID
    model: str = _ID
    input_tokens: int = _TOKENS
    output_tokens: int = _TOKENS
    cached_input_tokens: int = _TOKENS
    cache_write_tokens: int = _TOKENS
    reasoning_tokens: int = _TOKENS
    actual_cost: NonNegativeMoney
    estimated_cost: NonNegativeMoney | None = None
    price_version: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    request_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    occurred_at: datetime | None = None
    cost_is_estimate: bool = False
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _small_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > 50:
            raise ValueError("at most 50 tags")
        for key, value in tags.items():
            if not key or len(key) > 100 or len(value) > 500:
                raise ValueError("tag keys are 1-100 characters, values at most 500")
        return tags


class DepositRequest(SpecModel):
    """Credit the account with ``amount`` USDC (must be positive)."""

    amount: NonNegativeMoney
    reference: str | None = Field(default=None, max_length=MAX_ID_LENGTH)


class RefundRequest(SpecModel):
    """Credit back ``amount`` of earlier usage (the spec's "negative spending")."""

    amount: NonNegativeMoney
    usage_entry_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    request_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    reason: str = Field(default="", max_length=1000)


class AdjustRequest(SpecModel):
    """A signed correction of the balance, with the reason it was made."""

    amount: Money
    reason: str = Field(min_length=1, max_length=1000)


class ReserveRequest(SpecModel):
    """Hold ``amount`` for a request in flight for ``ttl_seconds``."""

    amount: NonNegativeMoney
    ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    request_id: str | None = Field(default=None, max_length=MAX_ID_LENGTH)


class SettleRequest(SpecModel):
    """Charge the real usage of a reserved request once and free the hold."""

    usage: UsageEvent


class LedgerEntry(SpecModel):
    """One row of the append-only ledger as the API shows it."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"provider", "model", "reservation_id", "request_id", "reason"}
    )

    entry_id: str
    user_id: str
    project_id: str
    kind: EntryKind
    amount: Money
    balance_after: Money
    occurred_at: datetime
    provider: str | None = None
    model: str | None = None
    reservation_id: str | None = None
    request_id: str | None = None
    reason: str | None = None
