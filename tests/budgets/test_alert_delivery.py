"""AlertDelivery: the bounded queue's overflow policy, the retry policy's deadline, refusals."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal

import pytest

from smartspace_budget.budgets import (
    AlertDelivery,
    AlertLevel,
    AlertType,
    NotificationError,
    RetryPolicy,
    SpendingAlert,
)
from smartspace_budget.errors import InvalidInputError


def _alert(index: int) -> SpendingAlert:
    return SpendingAlert(
        alert_id=f"alert-{index}",
        user_id="u",
        project_id="p",
        alert_type=AlertType.THRESHOLD_REACHED,
        level=AlertLevel.WARNING,
        title="t",
        message="m",
        current_value=Decimal(index),
    )


async def test_a_full_queue_drops_its_oldest_waiting_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = asyncio.Event()
    got: list[str] = []

    async def slow(alert: SpendingAlert) -> None:
        await gate.wait()
        got.append(alert.alert_id)

    delivery = AlertDelivery(RetryPolicy(attempt_timeout=10), queue_size=2)
    with caplog.at_level(logging.WARNING, logger="smartspace_budget.budgets.delivery"):
        delivery.submit(_alert(0), [slow])
        await asyncio.sleep(0.01)  # alert-0 is in flight, not waiting
        for index in range(1, 5):
            delivery.submit(_alert(index), [slow])
    assert delivery.stats.dropped == 2
    assert delivery.pending() == 3
    dropped = [r.getMessage() for r in caplog.records]
    assert len(dropped) == 2
    assert "dropped the oldest alert alert-1" in dropped[0]
    assert "dropped the oldest alert alert-2" in dropped[1]
    gate.set()
    assert await delivery.join(5)
    assert got == ["alert-0", "alert-3", "alert-4"]
    assert delivery.undelivered(slow) == 2
    await delivery.aclose()


async def test_retries_end_at_the_deadline_with_one_line_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    async def down(alert: SpendingAlert) -> None:
        calls.append(time.monotonic())
        raise ConnectionRefusedError("connection refused")

    policy = RetryPolicy(first_delay=0.02, max_delay=0.1, deadline=0.5, attempt_timeout=1)
    delivery = AlertDelivery(policy)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="smartspace_budget.budgets.delivery"):
        delivery.submit(_alert(1), [down])
        assert await delivery.join(10)
    assert 0.5 <= time.monotonic() - started < 5
    assert len(calls) >= 3
    assert delivery.stats.gave_up == 1
    assert delivery.stats.failed_attempts == len(calls)
    assert len(caplog.records) == len(calls)  # one line per failed attempt
    assert all(r.exc_info is None for r in caplog.records)
    assert caplog.records[-1].levelno == logging.ERROR
    assert "gave up" in caplog.records[-1].getMessage()
    await delivery.aclose()


async def test_a_refusal_is_not_retried() -> None:
    attempts = 0

    async def refuses(alert: SpendingAlert) -> None:
        nonlocal attempts
        attempts += 1
        raise NotificationError("HTTP 400", retryable=False)

    delivery = AlertDelivery(RetryPolicy(first_delay=0, deadline=60))
    delivery.submit(_alert(1), [refuses])
    assert await delivery.join(5)
    assert attempts == 1
    assert delivery.stats.gave_up == 1
    await delivery.aclose()


def test_policy_and_queue_arguments_are_checked() -> None:
    for bad in (
        {"first_delay": -1},
        {"deadline": -1},
        {"attempt_timeout": 0},
        {"max_attempts": 0},
    ):
        with pytest.raises(InvalidInputError):
            RetryPolicy(**bad)
    with pytest.raises(InvalidInputError):
        AlertDelivery(queue_size=0)
