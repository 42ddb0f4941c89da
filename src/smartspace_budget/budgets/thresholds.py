"""Thresholds: how far spending is along a limit, which percentage that crosses, at what level.

Pure functions over a budget status, shared by the monitor and its tests.

- Spend thresholds (daily, monthly, rate): percentage = spend / limit x 100.
- Balance thresholds: percentage = how much of ``limit`` the available balance has fallen
  below it, (limit - balance) / limit x 100: at the limit 0%, at zero 100%, in debt over 100%.
- A limit of zero: any spend (or a balance at or below zero) crosses every percentage;
  nothing spent crosses none.

A threshold's ``level`` is the level at 100%. Each configured percentage below 100 is one
level lower than the next one up (never below info); any percentage above 100 is an
emergency. With the defaults (50, 80, 100, 120) and a critical threshold: info, warning,
critical, emergency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from smartspace_budget.budgets._format import usd
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    BudgetStatus,
    SpendingAlert,
    SpendingThreshold,
    ThresholdType,
)
from smartspace_budget.periods import SpendingPeriod, Window

__all__ = [
    "DEFAULT_LIMIT_PERCENTAGES",
    "ThresholdReading",
    "crossed_percentage",
    "level_for",
    "percentage_of",
    "policy_thresholds",
    "read_threshold",
]

DEFAULT_LIMIT_PERCENTAGES: tuple[Decimal, ...] = (
    Decimal(50),
    Decimal(80),
    Decimal(100),
    Decimal(120),
)
"""Notification percentages of the thresholds made from an account's daily/monthly limits."""

_LEVELS = (AlertLevel.INFO, AlertLevel.WARNING, AlertLevel.CRITICAL, AlertLevel.EMERGENCY)
_HUNDRED = Decimal(100)
_INFINITY = Decimal("Infinity")

_PERIOD = {
    ThresholdType.DAILY: SpendingPeriod.DAILY,
    ThresholdType.MONTHLY: SpendingPeriod.MONTHLY,
    ThresholdType.RATE: SpendingPeriod.HOURLY,
    ThresholdType.BALANCE: SpendingPeriod.DAILY,
}
"""The period each kind of threshold fires once in (a low balance is reminded daily)."""

_LIMIT_ALERT = {
    ThresholdType.DAILY: AlertType.DAILY_LIMIT,
    ThresholdType.MONTHLY: AlertType.MONTHLY_LIMIT,
    ThresholdType.RATE: AlertType.RATE_LIMIT,
    ThresholdType.BALANCE: AlertType.LOW_BALANCE,
}

_WORDS = {
    ThresholdType.DAILY: ("Daily spending", "today"),
    ThresholdType.MONTHLY: ("Monthly spending", "this month"),
    ThresholdType.RATE: ("Hourly spending", "this hour"),
    ThresholdType.BALANCE: ("Balance", "now"),
}


@dataclass(frozen=True, slots=True)
class ThresholdReading:
    """A threshold crossed now: the highest crossed percentage, its level and its period."""

    threshold: SpendingThreshold
    value: Decimal
    exact_percentage: Decimal
    percentage: Decimal
    level: AlertLevel
    window: Window
    alert: Callable[[], SpendingAlert]


def percentage_of(threshold_type: ThresholdType, value: Decimal, limit: Decimal) -> Decimal:
    """How far ``value`` is along ``limit``, in percent (``Infinity`` past a zero limit)."""
    if threshold_type is ThresholdType.BALANCE:
        if limit == 0:
            return _INFINITY if value < 0 else (_HUNDRED if value == 0 else Decimal(0))
        return (limit - value) * _HUNDRED / limit
    if limit == 0:
        return _INFINITY if value > 0 else Decimal(0)
    return value * _HUNDRED / limit


def crossed_percentage(threshold: SpendingThreshold, percent: Decimal) -> Decimal | None:
    """The highest notification percentage ``percent`` has reached, if any."""
    reached = [p for p in threshold.notification_percentages if percent >= p]
    return max(reached) if reached else None


def level_for(threshold: SpendingThreshold, percentage: Decimal) -> AlertLevel:
    """The level of one notification percentage (see the module docstring)."""
    if percentage > _HUNDRED:
        return AlertLevel.EMERGENCY
    if percentage == _HUNDRED:
        return threshold.level
    below = sorted((p for p in threshold.notification_percentages if p < _HUNDRED), reverse=True)
    steps = below.index(percentage) + 1 if percentage in below else len(below)
    return _LEVELS[max(0, threshold.level.rank - steps)]


def policy_thresholds(
    status: BudgetStatus, percentages: Sequence[Decimal] = DEFAULT_LIMIT_PERCENTAGES
) -> list[SpendingThreshold]:
    """Thresholds for the account's own daily and monthly limits, critical at 100%."""
    made = []
    for kind, limit in (
        (ThresholdType.DAILY, status.daily_limit),
        (ThresholdType.MONTHLY, status.monthly_limit),
    ):
        if limit is not None:
            made.append(
                SpendingThreshold(
                    threshold_id=f"policy:{kind.value}",
                    threshold_type=kind,
                    limit=limit,
                    level=AlertLevel.CRITICAL,
                    notification_percentages=list(percentages),
                    name=f"{kind.value} limit",
                )
            )
    return made


def read_threshold(
    threshold: SpendingThreshold,
    status: BudgetStatus,
    rate_value: Decimal | None,
    window_of: Callable[[SpendingPeriod], Window],
    user_id: str,
    project_id: str,
) -> ThresholdReading | None:
    """Where the account stands on ``threshold``; ``None`` if no percentage is crossed.

    ``rate_value`` is the spend of the current hour (needed for rate thresholds only);
    ``window_of`` gives the account's current window of a period.
    """
    kind = threshold.threshold_type
    value = {
        ThresholdType.DAILY: status.spent_today,
        ThresholdType.MONTHLY: status.spent_this_month,
        ThresholdType.BALANCE: status.available_balance,
        ThresholdType.RATE: rate_value if rate_value is not None else Decimal(0),
    }[kind]
    exact = percentage_of(kind, value, threshold.limit)
    crossed = crossed_percentage(threshold, exact)
    if crossed is None:
        return None
    level = level_for(threshold, crossed)
    window = window_of(_PERIOD[kind])
    label, when = _WORDS[kind]
    shown = "over 100" if not exact.is_finite() else f"{exact.quantize(Decimal('0.1'))}"
    name = threshold.name or f"{kind.value} threshold"

    def alert() -> SpendingAlert:
        if kind is ThresholdType.BALANCE:
            title = f"{label} {crossed}% below the {name}"
            message = (
                f"Available balance {usd(value)} is {shown}% of the way from the "
                f"{usd(threshold.limit)} {name} to zero (notifying at {crossed}%)"
            )
        else:
            verb = "reached" if crossed <= _HUNDRED else "exceeded"
            title = (
                f"{label} at {crossed}% of the {name}"
                if crossed < _HUNDRED
                else f"{label}: {name} {verb} ({crossed}%)"
            )
            message = (
                f"Spent {usd(value)} {when} of the {usd(threshold.limit)} {name} ({shown}%; "
                f"notifying at {crossed}%)"
            )
        return SpendingAlert(
            user_id=user_id,
            project_id=project_id,
            alert_type=(
                _LIMIT_ALERT[kind]
                if crossed >= _HUNDRED or kind is ThresholdType.BALANCE
                else AlertType.THRESHOLD_REACHED
            ),
            level=level,
            title=title,
            message=message,
            current_value=value,
            threshold_value=threshold.limit,
            metadata={
                "threshold_type": kind.value,
                "percentage": crossed,
                "percent_of_limit": exact.quantize(Decimal("0.01")) if exact.is_finite() else None,
                "period_start": window.start,
                "period_end": window.end,
            },
            threshold_id=threshold.threshold_id,
            period_start=window.start,
        )

    return ThresholdReading(threshold, value, exact, crossed, level, window, alert)
