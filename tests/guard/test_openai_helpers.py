"""OpenAI's ``parse`` and ``stream`` helpers are guarded like ``create``: no unguarded path
to the provider through the wrapped client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import openai
import pytest
from tests.guard.guard_fakes import FakeLedger
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.errors import BudgetExceededError
from smartspace_budget.guard import Guard

MESSAGES = [{"role": "user", "content": "Say hello to the world"}]  # 5 words = 5 fake tokens
RESERVED = Decimal("0.000538125")  # (5*0.0025 + 50*0.01)/1K + 5%


def usage_cost(fresh: int, cached: int, output: int) -> Decimal:
    base = (
        fresh * Decimal("0.0025") + cached * Decimal("0.00125") + output * Decimal("0.01")
    ) / 1000
    return (base + base * 5 / 100).quantize(Decimal("1e-9"))


@pytest.fixture
async def async_client(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def sync_client(server: ProviderServer) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def cached(server: ProviderServer) -> ProviderServer:
    b = server.behaviour
    b.input_tokens, b.cached_tokens, b.output_tokens, b.reasoning_tokens = 1200, 1024, 40, 16
    return server


async def test_streamed_chat_with_cached_and_reasoning_tokens(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: openai.AsyncOpenAI
) -> None:
    stream = await guard.wrap(async_client).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
    )
    async for _ in stream:
        pass
    expected = usage_cost(176, 1024, 40)
    assert expected == Decimal("0.002226000")  # (176*0.0025 + 1024*0.00125 + 40*0.01)/1K + 5%
    assert [e.amount for e in ledger.entries] == [-expected]
    [usage] = ledger.usages
    assert (usage.input_tokens, usage.cached_input_tokens) == (1200, 1024)
    assert (usage.output_tokens, usage.reasoning_tokens) == (40, 16)
    assert not usage.cost_is_estimate
    assert ledger.balance == Decimal(10) - expected
    assert ledger.reserved == 0


async def test_chat_stream_helper_read_to_the_end(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: openai.AsyncOpenAI
) -> None:
    async with guard.wrap(async_client).chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    ) as stream:
        assert ledger.reserved == RESERVED
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "w0 w1 w2 w3 w4 "
    assert cached.requests[-1]["stream_options"] == {"include_usage": True}
    assert [e.amount for e in ledger.entries] == [-usage_cost(176, 1024, 40)]
    assert not ledger.usages[0].cost_is_estimate
    assert ledger.reserved == 0


def test_sync_chat_stream_helper_left_early_is_charged_at_the_reservation(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, sync_client: openai.OpenAI
) -> None:
    with guard.wrap(sync_client).chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    ) as stream:
        for _ in stream:
            break
    assert [e.amount for e in ledger.entries] == [-RESERVED]
    assert ledger.usages[0].cost_is_estimate
    assert ledger.reserved == 0


def test_sync_chat_stream_helper_read_to_the_end(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, sync_client: openai.OpenAI
) -> None:
    with guard.wrap(sync_client).chat.completions.stream(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    ) as stream:
        for _ in stream:
            pass
    assert [e.amount for e in ledger.entries] == [-usage_cost(12, 0, 30)]


async def test_responses_stream_helper(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: openai.AsyncOpenAI
) -> None:
    server.behaviour.input_tokens, server.behaviour.cached_tokens = 20, 10
    server.behaviour.output_tokens = 7
    async with guard.wrap(async_client).responses.stream(
        model="gpt-4o", input="Say hello", max_output_tokens=40
    ) as stream:
        async for _ in stream:
            pass
    assert [e.amount for e in ledger.entries] == [-usage_cost(10, 10, 7)]
    assert not ledger.usages[0].cost_is_estimate


async def test_parse_is_guarded(
    cached: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    parsed = await guard.wrap(async_client).chat.completions.parse(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    )
    assert parsed.choices[0].message.content == "Hello there"
    guard.wrap(sync_client).chat.completions.parse(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    assert [e.amount for e in ledger.entries] == [-usage_cost(176, 1024, 40)] * 2


async def test_denied_helpers_send_nothing(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    ledger.balance = Decimal(0)
    with pytest.raises(BudgetExceededError):
        await guard.wrap(async_client).chat.completions.parse(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        )
    with pytest.raises(BudgetExceededError):
        async with guard.wrap(async_client).chat.completions.stream(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        ):
            pass
    with (
        pytest.raises(BudgetExceededError),
        guard.wrap(sync_client).responses.stream(model="gpt-4o", input="hi", max_output_tokens=9),
    ):
        pass
    assert server.count == 0
    assert ledger.holds == {}


async def test_with_raw_response_is_guarded(
    cached: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    raw = await guard.wrap(async_client).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    )
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.parse().choices[0].message.content == "Hello there"
    streamed = await guard.wrap(async_client).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
    )
    assert len(ledger.entries) == 1  # the stream is held until it is read
    async for _ in streamed.parse():
        pass
    guard.wrap(sync_client).responses.with_raw_response.create(
        model="gpt-4o", input="Say hello", max_output_tokens=40
    )
    # Chat (plain and streamed) and Responses report the same usage: 1,200 in (1,024 cached).
    assert [e.amount for e in ledger.entries] == [-usage_cost(176, 1024, 40)] * 3
    assert cached.requests[1]["stream_options"] == {"include_usage": True}
    assert ledger.reserved == 0


async def test_unguardable_accessors_refuse_instead_of_spending(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
) -> None:
    from smartspace_budget.errors import InvalidInputError

    client = guard.wrap(async_client)
    with pytest.raises(InvalidInputError, match="with_streaming_response"):
        client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        )
    with pytest.raises(InvalidInputError, match=r"with_raw_response\.stream"):
        client.chat.completions.with_raw_response.stream(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        )
    ledger.balance = Decimal(0)
    with pytest.raises(BudgetExceededError):
        await client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        )
    assert server.count == 0
    assert ledger.holds == {}


async def test_client_level_with_raw_response_is_guarded(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
) -> None:
    import anthropic

    from smartspace_budget.errors import InvalidInputError

    client = guard.wrap(async_client)
    raw = await client.with_raw_response.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    )
    assert raw.parse().usage.completion_tokens == 30
    await client.with_raw_response.responses.create(
        model="gpt-4o", input="Say hello", max_output_tokens=40
    )
    async with anthropic.AsyncAnthropic(
        api_key="sk-test", base_url=server.base_url, max_retries=0
    ) as raw_anthropic:
        message = await guard.wrap(raw_anthropic).with_raw_response.messages.create(
            model="claude-haiku-4-5", messages=MESSAGES, max_tokens=100
        )
        assert (await message.parse()).content[0].text == "Hello there"
        streamed = await guard.wrap(raw_anthropic).with_raw_response.messages.create(
            model="claude-haiku-4-5", messages=MESSAGES, max_tokens=100, stream=True
        )
        assert [e.type async for e in await streamed.parse()][-1] == "message_stop"
        with pytest.raises(InvalidInputError, match="with_streaming_response"):
            guard.wrap(raw_anthropic).with_streaming_response.messages.create(
                model="claude-haiku-4-5", messages=MESSAGES, max_tokens=100
            )
    haiku = (12 * Decimal("0.003") + 30 * Decimal("0.015")) / 1000 * Decimal("1.05")
    assert [e.amount for e in ledger.entries] == [
        -usage_cost(12, 0, 30),
        -usage_cost(12, 0, 30),
        -haiku.quantize(Decimal("1e-9")),
        -haiku.quantize(Decimal("1e-9")),
    ]
    assert server.count == 4
    with pytest.raises(InvalidInputError, match="with_streaming_response"):
        client.with_streaming_response.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        )
    assert server.count == 4
