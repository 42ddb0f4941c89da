"""The real service (``create_app``) over a SQLite ledger holding a year of hourly usage.

Seeding writes through the Ledger like any client (group commit makes 11k usage entries
take a few seconds); the service then opens the same file in its own event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from smartspace_budget.models import BudgetPolicy, UsageEvent

USER, PROJECT = "carol", "agents"
HOURS = 366 * 24


@dataclass(frozen=True)
class SeededLedger:
    url: str
    key: str
    total_balance: Decimal
    entries: int


async def _seed(url: str) -> SeededLedger:
    from smartspace_budget.ledger.ledger import Ledger
    from smartspace_budget.server.key_tables import create_api_key, ensure_key_table

    ledger = await Ledger.connect(url)
    try:
        await ensure_key_table(ledger.engine)
        await ledger.set_policy(
            USER,
            PROJECT,
            BudgetPolicy(daily_limit=Decimal("1.5"), monthly_limit=Decimal("40")),
        )
        await ledger.deposit(USER, PROJECT, Decimal("600"), idempotency_key="seed-deposit")
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        events: list[tuple[str, str, Decimal, datetime, int]] = []
        for i in range(HOURS):
            hour = now - timedelta(hours=i + 1)
            events.append(("openai", "gpt-4o", Decimal("0.0031") * (1 + hour.hour % 12), hour, i))
            if i % 3 == 0:
                events.append(("anthropic", "claude-3-5-haiku", Decimal("0.0047"), hour, i))

        async def record(event: tuple[str, str, Decimal, datetime, int]) -> None:
            provider, model, cost, hour, i = event
            usage = UsageEvent(
                provider=provider,
                model=model,
                input_tokens=1200,
                output_tokens=300,
                actual_cost=cost,
                occurred_at=hour + timedelta(minutes=7),
            )
            await ledger.record_usage(USER, PROJECT, usage, idempotency_key=f"seed-{model}-{i}")

        for start in range(0, len(events), 500):
            await asyncio.gather(*(record(e) for e in events[start : start + 500]))
        _, key = await create_api_key(
            ledger.engine, scope="account_read", user_id=USER, project_id=PROJECT
        )
        balance = await ledger.get_balance(USER, PROJECT)
        return SeededLedger(url, key, balance.total_balance, len(events))
    finally:
        await ledger.close()


def seed_ledger(directory: Path) -> SeededLedger:
    """Create and seed ``directory/ledger.db`` (runs its own event loop)."""
    return asyncio.run(_seed(f"sqlite+aiosqlite:///{directory / 'ledger.db'}"))
