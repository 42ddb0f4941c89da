"""Analysis on synthetic series whose answers are known by construction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.backend.base import SpendingBucket
from smartspace_budget.budgets import analysis
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import SpendingTrend
from smartspace_budget.periods import SpendingPeriod, window_containing

D = Decimal
WEEK = [D(10), D(10), D(10), D(10), D(10), D(2), D(2)]  # weekdays busy, weekend quiet


def days(values: list[Decimal], start: datetime, *, requests: int = 1) -> list[SpendingBucket]:
    return [
        SpendingBucket(
            start=start + timedelta(days=i),
            end=start + timedelta(days=i + 1),
            spent=v,
            request_count=requests if v else 0,
        )
        for i, v in enumerate(values)
    ]


def hours(values: list[Decimal], start: datetime) -> list[SpendingBucket]:
    return [
        SpendingBucket(
            start=start + timedelta(hours=i),
            end=start + timedelta(hours=i + 1),
            spent=v,
            request_count=1 if v else 0,
        )
        for i, v in enumerate(values)
    ]


# -- trend --------------------------------------------------------------------------------


def test_flat_series_is_stable() -> None:
    result = analysis.spending_trend([D(5)] * 28, season=7)
    assert result.trend is SpendingTrend.STABLE
    assert result.relative_change == 0.0


def test_rising_series_is_increasing() -> None:
    rising = [D(10) + D(i) / 2 for i in range(28)]  # 10 -> 23.5
    result = analysis.spending_trend(rising, season=7)
    assert result.trend is SpendingTrend.INCREASING
    assert result.relative_change > 0.2


def test_falling_series_is_decreasing() -> None:
    falling = [D(30) - D(i) / 2 for i in range(28)]
    assert analysis.spending_trend(falling, season=7).trend is SpendingTrend.DECREASING


def test_weekly_season_alone_is_not_a_trend() -> None:
    # Starting on a Saturday, each week's quiet days come first and a raw fit leans up ~31%.
    shifted = (WEEK[5:] + WEEK[:5]) * 4
    raw = analysis.spending_trend(shifted)
    assert raw.trend is SpendingTrend.INCREASING  # why the seasonal smoothing exists
    smoothed = analysis.spending_trend(shifted, season=7)
    assert smoothed.trend is SpendingTrend.STABLE
    assert smoothed.relative_change == pytest.approx(0.0, abs=1e-9)


def test_weekly_season_on_a_rising_base_is_increasing() -> None:
    series = [v + D(i) / 3 for i, v in enumerate(WEEK * 4)]
    assert analysis.spending_trend(series, season=7).trend is SpendingTrend.INCREASING


def test_trend_threshold_boundary() -> None:
    # y = 100 + 10x over x = 0..2: mean 110, change across 20 -> 18.2% (stable); 25 -> 22.7%.
    assert analysis.spending_trend([D(100), D(110), D(120)]).trend is SpendingTrend.STABLE
    up = analysis.spending_trend([D(100), D(112.5), D(125)])
    assert up.trend is SpendingTrend.INCREASING
    assert up.relative_change == pytest.approx(25 / 112.5)


def test_too_few_points_or_no_spending_is_stable() -> None:
    assert analysis.spending_trend([D(1), D(100)]).trend is SpendingTrend.STABLE
    assert analysis.spending_trend([]).trend is SpendingTrend.STABLE
    assert analysis.spending_trend([D(0)] * 10).trend is SpendingTrend.STABLE
    assert analysis.spending_trend([D(-5), D(-1), D(0)]).trend is SpendingTrend.STABLE


# -- anomaly ------------------------------------------------------------------------------


def test_one_anomalous_day_is_flagged() -> None:
    baseline = [D(10) + D(i % 3) for i in range(28)]  # 10, 11, 12 ...: median 11, MAD 1
    result = analysis.spending_anomaly(D(40), baseline)
    assert result.is_anomaly
    assert result.median == D(11)
    assert result.score == pytest.approx(29 / 1.4826)


def test_a_normal_day_is_not_flagged() -> None:
    baseline = [D(10) + D(i % 3) for i in range(28)]
    assert not analysis.spending_anomaly(D(12), baseline).is_anomaly
    # 16.4 scores 3.64 (over 3.5) but is only 49% above the median: too small to matter.
    result = analysis.spending_anomaly(D("16.4"), baseline)
    assert result.score is not None
    assert result.score > analysis.ANOMALY_THRESHOLD
    assert not result.is_anomaly
    assert analysis.spending_anomaly(D("16.5"), baseline).is_anomaly  # exactly +50%


def test_quiet_day_is_not_an_anomaly() -> None:
    baseline = [D(10) + D(i % 3) for i in range(28)]
    result = analysis.spending_anomaly(D(0), baseline)
    assert result.score is not None
    assert result.score < 0
    assert not result.is_anomaly


def test_anomaly_with_weekly_season_uses_mean_deviation_when_mad_is_zero() -> None:
    baseline = WEEK * 4  # MAD is 0: more than half the days are exactly 10
    assert not analysis.spending_anomaly(D(10), baseline).is_anomaly
    assert not analysis.spending_anomaly(D(2), baseline).is_anomaly
    spike = analysis.spending_anomaly(D(50), baseline)
    assert spike.is_anomaly
    assert spike.deviation is not None
    assert spike.deviation > 0


def test_constant_baseline_needs_a_real_increase() -> None:
    flat = [D(10)] * 28
    tiny = analysis.spending_anomaly(D("10.01"), flat)
    assert tiny.score == float("inf")
    assert not tiny.is_anomaly
    assert analysis.spending_anomaly(D(15), flat).is_anomaly


def test_fewer_points_than_the_baseline_needs_claims_no_anomaly() -> None:
    result = analysis.spending_anomaly(D(1000), [D(1)] * (analysis.ANOMALY_MIN_POINTS - 1))
    assert not result.is_anomaly
    assert result.score is None
    assert analysis.spending_anomaly(D(1000), [D(1)] * analysis.ANOMALY_MIN_POINTS).is_anomaly


def test_current_anomaly_ignores_days_before_the_first_activity() -> None:
    start = datetime(2026, 2, 1, tzinfo=UTC)
    # 25 empty days, then 3 active days: 3 points, not 28.
    series = days([D(0)] * 25 + [D(1), D(1), D(1)] + [D(500)], start)
    today = series[-1].start
    result = analysis.current_anomaly(series, today)
    assert result.points == 3
    assert not result.is_anomaly


def test_current_anomaly_uses_the_last_28_complete_days() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    series = days([D(100)] * 10 + [D(10) + D(i % 3) for i in range(28)] + [D(40)], start)
    result = analysis.current_anomaly(series, series[-1].start)
    assert result.points == 28
    assert result.median == D(11)
    assert result.is_anomaly


# -- spike --------------------------------------------------------------------------------


def test_one_spike_hour_is_detected() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    series = hours([D(2)] * 24 + [D(2), D(5)], start)  # last complete hour 2, running hour 5
    now = series[-1].start + timedelta(minutes=30)
    result, hour = analysis.latest_spike(series, now)
    assert result.is_spike
    assert result.baseline == D(2)
    assert result.increase_percent == D(150)
    assert hour is not None
    assert hour.start == series[-1].start


def test_spike_threshold_boundary() -> None:
    baseline = [D(2)] * 24
    assert analysis.cost_spike(D(3), baseline).increase_percent == D(50)
    assert analysis.cost_spike(D(3), baseline).is_spike  # exactly at 50%
    assert not analysis.cost_spike(D("2.99"), baseline).is_spike
    assert not analysis.cost_spike(D(3), baseline, spike_threshold_percent=51).is_spike


def test_flat_hours_have_no_spike_and_no_baseline_means_no_spike() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    flat = hours([D(2)] * 26, start)
    result, _ = analysis.latest_spike(flat, flat[-1].end)
    assert not result.is_spike
    empty = hours([D(0)] * 25 + [D(100)], start)
    result, _ = analysis.latest_spike(empty, empty[-1].end)
    assert not result.is_spike
    assert result.increase_percent is None


def test_spike_threshold_must_be_positive() -> None:
    with pytest.raises(InvalidInputError):
        analysis.cost_spike(D(1), [D(1)], spike_threshold_percent=0)


# -- forecast -----------------------------------------------------------------------------


def test_burn_rate_weights_the_partial_day() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    series = days([D(10)] * 7 + [D(5)], start)  # today: 5 spent in the first 12 hours
    now = series[-1].start + timedelta(hours=12)
    assert analysis.burn_rate(series, now) == D(75) / D("7.5")


def test_burn_rate_never_negative() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert analysis.burn_rate(days([D(-5), D(1)], start), start + timedelta(days=2)) == 0


def test_month_end_forecast_and_exhaustion() -> None:
    now = datetime(2026, 3, 11, tzinfo=UTC)  # 10 days into March; 21 days left
    month = window_containing(SpendingPeriod.MONTHLY, now)
    outlook = analysis.forecast(D(100), month, now, D(10), D(50))
    assert outlook.projected_total == D(310)
    assert outlook.time_to_exhaustion == timedelta(days=5)
    assert outlook.exhaustion_at == datetime(2026, 3, 16, tzinfo=UTC)
    assert outlook.exhausts_before(month.end)


def test_forecast_without_spending_never_exhausts() -> None:
    now = datetime(2026, 3, 11, tzinfo=UTC)
    month = window_containing(SpendingPeriod.MONTHLY, now)
    outlook = analysis.forecast(D(0), month, now, D(0), D(50))
    assert outlook.time_to_exhaustion is None
    assert outlook.projected_total == 0
    gone = analysis.forecast(D(0), month, now, D(1), D(0))
    assert gone.time_to_exhaustion == timedelta(0)
    tiny = analysis.forecast(D(0), month, now, D("0.000000001"), D(1000000))
    assert tiny.time_to_exhaustion is None


def test_forecast_refuses_an_instant_outside_its_window() -> None:
    month = window_containing(SpendingPeriod.MONTHLY, datetime(2026, 3, 11, tzinfo=UTC))
    with pytest.raises(InvalidInputError):
        analysis.forecast(D(0), month, datetime(2026, 4, 1, tzinfo=UTC), D(1), D(1))


@settings(max_examples=60, deadline=None)
@given(
    spent=st.decimals(min_value=0, max_value=10**6, places=9),
    rate=st.decimals(min_value=0, max_value=10**4, places=9),
    seconds_in=st.integers(min_value=0, max_value=31 * 86400 - 1),
)
def test_forecast_never_below_what_was_spent(
    spent: Decimal, rate: Decimal, seconds_in: int
) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    now = start + timedelta(seconds=seconds_in)
    month = window_containing(SpendingPeriod.MONTHLY, now)
    outlook = analysis.forecast(spent, month, now, rate, D(100))
    assert outlook.projected_total >= spent
    assert outlook.projected_total == outlook.projected_total.quantize(D("1e-9"))


@settings(max_examples=60, deadline=None)
@given(
    base=st.lists(st.decimals(min_value=0, max_value=1000, places=2), min_size=7, max_size=28),
    shift=st.decimals(min_value=0, max_value=1000, places=2),
)
def test_anomaly_score_is_shift_invariant(base: list[Decimal], shift: Decimal) -> None:
    current = max(base) * 3 + 1
    plain = analysis.spending_anomaly(current, base)
    moved = analysis.spending_anomaly(current + shift, [v + shift for v in base])
    assert plain.score == moved.score
