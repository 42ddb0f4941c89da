"""Write requests of the ledger (deposits, usage, refunds, holds) and what they return.

Every write carries an ``idempotency_key`` chosen by the caller: the same key with the same
request returns the first result and writes nothing; the same key with another request is an
:class:`~smartspace_budget.errors.IdempotencyConflictError`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models._base import Money, NonNegativeMoney, SpecModel
from smartspace_budget.models.dimensions import DIMENSIONS, Usage

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


_EXTRA_DIMENSIONS = tuple(
    d.field
    for d in DIMENSIONS
    if d.field
    not in (
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "request_count",
        "characters",
        "seconds",
    )
)
"""Dimensions of the usage model that a usage event writes only when used."""


class UsageEvent(SpecModel):
    """One provider call as billed: every dimension used, actual cost, how it was priced.

    ``actual_cost`` is in USDC. ``cost_is_estimate`` marks a charge made at the reservation
    because the real usage was unknown (cancelled stream, missing usage). The counts are the
    usage model's (:mod:`smartspace_budget.models.dimensions`) and nest the same way:
    ``input_tokens`` counts every input token (cached, written to the cache, audio, image),
    ``output_tokens`` every output token (reasoning, audio, image). ``unpriced`` names what
    the provider reported that no price covers (the charge is then at least the hold).
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "estimated_cost",
            "price_version",
            "request_id",
            "occurred_at",
            "characters",
            "seconds",
            "unpriced",
            "predicted_output_tokens",
            *_EXTRA_DIMENSIONS,
        }
    )

    provider: str = _ID
    model: str = _ID
    input_tokens: int = _TOKENS
    output_tokens: int = _TOKENS
    cached_input_tokens: int = _TOKENS
    cache_write_tokens: int = _TOKENS
    reasoning_tokens: int = _TOKENS
    cache_write_1h_tokens: int = _TOKENS
    input_audio_tokens: int = _TOKENS
    cached_input_audio_tokens: int = _TOKENS
    input_image_tokens: int = _TOKENS
    cached_input_image_tokens: int = _TOKENS
    input_video_tokens: int = _TOKENS
    citation_tokens: int = _TOKENS
    output_audio_tokens: int = _TOKENS
    output_image_tokens: int = _TOKENS
    output_video_tokens: int = _TOKENS
    request_count: int = Field(default=1, ge=0, le=MAX_TOKENS)
    web_searches: int = _TOKENS
    file_searches: int = _TOKENS
    messages: int = _TOKENS
    pages: int = _TOKENS
    annotated_pages: int = _TOKENS
    characters: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    seconds: NonNegativeMoney | None = None
    unpriced: dict[str, int] = Field(default_factory=dict)
    actual_cost: NonNegativeMoney
    estimated_cost: NonNegativeMoney | None = None
    price_version: str | None = Field(default=None, max_length=MAX_ID_LENGTH)
    request_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_LENGTH)
    occurred_at: datetime | None = None
    cost_is_estimate: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    predicted_output_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    """The output tokens the call's hold covered, when an output prediction sized the hold
    (the guard sets it): the settlement counts toward the prediction's miss rate."""

    @field_validator("tags")
    @classmethod
    def _small_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > 50:
            raise ValueError("at most 50 tags")
        for key, value in tags.items():
            if not key or len(key) > 100 or len(value) > 500:
                raise ValueError("tag keys are 1-100 characters, values at most 500")
        return tags

    @field_validator("unpriced")
    @classmethod
    def _small_unpriced(cls, unpriced: dict[str, int]) -> dict[str, int]:
        if len(unpriced) > 50:
            raise ValueError("at most 50 unpriced dimensions")
        for key, value in unpriced.items():
            if not key or len(key) > 100 or not 0 <= value <= MAX_TOKENS:
                raise ValueError("unpriced names are 1-100 characters with counts 0-10^12")
        return unpriced

    @model_validator(mode="after")
    def _counts_nest(self) -> UsageEvent:
        try:
            self.usage()
        except InvalidInputError as exc:
            raise ValueError(exc.detail) from None
        return self

    def usage(self) -> Usage:
        """The usage model's view of this event (validated: nested counts fit their parent)."""
        counts = {d.field: getattr(self, d.field) for d in DIMENSIONS}
        return Usage.of(**counts)

    def detail(self) -> dict[str, int | str]:
        """What the ledger stores beside its token columns: the other dimensions used, and
        what was unpriced, so the entry can be priced again later."""
        data: dict[str, int | str] = {
            name: value
            for name, value in self.usage().to_dict().items()
            if name in _EXTRA_DIMENSIONS or name in ("characters", "seconds")
        }
        if self.request_count != 1:
            data["request_count"] = self.request_count
        for name, value in self.unpriced.items():
            data[f"unpriced:{name}"] = value
        return data


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
