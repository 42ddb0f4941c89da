"""Budget models of the spec: policy, check, status, reservation and analytics."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, field_validator

from smartspace_budget import wiring
from smartspace_budget.models._base import Money, NonNegativeAmount, NonNegativeMoney, SpecModel
from smartspace_budget.periods import SpendingPeriod

if TYPE_CHECKING:  # the type only: the class lives in the budgets layer (see ``wiring``)
    from smartspace_budget.budgets.policy import BackendPolicy

__all__ = [
    "AccountRef",
    "Balance",
    "BudgetCheck",
    "BudgetPolicy",
    "BudgetReservation",
    "BudgetStatus",
    "PolicyViolation",
    "PredictionStats",
    "ReservationStatus",
    "SpendingAnalytics",
    "SpendingBucket",
    "SpendingPeriod",
    "SpendingSummary",
    "SpendingTrend",
    "ViolationKind",
]


def _now() -> datetime:
    return datetime.now(UTC)


class BudgetPolicy(SpecModel):
    """Spending limits of one account. ``None`` means unlimited; a limit of 0 blocks all spending.

    Negative limits are refused. ``BudgetPolicy.fetch_from_backend(user_id, project_id)``
    (the spec's Example 1) is provided by :mod:`smartspace_budget.budgets`, which knows the
    backend; see ``BackendPolicy`` there.
    """

    per_request_limit: NonNegativeAmount | None = None
    daily_limit: NonNegativeAmount | None = None
    monthly_limit: NonNegativeAmount | None = None
    low_balance_threshold: NonNegativeAmount | None = None

    @classmethod
    def fetch_from_backend(cls, user_id: str, project_id: str) -> BackendPolicy:
        """The account's policy as the backend has it (the spec's Example 1); see ``BackendPolicy``.

        It fails closed: its limits read as the stored ones or raise a typed error, never
        "unlimited". Outside an event loop it is read at once; inside one,
        ``check_against_policy`` loads it when it checks, and ``await`` loads it now.
        """
        fetch = wiring.policy_fetcher
        if fetch is None:  # the package binds it on import, before any model is used
            raise RuntimeError("smartspace_budget did not bind its policy fetcher")
        policy: BackendPolicy = fetch(user_id, project_id)
        return policy


class ViolationKind(StrEnum):
    """Which rule a request breaks."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    PER_REQUEST_LIMIT = "per_request_limit"
    DAILY_LIMIT = "daily_limit"
    MONTHLY_LIMIT = "monthly_limit"


class PolicyViolation(SpecModel):
    """One broken rule with the amounts involved, so callers need not parse the message."""

    kind: ViolationKind
    message: str
    limit: Money
    current: Money
    requested: Money
    critical: bool = False


class BudgetCheck(SpecModel):
    """Result of a budget check: ``available`` is true only when every rule passed.

    ``violations`` are human-readable messages (the spec's shape); ``violation_details``
    carries the same violations with their amounts.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset({"available_balance", "policy"})

    user_id: str
    project_id: str
    requested_amount: NonNegativeMoney
    available: bool
    available_balance: Money | None = None
    violations: list[str] = Field(default_factory=list)
    violation_details: list[PolicyViolation] = Field(default_factory=list)
    policy: BudgetPolicy | None = None
    checked_at: datetime = Field(default_factory=_now)

    @property
    def sufficient(self) -> bool:
        """Spec wording: the check found sufficient budget."""
        return self.available


class Balance(SpecModel):
    """Balance of one account: ``available_balance = total_balance - reserved_amount``."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset({"as_of"})

    total_balance: Money
    available_balance: Money
    reserved_amount: NonNegativeMoney
    currency: str = "USDC"
    as_of: datetime | None = None


class BudgetStatus(SpecModel):
    """The spec's budget status. Limits are ``None`` when unlimited.

    The limit-reached flags and the low-balance warning are derived from the amounts, so they
    can never disagree with them.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"low_balance_threshold", "currency", "timezone", "as_of"}
    )
    SPEC_KEYS: ClassVar[tuple[str, ...]] = (
        "total_balance",
        "available_balance",
        "reserved_amount",
        "spent_today",
        "spent_this_month",
        "spent_total",
        "daily_limit",
        "monthly_limit",
        "per_request_limit",
    )

    total_balance: Money
    available_balance: Money
    reserved_amount: NonNegativeMoney
    spent_today: Money
    spent_this_month: Money
    spent_total: Money
    daily_limit: NonNegativeMoney | None = None
    monthly_limit: NonNegativeMoney | None = None
    per_request_limit: NonNegativeMoney | None = None
    low_balance_threshold: NonNegativeMoney | None = None
    currency: str | None = None
    timezone: str | None = None
    as_of: datetime | None = None

    @property
    def daily_limit_reached(self) -> bool:
        """Today's spending has reached the daily limit (a limit of 0 is always reached)."""
        return self.daily_limit is not None and self.spent_today >= self.daily_limit

    @property
    def monthly_limit_reached(self) -> bool:
        """This month's spending has reached the monthly limit."""
        return self.monthly_limit is not None and self.spent_this_month >= self.monthly_limit

    @property
    def low_balance_warning(self) -> bool:
        """The available balance is at or below the low-balance threshold, or exhausted
        (zero or below) whatever the threshold."""
        if self.available_balance <= 0:
            return True
        return (
            self.low_balance_threshold is not None
            and self.available_balance <= self.low_balance_threshold
        )

    @property
    def daily_remaining(self) -> Decimal | None:
        """What may still be spent today, ``None`` when unlimited (never negative)."""
        if self.daily_limit is None:
            return None
        return max(Decimal(0), self.daily_limit - self.spent_today)

    @property
    def monthly_remaining(self) -> Decimal | None:
        """What may still be spent this month, ``None`` when unlimited (never negative)."""
        if self.monthly_limit is None:
            return None
        return max(Decimal(0), self.monthly_limit - self.spent_this_month)


class ReservationStatus(StrEnum):
    """Life cycle of a hold: pending, then exactly one of settled, released or expired."""

    PENDING = "pending"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


class BudgetReservation(SpecModel):
    """Funds held for a request in flight (the backend manages them; see the ledger)."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"settled_amount", "resolved_at", "request_id"}
    )

    reservation_id: str
    user_id: str
    project_id: str
    amount: NonNegativeMoney
    status: ReservationStatus = ReservationStatus.PENDING
    created_at: datetime
    expires_at: datetime
    request_id: str | None = None
    settled_amount: Money | None = None
    resolved_at: datetime | None = None


class SpendingTrend(StrEnum):
    """Direction of spending over recent periods (see ``budgets.analysis``)."""

    INCREASING = "increasing"
    DECREASING = "decreasing"
    STABLE = "stable"


class SpendingSummary(SpecModel):
    """Spending of one account in one period window (the ``/spending/{period}`` response)."""

    period: SpendingPeriod
    period_start: datetime
    period_end: datetime
    total_spent: Money
    request_count: int = Field(ge=0)
    currency: str = "USDC"


class PredictionStats(SpecModel):
    """How holds sized by an output prediction fared: calls settled, how many cost more
    than their hold (charged in full all the same), and that share (``None`` without any)."""

    predicted_calls: int = Field(ge=0)
    missed_calls: int = Field(ge=0)
    miss_rate: Decimal | None = None

    @classmethod
    def of(cls, predicted: int, missed: int) -> PredictionStats:
        rate = (
            None
            if not predicted
            else (Decimal(missed) / Decimal(predicted)).quantize(Decimal("0.0001"))
        )
        return cls(predicted_calls=predicted, missed_calls=missed, miss_rate=rate)


class SpendingAnalytics(SpecModel):
    """The spec's spending analytics for one period window.

    ``total_spent`` may be below the sum of usage when refunds fell in the period (the spec's
    "negative spending").
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "period",
            "period_start",
            "period_end",
            "requests_by_model",
            "currency",
            "predictions",
            "predictions_by_model",
        }
    )
    SPEC_KEYS: ClassVar[tuple[str, ...]] = (
        "total_spent",
        "request_count",
        "average_per_request",
        "spending_by_provider",
        "requests_by_provider",
        "spending_by_model",
        "spending_trend",
        "anomaly_detected",
    )

    total_spent: Money
    request_count: int = Field(ge=0)
    average_per_request: Money
    spending_by_provider: dict[str, Money] = Field(default_factory=dict)
    requests_by_provider: dict[str, int] = Field(default_factory=dict)
    spending_by_model: dict[str, Money] = Field(default_factory=dict)
    spending_trend: SpendingTrend = SpendingTrend.STABLE
    anomaly_detected: bool = False
    requests_by_model: dict[str, int] | None = None
    period: SpendingPeriod | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    currency: str | None = None
    predictions: PredictionStats | None = None
    """Settlements of holds sized by an output prediction in the window, and the misses."""
    predictions_by_model: dict[str, PredictionStats] | None = None
    """The same by ``"provider/model"`` (models with such settlements only)."""

    @field_validator("requests_by_provider", "requests_by_model")
    @classmethod
    def _counts_not_negative(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None:
            for key, count in value.items():
                if count < 0:
                    raise ValueError(f"request count for {key!r} must not be negative")
        return value


class AccountRef(SpecModel):
    """A (user_id, project_id) pair with the account's currency and timezone."""

    user_id: str
    project_id: str
    currency: str = "USDC"
    timezone: str = "UTC"


class SpendingBucket(SpecModel):
    """Net spending (usage minus refunds) and request count in one window [start, end)."""

    start: datetime
    end: datetime
    spent: Decimal
    request_count: int = Field(ge=0)
