"""What is held when the caller gives no ``max_tokens``, what the estimate counts (tool
definitions), and calls the SDK refuses before sending anything.

The real pricing engine over the genai-prices catalog (gpt-4o: 128,000-token context window,
no output limit listed; $0.0025 input and $0.01 output per 1K tokens); holds are read from an
in-memory ledger so their exact amounts can be checked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from tests.guard.guard_fakes import FakeLedger
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.errors import (
    BudgetExceededError,
    ContextLimitExceededError,
    InvalidInputError,
)
from smartspace_budget.guard import Guard
from smartspace_budget.guard.core import DEFAULT_MAX_OUTPUT_TOKENS
from smartspace_budget.models import PricingData
from smartspace_budget.models.budget import ReservationStatus
from smartspace_budget.pricing import PricingEngine, estimate_tokens

MESSAGES = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city, with temperature in Celsius and wind speed",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
}


def total(base: Decimal) -> Decimal:
    """Base cost rounded to nano-USDC plus the 5% fee on the rounded base."""
    base = base.quantize(Decimal("1e-9"))
    return base + (base * 5 / 100).quantize(Decimal("1e-9"))


def gpt4o(input_tokens: int, output_tokens: int) -> Decimal:
    return total((input_tokens * Decimal("0.0025") + output_tokens * Decimal("0.01")) / 1000)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[PricingEngine]:
    backend = await LocalBackend.open(
        f"sqlite+aiosqlite:///{tmp_path / 'prices.sqlite3'}", status_ttl=0
    )
    now = datetime.now(UTC)
    await backend.price_book.add_price(
        PricingData(
            provider="acme",
            model_name="no-limits-1",
            input_price_per_1k=Decimal("0.001"),
            output_price_per_1k=Decimal("0.002"),
            effective_date=now,
            last_updated=now,
        )
    )
    yield PricingEngine(backend)
    await backend.aclose()


@pytest.fixture
async def client(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
    yield c
    await c.close()


def input_tokens_of(messages: list[dict[str, str]]) -> int:
    return estimate_tokens(messages, "gpt-4o", "openai").token_count


async def test_without_max_tokens_the_context_window_left_after_the_input_is_held(
    server: ProviderServer, engine: PricingEngine, client: openai.AsyncOpenAI
) -> None:
    ledger = FakeLedger(Decimal(10))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    server.behaviour.input_tokens, server.behaviour.output_tokens = 15, 300
    await guard.wrap(client).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    n = input_tokens_of(MESSAGES)
    [hold] = ledger.holds.values()
    assert hold.amount == gpt4o(n, 128_000 - n)
    assert n == 16
    assert hold.amount == Decimal("1.343874000")  # (16*0.0025 + 127,984*0.01)/1K + 5%
    assert hold.status is ReservationStatus.SETTLED
    assert [e.amount for e in ledger.entries] == [-gpt4o(15, 300)]
    assert ledger.balance == Decimal(10) - gpt4o(15, 300)
    assert ledger.reserved == 0
    assert "max_tokens" not in server.requests[-1]  # the request is the caller's, unchanged


async def test_refused_without_max_tokens_says_what_was_held_and_sends_nothing(
    server: ProviderServer, engine: PricingEngine, client: openai.AsyncOpenAI
) -> None:
    ledger = FakeLedger(Decimal(1))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    with pytest.raises(BudgetExceededError) as refused:
        await guard.wrap(client).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    left = 128_000 - input_tokens_of(MESSAGES)
    assert f"{left:,} output tokens were held" in refused.value.detail
    assert "context window minus the input" in refused.value.detail
    assert "pass max_tokens to hold less" in refused.value.detail
    assert server.count == 0
    # With a cap the same call fits.
    await guard.wrap(client).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=100
    )
    assert server.count == 1


async def test_input_beyond_the_context_window_is_refused_before_sending(
    server: ProviderServer, engine: PricingEngine, client: openai.AsyncOpenAI
) -> None:
    ledger = FakeLedger(Decimal(1000))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    huge = [{"role": "user", "content": "lighthouse " * 130_000}]
    with pytest.raises(ContextLimitExceededError):
        await guard.wrap(client).chat.completions.create(model="gpt-4o", messages=huge)
    assert server.count == 0
    assert ledger.holds == {}


async def test_unknown_limits_hold_the_documented_default(engine: PricingEngine) -> None:
    ledger = FakeLedger(Decimal(10))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    async with guard.request("acme", "no-limits-1") as call:  # no input at all
        call.record_usage(input_tokens=0, output_tokens=10)
    assert DEFAULT_MAX_OUTPUT_TOKENS == 65_536
    assert call.estimate.output_tokens == 65_536
    assert call.reserved_amount == total(65_536 * Decimal("0.002") / 1000)
    assert [e.amount for e in ledger.entries] == [-total(10 * Decimal("0.002") / 1000)]

    tighter = Guard(
        ledger,  # type: ignore[arg-type]
        engine,
        user_id="u",
        project_id="p",
        default_max_output_tokens=1000,
    )
    async with tighter.request("acme", "no-limits-1") as small:
        small.record_usage(input_tokens=0, output_tokens=10)
    assert small.reserved_amount == total(1000 * Decimal("0.002") / 1000)
    with pytest.raises(InvalidInputError):
        Guard(ledger, engine, user_id="u", project_id="p", default_max_output_tokens=0)  # type: ignore[arg-type]


async def test_tool_definitions_are_counted_in_the_hold(
    server: ProviderServer, engine: PricingEngine, client: openai.AsyncOpenAI
) -> None:
    ledger = FakeLedger(Decimal(10))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    wrapped = guard.wrap(client)
    await wrapped.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    await wrapped.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=100, tools=[WEATHER_TOOL]
    )
    plain, with_tools = (h.amount for h in ledger.holds.values())
    tool_json = json.dumps([WEATHER_TOOL], separators=(",", ":"))
    tool_tokens = estimate_tokens(tool_json, "gpt-4o", "openai").token_count
    assert tool_tokens > 30
    counted = input_tokens_of([{"role": "system", "content": tool_json}, *MESSAGES])
    assert counted >= input_tokens_of(MESSAGES) + tool_tokens
    assert plain == gpt4o(input_tokens_of(MESSAGES), 100)
    assert with_tools == gpt4o(counted, 100)


async def test_anthropic_tools_and_tool_results_are_counted(
    server: ProviderServer, engine: PricingEngine
) -> None:
    ledger = FakeLedger(Decimal(10))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    tool = {
        "name": "get_weather",
        "description": "Current weather in a city, with temperature in Celsius and wind speed",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    turns = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "4C, windy"}],
        },
    ]
    async with anthropic.AsyncAnthropic(
        api_key="sk-test", base_url=server.base_url, max_retries=0
    ) as raw:
        client = guard.wrap(raw)
        await client.messages.create(model="claude-haiku-4-5", messages=turns, max_tokens=50)
        await client.messages.create(
            model="claude-haiku-4-5", messages=turns, max_tokens=50, tools=[tool]
        )
    bare, tooled = (u.estimated_cost or Decimal(0) for u in ledger.usages)
    expected_text = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": '{"city":"Oslo"}'},
        {"role": "user", "content": "4C, windy"},
    ]
    pricing = await engine.estimate_cost(
        "anthropic", "claude-haiku-4-5", messages=expected_text, expected_output_tokens=50
    )
    assert bare == pricing.total_cost
    assert tooled > bare


async def test_arguments_the_sdk_refuses_release_the_hold(
    server: ProviderServer, engine: PricingEngine
) -> None:
    """Anthropic requires max_tokens: the SDK raises before sending, so nothing is charged."""
    ledger = FakeLedger(Decimal(10))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    async with anthropic.AsyncAnthropic(
        api_key="sk-test", base_url=server.base_url, max_retries=0
    ) as raw:
        with pytest.raises(TypeError, match="max_tokens"):
            await guard.wrap(raw).messages.create(model="claude-haiku-4-5", messages=MESSAGES)
        with pytest.raises(ValueError, match="Streaming is required"):
            await guard.wrap(raw).messages.create(
                model="claude-3-opus", messages=MESSAGES, max_tokens=4096 * 10
            )
    assert server.count == 0
    assert ledger.entries == []
    assert ledger.reserved == 0
    assert [h.status for h in ledger.holds.values()] == [ReservationStatus.RELEASED] * 2


async def test_n_choices_hold_the_output_of_each(
    server: ProviderServer, ledger: FakeLedger, guard: Guard
) -> None:
    """OpenAI's ``n``: every choice may produce ``max_tokens``, so all of them are held."""
    async with openai.AsyncOpenAI(
        api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0
    ) as raw:
        client = guard.wrap(raw)
        # Fake tokenizer: 5 words; gpt-4o at 0.0025 input / 0.01 output per 1K, plus 5%.
        await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Say hello to the world"}],
            max_tokens=50,
            n=3,
        )
        with pytest.raises(InvalidInputError):
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], n=0
            )
    [hold] = ledger.holds.values()
    assert hold.amount == total((5 * Decimal("0.0025") + 150 * Decimal("0.01")) / 1000)
    assert hold.amount == Decimal("0.001588125")
    assert server.requests[-1]["n"] == 3
    assert server.count == 1
    assert ledger.usages[0].estimated_cost == Decimal("0.001588125")


async def test_choices_with_the_real_engine_and_an_expected_output(engine: PricingEngine) -> None:
    ledger = FakeLedger(Decimal(10))
    guard = Guard(ledger, engine, user_id="u", project_id="p")  # type: ignore[arg-type]
    async with guard.request(
        "openai",
        "gpt-4o",
        messages=MESSAGES,
        max_tokens=100,
        expected_output_tokens=40,
        choices=2,
    ) as call:
        call.record_usage(input_tokens=16, output_tokens=80)
    n = input_tokens_of(MESSAGES)
    assert call.reserved_amount == gpt4o(n, 200)
    assert call.expected_cost == gpt4o(n, 80)
    assert call.estimate.output_tokens == 200
    assert call.estimate.total_cost == call.estimate.base_cost + call.estimate.platform_fee
    assert [e.amount for e in ledger.entries] == [-gpt4o(16, 80)]


def test_stream_helper_refused_by_the_sdk_releases_the_hold(
    server: ProviderServer, ledger: FakeLedger, guard: Guard
) -> None:
    raw = anthropic.Anthropic(api_key="sk-test", base_url=server.base_url, max_retries=0)
    with (
        raw,
        pytest.raises(TypeError),
        guard.wrap(raw).messages.stream(model="claude-haiku-4-5", messages=MESSAGES),
    ):
        pass
    assert server.count == 0
    assert ledger.entries == []
    assert [h.status for h in ledger.holds.values()] == [ReservationStatus.RELEASED]
