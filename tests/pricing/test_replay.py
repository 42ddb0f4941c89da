"""Workload replay (issue 17): a seeded month re-priced on its own models gives back what
was charged, to the nano-dollar; on other models it equals a direct per-entry computation.

The month mixes what changes a price: cached input, one-hour cache writes and web searches
(Claude), long-context tiers (Gemini 2.5 Pro), DeepSeek's off-peak hours (calls on both
sides of 16:30 UTC), audio input (Gemini 2.5 Flash), and a price override that takes effect
in the middle of the month (gpt-4o). Each entry is charged as the guard charges a call: the
exact price at its instant, rounded to nano-USDC, plus the 5% fee. On SQLite and
PostgreSQL: the ledger prices plain usage in SQL, the rest group by group.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard.costing import call_cost
from smartspace_budget.models import PricingData, SpendingPeriod, UsageEvent
from smartspace_budget.models.dimensions import Usage
from smartspace_budget.pricing import PricingEngine
from smartspace_budget.pricing.cost import exact_cost

USER, PROJECT = "u-replay", "p-replay"
FEE = Decimal(5)
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)
OVERRIDE_AT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def month_of_calls(
    rng: random.Random, count: int
) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    calls = []
    for _ in range(count):
        when = START + timedelta(seconds=rng.randrange(int((END - START).total_seconds())))
        kind = rng.randrange(6)
        if kind == 0:
            inp = rng.choice([1200, 1500, 2000, rng.randint(100, 9000)])
            usage = {"input_tokens": inp, "output_tokens": rng.randint(1, 900),
                     "cached_input_tokens": rng.choice([0, inp // 2])}  # fmt: skip
            calls.append(("openai", "gpt-4o", when, usage))
        elif kind == 1:
            written = rng.randint(0, 4000)
            usage = {"input_tokens": 5000 + written, "output_tokens": rng.randint(1, 3000),
                     "cache_write_tokens": written, "cache_write_1h_tokens": written // 3,
                     "web_searches": rng.choice([0, 0, 1, 2])}  # fmt: skip
            calls.append(("anthropic", "claude-sonnet-4-5", when, usage))
        elif kind == 2:
            # DeepSeek's off-peak window starts at 16:30 UTC: calls just before and after.
            edge = when.replace(hour=16, minute=30, second=0, microsecond=0)
            when = edge + timedelta(seconds=rng.choice([-61, -1, 0, 59, 3600]))
            usage = {"input_tokens": rng.randint(10, 60_000), "output_tokens": rng.randint(1, 4000)}
            calls.append(("deepseek", "deepseek-chat", when, usage))
        elif kind == 3:
            usage = {"input_tokens": rng.choice([150_000, 250_000, 400_000]),
                     "output_tokens": rng.randint(1, 8000), "reasoning_tokens": 0}  # fmt: skip
            calls.append(("google", "gemini-2.5-pro", when, usage))
        elif kind == 4:
            audio = rng.randint(100, 5000)
            usage = {"input_tokens": audio + 300, "input_audio_tokens": audio,
                     "output_tokens": rng.randint(1, 500)}  # fmt: skip
            calls.append(("google", "gemini-2.5-flash", when, usage))
        else:
            when = OVERRIDE_AT + timedelta(seconds=rng.choice([-30, 0, 30]))
            calls.append(("openai", "gpt-4o", when, {"input_tokens": 1000, "output_tokens": 100}))
    return calls


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger of its own (the price override below must not reach other tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    import asyncpg

    shared: str = request.getfixturevalue("postgres_url")
    name = f"ssb_replay_{uuid.uuid4().hex[:10]}"
    dsn = shared.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{shared.rsplit('/', 1)[0]}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def seeded(ledger_url: str) -> AsyncIterator[tuple[LocalBackend, list[Any]]]:
    backend = await LocalBackend.open(ledger_url, status_ttl=0)
    current = await backend.get_pricing("openai", "gpt-4o")
    data = current.model_dump()
    data.update(
        input_price_per_1k=Decimal("0.003"),
        effective_date=OVERRIDE_AT,
        version=None,
        source=None,
    )
    await backend.price_book.add_price(PricingData(**data))
    calls = month_of_calls(random.Random(2026), 400)
    for number, (provider, model, when, counts) in enumerate(calls):
        pricing = await backend.get_pricing(provider, model, at=when)
        cost = call_cost(pricing, Usage.of(**counts), FEE, at=when)
        await backend.record_usage(
            USER,
            PROJECT,
            UsageEvent(
                provider=provider, model=model, actual_cost=cost, occurred_at=when, **counts
            ),
            idempotency_key=f"seed-{number}",
        )
    yield backend, calls
    await backend.aclose()


async def direct(
    backend: LocalBackend, calls: list[Any], provider: str, model: str
) -> tuple[Decimal, int, int]:
    """Each entry priced on the target at its own instant: (total, served, unserved)."""
    total, served, unserved = Decimal(0), 0, 0
    for _, _, when, counts in calls:
        pricing = await backend.get_pricing(provider, model, at=when)
        usage = Usage.of(**counts)
        too_big = (
            pricing.max_input_tokens is not None and usage.input_tokens > pricing.max_input_tokens
        )
        audio = usage.input_audio_tokens and "input_audio_tokens" not in (
            pricing.dimension_prices or {}
        )
        if too_big or audio or exact_cost(pricing, usage, at=when).unpriced:
            unserved += 1
            continue
        total += call_cost(pricing, usage, FEE, at=when)
        served += 1
    return total, served, unserved


async def test_a_month_on_its_own_models_is_what_was_charged(
    seeded: tuple[LocalBackend, list[Any]],
) -> None:
    backend, calls = seeded
    engine = PricingEngine(backend)
    report = await engine.replay(
        USER, PROJECT, SpendingPeriod.MONTHLY, at=START + timedelta(days=3)
    )
    assert (report.period_start, report.period_end) == (START, END)
    assert report.calls == len(calls)
    assert report.groups <= len(calls)
    recorded = report.as_recorded
    assert recorded is not None
    assert recorded.calls_unserved == 0
    assert recorded.total_cost == report.charged  # to the nano-dollar
    assert recorded.difference == 0
    # The same, asked as each model on its own calls only.
    own = await engine.replay(USER, PROJECT, (START, END))
    assert own.charged == report.charged
    assert {t.name for t in own.targets} == set(report.by_model)


async def test_a_month_on_other_models_equals_a_direct_computation(
    seeded: tuple[LocalBackend, list[Any]],
) -> None:
    backend, calls = seeded
    engine = PricingEngine(backend)
    targets = [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "deepseek/deepseek-chat",
        "google/gemini-2.5-flash",
        "anthropic/claude-sonnet-4-5",
        "nope/nothing",
    ]
    report = await engine.replay(USER, PROJECT, (START, END), targets)
    by_name = {t.name: t for t in report.targets}
    for name in targets[:-1]:
        provider, model = name.split("/")
        total, served, unserved = await direct(backend, calls, provider, model)
        target = by_name[name]
        assert target.error is None
        assert (target.total_cost, target.calls_served, target.calls_unserved) == (
            total,
            served,
            unserved,
        ), name
        assert target.difference == target.total_cost - target.charged_for_served
        assert target.charged_for_served + target.charged_for_unserved == report.charged
    assert by_name["openai/gpt-4o-mini"].unserved.get("context window", 0) > 0
    assert by_name["openai/gpt-4o"].unserved.get("modality: input_audio_tokens", 0) > 0
    assert by_name["deepseek/deepseek-chat"].unserved.get("context window", 0) > 0
    assert by_name["nope/nothing"].error is not None
    assert by_name["nope/nothing"].calls_unserved == len(calls)
    complete = [t for t in report.targets if t.calls_unserved == 0]
    if complete:
        assert report.cheapest == min(complete, key=lambda t: t.total_cost).name
    else:
        assert report.cheapest is None


async def test_bad_replays_are_refused(seeded: tuple[LocalBackend, list[Any]]) -> None:
    backend, _ = seeded
    engine = PricingEngine(backend)
    with pytest.raises(InvalidInputError):
        await engine.replay(USER, PROJECT, (END, START))
    with pytest.raises(InvalidInputError):
        await engine.replay(USER, PROJECT, (START, END), ["gpt-4o"])
    with pytest.raises(InvalidInputError):
        await PricingEngine(backend.price_book).replay(USER, PROJECT, (START, END))
