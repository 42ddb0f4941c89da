"""The monitor's rules: each one looks at an account and says whether, and how badly, it holds.

A rule returns :class:`Finding` s, not alerts: the monitor decides from its memory whether a
finding is new (then it builds and delivers the alert) or was already announced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from smartspace_budget import display
from smartspace_budget.budgets import analysis
from smartspace_budget.budgets._format import usd
from smartspace_budget.budgets.budget_tracker import BudgetTracker
from smartspace_budget.budgets.thresholds import ThresholdReading, read_threshold
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    BudgetStatus,
    SpendingAlert,
    SpendingBucket,
    SpendingThreshold,
    ThresholdType,
)
from smartspace_budget.periods import SpendingPeriod, Window, window_containing

__all__ = [
    "LEVEL_RANK",
    "AccountView",
    "Finding",
    "anomaly_finding",
    "forecast_findings",
    "low_balance_findings",
    "mark_triggered",
    "parse_percent",
    "spike_finding",
    "threshold_finding",
]

LEVEL_RANK = {level: Decimal(level.rank) for level in AlertLevel}
"""Rank of a level-based finding; thresholds rank by their percentage instead."""


@dataclass
class Finding:
    """A rule that holds now: what it is about, how serious, and the alert to raise if new."""

    rule: str
    window: Window
    rank: Decimal
    build: Callable[[], SpendingAlert]
    threshold: SpendingThreshold | None = None


class AccountView:
    """What one check knows about one account; each series is read at most once."""

    def __init__(
        self, tracker: BudgetTracker, user_id: str, project_id: str, now: datetime
    ) -> None:
        self.tracker, self.user_id, self.project_id, self.now = tracker, user_id, project_id, now
        self.status: BudgetStatus | None = None
        self._hours: list[SpendingBucket] | None = None
        self._days: list[SpendingBucket] | None = None

    async def load_status(self) -> BudgetStatus:
        if self.status is None:
            self.status = await self.tracker.get_budget_status(self.user_id, self.project_id)
        return self.status

    @property
    def tz(self) -> str:
        return (self.status.timezone if self.status else None) or "UTC"

    def window(self, period: SpendingPeriod) -> Window:
        return window_containing(period, self.now, self.tz)

    async def hours(self) -> list[SpendingBucket]:
        if self._hours is None:
            hour = self.window(SpendingPeriod.HOURLY)
            start = hour.start - timedelta(hours=analysis.SPIKE_BASELINE_HOURS + 1)
            self._hours = await self.tracker.spending_series(
                self.user_id, self.project_id, SpendingPeriod.HOURLY, start, hour.end
            )
        return self._hours

    async def days(self) -> list[SpendingBucket]:
        if self._days is None:
            today = self.window(SpendingPeriod.DAILY)
            start = today.start - timedelta(days=analysis.BASELINE_DAYS + 1)
            self._days = await self.tracker.spending_series(
                self.user_id, self.project_id, SpendingPeriod.DAILY, start, today.end
            )
        return self._days

    async def spent_this_hour(self) -> Decimal:
        hour = self.window(SpendingPeriod.HOURLY)
        return sum((b.spent for b in await self.hours() if b.start >= hour.start), Decimal(0))


async def threshold_finding(view: AccountView, threshold: SpendingThreshold) -> Finding | None:
    if not threshold.enabled:
        return None
    status = await view.load_status()
    if threshold.threshold_type is ThresholdType.RATE:
        value = await view.spent_this_hour()
    else:
        value = None
    reading = read_threshold(threshold, status, value, view.window, view.user_id, view.project_id)
    if reading is None:
        return None
    return _threshold_to_finding(reading, threshold)


async def anomaly_finding(view: AccountView, threshold: float) -> Finding | None:
    """Today's spend against the trailing 28 days, if anomalous."""
    today = view.window(SpendingPeriod.DAILY)
    result = analysis.current_anomaly(await view.days(), today.start, threshold=threshold)
    median = result.median
    if not result.is_anomaly or result.score is None or median is None:
        return None
    score = _score(result.score)
    level = AlertLevel.CRITICAL if result.score >= 2 * result.threshold else AlertLevel.WARNING

    def build() -> SpendingAlert:
        return SpendingAlert(
            user_id=view.user_id,
            project_id=view.project_id,
            alert_type=AlertType.SPENDING_ANOMALY,
            level=level,
            title="Unusual spending today",
            message=(
                f"Spent {usd(result.current)} today against a median of {usd(median)} "
                f"over the last {result.points} days (robust z-score {score},"
                f" threshold {result.threshold})"
            ),
            current_value=result.current,
            threshold_value=result.median,
            metadata={
                "score": score,
                "median": result.median,
                "deviation": result.deviation,
                "baseline_days": result.points,
            },
            period_start=today.start,
        )

    return Finding("spending_anomaly", today, LEVEL_RANK[level], build)


async def spike_finding(view: AccountView, percent: Decimal) -> Finding | None:
    """The latest hour against the trailing hours, if it spiked by ``percent`` or more."""
    result, hour = analysis.latest_spike(
        await view.hours(), view.now, spike_threshold_percent=percent
    )
    baseline = result.baseline
    if not result.is_spike or hour is None or result.increase_percent is None or baseline is None:
        return None
    increase = result.increase_percent
    level = AlertLevel.CRITICAL if increase >= 4 * percent else AlertLevel.WARNING

    def build() -> SpendingAlert:
        return SpendingAlert(
            user_id=view.user_id,
            project_id=view.project_id,
            alert_type=AlertType.COST_SPIKE,
            level=level,
            title="Cost spike in the last hour",
            message=(
                f"Spent {usd(result.current)} in the hour from {hour.start:%Y-%m-%d %H:%M}, "
                f"{display.percent(increase)} above the hourly mean of {usd(baseline)} "
                f"(threshold {display.percent(percent)})"
            ),
            current_value=result.current,
            threshold_value=result.baseline,
            metadata={
                "increase_percent": increase,
                "baseline_hours": result.points,
                "hour_start": hour.start,
            },
            period_start=hour.start,
        )

    return Finding("cost_spike", hour, LEVEL_RANK[level], build)


async def forecast_findings(view: AccountView, horizon: timedelta) -> list[Finding]:
    """Monthly overspend and balance exhaustion forecast at the current burn rate."""
    status = await view.load_status()
    month = view.window(SpendingPeriod.MONTHLY)
    today = view.window(SpendingPeriod.DAILY)
    days = await view.days()
    recent = analysis.active_tail(
        [b for b in days if b.end > today.start - timedelta(days=analysis.BURN_RATE_DAYS)]
    )
    rate = analysis.burn_rate(recent, view.now)
    outlook = analysis.forecast(
        status.spent_this_month, month, view.now, rate, status.available_balance
    )
    findings: list[Finding] = []
    limit = status.monthly_limit
    if limit is not None and outlook.projected_total > limit and rate > 0:
        findings.append(_overspend_finding(view, outlook, limit, month))
    if (
        status.available_balance > 0
        and outlook.exhaustion_at is not None
        and outlook.exhausts_before(view.now + horizon)
    ):
        findings.append(_exhaustion_finding(view, outlook, today))
    return findings


def parse_percent(value: float | Decimal | int) -> Decimal:
    """A percentage threshold (not money, so a float such as the spec's 50.0 is accepted)."""
    if isinstance(value, bool):
        raise InvalidInputError("a percentage must be a number, not a bool")
    percent = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not percent.is_finite() or percent <= 0:
        raise InvalidInputError(f"percentage must be positive, got {value}")
    return percent


def _score(score: float) -> str:
    return "inf" if score == float("inf") else f"{score:.2f}"


def mark_triggered(threshold: SpendingThreshold, now: datetime) -> None:
    threshold.triggered_count += 1
    threshold.last_triggered_at = now
    threshold.trigger_history = [*threshold.trigger_history[-99:], now]


def _threshold_to_finding(reading: ThresholdReading, threshold: SpendingThreshold) -> Finding:
    return Finding(
        f"threshold:{threshold.threshold_id}",
        reading.window,
        reading.percentage,
        reading.alert,
        threshold=threshold,
    )


def low_balance_findings(view: AccountView, status: BudgetStatus) -> list[Finding]:
    if not status.low_balance_warning:
        return []
    available = status.available_balance
    level = AlertLevel.CRITICAL if available <= 0 else AlertLevel.WARNING
    limit = status.low_balance_threshold
    today = view.window(SpendingPeriod.DAILY)

    def build() -> SpendingAlert:
        below = f" (threshold {usd(limit)})" if limit is not None else ""
        return SpendingAlert(
            user_id=view.user_id,
            project_id=view.project_id,
            alert_type=AlertType.LOW_BALANCE,
            level=level,
            title="Balance exhausted" if available <= 0 else "Low balance",
            message=f"Available balance is {usd(available)}{below}",
            current_value=available,
            threshold_value=limit if limit is not None else Decimal(0),
            metadata={"reserved_amount": status.reserved_amount},
            period_start=today.start,
        )

    return [Finding("low_balance", today, LEVEL_RANK[level], build)]


def _overspend_finding(
    view: AccountView, outlook: analysis.Forecast, limit: Decimal, month: Window
) -> Finding:
    def build() -> SpendingAlert:
        return SpendingAlert(
            user_id=view.user_id,
            project_id=view.project_id,
            alert_type=AlertType.FORECAST_OVERSPEND,
            level=AlertLevel.WARNING,
            title="Monthly limit forecast to be exceeded",
            message=(
                f"At {usd(outlook.burn_rate_per_day)}/day this month will end at "
                f"{usd(outlook.projected_total)}, above the monthly limit of {usd(limit)}"
            ),
            current_value=outlook.projected_total,
            threshold_value=limit,
            metadata={
                "burn_rate_per_day": outlook.burn_rate_per_day,
                "spent_so_far": outlook.spent_so_far,
                "period_end": outlook.period_end,
            },
            period_start=month.start,
        )

    return Finding("forecast_overspend", month, LEVEL_RANK[AlertLevel.WARNING], build)


def _exhaustion_finding(view: AccountView, outlook: analysis.Forecast, today: Window) -> Finding:
    assert outlook.exhaustion_at is not None
    assert outlook.time_to_exhaustion is not None
    soon = outlook.time_to_exhaustion <= timedelta(days=1)
    level = AlertLevel.CRITICAL if soon else AlertLevel.WARNING
    exhaustion_at = outlook.exhaustion_at
    seconds = Decimal(int(outlook.time_to_exhaustion.total_seconds()))
    hours = (seconds / 3600).quantize(Decimal("0.1"))

    def build() -> SpendingAlert:
        return SpendingAlert(
            user_id=view.user_id,
            project_id=view.project_id,
            alert_type=AlertType.BALANCE_EXHAUSTION,
            level=level,
            title="Balance will run out soon",
            message=(
                f"At {usd(outlook.burn_rate_per_day)}/day the available "
                f"{usd(outlook.available_balance)} lasts about {hours} hours "
                f"(until {exhaustion_at:%Y-%m-%d %H:%M %Z})"
            ),
            current_value=outlook.available_balance,
            threshold_value=outlook.burn_rate_per_day,
            metadata={
                "exhaustion_at": exhaustion_at,
                "burn_rate_per_day": outlook.burn_rate_per_day,
            },
            period_start=today.start,
        )

    return Finding("balance_exhaustion", today, LEVEL_RANK[level], build)
