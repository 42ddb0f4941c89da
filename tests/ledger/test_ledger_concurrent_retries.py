"""Copies of one write racing with one idempotency key are all answered the first result.

Two ``Ledger`` objects over one database stand for two processes (each with its own writer
connections), so the copies really run in concurrent transactions. In every round, 20 copies
of one write share a key: those whose body is the body that won get the winner's answer,
every one; those with another body get :class:`IdempotencyConflictError`, every one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from tests.ledger.ledger_helpers import D, usage

from smartspace_budget.errors import IdempotencyConflictError
from smartspace_budget.ledger import Ledger

COPIES = 20
ROUNDS = 30
OTHER_BODY = 3
"""How many of the copies ask for a different write under the same key."""

Write = Callable[[Ledger, str, bool], Awaitable[Any]]


async def _race(ledgers: list[Ledger], key: str, write: Write) -> None:
    """Run the copies; check every same-body answer is the winner's, every other a conflict."""
    bodies = [index < OTHER_BODY for index in range(COPIES)]
    outcomes = await asyncio.gather(
        *(write(ledgers[index % len(ledgers)], key, other) for index, other in enumerate(bodies)),
        return_exceptions=True,
    )
    answers = {False: [], True: []}  # type: dict[bool, list[Any]]
    for other, outcome in zip(bodies, outcomes, strict=True):
        answers[other].append(outcome)
    winners = [
        other
        for other, group in answers.items()
        if any(not isinstance(outcome, BaseException) for outcome in group)
    ]
    assert len(winners) == 1, outcomes
    won, lost = answers[winners[0]], answers[not winners[0]]
    assert all(answer == won[0] for answer in won), won
    assert all(isinstance(answer, IdempotencyConflictError) for answer in lost), lost


async def _rounds(ledgers: list[Ledger], write: Write, prefix: str) -> None:
    for round_ in range(ROUNDS):
        await _race(ledgers, f"{prefix}-{round_}", write)


@pytest.fixture
async def ledgers(database_url: str) -> Any:
    opened = [await Ledger.connect(database_url, migrate=False) for _ in range(2)]
    try:
        await opened[0].deposit("ann", "p", D("1000000"), idempotency_key="fund")
        yield opened
    finally:
        for ledger in opened:
            await ledger.close()


async def _holds(ledger: Ledger, prefix: str) -> list[str]:
    return [
        (
            await ledger.reserve("ann", "p", D("1"), idempotency_key=f"{prefix}-hold-{index}")
        ).reservation_id
        for index in range(ROUNDS)
    ]


async def test_settles(ledgers: list[Ledger]) -> None:
    holds = iter(await _holds(ledgers[0], "s"))
    current: dict[str, str] = {}

    async def settle(ledger: Ledger, key: str, other: bool) -> Any:
        if key not in current:
            current[key] = next(holds)
        hold = current[key]
        return await ledger.settle(hold, usage("0.75" if other else "0.5"), idempotency_key=key)

    await _rounds(ledgers, settle, "settle")


async def test_releases(ledgers: list[Ledger]) -> None:
    holds = iter(await _holds(ledgers[0], "r"))
    current: dict[str, str] = {}

    async def release(ledger: Ledger, key: str, other: bool) -> Any:
        if key not in current:
            current[key] = next(holds)
        hold = current[key]
        if other:  # the same key on another write: a settle of the same hold
            return await ledger.settle(hold, usage("0.5"), idempotency_key=key)
        return await ledger.release(hold, idempotency_key=key)

    await _rounds(ledgers, release, "release")


async def test_deposits(ledgers: list[Ledger]) -> None:
    async def deposit(ledger: Ledger, key: str, other: bool) -> Any:
        return await ledger.deposit("ann", "p", D("2" if other else "1"), idempotency_key=key)

    await _rounds(ledgers, deposit, "deposit")


async def test_usages(ledgers: list[Ledger]) -> None:
    async def record(ledger: Ledger, key: str, other: bool) -> Any:
        return await ledger.record_usage(
            "ann", "p", usage("0.02" if other else "0.01"), idempotency_key=key
        )

    await _rounds(ledgers, record, "usage")


async def test_refunds(ledgers: list[Ledger]) -> None:
    entries = [
        (
            await ledgers[0].record_usage(
                "ann", "p", usage("1"), idempotency_key=f"refund-target-{index}"
            )
        ).entry_id
        for index in range(ROUNDS)
    ]
    targets = iter(entries)
    current: dict[str, str] = {}

    async def refund(ledger: Ledger, key: str, other: bool) -> Any:
        if key not in current:
            current[key] = next(targets)
        target = current[key]
        # The whole cost: a second refund of it, decided without the key, would be refused.
        return await ledger.refund(
            "ann",
            "p",
            Decimal("1"),
            usage_entry_id=target,
            reason="other" if other else "",
            idempotency_key=key,
        )

    await _rounds(ledgers, refund, "refund")


async def test_reserves(ledgers: list[Ledger]) -> None:
    async def reserve(ledger: Ledger, key: str, other: bool) -> Any:
        return await ledger.reserve(
            "ann", "p", D("2" if other else "1"), ttl_seconds=60, idempotency_key=key
        )

    await _rounds(ledgers, reserve, "reserve")
