"""The spec's Examples 1, 2 and 3, as written, against a seeded embedded ledger.

Each example runs with no configuration but ``SMARTSPACE_BUDGET_DATA_DIR`` (a temporary
directory), so ``BudgetTracker()``, ``PricingEngine()`` and ``SpendingMonitor()`` use the real
default: ``LocalBackend`` over a SQLite ledger file. The seeding goes through the same
backend's write side. Every figure the examples print is asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import tiktoken

from smartspace_budget.backend import LedgerBackend, default_backend
from smartspace_budget.budgets import AlertLevel, BudgetTracker, SpendingMonitor, SpendingPeriod
from smartspace_budget.models import UsageEvent
from smartspace_budget.models.budget import BudgetPolicy
from smartspace_budget.pricing import PricingEngine

D = Decimal
user_id, project_id = "user_001", "proj_001"


async def an_hour_with_room() -> datetime:
    """Now, at least 30 s before the next hour (so before the next day and month too).

    Seeding and checking then fall in the same hour, day and month of the real clock the
    examples read.
    """
    now = datetime.now(UTC)
    left = 3600 - (now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < 30:
        await asyncio.sleep(left + 0.1)
        now = datetime.now(UTC)
    return now


@pytest.fixture
async def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LedgerBackend]:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path))
    for name in ("SMARTSPACE_BUDGET_URL", "SMARTSPACE_BUDGET_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    await an_hour_with_room()
    backend = default_backend()
    yield backend
    await backend.aclose()  # type: ignore[attr-defined]


async def use(
    backend: LedgerBackend,
    key: str,
    cost: str,
    provider: str = "openai",
    model: str = "gpt-4",
    at: datetime | None = None,
) -> None:
    usage = UsageEvent(provider=provider, model=model, actual_cost=D(cost), occurred_at=at)
    await backend.record_usage(user_id, project_id, usage, idempotency_key=key)


# -- Example 1: pre-request budget check ----------------------------------------------------


async def example_1() -> None:
    budget_tracker = BudgetTracker()
    pricing_engine = PricingEngine()

    # Estimate cost for request
    estimate = await pricing_engine.estimate_cost(
        provider="openai",
        model="gpt-4",
        input_text="What is machine learning?",
        expected_output_tokens=500,
    )

    print(f"Estimated cost: ${estimate.total_cost:.6f}")

    # Check budget availability
    policy = BudgetPolicy.fetch_from_backend(user_id, project_id)
    check = await budget_tracker.check_against_policy(
        user_id="user_001",
        project_id="proj_001",
        requested_amount=estimate.total_cost,
        policy=policy,
    )

    if check.available:
        print("✓ Budget check passed - proceed with request")
    else:
        print(f"✗ Budget check failed: {check.violations}")
    await budget_tracker.aclose()
    await pricing_engine.backend.aclose()  # type: ignore[attr-defined]


def expected_estimate() -> Decimal:
    """gpt-4 at $0.03/$0.06 per 1K tokens, the prompt counted by tiktoken as a one-message
    chat (3 tokens per message, the role, 3 for the reply primer), plus the 5% fee."""
    encoding = tiktoken.encoding_for_model("gpt-4")
    tokens = len(encoding.encode("What is machine learning?")) + 3 + len(encoding.encode("user"))
    tokens += 3
    base = D(tokens) * D("0.03") / 1000 + 500 * D("0.06") / 1000
    return base * D("1.05")


async def test_example_1_passes_with_budget(
    ledger: LedgerBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    await ledger.deposit(user_id, project_id, D("10"), idempotency_key="dep-1")
    await ledger.set_policy(
        user_id, project_id, BudgetPolicy(per_request_limit=D("0.05"), daily_limit=D("5"))
    )
    await example_1()
    total = expected_estimate()
    assert total == D("0.031878")  # 12 prompt tokens: (0.00036 + 0.03) x 1.05
    assert capsys.readouterr().out.splitlines() == [
        "Estimated cost: $0.031878",
        "✓ Budget check passed - proceed with request",
    ]


async def test_example_1_fails_on_the_accounts_limits(
    ledger: LedgerBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    await ledger.deposit(user_id, project_id, D("10"), idempotency_key="dep-1")
    await ledger.set_policy(
        user_id, project_id, BudgetPolicy(per_request_limit=D("0.03"), daily_limit=D("1"))
    )
    await use(ledger, "u-1", "0.99")
    await example_1()
    assert capsys.readouterr().out.splitlines() == [
        "Estimated cost: $0.031878",
        "✗ Budget check failed: ["
        "'Per-request limit exceeded: requested $0.031878 > limit $0.03 (over by $0.001878)', "
        "'Daily limit exceeded: spent $0.99 + requested $0.031878 = $1.021878 > limit $1.00 "
        "(over by $0.021878)']",
    ]


# -- Example 2: spending analytics dashboard ----------------------------------------------


async def example_2() -> None:
    tracker = BudgetTracker()

    # Get current status
    status = await tracker.get_budget_status("user_001", "proj_001")
    print(f"Available: ${status.available_balance:.2f}")
    print(f"Spent today: ${status.spent_today:.2f}")
    print(f"Spent this month: ${status.spent_this_month:.2f}")

    # Get detailed analytics
    analytics = await tracker.get_spending_analytics("user_001", "proj_001", SpendingPeriod.MONTHLY)

    print("\nMonthly Analytics:")
    print(f"Total spent: ${analytics.total_spent:.2f}")
    print(f"Requests: {analytics.request_count}")
    print(f"Average per request: ${analytics.average_per_request:.4f}")

    print("\nSpending by provider:")
    for provider, amount in analytics.spending_by_provider.items():
        print(f"  {provider}: ${amount:.2f}")

    print("\nSpending by model:")
    for model, amount in analytics.spending_by_model.items():
        print(f"  {model}: ${amount:.2f}")
    await tracker.aclose()


async def test_example_2_dashboard(
    ledger: LedgerBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    await ledger.deposit(user_id, project_id, D("100"), idempotency_key="dep-1")
    spend = [
        ("openai", "gpt-4", "1.20"),
        ("openai", "gpt-4", "0.80"),
        ("openai", "gpt-3.5-turbo", "0.05"),
        ("anthropic", "claude-3-opus", "2.25"),
        ("google", "gemini-pro", "0.70"),
    ]
    for i, (provider, model, cost) in enumerate(spend):
        await use(ledger, f"u-{i}", cost, provider, model)
    hold = await ledger.reserve(user_id, project_id, D("5"), idempotency_key="hold-1")
    await ledger.refund(user_id, project_id, D("0.50"), idempotency_key="r-1", reason="retry")

    await example_2()
    # Spent 5.00, refunded 0.50 (not tied to a call): net 4.50, so 95.50 left, 5 of it held.
    # The refund is netted in the totals; the breakdowns show where the usage went.
    assert capsys.readouterr().out.splitlines() == [
        "Available: $90.50",
        "Spent today: $4.50",
        "Spent this month: $4.50",
        "",
        "Monthly Analytics:",
        "Total spent: $4.50",
        "Requests: 5",
        "Average per request: $0.9000",
        "",
        "Spending by provider:",
        "  anthropic: $2.25",
        "  google: $0.70",
        "  openai: $2.05",
        "",
        "Spending by model:",
        "  claude-3-opus: $2.25",
        "  gemini-pro: $0.70",
        "  gpt-3.5-turbo: $0.05",
        "  gpt-4: $2.00",
    ]
    assert hold.amount == D(5)


# -- Example 3: real-time monitoring with alerts --------------------------------------------


async def example_3() -> None:
    monitor = SpendingMonitor()

    # Register alert handler
    def send_alert_notification(alert):  # type: ignore[no-untyped-def]
        if alert.level in [AlertLevel.CRITICAL, AlertLevel.EMERGENCY]:
            # Send urgent notification (email, SMS, Slack)
            print(f"🚨 URGENT: {alert.title}")
            print(f"   {alert.message}")
        else:
            # Log warning
            print(f"⚠️  {alert.title}: {alert.message}")

    monitor.register_alert_handler(send_alert_notification)

    # Check spending status
    await monitor.check_spending_status("user_001", "proj_001")

    # Detect anomalies
    anomaly = await monitor.detect_spending_anomaly("user_001", "proj_001")
    if anomaly:
        print(f"Anomaly detected: {anomaly.message}")

    # Detect cost spikes
    spike = await monitor.detect_cost_spike("user_001", "proj_001")
    if spike:
        print(f"Cost spike detected: {spike.message}")
    await monitor.aclose()


async def test_example_3_alerts(ledger: LedgerBackend, capsys: pytest.CaptureFixture[str]) -> None:
    await ledger.deposit(user_id, project_id, D("1000"), idempotency_key="dep-1")
    await ledger.set_policy(user_id, project_id, BudgetPolicy(daily_limit=D("10")))
    now = datetime.now(UTC)
    # History: 2.00 on even and 1.00 on odd days, 2 to 29 days ago (yesterday was quiet), at
    # this time of day, so no history falls in the last two days' hours whatever the time.
    for days_ago in range(2, 30):
        cost = "2.00" if days_ago % 2 == 0 else "1.00"
        await use(ledger, f"h-{days_ago}", cost, at=now - timedelta(days=days_ago))
    await use(ledger, "today", "10.50")

    await example_3()
    message = (
        "Spent $10.50 today against a median of $1.50 over the last 28 days "
        "(robust z-score 12.14, threshold 3.5)"
    )
    # The handler runs in the background (a worker thread for a plain function): its lines
    # come whenever it is delivered, up to the monitor's close.
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        [
            "🚨 URGENT: Daily spending: daily limit reached (100%)",
            "   Spent $10.50 today of the $10.00 daily limit (105.0%; notifying at 100%)",
            "🚨 URGENT: Unusual spending today",
            f"   {message}",
            f"Anomaly detected: {message}",
        ]
    )


async def test_example_3_cost_spike(
    ledger: LedgerBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spec's call without a threshold (50% by default), and ``spike.message`` printed."""
    await ledger.deposit(user_id, project_id, D("1000"), idempotency_key="dep-1")
    now = await an_hour_with_room()
    for hours_ago in range(1, 26):  # 0.50 in each of the 25 hours before this one
        await use(ledger, f"h-{hours_ago}", "0.50", at=now - timedelta(hours=hours_ago))
    await use(ledger, "now", "5.00", at=now)

    await example_3()
    hour = now.replace(minute=0, second=0, microsecond=0)
    message = (
        f"Spent $5.00 in the hour from {hour:%Y-%m-%d %H:%M}, 900% above the hourly mean "
        "of $0.50 (threshold 50%)"
    )
    # 900% is over 4 x 50%: critical, so urgent; a day of history is no anomaly baseline.
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(
        [
            "🚨 URGENT: Cost spike in the last hour",
            f"   {message}",
            f"Cost spike detected: {message}",
        ]
    )


async def test_tracker_over_our_backend_sees_a_write_at_once(ledger: LedgerBackend) -> None:
    """The backend caches status for 30 s and drops it on writes; the tracker adds no layer."""
    tracker = BudgetTracker(ledger)
    await ledger.deposit(user_id, project_id, D("10"), idempotency_key="dep-1")
    assert (await tracker.get_budget_status(user_id, project_id)).total_balance == D("10")
    await use(ledger, "use-1", "2.5")
    assert (await tracker.get_budget_status(user_id, project_id)).total_balance == D("7.5")
