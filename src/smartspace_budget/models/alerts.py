"""Alert models of the spec: levels, types, thresholds and alerts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from uuid import uuid4

from pydantic import Field, field_validator

from smartspace_budget.models._base import Money, NonNegativeMoney, SpecModel, dumps, loads

__all__ = [
    "AlertLevel",
    "AlertType",
    "SpendingAlert",
    "SpendingThreshold",
    "ThresholdType",
    "newest_first",
]


def _now() -> datetime:
    return datetime.now(UTC)


class AlertLevel(StrEnum):
    """Severity of an alert; ordered, so levels compare (``INFO < EMERGENCY``)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    EMERGENCY = "emergency"

    @property
    def rank(self) -> int:
        """0 for info up to 3 for emergency."""
        return _LEVEL_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank < other.rank
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank <= other.rank
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank > other.rank
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, AlertLevel):
            return self.rank >= other.rank
        return NotImplemented


_LEVEL_ORDER = (AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.CRITICAL, AlertLevel.EMERGENCY)


class AlertType(StrEnum):
    """What an alert is about."""

    LOW_BALANCE = "low_balance"
    THRESHOLD_REACHED = "threshold_reached"
    DAILY_LIMIT = "daily_limit"
    MONTHLY_LIMIT = "monthly_limit"
    SPENDING_ANOMALY = "spending_anomaly"
    COST_SPIKE = "cost_spike"
    COST_ANOMALY = "cost_anomaly"
    FORECAST_OVERSPEND = "forecast_overspend"
    BALANCE_EXHAUSTION = "balance_exhaustion"
    RATE_LIMIT = "rate_limit"


class ThresholdType(StrEnum):
    """What a threshold watches: balance left, daily or monthly spend, or spend per hour."""

    BALANCE = "balance"
    DAILY = "daily"
    MONTHLY = "monthly"
    RATE = "rate"


class SpendingThreshold(SpecModel):
    """A watched limit with the percentages at which to notify (e.g. 50, 80, 100).

    For spend thresholds (daily, monthly, rate) a percentage is spend / ``limit``; for a
    balance threshold it is how much of ``limit`` has been used up by the balance falling
    below it. ``level`` is the level at 100%; lower percentages alert at lower levels and
    percentages above 100 escalate to emergency.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset({"last_triggered_at", "name"})

    threshold_id: str = Field(default_factory=lambda: uuid4().hex)
    threshold_type: ThresholdType
    limit: NonNegativeMoney
    level: AlertLevel = AlertLevel.CRITICAL
    notification_percentages: list[Decimal] = Field(
        default_factory=lambda: [Decimal(50), Decimal(80), Decimal(100)]
    )
    enabled: bool = True
    name: str | None = None
    triggered_count: int = Field(default=0, ge=0)
    last_triggered_at: datetime | None = None
    trigger_history: list[datetime] = Field(default_factory=list)

    @field_validator("notification_percentages", mode="before")
    @classmethod
    def _percentages(cls, value: Any) -> list[Decimal]:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError("notification_percentages must be a non-empty list")
        result = []
        for item in value:
            if isinstance(item, (bool, float)):
                raise ValueError("notification percentages must be int, Decimal or string")
            pct = Decimal(str(item))
            if not pct.is_finite() or pct <= 0:
                raise ValueError(f"notification percentage must be positive, got {item}")
            result.append(pct)
        return sorted(set(result))


class SpendingAlert(SpecModel):
    """An alert raised by the monitor; ``acknowledged`` is set by whoever handled it."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"threshold_id", "acknowledged_at", "period_start"}
    )

    alert_id: str = Field(default_factory=lambda: uuid4().hex)
    user_id: str
    project_id: str
    alert_type: AlertType
    level: AlertLevel
    title: str
    message: str
    current_value: Money
    threshold_value: Money | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)
    acknowledged: bool = False
    acknowledged_at: datetime | None = None
    threshold_id: str | None = None
    period_start: datetime | None = None

    @field_validator("metadata")
    @classmethod
    def _json_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Metadata is JSON data, kept as its JSON text reads back (instants as RFC 3339
        text, whole numbers as ints, others as exact Decimals): an alert then equals itself
        stored in the ledger's table, kept in a process's memory or read over HTTP."""
        data: dict[str, Any] = loads(dumps(value))
        return data


def newest_first(alerts: Iterable[SpendingAlert]) -> list[SpendingAlert]:
    """``alerts`` newest first. The alerts of one check share its instant; among them the
    order is fixed by what they say (account, kind, title, threshold), so every alert store
    (the ledger's table, a process's memory) lists the same alerts in the same order."""
    ordered = sorted(
        alerts,
        key=lambda a: (
            a.user_id,
            a.project_id,
            a.alert_type.value,
            a.title,
            a.threshold_id or "",
            a.alert_id,
        ),
    )
    ordered.sort(key=lambda a: a.created_at, reverse=True)  # stable: ties keep the above
    return ordered
