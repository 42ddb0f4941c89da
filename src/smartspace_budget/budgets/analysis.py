"""Pure statistics over spending series: trend, anomaly, spike and forecast.

Every function here takes plain values (Decimal amounts, windows, instants) and returns a
small frozen result that says *why* it decided what it did, so the tracker, the monitor, the
CLI and the tests all read the same numbers. Nothing here touches a backend or a clock.

Amounts stay :class:`~decimal.Decimal` throughout; only dimensionless scores (a z-score, a
relative slope) are reported as floats, and no amount is ever computed through one.

Thresholds, and why:

- **Trend** (:func:`spending_trend`): least-squares slope of the series, expressed as the
  change it predicts across the whole series relative to the series' mean. ``>= +20%`` is
  increasing, ``<= -20%`` decreasing, anything between stable. Daily series are first
  smoothed with a 7-day moving average (``season=7``) because a weekday/weekend rhythm alone
  tilts a 4-week fit by up to ±30%, which is not a trend.
- **Anomaly** (:func:`spending_anomaly`): robust z-score of the current period against a
  trailing baseline (28 days by default): ``(current - median) / (1.4826 * MAD)``. The
  median and the median absolute deviation ignore the odd spike in the baseline, unlike a
  mean and a standard deviation. ``>= 3.5`` is anomalous (Iglewicz and Hoaglin's cut-off),
  and the current value must also exceed the median by at least 50%, so a perfectly regular
  baseline does not turn a cent of difference into an infinite score. Only spending *above*
  the baseline is flagged: a quiet day is not a budget risk, and a period still in progress
  would otherwise look low every morning. At least 7 baseline points are needed, counted
  from the first period with any activity; with fewer, no anomaly is claimed.
- **Spike** (:func:`cost_spike`): the latest hour against the mean of the trailing hours
  (24 by default). The mean, not the median, because hourly spending is bursty and its
  median is often zero. A spike is an increase of at least ``spike_threshold_percent``
  (the spec's default is 50%). With no spending in the baseline there is nothing to compare
  with, so no spike is claimed.
- **Forecast** (:func:`forecast`): the burn rate is the time-weighted mean daily spend over
  the last 7 complete days plus the day so far (:func:`burn_rate`); the period's projected
  spend is what was spent so far plus that rate over the time left, and the balance runs
  out after ``available / rate``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import SpendingBucket, SpendingTrend
from smartspace_budget.money import quantize
from smartspace_budget.periods import Window

__all__ = [
    "ANOMALY_MIN_INCREASE_PERCENT",
    "ANOMALY_MIN_POINTS",
    "ANOMALY_THRESHOLD",
    "BASELINE_DAYS",
    "BURN_RATE_DAYS",
    "SPIKE_BASELINE_HOURS",
    "SPIKE_THRESHOLD_PERCENT",
    "TREND_MIN_POINTS",
    "TREND_THRESHOLD",
    "AnomalyResult",
    "Forecast",
    "SpikeResult",
    "TrendResult",
    "active_tail",
    "burn_rate",
    "cost_spike",
    "current_anomaly",
    "forecast",
    "latest_spike",
    "spending_anomaly",
    "spending_trend",
]

TREND_THRESHOLD = Decimal("0.20")
"""Predicted change across the series, relative to its mean, that counts as a trend."""
TREND_MIN_POINTS = 3
"""Fewer (smoothed) points than this is always ``stable``: two points make a line, not a trend."""
ANOMALY_THRESHOLD = 3.5
"""Robust z-score from which the current period is anomalous."""
ANOMALY_MIN_POINTS = 7
"""Baseline points (from the first active period on) needed before any anomaly is claimed."""
ANOMALY_MIN_INCREASE_PERCENT = Decimal(50)
"""The current value must also be this much above the baseline median."""
BASELINE_DAYS = 28
"""Trailing days in the anomaly baseline: four whole weeks, so each weekday counts equally."""
SPIKE_THRESHOLD_PERCENT = Decimal(50)
"""The spec's default increase over the hourly baseline that is a spike."""
SPIKE_BASELINE_HOURS = 24
"""Trailing hours whose mean is the spike baseline."""
BURN_RATE_DAYS = 7
"""Complete days (plus the current one) behind the burn rate."""

_MAD_SCALE = Decimal("1.4826")  # MAD of a normal sample times this estimates its sigma
_MEAN_AD_SCALE = Decimal("1.253314")  # same for the mean absolute deviation (sqrt(pi/2))
_DAY_SECONDS = Decimal(86_400)
_HUNDRED = Decimal(100)
_CENTURY = Decimal(100 * 366) * _DAY_SECONDS  # beyond this "never" is the honest answer


@dataclass(frozen=True, slots=True)
class TrendResult:
    """Direction of a series with the fit behind it (``relative_change`` is a fraction)."""

    trend: SpendingTrend
    relative_change: float
    points: int


@dataclass(frozen=True, slots=True)
class AnomalyResult:
    """Whether ``current`` is anomalous against the baseline, and the figures used.

    ``score`` is ``None`` when the baseline is too short, and infinite when the baseline has
    no spread at all and ``current`` is above it.
    """

    is_anomaly: bool
    current: Decimal
    median: Decimal | None
    deviation: Decimal | None
    score: float | None
    points: int
    threshold: float


@dataclass(frozen=True, slots=True)
class SpikeResult:
    """Whether the latest hour spiked; ``increase_percent`` is ``None`` without a baseline."""

    is_spike: bool
    current: Decimal
    baseline: Decimal | None
    increase_percent: Decimal | None
    threshold_percent: Decimal
    points: int


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where spending is heading at the current burn rate (amounts in USDC, exact to nano).

    ``time_to_exhaustion`` is ``None`` when nothing is being spent, or so little that the
    balance would last over a century, and zero when the available balance is already gone.
    """

    spent_so_far: Decimal
    burn_rate_per_day: Decimal
    projected_total: Decimal
    period_end: datetime
    available_balance: Decimal
    time_to_exhaustion: timedelta | None
    exhaustion_at: datetime | None

    def exhausts_before(self, instant: datetime) -> bool:
        """The balance runs out before ``instant`` at the current burn rate."""
        return self.exhaustion_at is not None and self.exhaustion_at < instant


def active_tail(buckets: Sequence[SpendingBucket]) -> list[SpendingBucket]:
    """The buckets from the first one with any activity on.

    The empty periods before an account's first request are not a baseline of zero
    spending; they are no baseline at all.
    """
    for index, bucket in enumerate(buckets):
        if bucket.request_count > 0 or bucket.spent != 0:
            return list(buckets[index:])
    return []


def _moving_average(values: Sequence[Decimal], season: int) -> list[Decimal]:
    window_sum = sum(values[:season], Decimal(0))
    averages = [window_sum / season]
    for index in range(season, len(values)):
        window_sum += values[index] - values[index - season]
        averages.append(window_sum / season)
    return averages


def spending_trend(
    values: Sequence[Decimal],
    *,
    season: int | None = None,
    threshold: Decimal = TREND_THRESHOLD,
    min_points: int = TREND_MIN_POINTS,
) -> TrendResult:
    """Increasing, decreasing or stable, from a least-squares fit (see the module docstring).

    With ``season`` and at least two seasons of data, the fit runs on the moving average over
    one season, which cancels a repeating pattern of that length. A series whose mean is zero
    or negative (nothing spent, or refunds outweighing usage) is stable.
    """
    series = list(values)
    if season is not None and season > 1 and len(series) >= 2 * season:
        series = _moving_average(series, season)
    n = len(series)
    if n < max(2, min_points):
        return TrendResult(SpendingTrend.STABLE, 0.0, n)
    mean = sum(series, Decimal(0)) / n
    if mean <= 0:
        return TrendResult(SpendingTrend.STABLE, 0.0, n)
    x_mean = Decimal(n - 1) / 2
    covariance = sum(((i - x_mean) * (y - mean) for i, y in enumerate(series)), Decimal(0))
    variance = sum(((i - x_mean) ** 2 for i in range(n)), Decimal(0))
    relative = covariance / variance * (n - 1) / mean
    if relative >= threshold:
        trend = SpendingTrend.INCREASING
    elif relative <= -threshold:
        trend = SpendingTrend.DECREASING
    else:
        trend = SpendingTrend.STABLE
    return TrendResult(trend, float(relative), n)


def spending_anomaly(
    current: Decimal,
    baseline: Sequence[Decimal],
    *,
    threshold: float = ANOMALY_THRESHOLD,
    min_points: int = ANOMALY_MIN_POINTS,
    min_increase_percent: Decimal = ANOMALY_MIN_INCREASE_PERCENT,
) -> AnomalyResult:
    """Robust z-score of ``current`` against ``baseline`` (see the module docstring).

    ``baseline`` should already be trimmed of the empty periods before the account's first
    activity (:func:`active_tail`). When the MAD is zero (more than half the baseline is one
    value), the mean absolute deviation from the median takes its place.
    """
    points = len(baseline)
    if points < min_points:
        return AnomalyResult(False, current, None, None, None, points, threshold)
    median = Decimal(statistics.median(baseline))
    deviations = [abs(value - median) for value in baseline]
    scale = Decimal(statistics.median(deviations)) * _MAD_SCALE
    if scale == 0:
        scale = sum(deviations, Decimal(0)) / points * _MEAN_AD_SCALE
    excess = current - median
    score = float(excess / scale) if scale > 0 else (float("inf") if excess > 0 else 0.0)
    large_enough = current >= median * (1 + min_increase_percent / _HUNDRED) and excess > 0
    deviation = quantize(scale)
    return AnomalyResult(
        score >= threshold and large_enough, current, median, deviation, score, points, threshold
    )


def cost_spike(
    current: Decimal,
    baseline: Sequence[Decimal],
    *,
    spike_threshold_percent: Decimal | int = SPIKE_THRESHOLD_PERCENT,
) -> SpikeResult:
    """Whether ``current`` (the latest hour) is ``spike_threshold_percent`` above the mean.

    Raises :class:`InvalidInputError` for a threshold that is not positive.
    """
    threshold = Decimal(spike_threshold_percent)
    if not threshold.is_finite() or threshold <= 0:
        raise InvalidInputError(f"spike_threshold_percent must be positive, got {threshold}")
    points = len(baseline)
    if points == 0:
        return SpikeResult(False, current, None, None, threshold, 0)
    mean = quantize(sum(baseline, Decimal(0)) / points)
    if mean <= 0:
        return SpikeResult(False, current, mean, None, threshold, points)
    increase = ((current - mean) / mean * _HUNDRED).quantize(Decimal("0.01"))
    return SpikeResult(increase >= threshold, current, mean, increase, threshold, points)


def burn_rate(days: Sequence[SpendingBucket], now: datetime) -> Decimal:
    """Mean spend per day over the given daily buckets, weighted by the time each covered.

    Complete buckets count for their whole length, the bucket holding ``now`` for the time
    elapsed in it, later ones not at all. Never negative: refunds slow the rate to zero but
    do not make money flow back in.
    """
    spent = Decimal(0)
    seconds = 0
    for bucket in days:
        if bucket.start >= now:
            continue
        covered = min(bucket.end, now) - bucket.start
        spent += bucket.spent
        seconds += int(covered.total_seconds())
    if seconds <= 0 or spent <= 0:
        return Decimal(0)
    return quantize(spent * _DAY_SECONDS / seconds)


def forecast(
    spent_so_far: Decimal,
    window: Window,
    now: datetime,
    burn_rate_per_day: Decimal,
    available_balance: Decimal,
) -> Forecast:
    """Project the spend of ``window`` (e.g. this month) and when the balance runs out.

    ``now`` must lie in ``window``; raises :class:`InvalidInputError` otherwise.
    """
    if now not in window:
        raise InvalidInputError(f"{now} is not in the window {window.start} - {window.end}")
    rate = max(Decimal(0), burn_rate_per_day)
    remaining = Decimal(int((window.end - now).total_seconds()))
    projected = quantize(spent_so_far + rate * remaining / _DAY_SECONDS)
    if available_balance <= 0:
        to_exhaustion: timedelta | None = timedelta(0)
    else:
        seconds = available_balance * _DAY_SECONDS / rate if rate > 0 else None
        to_exhaustion = (
            None if seconds is None or seconds > _CENTURY else timedelta(seconds=int(seconds))
        )
    # Whole seconds: the burn rate is measured in whole seconds too, so the same forecast is
    # made by any reader within one second (the library and the service agree).
    exhaustion_at = None if to_exhaustion is None else now.replace(microsecond=0) + to_exhaustion
    return Forecast(
        spent_so_far=spent_so_far,
        burn_rate_per_day=rate,
        projected_total=projected,
        period_end=window.end,
        available_balance=available_balance,
        time_to_exhaustion=to_exhaustion,
        exhaustion_at=exhaustion_at,
    )


def current_anomaly(
    days: Sequence[SpendingBucket],
    current_start: datetime,
    *,
    baseline_days: int = BASELINE_DAYS,
    threshold: float = ANOMALY_THRESHOLD,
) -> AnomalyResult:
    """The spend from ``current_start`` on, against the ``baseline_days`` complete buckets before.

    The baseline is trimmed of the empty buckets before the account's first activity.
    """
    baseline = [b for b in days if b.end <= current_start][-baseline_days:]
    current = sum((b.spent for b in days if b.start >= current_start), Decimal(0))
    return spending_anomaly(current, [b.spent for b in active_tail(baseline)], threshold=threshold)


def latest_spike(
    hours: Sequence[SpendingBucket],
    now: datetime,
    *,
    baseline_hours: int = SPIKE_BASELINE_HOURS,
    spike_threshold_percent: Decimal | int = SPIKE_THRESHOLD_PERCENT,
) -> tuple[SpikeResult, Window | None]:
    """The larger of the hour in progress and the last complete hour, against the hours before.

    The baseline is the ``baseline_hours`` complete hours before the last complete one, so a
    spike is seen while its hour is still running and is not averaged into its own baseline.
    Returns the result and the hour it is about (``None`` when there is no hour to judge).
    """
    ordered = sorted(hours, key=lambda b: b.start)
    complete = [b for b in ordered if b.end <= now]
    running = [b for b in ordered if b.start <= now < b.end]
    candidates = complete[-1:] + running
    if not candidates:
        return cost_spike(Decimal(0), [], spike_threshold_percent=spike_threshold_percent), None
    latest = max(candidates, key=lambda b: b.spent)
    baseline = complete[:-1][-baseline_hours:] if complete else []
    result = cost_spike(
        latest.spent,
        [b.spent for b in active_tail(baseline)],
        spike_threshold_percent=spike_threshold_percent,
    )
    return result, Window(latest.start, latest.end)
