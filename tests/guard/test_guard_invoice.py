"""Every charge equals the provider's invoice: the official SDKs, a stand-in server, the ledger.

The stand-in server answers in each API's documented format with audio, reasoning, cached,
one-hour cache-write and web-search usage, plain and streamed. For each call the ledger's
usage entry must be exactly the invoice: genai-prices' own ``calc_price`` of the usage the
provider reported, rounded half-even to nine places, plus the 5% platform fee as the
project rounds it (``with_platform_fee``). What the guard cannot price (a web fetch, an
unknown usage field) is charged at least the call's hold and named in the entry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import anthropic
import genai_prices
import openai
import pytest
import sqlalchemy as sa
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.guard import Guard, with_platform_fee
from smartspace_budget.guard.sdk_calls import image_output_tokens
from smartspace_budget.ledger.tables import entries, reservations
from smartspace_budget.money import from_nano
from smartspace_budget.pricing import PricingEngine

USER, PROJECT = "u_invoice", "p_invoice"
ASK = [{"role": "user", "content": "What happened in the news today?"}]
FEE = Decimal(5)


def invoice(provider: str, model: str, at: datetime | None = None, **usage: int) -> Decimal:
    """genai-prices' price of ``usage`` at ``at`` (now), rounded to nano-USD, plus the fee."""
    price = genai_prices.calc_price(
        genai_prices.Usage(**usage),
        model,
        provider_id=provider,
        genai_request_timestamp=at or datetime.now(UTC),
    )
    base = price.total_price.quantize(Decimal("1e-9"), rounding=ROUND_HALF_EVEN)
    return with_platform_fee(base, FEE)[1]


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = await LocalBackend.open(
        f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}", status_ttl=0
    )
    await backend.deposit(USER, PROJECT, Decimal(100), idempotency_key="d1")
    yield backend
    await backend.aclose()


@pytest.fixture
def guard(local: LocalBackend) -> Guard:
    return Guard(local, PricingEngine(local), user_id=USER, project_id=PROJECT)


@pytest.fixture
async def oai(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def claude(server: ProviderServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="sk-test", base_url=server.base_url, max_retries=0)
    yield client
    await client.close()


async def usage_entries(local: LocalBackend) -> list[dict[str, Any]]:
    query = (
        sa.select(
            entries.c.amount_nano,
            entries.c.cost_is_estimate,
            entries.c.input_tokens,
            entries.c.output_tokens,
            entries.c.cached_input_tokens,
            entries.c.cache_write_tokens,
            entries.c.reasoning_tokens,
            entries.c.usage_detail,
        )
        .where(entries.c.kind == "usage")
        .order_by(entries.c.id)
    )
    async with local.ledger.engine.connect() as conn:
        found = (await conn.execute(query)).all()
    return [
        {
            "charged": -from_nano(row.amount_nano),
            "estimate": bool(row.cost_is_estimate),
            "input": row.input_tokens,
            "output": row.output_tokens,
            "cached": row.cached_input_tokens,
            "written": row.cache_write_tokens,
            "reasoning": row.reasoning_tokens,
            "detail": json.loads(row.usage_detail) if row.usage_detail else {},
        }
        for row in found
    ]


async def holds(local: LocalBackend) -> list[Decimal]:
    """The amount each call held, in the order of the calls."""
    query = sa.select(reservations.c.amount_nano).order_by(reservations.c.id)
    async with local.ledger.engine.connect() as conn:
        return [from_nano(n) for (n,) in (await conn.execute(query)).all()]


async def drain(stream: Any) -> None:
    async for _ in stream:
        pass


# -- OpenAI chat completions: audio, cached input, reasoning --------------------------------


CallMaker = Callable[[Any, str], Awaitable[None]]


async def chat_plain(client: Any, model: str) -> None:
    await client.chat.completions.create(model=model, messages=ASK, max_tokens=2000)


async def chat_streamed(client: Any, model: str) -> None:
    await drain(
        await client.chat.completions.create(
            model=model, messages=ASK, max_tokens=2000, stream=True
        )
    )


async def chat_helper(client: Any, model: str) -> None:
    async with client.chat.completions.stream(model=model, messages=ASK, max_tokens=2000) as stream:
        await drain(stream)


CHAT_WAYS = {"plain": chat_plain, "streamed": chat_streamed, "stream helper": chat_helper}


@pytest.mark.parametrize("way", list(CHAT_WAYS))
async def test_openai_chat_audio_is_charged_the_invoice(
    way: str,
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    oai: openai.AsyncOpenAI,
) -> None:
    b = server.behaviour
    b.input_tokens, b.input_audio_tokens = 1200, 800
    b.output_tokens, b.output_audio_tokens = 600, 450
    await CHAT_WAYS[way](guard.wrap(oai), "gpt-audio")
    expected = invoice(
        "openai",
        "gpt-audio",
        input_tokens=1200,
        input_audio_tokens=800,
        output_tokens=600,
        output_audio_tokens=450,
    )
    [entry] = await usage_entries(local)
    assert entry["charged"] == expected
    assert not entry["estimate"]
    assert entry["detail"] == {"input_audio_tokens": 800, "output_audio_tokens": 450}
    # Audio is dearer than text: charged as text it would be far less.
    assert expected > invoice("openai", "gpt-audio", input_tokens=1200, output_tokens=600) * 3


@pytest.mark.parametrize("way", list(CHAT_WAYS))
async def test_openai_chat_cached_and_reasoning_is_charged_the_invoice(
    way: str,
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    oai: openai.AsyncOpenAI,
) -> None:
    b = server.behaviour
    b.input_tokens, b.cached_tokens = 3000, 2048
    b.output_tokens, b.reasoning_tokens = 900, 512
    await CHAT_WAYS[way](guard.wrap(oai), "o4-mini")
    expected = invoice(
        "openai",
        "o4-mini",
        input_tokens=3000,
        cache_read_tokens=2048,
        output_tokens=900,
        output_reasoning_tokens=512,
    )
    [entry] = await usage_entries(local)
    assert entry["charged"] == expected
    assert (entry["input"], entry["cached"], entry["output"], entry["reasoning"]) == (
        3000,
        2048,
        900,
        512,
    )


# -- OpenAI responses: cached, reasoning, web and file searches ------------------------------


async def responses_plain(client: Any, model: str) -> None:
    await client.responses.create(model=model, input="news?", max_output_tokens=2000)


async def responses_streamed(client: Any, model: str) -> None:
    await drain(
        await client.responses.create(
            model=model, input="news?", max_output_tokens=2000, stream=True
        )
    )


async def responses_helper(client: Any, model: str) -> None:
    async with client.responses.stream(
        model=model, input="news?", max_output_tokens=2000
    ) as stream:
        await drain(stream)


RESPONSES_WAYS = {
    "plain": responses_plain,
    "streamed": responses_streamed,
    "stream helper": responses_helper,
}


@pytest.mark.parametrize("way", list(RESPONSES_WAYS))
async def test_openai_responses_web_and_file_searches_are_charged_the_invoice(
    way: str,
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    oai: openai.AsyncOpenAI,
) -> None:
    b = server.behaviour
    b.input_tokens, b.cached_tokens = 5000, 1024
    b.output_tokens, b.reasoning_tokens = 800, 300
    b.web_searches, b.file_searches = 3, 2
    await RESPONSES_WAYS[way](guard.wrap(oai), "gpt-5")
    expected = invoice(
        "openai",
        "gpt-5",
        input_tokens=5000,
        cache_read_tokens=1024,
        output_tokens=800,
        output_reasoning_tokens=300,
        web_searches=3,
        storage_searches=2,
    )
    [entry] = await usage_entries(local)
    assert entry["charged"] == expected
    assert entry["detail"] == {"web_searches": 3, "file_searches": 2}
    # Three searches at $10/1K and two at $2.5/1K are part of it.
    assert expected - invoice(
        "openai",
        "gpt-5",
        input_tokens=5000,
        cache_read_tokens=1024,
        output_tokens=800,
    ) == Decimal("0.03675")


# -- Anthropic messages: cache reads, 5-minute and 1-hour cache writes, web search -----------


async def messages_plain(client: Any, model: str) -> None:
    await client.messages.create(model=model, messages=ASK, max_tokens=2000)


async def messages_streamed(client: Any, model: str) -> None:
    await drain(
        await client.messages.create(model=model, messages=ASK, max_tokens=2000, stream=True)
    )


async def messages_helper(client: Any, model: str) -> None:
    async with client.messages.stream(model=model, messages=ASK, max_tokens=2000) as stream:
        await drain(stream)


MESSAGES_WAYS = {
    "plain": messages_plain,
    "streamed": messages_streamed,
    "stream helper": messages_helper,
}


@pytest.mark.parametrize("way", list(MESSAGES_WAYS))
async def test_anthropic_one_hour_cache_writes_and_web_search_are_charged_the_invoice(
    way: str,
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    claude: anthropic.AsyncAnthropic,
) -> None:
    b = server.behaviour
    b.input_tokens, b.cached_tokens = 1000, 3000
    b.cache_write_tokens, b.cache_write_1h_tokens = 2000, 1500
    b.output_tokens, b.web_searches = 700, 2
    await MESSAGES_WAYS[way](guard.wrap(claude), "claude-sonnet-4-5")
    expected = invoice(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=1000 + 3000 + 2000,
        cache_read_tokens=3000,
        cache_write_tokens=2000,
        cache_write_1h_tokens=1500,
        output_tokens=700,
        web_searches=2,
    )
    [entry] = await usage_entries(local)
    assert entry["charged"] == expected
    assert (entry["input"], entry["cached"], entry["written"]) == (6000, 3000, 2000)
    assert entry["detail"] == {"cache_write_1h_tokens": 1500, "web_searches": 2}


async def test_a_sync_client_is_charged_the_invoice_too(
    server: ProviderServer, tmp_path: Path
) -> None:
    from smartspace_budget.config import Settings

    backend = LocalBackend.default(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'sync.sqlite3'}", status_ttl=0)
    )
    guard = Guard(backend, PricingEngine(backend), user_id=USER, project_id=PROJECT)
    try:
        guard.portal.run(backend.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1"))
        b = server.behaviour
        b.input_tokens, b.cached_tokens = 200, 100
        b.cache_write_tokens, b.cache_write_1h_tokens = 400, 400
        b.output_tokens, b.web_searches = 50, 1
        with anthropic.Anthropic(api_key="sk-test", base_url=server.base_url, max_retries=0) as raw:
            client = guard.wrap(raw)
            client.messages.create(model="claude-sonnet-4-5", messages=ASK, max_tokens=100)
            with client.messages.create(
                model="claude-sonnet-4-5", messages=ASK, max_tokens=100, stream=True
            ) as stream:
                for _ in stream:
                    pass
        expected = invoice(
            "anthropic",
            "claude-sonnet-4-5",
            input_tokens=700,
            cache_read_tokens=100,
            cache_write_tokens=400,
            cache_write_1h_tokens=400,
            output_tokens=50,
            web_searches=1,
        )
        balance = guard.portal.run(backend.get_balance(USER, PROJECT))
        assert balance.total_balance == Decimal(10) - 2 * expected
        assert balance.reserved_amount == 0
    finally:
        guard.portal.run(backend.aclose())
        guard.close()


# -- What cannot be priced: charged at least the hold, and named -----------------------------


@pytest.mark.parametrize("way", list(MESSAGES_WAYS))
async def test_unpriced_usage_is_charged_at_least_the_hold_and_named(
    way: str,
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    claude: anthropic.AsyncAnthropic,
) -> None:
    b = server.behaviour
    b.input_tokens, b.output_tokens = 40, 30
    b.web_searches, b.web_fetches = 1, 2
    b.extra_usage = {"code_execution_requests": 1, "speed": "fast"}
    await MESSAGES_WAYS[way](guard.wrap(claude), "claude-sonnet-4-5")
    priced = invoice(
        "anthropic", "claude-sonnet-4-5", input_tokens=40, output_tokens=30, web_searches=1
    )
    [hold] = await holds(local)
    assert hold > priced
    [entry] = await usage_entries(local)
    assert entry["charged"] == hold
    assert entry["estimate"]  # the hold, not a priced amount
    assert entry["detail"] == {
        "web_searches": 1,
        "unpriced:server_tool_use.web_fetch_requests": 2,
        "unpriced:code_execution_requests": 1,
        "unpriced:speed:fast": 1,
    }
    assert (await local.get_balance(USER, PROJECT)).reserved_amount == 0


@pytest.mark.parametrize("way", list(CHAT_WAYS))
async def test_a_service_tier_with_prices_of_its_own_is_unpriced(
    way: str,
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    oai: openai.AsyncOpenAI,
) -> None:
    """Priority processing costs more than the catalog's standard price: charged the hold."""
    server.behaviour.service_tier = "priority"
    await CHAT_WAYS[way](guard.wrap(oai), "gpt-5")
    [entry] = await usage_entries(local)
    [hold] = await holds(local)
    assert hold > invoice("openai", "gpt-5", input_tokens=12, output_tokens=30)
    assert entry["charged"] == hold
    assert entry["detail"] == {"unpriced:service_tier:priority": 1}


async def test_unpriced_usage_above_the_hold_is_charged_its_priced_amount(
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    oai: openai.AsyncOpenAI,
) -> None:
    """The hold is a floor, never a cap: the priced part is charged when it is more."""
    b = server.behaviour
    b.input_tokens, b.output_tokens = 20, 5000  # far past max_output_tokens=10
    b.extra_output = [
        {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "code": "1+1",
         "container_id": "c_1", "outputs": None}
    ]  # fmt: skip
    wrapped = guard.wrap(oai)
    await wrapped.responses.create(model="gpt-5", input="news?", max_output_tokens=10)
    expected = invoice("openai", "gpt-5", input_tokens=20, output_tokens=5000)
    [entry] = await usage_entries(local)
    [hold] = await holds(local)
    assert expected > hold
    assert entry["charged"] == expected
    assert not entry["estimate"]
    assert entry["detail"] == {"unpriced:code_interpreter_call": 1}


async def test_a_dimension_the_models_prices_lack_is_unpriced(
    server: ProviderServer,
    local: LocalBackend,
    guard: Guard,
    oai: openai.AsyncOpenAI,
) -> None:
    """gpt-audio has no web-search price: the searches are not free, they are flagged."""
    server.behaviour.web_searches = 4
    await guard.wrap(oai).responses.create(model="gpt-audio", input="hi", max_output_tokens=500)
    [entry] = await usage_entries(local)
    [hold] = await holds(local)
    assert hold > invoice("openai", "gpt-audio", input_tokens=12, output_tokens=30)
    assert entry["charged"] == hold
    assert entry["estimate"]
    assert entry["detail"] == {"web_searches": 4, "unpriced:web_searches": 4}


# -- priced at the instant of the call -------------------------------------------------------


@pytest.mark.parametrize("hour", [2, 18])
async def test_settled_at_the_time_of_day_price_of_the_calls_instant(
    hour: int, local: LocalBackend, guard: Guard
) -> None:
    """DeepSeek charges half price from 16:30 to 00:30 UTC: the call's instant decides."""
    instant = datetime.combine(datetime.now(UTC).date(), time(hour, 0), UTC)
    async with guard.request("deepseek", "deepseek-chat", input_text="hi", max_tokens=3000) as c:
        c.started_at = instant
        c.record_usage(input_tokens=10_000, output_tokens=2_000, cached_input_tokens=4_000)
    expected = invoice(
        "deepseek",
        "deepseek-chat",
        at=instant,
        input_tokens=10_000,
        output_tokens=2_000,
        cache_read_tokens=4_000,
    )
    assert c.actual_cost == expected
    [entry] = await usage_entries(local)
    assert entry["charged"] == expected
    peak = Decimal("0.004305")  # 0.0041 + 5%
    assert expected == (peak if hour == 2 else peak / 2)


async def test_settled_at_the_price_version_in_force_when_the_call_started(
    local: LocalBackend, guard: Guard
) -> None:
    """A price change that takes effect while a call runs does not apply to it."""
    from smartspace_budget.models import PricingData

    now = datetime.now(UTC)
    for ago, input_price in ((timedelta(hours=2), "0.001"), (timedelta(minutes=1), "0.004")):
        await local.price_book.add_price(
            PricingData(
                provider="acme",
                model_name="rocket-1",
                input_price_per_1k=Decimal(input_price),
                output_price_per_1k=Decimal("0.002"),
                effective_date=now - ago,
                last_updated=now - ago,
            )
        )
    async with guard.request("acme", "rocket-1", input_text="hi", max_tokens=100) as old:
        old.started_at = now - timedelta(minutes=30)
        old.record_usage(input_tokens=1000, output_tokens=100)
    async with guard.request("acme", "rocket-1", input_text="hi", max_tokens=100) as new:
        new.record_usage(input_tokens=1000, output_tokens=100)
    assert old.actual_cost == Decimal("0.00126")  # (1000*0.001 + 100*0.002)/1K + 5%
    assert new.actual_cost == Decimal("0.00441")  # (1000*0.004 + 100*0.002)/1K + 5%


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1.5"])
async def test_an_images_call_in_a_request_block_is_charged_the_invoice(
    model: str, local: LocalBackend, guard: Guard
) -> None:
    from openai.types import ImagesResponse

    from smartspace_budget.guard.usage import openai_images_usage

    reply = ImagesResponse.model_validate(
        {
            "created": 0,
            "usage": {
                "input_tokens": 500,
                "input_tokens_details": {"text_tokens": 200, "image_tokens": 300},
                "output_tokens": 4160,
                "total_tokens": 4660,
            },
        }
    )
    async with guard.request("openai", model, input_text="a lighthouse", max_tokens=5000) as c:
        c.record_usage(openai_images_usage(reply))
    expected = invoice(
        "openai",
        model,
        input_tokens=500,
        input_image_tokens=300,
        output_tokens=4160,
        output_image_tokens=4160,
    )
    assert c.actual_cost == expected
    [entry] = await usage_entries(local)
    assert entry["charged"] == expected
    assert entry["detail"] == {"input_image_tokens": 300, "output_image_tokens": 4160}


async def test_openai_images_are_guarded_and_charged_the_invoice(
    server: ProviderServer, guard: Guard, local: LocalBackend, oai: openai.AsyncOpenAI
) -> None:
    """``images.generate`` through the guarded client: held for the largest output its size,
    quality and ``n`` allow, charged the image tokens it reports at the image prices."""
    server.behaviour.input_tokens, server.behaviour.output_tokens = 20, 2_112
    guarded = guard.wrap(oai)
    answer = await guarded.images.generate(
        model="gpt-image-1", prompt="a lighthouse at dawn", size="1024x1024", quality="medium", n=2
    )
    assert len(answer.data or []) == 2
    (entry,) = await usage_entries(local)
    expected = invoice("openai", "gpt-image-1", input_tokens=20, output_tokens=2_112)
    assert entry["charged"] == expected
    assert not entry["estimate"]
    assert entry["output"] == 2_112
    (held,) = await holds(local)
    # 2 medium 1024x1024 images: 2 x 1,056 output tokens held at gpt-image-1's output price.
    assert held >= invoice("openai", "gpt-image-1", input_tokens=5, output_tokens=2 * 1_056)


def test_image_holds_cover_the_largest_image_the_request_allows() -> None:
    assert image_output_tokens({"size": "1024x1024", "quality": "low"}) == 272
    assert image_output_tokens({"size": "1536x1024", "quality": "high", "n": 3}) == 3 * 6_208
    assert image_output_tokens({}) == 6_240  # size and quality "auto": the largest
    assert image_output_tokens({"size": "256x256", "quality": "standard", "n": True}) == 6_240


async def test_a_refused_image_call_releases_its_hold(
    server: ProviderServer, guard: Guard, local: LocalBackend, oai: openai.AsyncOpenAI
) -> None:
    server.behaviour.mode = "http_error"
    with pytest.raises(openai.APIStatusError):
        await guard.wrap(oai).images.generate(model="gpt-image-1", prompt="x", n=1)
    assert await usage_entries(local) == []
    balance = await local.get_balance(USER, PROJECT)
    assert balance.reserved_amount == 0
