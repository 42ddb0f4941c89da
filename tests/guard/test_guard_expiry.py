"""A call that outlives its hold is still charged: the provider was used all the same.

The real ledger expires a hold after ``reservation_ttl``; settling it then is refused, so the
guard records the usage without the hold (once, idempotently).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.guard import Guard
from smartspace_budget.pricing import PricingEngine

USER, PROJECT = "u_exp", "p_exp"
MESSAGES = [{"role": "user", "content": "Write a long essay"}]


def gpt4o_cost(fresh: int, output: int) -> Decimal:
    base = ((fresh * Decimal("0.0025") + output * Decimal("0.01")) / 1000).quantize(Decimal("1e-9"))
    return base + (base * 5 / 100).quantize(Decimal("1e-9"))


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = await LocalBackend.open(
        f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}", status_ttl=0
    )
    await backend.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    yield backend
    await backend.aclose()


async def test_usage_after_the_hold_expired_is_still_charged(local: LocalBackend) -> None:
    guard = Guard(local, PricingEngine(local), user_id=USER, project_id=PROJECT, reservation_ttl=1)
    async with guard.request("openai", "gpt-4o", messages=MESSAGES, max_tokens=4000) as call:
        await asyncio.sleep(1.2)  # a long stream: the hold expires meanwhile
        call.record_usage(input_tokens=12, output_tokens=3000)
    cost = gpt4o_cost(12, 3000)
    assert call.actual_cost == cost
    assert call.entry is not None
    assert call.entry.amount == -cost
    balance = await local.get_balance(USER, PROJECT)
    assert balance.total_balance == Decimal(10) - cost
    assert balance.reserved_amount == 0
    usage = await local.ledger.list_entries(USER, PROJECT, limit=10)
    assert [e.amount for e in usage if e.kind.value == "usage"] == [-cost]
    assert (await local.ledger.check_integrity()).ok


async def test_stream_that_outlives_its_hold_is_charged_at_its_usage(
    server: ProviderServer, local: LocalBackend
) -> None:
    guard = Guard(local, PricingEngine(local), user_id=USER, project_id=PROJECT, reservation_ttl=1)
    server.behaviour.input_tokens, server.behaviour.output_tokens = 9, 700
    server.behaviour.chunk_delay = 0.3  # five chunks: 1.5 s, past the 1 s hold
    async with openai.AsyncOpenAI(
        api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0
    ) as raw:
        stream = await guard.wrap(raw).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=800, stream=True
        )
        async for _ in stream:
            pass
    cost = gpt4o_cost(9, 700)
    balance = await local.get_balance(USER, PROJECT)
    assert balance.total_balance == Decimal(10) - cost
    assert balance.reserved_amount == 0


async def test_releasing_a_hold_that_already_expired_is_quiet(local: LocalBackend) -> None:
    guard = Guard(local, PricingEngine(local), user_id=USER, project_id=PROJECT, reservation_ttl=1)
    async with guard.request("openai", "gpt-4o", messages=MESSAGES, max_tokens=100) as call:
        await asyncio.sleep(1.2)
        await guard.release_call(call)  # e.g. the provider answered 503 late
    assert call.released
    assert call.entry is None
    balance = await local.get_balance(USER, PROJECT)
    assert balance.total_balance == Decimal(10)
    assert balance.reserved_amount == 0
