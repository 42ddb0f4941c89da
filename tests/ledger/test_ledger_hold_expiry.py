"""Holds never outlive their TTL: every write of an account releases its overdue holds; the
embedded ledger (``expire_on_access``) also on balance and status reads and when opened."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from smartspace_budget.ledger import Ledger
from smartspace_budget.models import UsageEvent
from smartspace_budget.models.budget import ReservationStatus

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=61)
USAGE = UsageEvent(
    provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5, actual_cost=D("0.5")
)


async def _deposit(ledger: Ledger) -> Any:
    return await ledger.deposit("u", "p", D("1"), idempotency_key="late", now=LATER)


async def _usage(ledger: Ledger) -> Any:
    return await ledger.record_usage("u", "p", USAGE, idempotency_key="late", now=LATER)


async def _adjust(ledger: Ledger) -> Any:
    return await ledger.adjust("u", "p", D("-1"), reason="fix", idempotency_key="late", now=LATER)


async def _refund(ledger: Ledger) -> Any:
    await ledger.record_usage("u", "p", USAGE, idempotency_key="spent", now=T0)
    return await ledger.refund("u", "p", D("0.1"), idempotency_key="late", now=LATER)


async def _other_hold_settled(ledger: Ledger) -> Any:
    other = await ledger.reserve("u", "p", D("1"), ttl_seconds=600, idempotency_key="o", now=T0)
    return await ledger.settle(other.reservation_id, USAGE, idempotency_key="late", now=LATER)


WRITES: dict[str, Callable[[Ledger], Awaitable[Any]]] = {
    "deposit": _deposit,
    "record_usage": _usage,
    "adjust": _adjust,
    "refund": _refund,
    "settle_another": _other_hold_settled,
}


@pytest.mark.parametrize("write", list(WRITES))
async def test_a_write_of_the_account_expires_its_overdue_holds(ledger: Ledger, write: str) -> None:
    await ledger.deposit("u", "p", D("10"), idempotency_key="d", now=T0)
    hold = await ledger.reserve("u", "p", D("2"), ttl_seconds=60, idempotency_key="h", now=T0)
    await WRITES[write](ledger)
    balance = await ledger.get_balance("u", "p", at=LATER)
    assert balance.reserved_amount == 0
    stored = await ledger.get_reservation(hold.reservation_id, at=T0)
    assert stored.status is ReservationStatus.EXPIRED  # as stored, not only as seen later
    entries = await ledger.list_entries("u", "p")
    assert [e.reason for e in entries if e.kind.value == "release"] == ["expired"]
    assert (await ledger.check_integrity()).ok


async def test_a_write_before_the_expiry_keeps_the_hold(ledger: Ledger) -> None:
    await ledger.deposit("u", "p", D("10"), idempotency_key="d", now=T0)
    await ledger.reserve("u", "p", D("2"), ttl_seconds=60, idempotency_key="h", now=T0)
    await ledger.deposit("u", "p", D("1"), idempotency_key="d2", now=T0 + timedelta(seconds=59))
    balance = await ledger.get_balance("u", "p", at=T0 + timedelta(seconds=59))
    assert balance.reserved_amount == D("2")


async def test_another_accounts_write_leaves_the_hold_to_its_own_account(ledger: Ledger) -> None:
    await ledger.deposit("u", "p", D("10"), idempotency_key="d", now=T0)
    await ledger.reserve("u", "p", D("2"), ttl_seconds=60, idempotency_key="h", now=T0)
    await ledger.deposit("v", "p", D("1"), idempotency_key="d", now=LATER)
    assert (await ledger.get_balance("u", "p", at=LATER)).reserved_amount == D("2")


async def test_the_embedded_ledger_expires_on_reads_and_at_open(database_url: str) -> None:
    past = datetime.now(UTC) - timedelta(seconds=120)
    plain = await Ledger.connect(database_url, migrate=False)
    try:
        await plain.deposit("u", "p", D("10"), idempotency_key="d", now=past)
        await plain.reserve("u", "p", D("2"), ttl_seconds=60, idempotency_key="h1", now=past)
        # Without expire_on_access a read never writes: the overdue hold is still shown.
        assert (await plain.get_balance("u", "p")).reserved_amount == D("2")
        embedded = await Ledger.connect(database_url, migrate=False, expire_on_access=True)
        try:
            # Opened: the overdue hold was released at once.
            assert (await plain.get_balance("u", "p")).reserved_amount == 0
            held = await embedded.reserve("u", "p", D("3"), ttl_seconds=1, idempotency_key="h2")
            status = await embedded.get_budget_status("u", "p")
            assert status.reserved_amount == D("3")
            # A read after the expiry (the remembered answer lasts only until then) frees it.
            wait = held.expires_at + timedelta(milliseconds=50) - datetime.now(UTC)
            await asyncio.sleep(max(wait.total_seconds(), 0))
            assert (await embedded.get_budget_status("u", "p")).reserved_amount == 0
            assert (await embedded.get_balance("u", "p")).available_balance == D("10")
            assert (await embedded.check_integrity()).ok
        finally:
            await embedded.close()
    finally:
        await plain.close()
