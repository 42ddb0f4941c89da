"""``smartspace-budget demo`` from a fresh data directory."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from tests.cli.cli_harness import Cli


def test_demo_seeds_a_month_and_prints_the_four_examples(fresh: Cli) -> None:
    started = time.monotonic()
    result = fresh("demo")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "recorded" in out
    assert "calls costing" in out
    # Example 1: one request passes, a huge one is refused by the per-request limit.
    assert "✓ Budget check passed - proceed with request" in out
    assert "✗ Budget check failed" in out
    # Example 2: the dashboard.
    assert "Spent this month:" in out
    for provider in ("openai", "anthropic", "google"):
        assert provider in out
    # Example 3: alerts through a registered handler, with the spike and the low balance.
    assert "🚨 URGENT: Cost spike in the last hour" in out
    assert "Cost spike detected:" in out
    assert "Low balance" in out
    # Example 4: the spec's comparison.
    assert "Cost Comparison (1000 input + 500 output tokens):" in out
    assert "google/gemini-pro is the cheapest" in out
    assert elapsed < 30
    status: Any = fresh("status", "-u", "user_001", "-p", "proj_001", "--json").json()
    assert Decimal(0) < status["available_balance"] < Decimal(25)


def test_demo_twice_keeps_the_same_books(fresh: Cli) -> None:
    fresh("demo", "-p", "proj_x")
    before: Any = fresh("status", "-u", "user_001", "-p", "proj_x", "--json").json()
    again = fresh("demo", "-p", "proj_x")
    assert again.exit_code == 0
    assert "already has" in again.stdout
    after: Any = fresh("status", "-u", "user_001", "-p", "proj_x", "--json").json()
    assert after["spent_total"] == before["spent_total"]


def test_same_seed_same_month() -> None:
    from datetime import UTC, datetime

    from smartspace_budget.demo import plan_month

    now = datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    assert plan_month(now, 3) == plan_month(now, 3)
    assert plan_month(now, 3) != plan_month(now, 4)
    calls = plan_month(now, 3)
    assert all(c.at <= now for c in calls)
    spike = [c for c in calls if c.spike]
    assert spike
    assert all(c.at >= now.replace(minute=0) for c in spike)
