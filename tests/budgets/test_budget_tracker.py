"""BudgetTracker over an in-memory backend: balances, status cache, spending, analytics."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from smartspace_budget.budgets import BudgetTracker, SpendingPeriod, SpendingTrend
from smartspace_budget.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidAmountError,
    InvalidInputError,
    NotFoundError,
)

if TYPE_CHECKING:
    from tests.budgets.conftest import FakeBackend, FakeClock

D = Decimal
U, P = "user_001", "proj_001"


@pytest.fixture
def tracker(backend: FakeBackend, clock: FakeClock) -> BudgetTracker:
    backend.deposit("100")
    return BudgetTracker(backend, clock=clock)


async def test_available_balance_subtracts_spending_and_holds(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.spend("12.5")
    backend.account().reserved = D("7.5")
    assert await tracker.get_available_balance(U, P) == D(80)


async def test_check_sufficient_budget_boundary(tracker: BudgetTracker) -> None:
    exact = await tracker.check_sufficient_budget(U, P, "100")
    assert exact.available
    assert exact.sufficient
    assert exact.available_balance == D(100)
    over = await tracker.check_sufficient_budget(U, P, D("100.000000001"))
    assert not over.available
    assert over.violation_details[0].requested == D("100.000000001")
    assert over.violations == [
        "Insufficient balance: requested $100.000000001 exceeds available $100.00 by $0.000000001"
    ]


@pytest.mark.parametrize("bad", [0.5, -1, "NaN", "abc", True])
async def test_check_refuses_bad_amounts(tracker: BudgetTracker, bad: object) -> None:
    with pytest.raises(InvalidAmountError):
        await tracker.check_sufficient_budget(U, P, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError):
        await tracker.check_against_policy(U, P, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("user", "project"), [("", P), (U, ""), ("x" * 201, P)])
async def test_bad_account_ids_are_refused(tracker: BudgetTracker, user: str, project: str) -> None:
    with pytest.raises(InvalidInputError):
        await tracker.get_budget_status(user, project)


async def test_status_is_cached_for_its_ttl(
    tracker: BudgetTracker, backend: FakeBackend, clock: FakeClock
) -> None:
    first = await tracker.get_budget_status(U, P)
    backend.spend("10")
    assert await tracker.get_budget_status(U, P) == first
    assert backend.calls["get_budget_status"] == 1
    clock.advance(seconds=29)
    assert (await tracker.get_budget_status(U, P)).spent_today == 0
    clock.advance(seconds=1)
    assert (await tracker.get_budget_status(U, P)).spent_today == D(10)
    assert backend.calls["get_budget_status"] == 2
    backend.spend("1")
    tracker.invalidate(U, P)
    assert (await tracker.get_budget_status(U, P)).spent_today == D(11)


async def test_failures_are_typed_and_never_cached(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.fail_with = ConnectionRefusedError("connection refused")
    with pytest.raises(BackendUnavailableError):
        await tracker.check_against_policy(U, P, "1")
    backend.fail_with = TimeoutError()
    with pytest.raises(BackendTimeoutError):
        await tracker.get_available_balance(U, P)
    backend.fail_with = BackendUnavailableError("down")
    with pytest.raises(BackendUnavailableError):
        await tracker.check_sufficient_budget(U, P, "1")
    backend.fail_with = None
    assert (await tracker.check_against_policy(U, P, "1")).available


async def test_unknown_account_is_not_found(tracker: BudgetTracker) -> None:
    with pytest.raises(NotFoundError):
        await tracker.check_against_policy("nobody", P, "1")


async def test_spending_by_period_nets_refunds(
    tracker: BudgetTracker, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.spend("4", clock.now - timedelta(days=1))  # Sunday: same month, previous week
    backend.spend("3")
    backend.refund("5")
    assert await tracker.get_spending_by_period(U, P, SpendingPeriod.DAILY) == D(-2)
    assert await tracker.get_spending_by_period(U, P, "weekly") == D(-2)
    assert await tracker.get_spending_by_period(U, P, SpendingPeriod.MONTHLY) == D(2)
    yesterday = clock.now - timedelta(days=1)
    assert await tracker.get_spending_by_period(U, P, "daily", at=yesterday) == D(4)
    with pytest.raises(InvalidInputError, match="unknown spending period"):
        await tracker.get_spending_by_period(U, P, "fortnightly")


async def test_analytics_fill_in_trend_and_anomaly(
    tracker: BudgetTracker, backend: FakeBackend, clock: FakeClock
) -> None:
    today = clock.now.replace(hour=0)
    for back in range(1, 29):  # 28 complete days rising from 1 to 28 a day
        backend.spend(D(29 - back), today - timedelta(days=back) + timedelta(hours=9))
    backend.spend("3", today + timedelta(hours=9), provider="anthropic", model="claude-3-opus")
    analytics = await tracker.get_spending_analytics(U, P, SpendingPeriod.MONTHLY)
    assert analytics.spending_trend is SpendingTrend.INCREASING
    assert not analytics.anomaly_detected  # 3 today against a median of 14.5
    # March so far: Sunday the 1st (the last day of the ramp, 28) and today.
    assert analytics.spending_by_provider == {"openai": D(28), "anthropic": D(3)}
    assert analytics.request_count == 2

    backend.spend("100", today + timedelta(hours=10))
    flagged = await tracker.get_spending_analytics(U, P, "monthly")
    assert flagged.anomaly_detected


async def test_analytics_of_a_new_account_is_stable_and_calm(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.spend("50")
    analytics = await tracker.get_spending_analytics(U, P, SpendingPeriod.DAILY)
    assert analytics.total_spent == D(50)
    assert analytics.spending_trend is SpendingTrend.STABLE
    assert not analytics.anomaly_detected  # no baseline yet: nothing is claimed
