"""The same key and request returns the first result; another request under it is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tests.ledger.ledger_helpers import T0, D, table_snapshot, usage

from smartspace_budget.errors import BudgetExceededError, IdempotencyConflictError
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.ops import RecordUsage, UsageRecord
from smartspace_budget.models import EntryKind, ReservationStatus


async def test_same_key_five_times_in_a_row(ledger: Ledger) -> None:
    results = [
        await ledger.deposit(
            "erin", "p", D("10.50"), idempotency_key="pay-1", now=T0 + timedelta(seconds=i)
        )
        for i in range(5)
    ]
    assert all(result == results[0] for result in results)
    assert results[0].occurred_at == T0  # the first call's result, not a new one
    assert len(await ledger.list_entries("erin", "p")) == 1
    assert (await ledger.get_balance("erin", "p")).total_balance == D("10.5")


async def test_same_key_five_times_at_once(ledger: Ledger) -> None:
    await ledger.deposit("erin", "p", D("100"), idempotency_key="fund", now=T0)
    results = await asyncio.gather(
        *(
            ledger.record_usage("erin", "p", usage("0.25"), idempotency_key="call-1", now=T0)
            for _ in range(5)
        )
    )
    assert len({result.entry_id for result in results}) == 1
    assert all(result == results[0] for result in results)
    usage_entries = [e for e in await ledger.list_entries("erin", "p") if e.kind is EntryKind.USAGE]
    assert len(usage_entries) == 1
    status = await ledger.get_budget_status("erin", "p", at=T0)
    assert (status.total_balance, status.spent_today) == (D("99.75"), D("0.25"))
    assert (await ledger.get_analytics("erin", "p", at=T0)).request_count == 1


async def test_same_key_with_another_request_is_a_conflict(ledger: Ledger) -> None:
    await ledger.deposit("erin", "p", D("10"), idempotency_key="k", now=T0)
    before = await table_snapshot(ledger)
    with pytest.raises(IdempotencyConflictError):
        await ledger.deposit("erin", "p", D("11"), idempotency_key="k", now=T0)
    with pytest.raises(IdempotencyConflictError):
        await ledger.deposit("erin", "p", D("10"), idempotency_key="k", reference="x", now=T0)
    with pytest.raises(IdempotencyConflictError):
        await ledger.reserve("erin", "p", D("10"), idempotency_key="k", now=T0)
    assert await table_snapshot(ledger) == before


async def test_amounts_that_round_to_the_same_units_are_the_same_request(ledger: Ledger) -> None:
    first = await ledger.deposit("erin", "p", D("1.5"), idempotency_key="same", now=T0)
    again = await ledger.deposit("erin", "p", D("1.500000000"), idempotency_key="same", now=T0)
    assert again == first


async def test_keys_belong_to_one_account(ledger: Ledger) -> None:
    one = await ledger.deposit("erin", "a", D("1"), idempotency_key="shared", now=T0)
    two = await ledger.deposit("erin", "b", D("2"), idempotency_key="shared", now=T0)
    assert one.entry_id != two.entry_id


async def test_hold_replays_return_their_first_result(ledger: Ledger) -> None:
    """A retried reserve, settle or release after the hold moved on still answers as first."""
    await ledger.deposit("erin", "p", D("10"), idempotency_key="fund", now=T0)
    hold = await ledger.reserve("erin", "p", D("2"), idempotency_key="hold", now=T0)
    settled = await ledger.settle(hold.reservation_id, usage("1"), idempotency_key="settle", now=T0)

    assert await ledger.reserve("erin", "p", D("2"), idempotency_key="hold", now=T0) == hold
    again = await ledger.settle(hold.reservation_id, usage("1"), idempotency_key="settle", now=T0)
    assert again == settled
    with pytest.raises(IdempotencyConflictError):
        await ledger.settle(hold.reservation_id, usage("1.5"), idempotency_key="settle", now=T0)

    other = await ledger.reserve("erin", "p", D("1"), idempotency_key="hold-2", now=T0)
    released = await ledger.release(other.reservation_id, idempotency_key="free", now=T0)
    assert released.status is ReservationStatus.RELEASED
    assert await ledger.release(other.reservation_id, idempotency_key="free", now=T0) == released
    assert (await ledger.get_balance("erin", "p")).total_balance == D("9")
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_a_refused_request_can_be_retried_under_its_key(ledger: Ledger) -> None:
    """A refusal writes nothing, so the key is still free once the request can succeed."""
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("erin", "p", D("5"), idempotency_key="later", now=T0)
    await ledger.deposit("erin", "p", D("5"), idempotency_key="fund", now=T0)
    hold = await ledger.reserve("erin", "p", D("5"), idempotency_key="later", now=T0)
    assert hold.amount == D("5")


def test_fingerprints_and_tags_are_stored_as_they_always_were() -> None:
    """Fingerprints and tag documents are kept in the database: a retry after an upgrade must
    compute the very same text, or its replay becomes an idempotency conflict."""
    event = usage("0.0042", tags={"team": "\u00e9", "a": "1"}, occurred_at=T0)
    op = RecordUsage(T0, "key-1", account=("ivy", "p"), usage=UsageRecord.from_event(event))
    assert op.usage is not None
    assert op.usage.tags_json == '{"a": "1", "team": "\u00e9"}'
    assert op.fingerprint == "671437408ea76a2d5e7a023c9f6ae916d389c6bf0e502dc5dbb0075747c91c24"
