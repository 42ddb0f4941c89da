"""The official ``anthropic`` SDK, guarded, against a local server speaking its formats."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import anthropic
import pytest
from tests.guard.guard_fakes import FakeLedger
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.errors import BudgetExceededError
from smartspace_budget.guard import Guard
from smartspace_budget.models.budget import ReservationStatus
from smartspace_budget.pricing.tokens import estimate_tokens

MODEL = "claude-haiku-4-5"
MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Write one short line"}]}]
SYSTEM = "You are terse"
# Estimate: 4 + 3 words = 7 tokens * 0.003/1k + 100 max_tokens * 0.015/1k, plus 5%.
RESERVED = ((7 * Decimal("0.003") + 100 * Decimal("0.015")) / 1000 * Decimal("1.05")).quantize(
    Decimal("1e-9")
)


def cost(fresh: int, read: int, written: int, output: int) -> Decimal:
    base = (
        fresh * Decimal("0.003")
        + read * Decimal("0.0003")
        + written * Decimal("0.00375")
        + output * Decimal("0.015")
    ) / 1000
    return (base * Decimal("1.05")).quantize(Decimal("1e-9"))


@pytest.fixture
async def async_client(server: ProviderServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="sk-test", base_url=server.base_url, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
def sync_client(server: ProviderServer) -> Iterator[anthropic.Anthropic]:
    client = anthropic.Anthropic(api_key="sk-test", base_url=server.base_url, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def cached(server: ProviderServer) -> ProviderServer:
    b = server.behaviour
    b.input_tokens, b.cached_tokens, b.cache_write_tokens, b.output_tokens = 50, 2000, 300, 40
    return server


async def test_message_with_cache_reads_and_writes_is_settled_at_the_real_cost(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    client = guard.wrap(async_client)
    reply = await client.messages.create(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100
    )
    assert reply.content[0].text == "Hello there"
    expected = cost(50, 2000, 300, 40)
    assert [e.amount for e in ledger.entries] == [-expected]
    [usage] = ledger.usages
    assert usage.input_tokens == 2350
    assert (usage.cached_input_tokens, usage.cache_write_tokens) == (2000, 300)
    assert usage.price_version == "v7"
    assert usage.estimated_cost == RESERVED
    assert not usage.cost_is_estimate


def test_sync_message(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, sync_client: anthropic.Anthropic
) -> None:
    guard.wrap(sync_client).messages.create(model=MODEL, messages=MESSAGES, max_tokens=100)
    assert [e.amount for e in ledger.entries] == [-cost(50, 2000, 300, 40)]


async def test_stream_is_settled_with_the_usage_of_message_start_and_message_delta(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    stream = await guard.wrap(async_client).messages.create(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100, stream=True
    )
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert [e.amount for e in ledger.entries] == [-cost(50, 2000, 300, 40)]


def test_sync_stream_helper_settles_on_exit(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, sync_client: anthropic.Anthropic
) -> None:
    with guard.wrap(sync_client).messages.stream(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100
    ) as stream:
        text = "".join(stream.text_stream)
        assert ledger.entries == []
    assert text == "w0 w1 w2 w3 w4 "
    assert [e.amount for e in ledger.entries] == [-cost(50, 2000, 300, 40)]


async def test_async_stream_helper_left_early_is_charged_what_was_reported_and_streamed(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    async with guard.wrap(async_client).messages.stream(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                break
    [usage] = ledger.usages
    assert usage.cost_is_estimate
    # message_start reported the 12 input tokens; "w0 " was streamed: not the whole hold.
    streamed = estimate_tokens("w0 ", MODEL, "anthropic").token_count
    assert (usage.input_tokens, usage.output_tokens) == (12, streamed)
    assert [e.amount for e in ledger.entries] == [-cost(12, 0, 0, streamed)]
    assert cost(12, 0, 0, streamed) < RESERVED


async def test_async_stream_helper_read_to_the_end(
    cached: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    async with guard.wrap(async_client).messages.stream(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100
    ) as stream:
        message = await stream.get_final_message()
    assert message.usage.output_tokens == 40
    assert [e.amount for e in ledger.entries] == [-cost(50, 2000, 300, 40)]


async def test_stream_abandoned_early_is_charged_what_was_reported_and_streamed(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    server.behaviour.cached_tokens = 500  # message_start reports the whole input side
    stream = await guard.wrap(async_client).messages.create(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100, stream=True
    )
    async with stream:
        seen = 0
        async for event in stream:
            seen += event.type == "content_block_delta"
            if seen == 3:
                break
    streamed = estimate_tokens("w0 w1 w2 ", MODEL, "anthropic").token_count
    [usage] = ledger.usages
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (
        512,
        500,
        streamed,
    )
    assert [e.amount for e in ledger.entries] == [-cost(12, 500, 0, streamed)]
    assert usage.cost_is_estimate
    assert ledger.reserved == 0


async def test_stream_abandoned_before_message_start_is_charged_at_the_reservation(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    stream = await guard.wrap(async_client).messages.create(
        model=MODEL, system=SYSTEM, messages=MESSAGES, max_tokens=100, stream=True
    )
    await stream.close()  # nothing was reported: the hold is all that is known
    assert [e.amount for e in ledger.entries] == [-RESERVED]
    assert ledger.usages[0].cost_is_estimate


@pytest.mark.parametrize("sync", [False, True])
async def test_error_event_midway_is_charged_at_the_reservation(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: anthropic.AsyncAnthropic,
    sync_client: anthropic.Anthropic,
    sync: bool,
) -> None:
    server.behaviour.mode = "error_midway"
    kwargs = {"model": MODEL, "system": SYSTEM, "messages": MESSAGES, "max_tokens": 100}
    if sync:
        stream = guard.wrap(sync_client).messages.create(stream=True, **kwargs)
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            list(stream)
    else:
        stream = await guard.wrap(async_client).messages.create(stream=True, **kwargs)
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            [event async for event in stream]
    assert [e.amount for e in ledger.entries] == [-RESERVED]
    assert ledger.usages[0].cost_is_estimate


async def test_overloaded_answer_releases_the_hold(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: anthropic.AsyncAnthropic
) -> None:
    server.behaviour.mode = "http_error"
    with pytest.raises(anthropic.APIStatusError):
        await guard.wrap(async_client).messages.create(
            model=MODEL, messages=MESSAGES, max_tokens=100
        )
    assert ledger.entries == []
    assert [h.status for h in ledger.holds.values()] == [ReservationStatus.RELEASED]


async def test_denied_call_sends_nothing(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: anthropic.AsyncAnthropic,
    sync_client: anthropic.Anthropic,
) -> None:
    ledger.balance = Decimal(0)
    with pytest.raises(BudgetExceededError):
        await guard.wrap(async_client).messages.create(
            model=MODEL, messages=MESSAGES, max_tokens=100
        )
    with (
        pytest.raises(BudgetExceededError),
        guard.wrap(sync_client).messages.stream(model=MODEL, messages=MESSAGES, max_tokens=100),
    ):
        pass
    assert server.count == 0
    assert ledger.holds == {}
