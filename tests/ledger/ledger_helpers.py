"""Small builders shared by the ledger tests: a fixed clock, amounts, usage, table snapshots."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.tables import LEDGER_TABLES, accounts
from smartspace_budget.models import UsageEvent

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
"""A fixed clock for tests: the middle of a month, a Thursday, noon UTC."""


def D(value: str | int) -> Decimal:
    return Decimal(value)


def usage(
    cost: str, *, provider: str = "openai", model: str = "gpt-4o", **extra: Any
) -> UsageEvent:
    """A usage event costing ``cost`` USDC."""
    return UsageEvent(
        provider=provider,
        model=model,
        input_tokens=extra.pop("input_tokens", 100),
        output_tokens=extra.pop("output_tokens", 50),
        actual_cost=Decimal(cost),
        **extra,
    )


async def table_snapshot(ledger: Ledger) -> dict[str, Any]:
    """Row counts of every ledger table and the account totals: what "unchanged" compares."""
    snapshot: dict[str, Any] = {}
    async with ledger.engine.connect() as conn:
        for table in LEDGER_TABLES:
            snapshot[table.name] = await conn.scalar(select(func.count()).select_from(table))
        rows = await conn.execute(
            select(
                accounts.c.user_id,
                accounts.c.project_id,
                accounts.c.balance_nano,
                accounts.c.reserved_nano,
                accounts.c.spent_nano,
            ).order_by(accounts.c.id)
        )
        snapshot["accounts"] = [tuple(row) for row in rows]
    return snapshot
