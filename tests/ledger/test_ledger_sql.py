"""The hot-path SQL's own shortcuts give the same answers as the general statements."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ledger_helpers import T0, D, usage

from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.sql_sqlite import SqliteSql


def test_sqlite_instants_are_utc_text_whatever_their_zone() -> None:
    sql = SqliteSql()
    new_york = ZoneInfo("America/New_York")
    # 01:30 on 1 November 2026 happens twice in New York: fold picks the later one.
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)
    second = first.replace(fold=1)
    assert first == second  # same zone: compared (and hashed) by wall time
    assert sql.ts(first) == "2026-11-01 05:30:00.000000"
    assert sql.ts(second) == "2026-11-01 06:30:00.000000"
    assert sql.ts(first.astimezone(UTC)) == "2026-11-01 05:30:00.000000"
    assert sql.ts(second.astimezone(UTC)) == "2026-11-01 06:30:00.000000"
    plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert (
        sql.ts(plus_two)
        == sql.ts(datetime(2026, 1, 1, tzinfo=UTC))
        == ("2026-01-01 00:00:00.000000")
    )
    assert sql.ts(None) is None


async def test_one_write_and_a_batch_of_writes_read_the_same_account(ledger: Ledger) -> None:
    """A lone write loads its account with plain parameters, a batch with lists; both see
    the balance and the stored results."""
    await ledger.deposit("ivy", "p", D("10"), idempotency_key="fund", now=T0)
    await ledger.deposit("ivy", "q", D("10"), idempotency_key="fund", now=T0)
    lone = await ledger.record_usage("ivy", "p", usage("1"), idempotency_key="one", now=T0)
    assert lone.balance_after == D("9")
    assert await ledger.record_usage("ivy", "p", usage("1"), idempotency_key="one") == lone
    replayed, second, other = await asyncio.gather(
        ledger.record_usage("ivy", "p", usage("1"), idempotency_key="one", now=T0),
        ledger.record_usage("ivy", "p", usage("2"), idempotency_key="two", now=T0),
        ledger.record_usage("ivy", "q", usage("2"), idempotency_key="x", now=T0),
    )
    assert replayed == lone
    assert (second.balance_after, other.balance_after) == (D("7"), D("8"))
    report = await ledger.check_integrity()
    assert report.ok, str(report)
