"""Malformed requests raise the package's typed errors and leave every table as it was."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from tests.ledger.ledger_helpers import T0, D, table_snapshot, usage

from smartspace_budget.errors import InvalidAmountError, InvalidInputError, NotFoundError
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import BudgetPolicy, UsageEvent

TEN_KB = "x" * 10_240
BAD_AMOUNTS: list[Any] = [
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    1.5,
    "one dollar",
    True,
    Decimal("1e10"),  # beyond the BIGINT range of nano-USDC (about 9.2e9 USDC)
]

Call = Callable[[Ledger], Awaitable[object]]


def _usage_with(**changes: Any) -> UsageEvent:
    """A usage event whose fields skipped validation (as a careless caller could build one)."""
    return UsageEvent.model_construct(**{**usage("0.01").model_dump(), **changes})


def _with_amount(bad: Any) -> dict[str, Call]:
    """Every write that takes an amount, given ``bad``."""
    return {
        "deposit": lambda lg: lg.deposit("u", "p", bad, idempotency_key="k", now=T0),
        "reserve": lambda lg: lg.reserve("u", "p", bad, idempotency_key="k", now=T0),
        "refund": lambda lg: lg.refund("u", "p", bad, idempotency_key="k", now=T0),
        "adjust": lambda lg: lg.adjust("u", "p", bad, reason="fix", idempotency_key="k", now=T0),
        "usage-cost": lambda lg: lg.record_usage(
            "u", "p", _usage_with(actual_cost=bad), idempotency_key="k", now=T0
        ),
    }


CASES: dict[str, tuple[type[Exception], Call]] = {}
for index, bad in enumerate(BAD_AMOUNTS):
    for name, call in _with_amount(bad).items():
        CASES[f"{name}-{index}"] = (InvalidAmountError, call)
CASES.update(
    {
        "deposit-negative": (
            InvalidAmountError,
            lambda lg: lg.deposit("u", "p", D("-1"), idempotency_key="k", now=T0),
        ),
        "deposit-zero": (
            InvalidAmountError,
            lambda lg: lg.deposit("u", "p", D("0"), idempotency_key="k", now=T0),
        ),
        "deposit-below-a-nano": (
            InvalidAmountError,
            lambda lg: lg.deposit("u", "p", D("0.0000000004"), idempotency_key="k", now=T0),
        ),
        "refund-zero": (
            InvalidAmountError,
            lambda lg: lg.refund("u", "p", D("0"), idempotency_key="k", now=T0),
        ),
        "reserve-negative": (
            InvalidAmountError,
            lambda lg: lg.reserve("u", "p", D("-0.01"), idempotency_key="k", now=T0),
        ),
        "adjust-zero": (
            InvalidAmountError,
            lambda lg: lg.adjust("u", "p", D("0"), reason="fix", idempotency_key="k", now=T0),
        ),
        "adjust-no-reason": (
            InvalidInputError,
            lambda lg: lg.adjust("u", "p", D("1"), reason="  ", idempotency_key="k", now=T0),
        ),
        "usage-negative-cost": (
            InvalidAmountError,
            lambda lg: lg.record_usage(
                "u", "p", _usage_with(actual_cost=D("-1")), idempotency_key="k", now=T0
            ),
        ),
        "usage-10^15-tokens": (
            InvalidInputError,
            lambda lg: lg.record_usage(
                "u", "p", _usage_with(input_tokens=10**15), idempotency_key="k", now=T0
            ),
        ),
        "usage-negative-tokens": (
            InvalidInputError,
            lambda lg: lg.record_usage(
                "u", "p", _usage_with(output_tokens=-1), idempotency_key="k", now=T0
            ),
        ),
        "usage-10kb-model": (
            InvalidInputError,
            lambda lg: lg.record_usage("u", "p", _usage_with(model=TEN_KB), idempotency_key="k"),
        ),
        "usage-not-a-usage-event": (
            InvalidInputError,
            lambda lg: lg.record_usage("u", "p", {"actual_cost": "1"}, idempotency_key="k"),  # type: ignore[arg-type]
        ),
        "usage-naive-time": (
            InvalidInputError,
            lambda lg: lg.record_usage(
                "u", "p", _usage_with(occurred_at=datetime(2026, 1, 1)), idempotency_key="k"
            ),
        ),
        "empty-user": (
            InvalidInputError,
            lambda lg: lg.deposit("", "p", D("1"), idempotency_key="k", now=T0),
        ),
        "10kb-user": (
            InvalidInputError,
            lambda lg: lg.deposit(TEN_KB, "p", D("1"), idempotency_key="k", now=T0),
        ),
        "10kb-project": (
            InvalidInputError,
            lambda lg: lg.deposit("u", TEN_KB, D("1"), idempotency_key="k", now=T0),
        ),
        "empty-key": (
            InvalidInputError,
            lambda lg: lg.deposit("u", "p", D("1"), idempotency_key="", now=T0),
        ),
        "10kb-key": (
            InvalidInputError,
            lambda lg: lg.deposit("u", "p", D("1"), idempotency_key=TEN_KB, now=T0),
        ),
        "nul-in-id": (
            InvalidInputError,
            lambda lg: lg.deposit("u\x00", "p", D("1"), idempotency_key="k", now=T0),
        ),
        "10kb-reservation": (
            InvalidInputError,
            lambda lg: lg.release(TEN_KB, idempotency_key="k", now=T0),
        ),
        "ttl-zero": (
            InvalidInputError,
            lambda lg: lg.reserve("u", "p", D("1"), ttl_seconds=0, idempotency_key="k", now=T0),
        ),
        "ttl-a-year": (
            InvalidInputError,
            lambda lg: lg.reserve(
                "u", "p", D("1"), ttl_seconds=365 * 86_400, idempotency_key="k", now=T0
            ),
        ),
        "naive-now": (
            InvalidInputError,
            lambda lg: lg.deposit("u", "p", D("1"), idempotency_key="k", now=datetime(2026, 1, 1)),
        ),
        "unknown-timezone": (
            InvalidInputError,
            lambda lg: lg.ensure_account("u", "p", timezone="Mars/Olympus_Mons"),
        ),
        "bad-currency": (
            InvalidInputError,
            lambda lg: lg.ensure_account("u", "p", currency="US$"),
        ),
        "negative-limit": (
            InvalidAmountError,
            lambda lg: lg.set_policy("u", "p", BudgetPolicy.model_construct(daily_limit=D("-1"))),
        ),
        "limit-out-of-range": (
            InvalidAmountError,
            lambda lg: lg.set_policy(
                "u", "p", BudgetPolicy.model_construct(monthly_limit=D("1e12"))
            ),
        ),
        "refund-of-unknown-entry": (
            NotFoundError,
            lambda lg: lg.refund(
                "u", "p", D("1"), usage_entry_id="nope", idempotency_key="k", now=T0
            ),
        ),
        "settle-unknown-hold": (
            NotFoundError,
            lambda lg: lg.settle("nope", usage("1"), idempotency_key="k", now=T0),
        ),
        "reason-10kb": (
            InvalidInputError,
            lambda lg: lg.refund("u", "p", D("1"), reason=TEN_KB, idempotency_key="k", now=T0),
        ),
    }
)


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_input_is_refused_and_changes_nothing(ledger: Ledger, case: str) -> None:
    await ledger.deposit("u", "p", D("100"), idempotency_key="fund", now=T0)
    await ledger.record_usage("u", "p", usage("1"), idempotency_key="call", now=T0)
    before = await table_snapshot(ledger)
    error, call = CASES[case]
    with pytest.raises(error):
        await call(ledger)
    assert await table_snapshot(ledger) == before


async def test_usage_with_10_to_the_15_tokens_is_refused_when_parsed(ledger: Ledger) -> None:
    document = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10**15, "actual_cost": "1"}
    with pytest.raises(InvalidInputError):
        UsageEvent.from_data(document)


async def test_balance_beyond_the_column_range_is_refused(ledger: Ledger) -> None:
    await ledger.deposit("u", "p", D("9000000000"), idempotency_key="big", now=T0)
    before = await table_snapshot(ledger)
    with pytest.raises(InvalidAmountError):
        await ledger.deposit("u", "p", D("9000000000"), idempotency_key="bigger", now=T0)
    assert await table_snapshot(ledger) == before


async def test_reads_of_unknown_accounts_are_not_found(ledger: Ledger) -> None:
    for read in (
        ledger.get_balance("ghost", "p"),
        ledger.get_budget_status("ghost", "p"),
        ledger.get_policy("ghost", "p"),
        ledger.get_analytics("ghost", "p"),
        ledger.list_entries("ghost", "p"),
    ):
        with pytest.raises(NotFoundError):
            await read
    with pytest.raises(NotFoundError):
        await ledger.get_reservation("ghost-hold")
    assert await ledger.list_accounts() == []
