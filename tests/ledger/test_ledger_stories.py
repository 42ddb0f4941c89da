"""Worked examples: whole bookkeeping stories, every figure checked, the books checked last."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.errors import (
    BudgetExceededError,
    ConflictError,
    PolicyViolationError,
    ReservationResolvedError,
)
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import BudgetPolicy, EntryKind, ReservationStatus, SpendingPeriod


async def assert_books_clean(ledger: Ledger) -> None:
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_reservation_life_cycle(ledger: Ledger) -> None:
    """Deposit, hold and settle below then above the hold, refund, release, expiry."""
    entry = await ledger.deposit("alice", "bot", D("100"), idempotency_key="dep-1", now=T0)
    assert (entry.kind, entry.amount, entry.balance_after) == (
        EntryKind.DEPOSIT,
        D("100"),
        D("100"),
    )

    hold = await ledger.reserve("alice", "bot", D("10"), idempotency_key="res-1", now=T0)
    assert hold.status is ReservationStatus.PENDING
    assert hold.expires_at == T0 + timedelta(seconds=300)
    balance = await ledger.get_balance("alice", "bot")
    assert (balance.total_balance, balance.reserved_amount, balance.available_balance) == (
        D("100"),
        D("10"),
        D("90"),
    )

    # Settle below the hold: the rest of the hold goes back.
    charged = await ledger.settle(
        hold.reservation_id, usage("7.5"), idempotency_key="set-1", now=T0 + timedelta(minutes=1)
    )
    assert (charged.kind, charged.amount, charged.balance_after) == (
        EntryKind.USAGE,
        D("-7.5"),
        D("92.5"),
    )
    assert charged.reservation_id == hold.reservation_id
    settled = await ledger.get_reservation(hold.reservation_id, at=T0 + timedelta(minutes=2))
    assert (settled.status, settled.settled_amount) == (ReservationStatus.SETTLED, D("7.5"))

    # Settle above the hold: the money was spent, all of it is charged.
    hold2 = await ledger.reserve("alice", "bot", D("5"), idempotency_key="res-2", now=T0)
    over = await ledger.settle(
        hold2.reservation_id,
        usage("8", provider="anthropic", model="claude-sonnet-4"),
        idempotency_key="set-2",
        now=T0 + timedelta(minutes=2),
    )
    assert over.balance_after == D("84.5")
    status = await ledger.get_budget_status("alice", "bot", at=T0 + timedelta(minutes=3))
    assert (status.spent_today, status.spent_this_month, status.spent_total) == (
        D("15.5"),
        D("15.5"),
        D("15.5"),
    )
    assert status.reserved_amount == 0

    # A refund tied to the over-hold usage: negative spending now, within what was charged.
    refund = await ledger.refund(
        "alice",
        "bot",
        D("2"),
        idempotency_key="ref-1",
        usage_entry_id=over.entry_id,
        reason="partial outage",
        now=T0 + timedelta(minutes=4),
    )
    assert (refund.kind, refund.amount, refund.balance_after) == (
        EntryKind.REFUND,
        D("2"),
        D("86.5"),
    )
    with pytest.raises(ConflictError):
        await ledger.refund(
            "alice",
            "bot",
            D("6.000000001"),
            idempotency_key="ref-2",
            usage_entry_id=over.entry_id,
            now=T0 + timedelta(minutes=4),
        )
    analytics = await ledger.get_analytics("alice", "bot", at=T0 + timedelta(minutes=5))
    assert analytics.total_spent == D("13.5")
    assert analytics.request_count == 2
    assert analytics.average_per_request == D("6.75")
    assert analytics.spending_by_provider == {"openai": D("7.5"), "anthropic": D("6")}
    assert analytics.requests_by_provider == {"openai": 1, "anthropic": 1}
    assert analytics.spending_by_model == {"gpt-4o": D("7.5"), "claude-sonnet-4": D("6")}

    # Release: the hold goes back, the balance does not move; a hold resolves only once.
    hold3 = await ledger.reserve("alice", "bot", D("3"), idempotency_key="res-3", now=T0)
    released = await ledger.release(hold3.reservation_id, idempotency_key="rel-3", now=T0)
    assert released.status is ReservationStatus.RELEASED
    with pytest.raises(ReservationResolvedError):
        await ledger.release(hold3.reservation_id, idempotency_key="rel-3b", now=T0)
    with pytest.raises(ReservationResolvedError):
        await ledger.settle(hold3.reservation_id, usage("1"), idempotency_key="set-3", now=T0)

    # Expiry: due at exactly created + ttl, never settles afterwards.
    start = T0 + timedelta(minutes=10)
    hold4 = await ledger.reserve(
        "alice", "bot", D("4"), ttl_seconds=60, idempotency_key="res-4", now=start
    )
    assert await ledger.expire_reservations(start + timedelta(seconds=59)) == 0
    assert (await ledger.get_balance("alice", "bot")).reserved_amount == D("4")
    assert await ledger.expire_reservations(start + timedelta(seconds=60)) == 1
    assert await ledger.expire_reservations(start + timedelta(seconds=61)) == 0
    with pytest.raises(ReservationResolvedError):
        await ledger.settle(
            hold4.reservation_id, usage("1"), idempotency_key="set-4", now=start + timedelta(1)
        )
    expired = await ledger.get_reservation(hold4.reservation_id)
    assert expired.status is ReservationStatus.EXPIRED

    final = await ledger.get_balance("alice", "bot")
    assert (final.total_balance, final.reserved_amount, final.available_balance) == (
        D("86.5"),
        D("0"),
        D("86.5"),
    )
    kinds = [entry.kind for entry in reversed(await ledger.list_entries("alice", "bot"))]
    assert kinds == [
        EntryKind.DEPOSIT,
        EntryKind.RESERVATION,
        EntryKind.USAGE,
        EntryKind.RESERVATION,
        EntryKind.USAGE,
        EntryKind.REFUND,
        EntryKind.RESERVATION,
        EntryKind.RELEASE,
        EntryKind.RESERVATION,
        EntryKind.RELEASE,
    ]
    await assert_books_clean(ledger)


async def test_month_rollover_follows_the_account_timezone(ledger: Ledger) -> None:
    """Month and day windows are the account's calendar, half-hour and 45-minute zones too."""
    at = datetime.fromisoformat
    await ledger.ensure_account("utc", "p")
    await ledger.ensure_account("kolkata", "p", timezone="Asia/Kolkata")
    await ledger.ensure_account("kathmandu", "p", timezone="Asia/Kathmandu")
    for user, when, cost in (
        ("utc", "2026-01-31T23:30:00+00:00", "1"),
        ("utc", "2026-02-01T00:30:00+00:00", "2"),
        ("kolkata", "2026-01-31T18:15:00+00:00", "4"),  # 23:45 on 31 January in India
        ("kolkata", "2026-01-31T18:45:00+00:00", "8"),  # 00:15 on 1 February in India
        ("kathmandu", "2026-01-31T18:10:00+00:00", "16"),  # 23:55 in Nepal
        ("kathmandu", "2026-01-31T18:20:00+00:00", "32"),  # 00:05 on 1 February in Nepal
    ):
        await ledger.record_usage(
            user, "p", usage(cost, occurred_at=at(when)), idempotency_key=f"{user}-{when}", now=T0
        )

    async def month(user: str, when: str) -> object:
        return (
            await ledger.get_spending(user, "p", SpendingPeriod.MONTHLY, at=at(when))
        ).total_spent

    assert await month("utc", "2026-01-31T23:59:00+00:00") == D("1")
    assert await month("utc", "2026-02-01T01:00:00+00:00") == D("2")
    assert await month("kolkata", "2026-01-31T18:20:00+00:00") == D("4")
    assert await month("kolkata", "2026-01-31T18:50:00+00:00") == D("8")
    assert await month("kathmandu", "2026-01-31T18:14:00+00:00") == D("16")
    assert await month("kathmandu", "2026-01-31T18:15:00+00:00") == D("32")

    february = await ledger.get_spending(
        "kolkata", "p", SpendingPeriod.MONTHLY, at=at("2026-02-10T00:00:00+00:00")
    )
    assert february.period_start == at("2026-02-01T00:00:00+05:30")
    assert february.period_end == at("2026-03-01T00:00:00+05:30")
    hour = await ledger.get_spending(
        "kolkata", "p", SpendingPeriod.HOURLY, at=at("2026-01-31T19:29:00+00:00")
    )
    assert (hour.period_start, hour.total_spent) == (at("2026-01-31T18:30:00+00:00"), D("8"))

    status = await ledger.get_budget_status("utc", "p", at=at("2026-02-01T01:00:00+00:00"))
    assert (status.spent_today, status.spent_this_month, status.spent_total) == (
        D("2"),
        D("2"),
        D("3"),
    )

    # A refund in February of January's usage is February's negative spending.
    january_entry = (await ledger.list_entries("kolkata", "p"))[-1]
    assert january_entry.amount == D("-4")
    await ledger.refund(
        "kolkata",
        "p",
        D("1"),
        usage_entry_id=january_entry.entry_id,
        idempotency_key="late-refund",
        now=at("2026-02-02T00:00:00+00:00"),
    )
    assert await month("kolkata", "2026-01-31T18:20:00+00:00") == D("4")
    assert await month("kolkata", "2026-02-03T00:00:00+00:00") == D("7")
    assert (
        await ledger.get_analytics("kolkata", "p", at=at("2026-02-03T00:00:00+00:00"))
    ).request_count == 1

    series = await ledger.get_spending_series(
        "kolkata",
        "p",
        SpendingPeriod.DAILY,
        at("2026-01-30T00:00:00+05:30"),
        at("2026-02-03T00:00:00+05:30"),
    )
    assert [(bucket.start.date().isoformat(), bucket.spent) for bucket in series] == [
        ("2026-01-30", D("0")),
        ("2026-01-31", D("4")),
        ("2026-02-01", D("8")),
        ("2026-02-02", D("-1")),
    ]
    await assert_books_clean(ledger)


async def test_days_follow_daylight_saving_changes(ledger: Ledger) -> None:
    """New York's 8 March 2026 lasts 23 hours; its spending is exactly that day's."""
    at = datetime.fromisoformat
    await ledger.ensure_account("ny", "p", timezone="America/New_York")
    for when, cost in (
        ("2026-03-08T04:30:00+00:00", "1"),  # 23:30 on 7 March, EST
        ("2026-03-08T05:30:00+00:00", "2"),  # 00:30 on 8 March, EST
        ("2026-03-09T03:30:00+00:00", "4"),  # 23:30 on 8 March, EDT
        ("2026-03-09T04:30:00+00:00", "8"),  # 00:30 on 9 March, EDT
    ):
        await ledger.record_usage(
            "ny", "p", usage(cost, occurred_at=at(when)), idempotency_key=when, now=T0
        )
    day = await ledger.get_spending(
        "ny", "p", SpendingPeriod.DAILY, at=at("2026-03-08T12:00:00+00:00")
    )
    assert day.total_spent == D("6")
    elapsed = day.period_end.astimezone(UTC) - day.period_start.astimezone(UTC)
    assert elapsed == timedelta(hours=23)
    await assert_books_clean(ledger)


async def test_overspending_shows_a_negative_balance(ledger: Ledger) -> None:
    await ledger.deposit("bob", "p", D("5"), idempotency_key="d1", now=T0)
    await ledger.set_policy("bob", "p", BudgetPolicy(low_balance_threshold=D("2")))
    await ledger.record_usage("bob", "p", usage("4"), idempotency_key="u1", now=T0)
    status = await ledger.get_budget_status("bob", "p", at=T0)
    assert (status.available_balance, status.low_balance_warning) == (D("1"), True)

    with pytest.raises(BudgetExceededError):
        await ledger.reserve("bob", "p", D("1.000000001"), idempotency_key="r1", now=T0)
    hold = await ledger.reserve("bob", "p", D("1"), idempotency_key="r2", now=T0)
    await ledger.settle(hold.reservation_id, usage("6"), idempotency_key="s2", now=T0)
    status = await ledger.get_budget_status("bob", "p", at=T0)
    assert (status.total_balance, status.available_balance, status.reserved_amount) == (
        D("-5"),
        D("-5"),
        D("0"),
    )
    assert status.low_balance_warning
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("bob", "p", D("0"), idempotency_key="r3", now=T0)
    assert (
        await ledger.deposit("bob", "p", D("10"), idempotency_key="d2", now=T0)
    ).balance_after == D("5")
    await assert_books_clean(ledger)


async def test_policy_limits_per_request_day_and_month(ledger: Ledger) -> None:
    """A limit is reached at equality; today's and this month's spend plus holds count."""
    await ledger.deposit("carol", "p", D("1000"), idempotency_key="d", now=T0)
    policy = BudgetPolicy(per_request_limit=D("10"), daily_limit=D("25"), monthly_limit=D("40"))
    assert await ledger.set_policy("carol", "p", policy) == policy
    assert await ledger.get_policy("carol", "p") == policy

    with pytest.raises(PolicyViolationError):
        await ledger.reserve("carol", "p", D("10.000000001"), idempotency_key="big", now=T0)
    first = await ledger.reserve("carol", "p", D("10"), idempotency_key="a", now=T0)
    await ledger.settle(first.reservation_id, usage("10"), idempotency_key="a-s", now=T0)
    # 10 spent today: 10 + 10 held + 5 = 25 fits exactly, one nano-USDC more does not.
    held_a = await ledger.reserve("carol", "p", D("10"), idempotency_key="b", now=T0)
    held_b = await ledger.reserve("carol", "p", D("5"), idempotency_key="c", now=T0)
    with pytest.raises(PolicyViolationError, match="daily"):
        await ledger.reserve("carol", "p", D("0.000000001"), idempotency_key="e", now=T0)
    for key, hold in (("b-r", held_a), ("c-r", held_b)):
        await ledger.release(hold.reservation_id, idempotency_key=key, now=T0)

    # Later days of the month: the daily window resets, the monthly one does not.
    for day in (1, 2, 3):
        when = T0 + timedelta(days=day)
        hold = await ledger.reserve("carol", "p", D("10"), idempotency_key=f"day{day}", now=when)
        await ledger.settle(hold.reservation_id, usage("10"), idempotency_key=f"s{day}", now=when)
    with pytest.raises(PolicyViolationError, match="monthly"):
        await ledger.reserve(
            "carol", "p", D("0.5"), idempotency_key="m", now=T0 + timedelta(days=4)
        )
    status = await ledger.get_budget_status("carol", "p", at=T0 + timedelta(days=4))
    assert (status.spent_today, status.spent_this_month) == (D("0"), D("40"))
    assert status.monthly_limit_reached
    assert not status.daily_limit_reached
    # Next month there is room again.
    next_month = datetime(2026, 2, 1, 0, 0, tzinfo=UTC)
    await ledger.reserve("carol", "p", D("10"), idempotency_key="feb", now=next_month)

    # A limit of zero blocks everything, even a free request; no limit means unlimited.
    await ledger.set_policy("carol", "p", BudgetPolicy(daily_limit=D("0")))
    with pytest.raises(PolicyViolationError):
        await ledger.reserve("carol", "p", D("0"), idempotency_key="zero", now=next_month)
    status = await ledger.get_budget_status("carol", "p", at=next_month)
    assert status.daily_limit_reached
    await ledger.set_policy("carol", "p", BudgetPolicy())
    await ledger.reserve("carol", "p", D("500"), idempotency_key="free", now=next_month)
    await assert_books_clean(ledger)


async def test_an_untied_refund_returns_at_most_the_net_spending(ledger: Ledger) -> None:
    await ledger.deposit("carol", "bot", D("50"), idempotency_key="dep", now=T0)
    await ledger.record_usage("carol", "bot", usage("4"), idempotency_key="use", now=T0)
    await ledger.refund("carol", "bot", D("1"), idempotency_key="ref-1", now=T0)
    before = await ledger.get_budget_status("carol", "bot", at=T0)
    with pytest.raises(ConflictError, match="net spending"):
        await ledger.refund("carol", "bot", D("3.000000001"), idempotency_key="ref-2", now=T0)
    assert await ledger.get_budget_status("carol", "bot", at=T0) == before
    last = await ledger.refund("carol", "bot", D("3"), idempotency_key="ref-3", now=T0)
    assert last.balance_after == D("50")
    await assert_books_clean(ledger)
