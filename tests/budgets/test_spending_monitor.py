"""SpendingMonitor: once per threshold per period, escalation, rearm, handlers, memory."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from smartspace_budget.budgets import (
    AlertLevel,
    AlertType,
    SpendingAlert,
    SpendingMonitor,
    SpendingThreshold,
    ThresholdType,
)
from smartspace_budget.budgets.thresholds import level_for
from smartspace_budget.errors import BackendUnavailableError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from tests.budgets.conftest import FakeBackend, FakeClock

D = Decimal
U, P = "user_001", "proj_001"
LIMIT_TYPES = {AlertType.THRESHOLD_REACHED, AlertType.DAILY_LIMIT, AlertType.MONTHLY_LIMIT}


def make_monitor(backend: FakeBackend, clock: FakeClock, **kw: object) -> SpendingMonitor:
    kw.setdefault("handler_retry_delay", 0)
    return SpendingMonitor(backend, clock=clock, **kw)  # type: ignore[arg-type]


@pytest.fixture
def received() -> list[SpendingAlert]:
    return []


@pytest.fixture
def monitor(
    backend: FakeBackend, clock: FakeClock, received: list[SpendingAlert]
) -> SpendingMonitor:
    backend.deposit("10000")
    mon = make_monitor(backend, clock)
    mon.register_alert_handler(received.append)
    return mon


def test_levels_of_the_default_percentages() -> None:
    threshold = SpendingThreshold(
        threshold_type=ThresholdType.DAILY,
        limit=D(10),
        notification_percentages=[50, 80, 100, 120],
    )
    assert [level_for(threshold, D(p)) for p in (50, 80, 100, 120)] == [
        AlertLevel.INFO,
        AlertLevel.WARNING,
        AlertLevel.CRITICAL,
        AlertLevel.EMERGENCY,
    ]
    mild = threshold.model_copy(update={"level": AlertLevel.WARNING})
    assert [level_for(mild, D(p)) for p in (50, 80, 100)] == [
        AlertLevel.INFO,
        AlertLevel.INFO,
        AlertLevel.WARNING,
    ]


async def test_a_simulated_month_fires_once_per_percentage_per_period(
    monitor: SpendingMonitor,
    backend: FakeBackend,
    clock: FakeClock,
    received: list[SpendingAlert],
) -> None:
    backend.set_policy(daily_limit="10", monthly_limit="200")
    clock.now = datetime(2026, 3, 1, tzinfo=UTC)
    # Every day of March and the first two of April: 3 at 9:00, 12:00, 15:00 and 18:00
    # (30%, 60%, 90%, 120% of the daily limit); checks every three hours, twice each.
    while clock.now < datetime(2026, 4, 3, tzinfo=UTC):
        if clock.now.hour in (9, 12, 15, 18):
            backend.spend("3")
        await monitor.check_spending_status(U, P)
        await monitor.check_spending_status(U, P)
        clock.advance(hours=3)

    await monitor.wait_for_delivery()
    limits = [a for a in received if a.alert_type in LIMIT_TYPES]
    per_day = Counter(
        (a.created_at.date(), a.metadata["percentage"], a.level)
        for a in limits
        if a.threshold_id == "policy:daily"
    )
    days = {day for day, _, _ in per_day}
    assert len(days) == 33  # every day of March plus April 1 and 2
    for day in days:
        # 60% announces 50; 90% announces 80; 120% jumps past 100 straight to 120.
        assert {(p, level) for d, p, level in per_day if d == day} == {
            (D(50), AlertLevel.INFO),
            (D(80), AlertLevel.WARNING),
            (D(120), AlertLevel.EMERGENCY),
        }
    assert set(per_day.values()) == {1}

    monthly = [
        (a.created_at, a.metadata["percentage"], a.level, a.alert_type)
        for a in limits
        if a.threshold_id == "policy:monthly"
    ]
    t = datetime
    assert monthly == [
        # 12 a day: 102 on March 9 at 12:00 (after 8 days and 6), and so on.
        (t(2026, 3, 9, 12, tzinfo=UTC), D(50), AlertLevel.INFO, AlertType.THRESHOLD_REACHED),
        (t(2026, 3, 14, 12, tzinfo=UTC), D(80), AlertLevel.WARNING, AlertType.THRESHOLD_REACHED),
        (t(2026, 3, 17, 15, tzinfo=UTC), D(100), AlertLevel.CRITICAL, AlertType.MONTHLY_LIMIT),
        (t(2026, 3, 20, 18, tzinfo=UTC), D(120), AlertLevel.EMERGENCY, AlertType.MONTHLY_LIMIT),
        # April rearms: nothing until 50% of 200 again, which two days (24) do not reach.
    ]
    backend.spend("80")
    (april,) = [
        a for a in await monitor.check_spending_status(U, P) if a.threshold_id == "policy:monthly"
    ]
    assert (april.period_start, april.metadata["percentage"]) == (t(2026, 4, 1, tzinfo=UTC), 50)
    await monitor.wait_for_delivery()
    assert april in received
    assert all(a.period_start is not None for a in limits)
    forecasts = [a for a in received if a.alert_type is AlertType.FORECAST_OVERSPEND]
    assert [f.created_at.month for f in forecasts] == [3, 4]  # once per month


async def test_check_spending_status_returns_the_current_alerts_without_resending(
    monitor: SpendingMonitor, backend: FakeBackend, received: list[SpendingAlert]
) -> None:
    backend.set_policy(daily_limit="10")
    backend.spend("8.5")
    first = await monitor.check_spending_status(U, P)
    again = await monitor.check_spending_status(U, P)
    assert [a.alert_id for a in first] == [a.alert_id for a in again]
    daily = [a for a in first if a.threshold_id == "policy:daily"]
    assert len(daily) == 1
    assert daily[0].level is AlertLevel.WARNING
    assert daily[0].title == "Daily spending at 80% of the daily limit"
    assert daily[0].message == (
        "Spent $8.50 today of the $10.00 daily limit (85.0%; notifying at 80%)"
    )
    await monitor.wait_for_delivery()
    assert received.count(daily[0]) == 1


async def test_custom_thresholds_rate_and_balance(
    monitor: SpendingMonitor,
    backend: FakeBackend,
    clock: FakeClock,
    received: list[SpendingAlert],
) -> None:
    rate = SpendingThreshold(threshold_type=ThresholdType.RATE, limit=D(5), name="hourly cap")
    balance = SpendingThreshold(
        threshold_type=ThresholdType.BALANCE,
        limit=D(9000),
        notification_percentages=[50, 100],
        name="reserve",
    )
    monitor.add_threshold(rate, user_id=U, project_id=P)
    monitor.add_threshold(balance)
    assert await monitor.check_threshold(U, P, rate) is None

    backend.spend("6")  # 120% of the hourly cap; percentages stop at 100
    hit = await monitor.check_threshold(U, P, rate)
    assert hit is not None
    assert (hit.alert_type, hit.level, hit.metadata["percentage"]) == (
        AlertType.RATE_LIMIT,
        AlertLevel.CRITICAL,
        D(100),
    )
    assert rate.triggered_count == 1
    first_hit = clock.now
    assert (rate.last_triggered_at, rate.trigger_history) == (first_hit, [first_hit])
    assert await monitor.check_threshold(U, P, rate) is hit  # same hour: remembered
    assert rate.trigger_history == [first_hit]  # a remembered alert is no new trigger
    clock.advance(hours=1)
    assert await monitor.check_threshold(U, P, rate) is None  # nothing spent this hour
    backend.spend("5")
    rearmed = await monitor.check_threshold(U, P, rate)
    assert rearmed is not None
    assert rearmed.alert_id != hit.alert_id
    assert rate.triggered_count == 2
    assert rate.trigger_history == [first_hit, clock.now]
    assert rate.last_triggered_at == clock.now

    backend.spend("5489")  # balance 4500: half of the way from 9000 to zero
    low = await monitor.check_threshold(U, P, balance)
    assert low is not None
    assert (low.alert_type, low.level) == (AlertType.LOW_BALANCE, AlertLevel.WARNING)
    assert low.current_value == D(4500)
    await monitor.wait_for_delivery()
    assert sum(1 for a in received if a.threshold_id == balance.threshold_id) == 1


async def test_jump_to_a_higher_percentage_escalates_within_the_period(
    monitor: SpendingMonitor, backend: FakeBackend, received: list[SpendingAlert]
) -> None:
    threshold = SpendingThreshold(threshold_type=ThresholdType.DAILY, limit=D(100))
    backend.spend("55")
    info = await monitor.check_threshold(U, P, threshold)
    backend.spend("50")
    critical = await monitor.check_threshold(U, P, threshold)
    assert info is not None
    assert critical is not None
    assert (info.level, critical.level) == (AlertLevel.INFO, AlertLevel.CRITICAL)
    assert critical.title == "Daily spending: daily threshold reached (100%)"
    backend.refund("90")  # falling back does not re-announce lower percentages
    assert await monitor.check_threshold(U, P, threshold) is None
    await monitor.wait_for_delivery()
    assert [a.level for a in received] == [AlertLevel.INFO, AlertLevel.CRITICAL]


async def test_disabled_and_zero_limit_thresholds(
    monitor: SpendingMonitor, backend: FakeBackend
) -> None:
    off = SpendingThreshold(threshold_type=ThresholdType.DAILY, limit=D(1), enabled=False)
    zero = SpendingThreshold(threshold_type=ThresholdType.DAILY, limit=D(0))
    assert await monitor.check_threshold(U, P, zero) is None  # nothing spent
    backend.spend("0.01")
    assert await monitor.check_threshold(U, P, off) is None
    alert = await monitor.check_threshold(U, P, zero)
    assert alert is not None
    assert alert.level is AlertLevel.CRITICAL
    assert alert.metadata["percent_of_limit"] is None  # infinitely past a zero limit


async def test_low_balance_warns_then_escalates_and_reminds_daily(
    monitor: SpendingMonitor,
    backend: FakeBackend,
    clock: FakeClock,
    received: list[SpendingAlert],
) -> None:
    backend.set_policy(low_balance_threshold="100")
    backend.spend("9950")
    (low,) = [
        a for a in await monitor.check_spending_status(U, P) if a.alert_type.value == "low_balance"
    ]
    assert (low.level, low.title, low.message) == (
        AlertLevel.WARNING,
        "Low balance",
        "Available balance is $50.00 (threshold $100.00)",
    )
    backend.spend("50")
    await monitor.check_spending_status(U, P)
    clock.advance(days=1)
    await monitor.check_spending_status(U, P)
    await monitor.wait_for_delivery()
    lows = [a for a in received if a.alert_type is AlertType.LOW_BALANCE]
    assert [(a.level, a.title) for a in lows] == [
        (AlertLevel.WARNING, "Low balance"),
        (AlertLevel.CRITICAL, "Balance exhausted"),
        (AlertLevel.CRITICAL, "Balance exhausted"),  # the next day's reminder
    ]


async def test_an_account_at_exactly_zero_is_exhausted_without_a_threshold(
    monitor: SpendingMonitor, backend: FakeBackend
) -> None:
    backend.spend("10000")  # every cent, and no low-balance threshold set
    alerts = await monitor.check_spending_status(U, P)
    lows = [a for a in alerts if a.alert_type is AlertType.LOW_BALANCE]
    assert [(a.level, a.title, a.message) for a in lows] == [
        (AlertLevel.CRITICAL, "Balance exhausted", "Available balance is $0.00")
    ]


async def test_anomaly_and_spike_are_detected_once(
    monitor: SpendingMonitor,
    backend: FakeBackend,
    clock: FakeClock,
    received: list[SpendingAlert],
) -> None:
    midnight = clock.now.replace(hour=0)
    for day in range(1, 29):
        for hour in range(24):
            backend.spend("0.5", midnight - timedelta(days=day, hours=-hour))
    for hour in range(12):
        backend.spend("0.5", midnight + timedelta(hours=hour))
    assert await monitor.detect_spending_anomaly(U, P) is None
    assert await monitor.detect_cost_spike(U, P) is None

    backend.spend("1")  # this hour (noon): 1 against a mean of 0.5 -> +100%
    spike = await monitor.detect_cost_spike(U, P, spike_threshold_percent=50.0)
    assert spike is not None
    assert spike.level is AlertLevel.WARNING
    assert spike.metadata["increase_percent"] == D(100)
    assert "100% above the hourly mean of $0.50" in spike.message
    assert (await monitor.detect_cost_spike(U, P)) is spike
    assert await monitor.detect_cost_spike(U, P, spike_threshold_percent=101) is None

    backend.spend("30")  # today 37 against a daily median of 12
    anomaly = await monitor.detect_spending_anomaly(U, P)
    assert anomaly is not None
    assert anomaly.alert_type is AlertType.SPENDING_ANOMALY
    assert anomaly.metadata["median"] == D(12)
    assert (await monitor.detect_spending_anomaly(U, P)) is anomaly
    worse = await monitor.detect_cost_spike(U, P)
    assert worse is not None
    assert worse.level is AlertLevel.CRITICAL
    await monitor.wait_for_delivery()
    kinds = Counter(a.alert_type for a in received)
    assert kinds[AlertType.SPENDING_ANOMALY] == 1
    assert kinds[AlertType.COST_SPIKE] == 2  # warning, then critical at 31 (over 4 x 50%)


async def test_balance_exhaustion_forecast(
    monitor: SpendingMonitor, backend: FakeBackend, clock: FakeClock
) -> None:
    for day in range(1, 8):
        backend.spend("1400", clock.now - timedelta(days=day))  # 200 a day... on 9800
    alerts = await monitor.check_spending_status(U, P)
    (exhaustion,) = [a for a in alerts if a.alert_type is AlertType.BALANCE_EXHAUSTION]
    assert exhaustion.level is AlertLevel.CRITICAL  # 200 left at 1400/day: hours, not days
    assert exhaustion.current_value == D(200)


async def test_handlers_sync_async_failing_and_retried(
    backend: FakeBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend.deposit("10000")
    backend.set_policy(daily_limit="10")
    monitor = make_monitor(backend, clock, handler_retries=2, handler_timeout=0.05)
    got_sync: list[str] = []
    got_async: list[str] = []
    attempts = Counter[str]()

    def sync_handler(alert: SpendingAlert) -> None:
        got_sync.append(alert.alert_id)

    async def async_handler(alert: SpendingAlert) -> None:
        await asyncio.sleep(0)
        got_async.append(alert.alert_id)

    def flaky(alert: SpendingAlert) -> None:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise ConnectionError("first try fails")

    async def broken(alert: SpendingAlert) -> None:
        attempts["broken"] += 1
        raise RuntimeError("always fails")

    async def slow(alert: SpendingAlert) -> None:
        attempts["slow"] += 1
        await asyncio.sleep(10)

    for handler in (broken, slow, sync_handler, flaky, async_handler):
        monitor.register_alert_handler(handler)
    backend.spend("10")
    with caplog.at_level(logging.WARNING, logger="smartspace_budget.budgets.delivery"):
        alerts = await monitor.check_spending_status(U, P)
        assert attempts["slow"] <= 1  # the check did not wait for any handler
        assert await monitor.wait_for_delivery(10)
    (alert,) = [a for a in alerts if a.threshold_id == "policy:daily"]
    assert got_sync == [alert.alert_id]
    assert got_async == [alert.alert_id]
    assert attempts == {"flaky": 2, "broken": 3, "slow": 3}
    assert monitor.delivery_failures == 2
    assert monitor.delivery.stats.delivered == 3
    # One line per failed attempt (1 + 3 + 3), the last of each alert's an error; none with
    # a traceback.
    assert len(caplog.records) == 7
    assert all(r.exc_info is None for r in caplog.records)
    giving_up = [r for r in caplog.records if "gave up" in r.getMessage()]
    assert len(giving_up) == 2
    assert all(r.levelno == logging.ERROR for r in giving_up)
    assert monitor.undelivered(broken) == 1
    assert monitor.undelivered(sync_handler) == 0

    monitor.unregister_alert_handler(broken)
    with pytest.raises(NotFoundError):
        monitor.unregister_alert_handler(broken)
    with pytest.raises(InvalidInputError):
        monitor.register_alert_handler("not callable")  # type: ignore[arg-type]


async def test_active_alerts_and_acknowledgement(
    monitor: SpendingMonitor, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.set_policy(daily_limit="10")
    backend.set_policy("other", "proj", daily_limit="10")
    backend.deposit("10000", "other", "proj")
    backend.spend("6")
    (first,) = await monitor.check_spending_status(U, P)
    clock.advance(minutes=30)
    backend.spend("6", user_id="other", project_id="proj")
    (second,) = await monitor.check_spending_status("other", "proj")
    assert await monitor.get_active_alerts(minutes=60) == [second, first]
    assert await monitor.get_active_alerts(U, P, minutes=60) == [first]
    assert await monitor.get_active_alerts(minutes=29) == [second]

    acked = await monitor.acknowledge(first.alert_id)
    assert acked.acknowledged
    assert acked.acknowledged_at == clock.now
    assert await monitor.get_active_alerts(U, P) == []
    assert await monitor.get_active_alerts(U, P, include_acknowledged=True) == [first]
    assert first in await monitor.check_spending_status(U, P)  # still raised, not resent
    with pytest.raises(NotFoundError):
        await monitor.acknowledge("nope")
    with pytest.raises(InvalidInputError):
        await monitor.get_active_alerts(minutes=0)


async def test_backend_failure_raises_and_delivers_nothing(
    monitor: SpendingMonitor, backend: FakeBackend, received: list[SpendingAlert]
) -> None:
    backend.set_policy(daily_limit="1")
    backend.spend("5")
    backend.fail_with = BackendUnavailableError("ledger down")
    with pytest.raises(BackendUnavailableError):
        await monitor.check_spending_status(U, P)
    await monitor.wait_for_delivery()
    assert received == []


async def test_threshold_registry(monitor: SpendingMonitor) -> None:
    everyone = monitor.add_threshold(
        SpendingThreshold(threshold_type=ThresholdType.MONTHLY, limit=D(1))
    )
    mine = monitor.add_threshold(
        SpendingThreshold(threshold_type=ThresholdType.DAILY, limit=D(1)), user_id=U, project_id=P
    )
    assert monitor.thresholds_for(U, P) == [everyone, mine]
    assert monitor.thresholds_for("x", "y") == [everyone]
    monitor.remove_threshold(mine.threshold_id)
    assert monitor.thresholds_for(U, P) == [everyone]
    with pytest.raises(NotFoundError):
        monitor.remove_threshold(mine.threshold_id)
    with pytest.raises(InvalidInputError):
        monitor.add_threshold(everyone, user_id=U)


async def test_periods_follow_the_accounts_timezone(
    monitor: SpendingMonitor,
    backend: FakeBackend,
    clock: FakeClock,
    received: list[SpendingAlert],
) -> None:
    backend.account().timezone = "America/New_York"
    backend.set_policy(daily_limit="10")
    clock.now = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 22:00 on March 2 in New York
    backend.spend("6")
    (first,) = await monitor.check_spending_status(U, P)
    assert first.period_start == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # local midnight
    clock.advance(hours=1, minutes=30)  # 23:30 local: same day, nothing new
    backend.spend("0.5")
    assert await monitor.check_spending_status(U, P) == [first]
    clock.advance(hours=1)  # 00:30 local on March 3: a new day, rearmed
    backend.spend("5")
    (second,) = await monitor.check_spending_status(U, P)
    assert second.period_start == datetime(2026, 3, 3, 5, 0, tzinfo=UTC)
    await monitor.wait_for_delivery()
    assert [a.metadata["percentage"] for a in received] == [50, 50]


async def test_detect_cost_spike_defaults_to_the_monitors_threshold(
    backend: FakeBackend, clock: FakeClock
) -> None:
    backend.deposit("10000")
    hour = clock.now.replace(minute=0)
    for back in range(1, 26):
        backend.spend("1", hour - timedelta(hours=back))
    backend.spend("1.75")  # +75% over the hourly mean of 1
    strict = make_monitor(backend, clock, spike_threshold_percent=100)
    assert await strict.detect_cost_spike(U, P) is None  # 75% < the monitor's 100%
    assert await strict.detect_cost_spike(U, P, spike_threshold_percent=50.0) is not None
    default = make_monitor(backend, clock)
    spike = await default.detect_cost_spike(U, P)  # the spec's 50%
    assert spike is not None
    assert spike.metadata["increase_percent"] == D(75)
    assert "(threshold 50%)" in spike.message
