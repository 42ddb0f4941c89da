"""A cached budget check beside a dict check, in one run.

    python bench/budget.py [--rounds 30] [--calls 2000]

- **cached budget check**: ``BudgetTracker.check_against_policy`` over ``LocalBackend`` on an
  embedded SQLite ledger, the account's status already in the backend's 30 s cache (the
  check every guarded call makes): the request parsed once, the limits checked, the
  ``BudgetCheck`` built.
- **reference, a dict check**: what LiteLLM's ``BudgetManager`` does for a user, written out:
  the user's spend and budget read from dicts, compared with the projected cost. It checks
  far less (no limits per request, day or month, no violations with their amounts, no
  result object), which is why it is the floor.

Both run in alternating rounds of ``--calls`` calls; each figure is the best round (load on a
shared machine only ever adds time), and the ratio is ours over the reference's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import BudgetTracker
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import BudgetPolicy
from smartspace_budget.prices.catalog import PriceBook

TARGET_US = 5.0


def dict_check(users: dict[str, dict[str, float]], user: str, cost: float) -> bool:
    """LiteLLM's ``BudgetManager`` check, written out: spend + cost within the budget."""
    entry = users[user]
    return bool(entry.get("current_cost", 0) + cost <= entry["total_budget"])


async def measure(rounds: int, calls: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="ssb-bench-") as directory:
        ledger = await Ledger.connect(f"sqlite+aiosqlite:///{Path(directory) / 'ledger.db'}")
        try:
            await ledger.deposit("kim", "p", Decimal(100), idempotency_key="d")
            await ledger.set_policy(
                "kim",
                "p",
                BudgetPolicy(
                    per_request_limit=Decimal(5),
                    daily_limit=Decimal(50),
                    monthly_limit=Decimal(500),
                ),
            )
            tracker = BudgetTracker(LocalBackend(ledger, PriceBook.in_memory(genai_prices=False)))
            amount = Decimal("0.25")
            check = await tracker.check_against_policy("kim", "p", amount)
            assert check.available, check.violations
            users = {"kim": {"total_budget": 100.0, "current_cost": 12.5}}
            ours, reference = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(calls):
                    await tracker.check_against_policy("kim", "p", amount)
                ours.append((time.perf_counter() - started) / calls * 1e6)
                started = time.perf_counter()
                for _ in range(calls):
                    dict_check(users, "kim", 0.25)
                reference.append((time.perf_counter() - started) / calls * 1e6)
        finally:
            await ledger.close()
    return min(ours), min(reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    ours, reference = asyncio.run(measure(args.rounds, args.calls))
    print("| | µs per call | x the dict check |")
    print("|---|---:|---:|")
    ratio = ours / reference
    print(f"| cached budget check (`check_against_policy`) | {ours:.2f} | **{ratio:.1f}x** |")
    print(f"| reference: a dict check (LiteLLM's BudgetManager) | {reference:.2f} | 1.0x |")
    print()
    met = "met" if ours < TARGET_US else "not met"
    print(f"Target: a cached check under {TARGET_US:g} µs: {met} ({ours:.2f} µs).")


if __name__ == "__main__":
    main()
