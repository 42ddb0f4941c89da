"""The integrity check finds every kind of stored total that disagrees with the entries."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.tables import (
    accounts,
    daily_rollups,
    entries,
    reservations,
    rollups,
)


async def _books(ledger: Ledger) -> str:
    """A small history with every kind of entry; returns the open hold's id."""
    await ledger.deposit("jo", "p", D("50"), idempotency_key="d", now=T0)
    await ledger.record_usage("jo", "p", usage("2"), idempotency_key="u", now=T0)
    settled = await ledger.reserve("jo", "p", D("3"), idempotency_key="r1", now=T0)
    entry = await ledger.settle(settled.reservation_id, usage("1"), idempotency_key="s", now=T0)
    await ledger.refund(
        "jo", "p", D("0.5"), usage_entry_id=entry.entry_id, idempotency_key="f", now=T0
    )
    await ledger.adjust("jo", "p", D("-1"), reason="fee", idempotency_key="a", now=T0)
    hold = await ledger.reserve("jo", "p", D("4"), idempotency_key="r2", now=T0)
    return hold.reservation_id


TAMPERING = {
    "balance": (update(accounts).values(balance_nano=accounts.c.balance_nano + 1), "balance"),
    "reserved": (
        update(accounts).values(reserved_nano=accounts.c.reserved_nano + 1),
        "reserved amount",
    ),
    "spent": (update(accounts).values(spent_nano=accounts.c.spent_nano - 7), "total spending"),
    "entry amount": (
        update(entries).where(entries.c.kind == "deposit").values(amount_nano=1),
        "balance",
    ),
    "balance after": (
        update(entries).where(entries.c.kind == "adjustment").values(balance_after_nano=0),
        "balance after",
    ),
    "hold status": (
        update(reservations).where(reservations.c.status == "pending").values(status="released"),
        "held amount",
    ),
    "rollup spend": (update(rollups).values(spent_nano=rollups.c.spent_nano + 5), "rollup"),
    "rollup count": (update(rollups).values(request_count=0), "rollup"),
    "daily rollup": (
        update(daily_rollups).values(input_tokens=daily_rollups.c.input_tokens + 1),
        "daily rollup",
    ),
}


async def test_clean_books_pass(ledger: Ledger) -> None:
    await _books(ledger)
    report = await ledger.check_integrity()
    assert report.ok, str(report)
    assert (report.accounts_checked, report.entries_checked, report.reservations_checked) == (
        1,
        7,  # deposit, usage, hold, settlement, refund, adjustment, hold
        2,
    )
    assert report.rollups_checked == 2  # one hourly, one daily
    assert "consistent" in str(report)


@pytest.mark.parametrize("tampered", sorted(TAMPERING))
async def test_tampering_is_reported(ledger: Ledger, tampered: str) -> None:
    await _books(ledger)
    statement, check = TAMPERING[tampered]
    async with ledger.engine.begin() as conn:
        await conn.execute(statement)
    report = await ledger.check_integrity()
    assert not report.ok
    assert any(check in difference.check for difference in report.differences), str(report)
