"""The official ``openai`` SDK, guarded, against a local server speaking OpenAI's formats."""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import openai
import pytest
from tests.guard.guard_fakes import FakeLedger, FakePricing
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.errors import BudgetExceededError, PolicyViolationError, UnknownModelError
from smartspace_budget.guard import Guard
from smartspace_budget.models import BudgetPolicy, EntryKind
from smartspace_budget.models.budget import ReservationStatus

MESSAGES = [{"role": "user", "content": "Say hello to the world"}]  # 5 words = 5 fake tokens
# Reservation: 5 input * 0.0025/1k + 50 output * 0.01/1k = 0.0005125, plus 5% fee.
RESERVED = Decimal("0.000538125")


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


def usage_cost(fresh: int, cached: int, output: int) -> Decimal:
    base = (
        fresh * Decimal("0.0025") + cached * Decimal("0.00125") + output * Decimal("0.01")
    ) / 1000
    return (base + base * 5 / 100).quantize(Decimal("1e-9"))


async def test_chat_completion_is_settled_at_the_real_cost_with_cached_and_reasoning_tokens(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
    pricing: FakePricing,
) -> None:
    server.behaviour.input_tokens = 12
    server.behaviour.cached_tokens = 4
    server.behaviour.output_tokens = 30
    server.behaviour.reasoning_tokens = 10
    client = guard.wrap(async_client)
    reply = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    assert reply.choices[0].message.content == "Hello there"
    assert server.count == 1
    expected = usage_cost(8, 4, 30)
    assert expected == Decimal("0.000341250")
    [entry] = ledger.entries
    assert entry.kind is EntryKind.USAGE
    assert entry.amount == -expected
    assert ledger.balance == Decimal(10) - expected
    assert ledger.reserved == 0
    [usage] = ledger.usages
    assert (usage.input_tokens, usage.cached_input_tokens) == (12, 4)
    assert (usage.output_tokens, usage.reasoning_tokens) == (30, 10)
    assert usage.price_version == "v1"
    assert usage.estimated_cost == RESERVED
    assert not usage.cost_is_estimate
    [hold] = ledger.holds.values()
    assert hold.amount == RESERVED
    assert hold.status is ReservationStatus.SETTLED
    assert pricing.anomaly_checks == [(RESERVED, expected)]


def test_sync_client_is_guarded_through_the_portal(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(sync_client)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    assert [e.amount for e in ledger.entries] == [-usage_cost(12, 0, 30)]


async def test_stream_requests_usage_and_settles_when_it_ends(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(async_client)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
    )
    assert ledger.entries == []  # held, not charged, while streaming
    assert ledger.reserved == RESERVED
    text = [c.choices[0].delta.content async for c in stream if c.choices]
    assert "".join(t for t in text if t) == "w0 w1 w2 w3 w4 "
    assert server.requests[-1]["stream_options"] == {"include_usage": True}
    assert [e.amount for e in ledger.entries] == [-usage_cost(12, 0, 30)]
    assert not ledger.usages[0].cost_is_estimate
    assert ledger.reserved == 0


def test_sync_stream_keeps_the_callers_stream_options(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(sync_client)
    with client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=50,
        stream=True,
        stream_options={"include_obfuscation": False},
    ) as stream:
        chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 30
    assert server.requests[-1]["stream_options"] == {
        "include_obfuscation": False,
        "include_usage": True,
    }
    assert [e.amount for e in ledger.entries] == [-usage_cost(12, 0, 30)]


async def test_stream_closed_early_is_charged_at_the_reservation(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(async_client)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    [usage] = ledger.usages
    assert usage.actual_cost == RESERVED
    assert usage.cost_is_estimate
    assert [e.amount for e in ledger.entries] == [-RESERVED]
    await stream.close()  # a second close charges nothing more
    assert len(ledger.entries) == 1


def test_sync_stream_dropped_without_close_is_settled_by_the_garbage_collector(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(sync_client)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
    )
    next(iter(stream))
    del stream
    gc.collect()
    guard.portal.run(guard.drain())
    deadline = time.monotonic() + 5
    while not ledger.entries and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.amount for e in ledger.entries] == [-RESERVED]
    assert ledger.usages[0].cost_is_estimate


async def test_async_stream_dropped_without_close_is_settled_on_its_loop(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(async_client)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
    )
    await stream.__anext__()
    inner = stream._inner
    del stream
    gc.collect()
    await guard.drain()
    await inner.close()
    assert [e.amount for e in ledger.entries] == [-RESERVED]


@pytest.mark.parametrize("streamed_sync", [False, True])
async def test_error_midway_is_charged_at_the_reservation(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
    streamed_sync: bool,
) -> None:
    server.behaviour.mode = "error_midway"
    if streamed_sync:
        stream = guard.wrap(sync_client).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
        )
        with pytest.raises(openai.APIError, match="upstream failed"):
            list(stream)
    else:
        stream = await guard.wrap(async_client).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
        )
        with pytest.raises(openai.APIError, match="upstream failed"):
            [c async for c in stream]
    [usage] = ledger.usages
    assert usage.cost_is_estimate
    assert usage.actual_cost == RESERVED


async def test_response_without_usage_is_charged_at_the_reservation(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    server.behaviour.mode = "no_usage"
    await guard.wrap(async_client).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=50
    )
    assert [e.amount for e in ledger.entries] == [-RESERVED]
    assert ledger.usages[0].cost_is_estimate


async def test_http_error_releases_the_hold(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    server.behaviour.mode = "http_error"
    with pytest.raises(openai.InternalServerError):
        await guard.wrap(async_client).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50
        )
    assert ledger.entries == []
    [hold] = ledger.holds.values()
    assert hold.status is ReservationStatus.RELEASED
    assert ledger.reserved == 0


async def test_denied_calls_send_no_request(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    client = guard.wrap(async_client)
    ledger.balance = Decimal("0.0005")  # below the reservation
    with pytest.raises(BudgetExceededError):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    ledger.balance = Decimal(10)
    ledger.policy = BudgetPolicy(per_request_limit=Decimal("0.0001"))
    with pytest.raises(PolicyViolationError):
        await client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=50, stream=True
        )
    with pytest.raises(UnknownModelError):
        await client.chat.completions.create(model="gpt-unknown", messages=MESSAGES)
    ledger.policy = BudgetPolicy()
    with pytest.raises(BudgetExceededError):
        guard.wrap(sync_client).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=10**6
        )
    assert server.count == 0
    assert ledger.entries == []


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_api_is_guarded(
    server: ProviderServer,
    ledger: FakeLedger,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
    stream: bool,
) -> None:
    server.behaviour.input_tokens = 20
    server.behaviour.cached_tokens = 10
    server.behaviour.output_tokens = 7
    client = guard.wrap(async_client)
    result = await client.responses.create(
        model="gpt-4o",
        input="Say hello",
        instructions="Be brief",
        max_output_tokens=40,
        stream=stream,
    )
    if stream:
        events = [event.type async for event in result]
        assert events[-1] == "response.completed"
    else:
        assert result.output_text == "Hi"
    assert [e.amount for e in ledger.entries] == [-usage_cost(10, 10, 7)]
    # estimate: "Be brief" + "Say hello" = 4 words, 40 output tokens
    assert ledger.usages[0].estimated_cost == (
        (Decimal(4) * Decimal("0.0025") + 40 * Decimal("0.01")) / 1000 * Decimal("1.05")
    ).quantize(Decimal("1e-9"))


def test_other_attributes_are_the_clients_own(
    server: ProviderServer,
    guard: Guard,
    async_client: openai.AsyncOpenAI,
    sync_client: openai.OpenAI,
) -> None:
    raw = sync_client
    client = guard.wrap(raw)
    assert client.base_url == raw.base_url
    assert client.models is raw.models


async def test_copies_of_a_guarded_client_stay_guarded(
    server: ProviderServer, ledger: FakeLedger, guard: Guard, async_client: openai.AsyncOpenAI
) -> None:
    client = guard.wrap(async_client).with_options(timeout=5)
    ledger.balance = Decimal(0)
    with pytest.raises(BudgetExceededError):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=50)
    assert server.count == 0


def test_a_monitor_must_be_able_to_receive_alerts(ledger: FakeLedger, pricing: FakePricing) -> None:
    from smartspace_budget.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        Guard(ledger, pricing, user_id="u", project_id="p", monitor=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Guard(ledger, pricing, user_id="u", project_id="p").wrap(object())  # type: ignore[arg-type]
