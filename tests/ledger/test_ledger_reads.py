"""Reads: spending per period, analytics, series, entries, accounts, all from the rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.backend.base import AccountRef
from smartspace_budget.errors import InvalidInputError, NotFoundError
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.tables import entries
from smartspace_budget.models import ReservationStatus, SpendingPeriod


async def _seed(ledger: Ledger) -> None:
    """Usage spread over a week and a year, two providers, a refund not tied to usage."""
    await ledger.deposit("fay", "p", D("1000"), idempotency_key="fund", now=T0)
    calls = [
        (T0, "1.25", "openai", "gpt-4o"),
        (T0 + timedelta(minutes=30), "0.75", "openai", "gpt-4o-mini"),
        (T0 + timedelta(hours=2), "2", "anthropic", "claude-sonnet-4"),
        (T0 - timedelta(days=1), "3", "openai", "gpt-4o"),  # Wednesday
        (T0 - timedelta(days=4), "5", "google", "gemini-2.5-pro"),  # last week's Sunday
        (T0 - timedelta(days=40), "7", "openai", "gpt-4o"),  # December, last year
    ]
    for number, (when, cost, provider, model) in enumerate(calls):
        await ledger.record_usage(
            "fay",
            "p",
            usage(cost, provider=provider, model=model, occurred_at=when),
            idempotency_key=f"u{number}",
            now=T0,
        )
    await ledger.refund("fay", "p", D("0.5"), idempotency_key="goodwill", now=T0)


async def test_spending_for_every_period(ledger: Ledger) -> None:
    await _seed(ledger)
    at = T0 + timedelta(hours=3)
    expected = {
        SpendingPeriod.HOURLY: (D("0"), 0),
        SpendingPeriod.DAILY: (D("3.5"), 3),  # 1.25 + 0.75 + 2 - 0.5
        SpendingPeriod.WEEKLY: (D("6.5"), 4),  # Monday 12 January onwards
        SpendingPeriod.MONTHLY: (D("11.5"), 5),
        SpendingPeriod.YEARLY: (D("11.5"), 5),
    }
    for period, (spent, count) in expected.items():
        summary = await ledger.get_spending("fay", "p", period, at=at)
        assert (summary.total_spent, summary.request_count) == (spent, count), period
    hour = await ledger.get_spending(
        "fay", "p", SpendingPeriod.HOURLY, at=T0 + timedelta(minutes=59)
    )
    assert (hour.total_spent, hour.request_count) == (D("1.5"), 2)  # the refund was at noon too
    week = await ledger.get_spending("fay", "p", "weekly", at=at)  # type: ignore[arg-type]
    assert week.period_start == datetime(2026, 1, 12, tzinfo=UTC)
    with pytest.raises(InvalidInputError):
        await ledger.get_spending("fay", "p", "fortnightly", at=at)  # type: ignore[arg-type]


async def test_analytics_breakdowns(ledger: Ledger) -> None:
    await _seed(ledger)
    analytics = await ledger.get_analytics("fay", "p", SpendingPeriod.MONTHLY, at=T0)
    assert analytics.total_spent == D("11.5")
    assert analytics.request_count == 5
    assert analytics.average_per_request == D("2.3")
    assert analytics.spending_by_provider == {
        "openai": D("5"),
        "anthropic": D("2"),
        "google": D("5"),
    }
    assert analytics.requests_by_provider == {"openai": 3, "anthropic": 1, "google": 1}
    assert analytics.spending_by_model == {
        "gpt-4o": D("4.25"),
        "gpt-4o-mini": D("0.75"),
        "claude-sonnet-4": D("2"),
        "gemini-2.5-pro": D("5"),
    }
    assert analytics.requests_by_model == {
        "gpt-4o": 2,
        "gpt-4o-mini": 1,
        "claude-sonnet-4": 1,
        "gemini-2.5-pro": 1,
    }
    assert (analytics.period_start, analytics.period_end) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
    )
    assert (analytics.spending_trend, analytics.anomaly_detected) == ("stable", False)
    empty = await ledger.get_analytics(
        "fay", "p", SpendingPeriod.MONTHLY, at=T0 + timedelta(days=60)
    )
    assert (empty.total_spent, empty.request_count, empty.average_per_request) == (
        D("0"),
        0,
        D("0"),
    )


async def test_spending_series_includes_empty_windows(ledger: Ledger) -> None:
    await _seed(ledger)
    series = await ledger.get_spending_series(
        "fay", "p", SpendingPeriod.DAILY, T0 - timedelta(days=4), T0 + timedelta(hours=1)
    )
    assert [(bucket.start.day, bucket.spent, bucket.request_count) for bucket in series] == [
        (11, D("5"), 1),
        (12, D("0"), 0),
        (13, D("0"), 0),
        (14, D("3"), 1),
        (15, D("3.5"), 3),
    ]
    monthly = await ledger.get_spending_series(
        "fay", "p", SpendingPeriod.MONTHLY, datetime(2025, 12, 1, tzinfo=UTC), T0
    )
    assert [bucket.spent for bucket in monthly] == [D("7"), D("11.5")]
    with pytest.raises(InvalidInputError):
        await ledger.get_spending_series(
            "fay", "p", SpendingPeriod.HOURLY, T0 - timedelta(days=3650), T0
        )


async def test_reads_never_touch_the_entries(ledger: Ledger) -> None:
    """Status, spending and analytics read the account row and rollups, whatever the history:
    with the entries gone, they answer the same."""
    await _seed(ledger)

    async def everything() -> list[object]:
        answers: list[object] = [
            await ledger.get_budget_status("fay", "p", at=T0),
            await ledger.get_balance("fay", "p", at=T0),
            await ledger.get_spending_series(
                "fay", "p", SpendingPeriod.DAILY, T0 - timedelta(days=7), T0
            ),
        ]
        for period in SpendingPeriod:
            answers.append(await ledger.get_spending("fay", "p", period, at=T0))
            answers.append(await ledger.get_analytics("fay", "p", period, at=T0))
        return answers

    before = await everything()
    async with ledger.engine.begin() as conn:
        await conn.execute(delete(entries))
    assert await everything() == before


async def test_status_balance_and_policy(ledger: Ledger) -> None:
    await _seed(ledger)
    hold = await ledger.reserve("fay", "p", D("10"), idempotency_key="hold", now=T0)
    status = await ledger.get_budget_status("fay", "p", at=T0 + timedelta(hours=3))
    assert status.total_balance == D("1000") - D("18.5")
    assert (status.reserved_amount, status.available_balance) == (D("10"), D("971.5"))
    assert (status.spent_today, status.spent_this_month, status.spent_total) == (
        D("3.5"),
        D("11.5"),
        D("18.5"),
    )
    assert (status.currency, status.timezone) == ("USDC", "UTC")
    assert status.daily_limit is None
    assert not status.daily_limit_reached
    pending = await ledger.get_reservation(hold.reservation_id, at=T0)
    assert pending.status is ReservationStatus.PENDING
    overdue = await ledger.get_reservation(hold.reservation_id, at=T0 + timedelta(hours=1))
    assert overdue.status is ReservationStatus.EXPIRED  # can no longer settle


async def test_entries_page_newest_first(ledger: Ledger) -> None:
    for number in range(7):
        await ledger.deposit("gus", "p", D(number + 1), idempotency_key=f"d{number}", now=T0)
    first = await ledger.list_entries("gus", "p", limit=3)
    assert [entry.amount for entry in first] == [D("7"), D("6"), D("5")]
    second = await ledger.list_entries("gus", "p", limit=3, before=first[-1].entry_id)
    assert [entry.amount for entry in second] == [D("4"), D("3"), D("2")]
    last = await ledger.list_entries("gus", "p", limit=3, before=second[-1].entry_id)
    assert [entry.amount for entry in last] == [D("1")]
    with pytest.raises(NotFoundError):
        await ledger.list_entries("gus", "p", before="not-an-entry")
    with pytest.raises(InvalidInputError):
        await ledger.list_entries("gus", "p", limit=0)


async def test_accounts_are_listed_with_their_fixed_timezone(ledger: Ledger) -> None:
    created = await ledger.ensure_account("hana", "p", timezone="Asia/Tokyo")
    assert created == AccountRef(user_id="hana", project_id="p", timezone="Asia/Tokyo")
    again = await ledger.ensure_account("hana", "p", timezone="Europe/Paris")
    assert again.timezone == "Asia/Tokyo"
    await ledger.deposit("ivan", "q", D("1"), idempotency_key="d", now=T0)
    assert await ledger.list_accounts() == [
        created,
        AccountRef(user_id="ivan", project_id="q", timezone="UTC"),
    ]
    status = await ledger.get_budget_status("hana", "p", at=T0)
    assert status.timezone == "Asia/Tokyo"
    assert status.total_balance == 0
