"""Write operations as the writer queues them: validated, in ledger units, with a fingerprint.

Everything a caller can get wrong is checked here, before an operation is queued, so a bad
request raises its typed error at once and never reaches a transaction. The fingerprint of a
keyed operation is a hash of its canonical form (amounts in nano-units, instants in UTC), so
``Decimal("1.0")`` and ``"1.00"`` are the same request and a retried call matches its first
attempt exactly.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.models import BudgetPolicy, UsageEvent
from smartspace_budget.models.ids import check_id as check_id_grammar
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.money import to_nano

__all__ = [
    "AccountKey",
    "Adjust",
    "Deposit",
    "EnsureAccount",
    "Expire",
    "KeyedOp",
    "Op",
    "RecordUsage",
    "Refund",
    "Release",
    "Reserve",
    "SetPolicy",
    "Settle",
    "UsageRecord",
    "check_currency",
    "check_id",
    "check_instant",
    "check_text",
    "check_timezone",
    "check_ttl",
    "now_or",
    "policy_to_nano",
    "positive_nano",
]

AccountKey = tuple[str, str]
MAX_TTL_SECONDS = 86_400
MAX_REASON_LENGTH = 1000
# ``json.dumps`` with any non-default option builds a new encoder per call; these are the
# same encoders, built once.
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"))
_TAGS_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def check_id(value: object, name: str) -> str:
    """An id in the one id grammar of every door (:mod:`smartspace_budget.models.ids`): 1 to
    ``MAX_ID_LENGTH`` characters, no control, format or separator character, no U+FFFD."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    return check_id_grammar(value, name)


def check_text(value: object, name: str, max_length: int = MAX_REASON_LENGTH) -> str:
    """Free text (reasons, references) of bounded length without NUL."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > max_length or "\x00" in value:
        raise InvalidInputError(
            f"{name} must be at most {max_length} characters without NUL", field=name
        )
    return value


def check_instant(value: object, name: str) -> datetime:
    """An aware datetime in a year the calendar code supports, returned in UTC."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{name} {value} is naive; pass a timezone-aware datetime")
    if not 1970 <= value.year <= 9998:
        raise InvalidInputError(f"{name} {value} is outside the years 1970-9998")
    return value.astimezone(UTC)


def now_or(now: datetime | None) -> datetime:
    """The caller's clock (tests pass a fake one) or the real one, in UTC."""
    return datetime.now(UTC) if now is None else check_instant(now, "now")


def check_timezone(value: object) -> tuple[str, ZoneInfo]:
    """An IANA timezone name and its zone; :class:`InvalidInputError` when unknown."""
    if not isinstance(value, str) or not value or len(value) > 64 or "\x00" in value:
        raise InvalidInputError(f"timezone must be an IANA name, got {value!r}")
    try:
        return value, ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInputError(f"unknown timezone {value!r}; expected an IANA name") from None


def positive_nano(amount: object, name: str) -> int:
    """``amount`` in nano-units; it must be at least one nano-unit (deposits, refunds)."""
    nano = to_nano(amount, name=name, allow_negative=False)  # type: ignore[arg-type]
    if nano <= 0:
        raise InvalidAmountError(f"{name} must be positive (at least 1e-9), got {amount}")
    return nano


def policy_to_nano(policy: BudgetPolicy) -> tuple[int | None, int | None, int | None, int | None]:
    """The policy's limits in nano-units (per request, daily, monthly, low-balance threshold)."""
    if not isinstance(policy, BudgetPolicy):
        raise InvalidInputError(f"policy must be a BudgetPolicy, not {type(policy).__name__}")

    def nano(value: Decimal | None, name: str) -> int | None:
        return None if value is None else to_nano(value, name=name, allow_negative=False)

    return (
        nano(policy.per_request_limit, "per_request_limit"),
        nano(policy.daily_limit, "daily_limit"),
        nano(policy.monthly_limit, "monthly_limit"),
        nano(policy.low_balance_threshold, "low_balance_threshold"),
    )


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """A validated :class:`UsageEvent` in ledger units."""

    provider: str
    model: str
    tokens: tuple[int, int, int, int, int]
    cost_nano: int
    estimated_nano: int | None
    price_version: str | None
    request_id: str | None
    occurred_at: datetime | None
    cost_is_estimate: bool
    tags_json: str | None
    detail_json: str | None = None
    predicted_output: int | None = None
    """The output tokens the call's hold covered when an output prediction sized it."""

    @classmethod
    def from_event(cls, usage: object) -> UsageRecord:
        """Check a usage event again (it may have been built without validation)."""
        if not isinstance(usage, UsageEvent):
            raise InvalidInputError(f"usage must be a UsageEvent, not {type(usage).__name__}")
        tokens = []
        for name in _TOKEN_FIELDS:
            count = getattr(usage, name)
            if (
                isinstance(count, bool)
                or not isinstance(count, int)
                or not 0 <= count <= MAX_TOKENS
            ):
                raise InvalidInputError(f"{name} must be an int in 0..{MAX_TOKENS}, got {count!r}")
            tokens.append(count)
        tags = usage.tags
        if not isinstance(tags, dict) or len(tags) > 50:
            raise InvalidInputError("tags must be a mapping of at most 50 strings")
        for key, value in tags.items():
            check_text(key, "tag key", 100)
            check_text(value, "tag value", 500)
        estimated = usage.estimated_cost
        try:
            detail = usage.detail()  # checks every count and that nested counts fit
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidInputError(f"usage is malformed: {exc}") from None
        return cls(
            provider=check_id(usage.provider, "provider"),
            model=check_id(usage.model, "model"),
            tokens=(tokens[0], tokens[1], tokens[2], tokens[3], tokens[4]),
            cost_nano=to_nano(usage.actual_cost, name="actual_cost", allow_negative=False),
            estimated_nano=None
            if estimated is None
            else to_nano(estimated, name="estimated_cost", allow_negative=False),
            price_version=None
            if usage.price_version is None
            else check_id(usage.price_version, "price_version"),
            request_id=None
            if usage.request_id is None
            else check_id(usage.request_id, "request_id"),
            occurred_at=None
            if usage.occurred_at is None
            else check_instant(usage.occurred_at, "occurred_at"),
            cost_is_estimate=bool(usage.cost_is_estimate),
            tags_json=_TAGS_JSON.encode(tags) if tags else None,
            detail_json=_TAGS_JSON.encode(detail) if detail else None,
            predicted_output=_predicted(getattr(usage, "predicted_output_tokens", None)),
        )

    def canonical(self) -> list[Any]:
        return [
            self.provider,
            self.model,
            list(self.tokens),
            self.cost_nano,
            self.estimated_nano,
            self.price_version,
            self.request_id,
            None if self.occurred_at is None else self.occurred_at.isoformat(),
            self.cost_is_estimate,
            self.tags_json,
            # Only when present, so keys recorded before the usage model keep their fingerprint.
            *([] if self.detail_json is None else [self.detail_json]),
            *([] if self.predicted_output is None else [["predicted", self.predicted_output]]),
        ]


def _predicted(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise InvalidInputError(
            f"predicted_output_tokens must be an int in 0..{MAX_TOKENS}, got {value!r}"
        )
    return value


@dataclass(slots=True)
class Op:
    """Base of queued operations; ``now`` is the instant the write takes effect."""

    now: datetime


@dataclass(slots=True)
class KeyedOp(Op, ABC):
    """An idempotent write: ``key`` is the caller's idempotency key."""

    key: str
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    operation = "op"

    @abstractmethod
    def canonical(self) -> list[Any]:
        """The request's content, in the order and units its fingerprint hashes."""

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            body = _CANONICAL_JSON.encode([self.operation, *self.canonical()])
            self._fingerprint = hashlib.sha256(body.encode()).hexdigest()
        return self._fingerprint


@dataclass(slots=True)
class Deposit(KeyedOp):
    account: AccountKey = ("", "")
    amount: int = 0
    reference: str | None = None
    operation = "deposit"

    def canonical(self) -> list[Any]:
        return [*self.account, self.amount, self.reference]


@dataclass(slots=True)
class RecordUsage(KeyedOp):
    account: AccountKey = ("", "")
    usage: UsageRecord | None = None
    operation = "record_usage"

    def canonical(self) -> list[Any]:
        assert self.usage is not None
        return [*self.account, self.usage.canonical()]


@dataclass(slots=True)
class Refund(KeyedOp):
    account: AccountKey = ("", "")
    amount: int = 0
    usage_entry_id: str | None = None
    reason: str = ""
    operation = "refund"

    def canonical(self) -> list[Any]:
        return [*self.account, self.amount, self.usage_entry_id, self.reason]


@dataclass(slots=True)
class Adjust(KeyedOp):
    account: AccountKey = ("", "")
    amount: int = 0
    reason: str = ""
    operation = "adjust"

    def canonical(self) -> list[Any]:
        return [*self.account, self.amount, self.reason]


@dataclass(slots=True)
class Reserve(KeyedOp):
    account: AccountKey = ("", "")
    amount: int = 0
    ttl_seconds: int = 300
    request_id: str | None = None
    operation = "reserve"

    def canonical(self) -> list[Any]:
        return [*self.account, self.amount, self.ttl_seconds, self.request_id]


@dataclass(slots=True)
class Settle(KeyedOp):
    reservation_id: str = ""
    usage: UsageRecord | None = None
    operation = "settle"

    def canonical(self) -> list[Any]:
        assert self.usage is not None
        return [self.reservation_id, self.usage.canonical()]


@dataclass(slots=True)
class Release(KeyedOp):
    reservation_id: str = ""
    operation = "release"

    def canonical(self) -> list[Any]:
        return [self.reservation_id]


@dataclass(slots=True)
class SetPolicy(Op):
    account: AccountKey = ("", "")
    limits: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)


@dataclass(slots=True)
class EnsureAccount(Op):
    account: AccountKey = ("", "")
    timezone: str = "UTC"
    currency: str = "USDC"


@dataclass(slots=True)
class Expire(Op):
    """Release holds whose expiry is at or before ``now``; at most ``limit`` per transaction."""

    limit: int = 1000


def check_ttl(ttl_seconds: object) -> int:
    """A hold lasts between one second and one day."""
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise InvalidInputError(f"ttl_seconds must be an int, not {type(ttl_seconds).__name__}")
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInputError(f"ttl_seconds must be 1..{MAX_TTL_SECONDS}, got {ttl_seconds}")
    return ttl_seconds


def check_currency(value: object) -> str:
    """A currency code: 2-10 letters or digits, stored upper-case."""
    if not isinstance(value, str):
        raise InvalidInputError(f"currency must be a string, not {type(value).__name__}")
    code = value.strip().upper()
    if not code.isascii() or not code.isalnum() or not 2 <= len(code) <= 10:
        raise InvalidInputError(f"not a currency code: {value!r}")
    return code
