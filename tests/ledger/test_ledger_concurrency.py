"""Hammer the ledger from many tasks (and, on PostgreSQL, from two ledgers at once)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.errors import (
    BudgetExceededError,
    ConflictError,
    ReservationResolvedError,
)
from smartspace_budget.ledger import Ledger
from smartspace_budget.money import to_nano


@pytest.fixture
async def second_ledger(database_url: str) -> AsyncIterator[Ledger]:
    """Another ledger on the same database: a second process or service replica."""
    opened = await Ledger.connect(database_url, migrate=False)
    try:
        yield opened
    finally:
        await opened.close()


async def test_200_reservations_against_a_balance_for_50(
    ledger: Ledger, second_ledger: Ledger
) -> None:
    await ledger.deposit("dana", "p", D("50"), idempotency_key="fund", now=T0)
    lowest_available: list[Decimal] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            balance = await ledger.get_balance("dana", "p")
            lowest_available.append(balance.available_balance)
            await asyncio.sleep(0)

    async def reserve(index: int) -> bool:
        writer = ledger if index % 2 else second_ledger
        try:
            await writer.reserve("dana", "p", D("1"), idempotency_key=f"r{index}", now=T0)
        except BudgetExceededError:
            return False
        return True

    watcher = asyncio.create_task(watch())
    outcomes = await asyncio.gather(*(reserve(index) for index in range(200)))
    done.set()
    await watcher

    assert outcomes.count(True) == 50
    assert min(lowest_available) >= 0
    balance = await ledger.get_balance("dana", "p")
    assert (balance.total_balance, balance.reserved_amount, balance.available_balance) == (
        D("50"),
        D("50"),
        D("0"),
    )
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_32_writers_doing_2000_random_operations(
    ledger: Ledger, second_ledger: Ledger
) -> None:
    """Deposits, holds, settlements, releases and refunds on four shared accounts."""
    accounts = [(f"user{n}", "shared") for n in range(4)]
    expected = dict.fromkeys(accounts, 0)  # nano-USDC, from what each call returned

    async def writer(number: int) -> None:
        rng = random.Random(number)
        ledger_for_writer = ledger if number % 2 else second_ledger
        holds: list[tuple[tuple[str, str], str]] = []
        charges: list[tuple[tuple[str, str], str, Decimal]] = []
        for step in range(2000 // 32 + (1 if number < 2000 % 32 else 0)):
            account = rng.choice(accounts)
            key = f"w{number}-{step}"
            choice = rng.random()
            try:
                if choice < 0.25:
                    amount = Decimal(rng.randint(1, 5_000)) / 100
                    await ledger_for_writer.deposit(*account, amount, idempotency_key=key, now=T0)
                    expected[account] += to_nano(amount)
                elif choice < 0.55:
                    amount = Decimal(rng.randint(1, 2_000)) / 1000
                    hold = await ledger_for_writer.reserve(
                        *account, amount, idempotency_key=key, now=T0
                    )
                    holds.append((account, hold.reservation_id))
                elif choice < 0.8 and holds:
                    held_account, reservation_id = holds.pop(rng.randrange(len(holds)))
                    cost = Decimal(rng.randint(0, 3_000)) / 1000
                    entry = await ledger_for_writer.settle(
                        reservation_id, usage(str(cost)), idempotency_key=key, now=T0
                    )
                    expected[held_account] -= to_nano(cost)
                    charges.append((held_account, entry.entry_id, cost))
                elif choice < 0.9 and holds:
                    _, reservation_id = holds.pop()
                    await ledger_for_writer.release(reservation_id, idempotency_key=key, now=T0)
                elif charges:
                    charged_account, entry_id, cost = rng.choice(charges)
                    amount = cost / 4
                    await ledger_for_writer.refund(
                        *charged_account,
                        amount,
                        usage_entry_id=entry_id,
                        idempotency_key=key,
                        now=T0,
                    )
                    expected[charged_account] += to_nano(amount)
            except (BudgetExceededError, ConflictError, ReservationResolvedError):
                pass  # refused: nothing written, nothing expected

    await asyncio.gather(*(writer(number) for number in range(32)))

    report = await ledger.check_integrity()
    assert report.ok, str(report)
    assert report.entries_checked > 1000
    for account, nano in expected.items():
        balance = await ledger.get_balance(*account)
        assert to_nano(balance.total_balance) == nano
