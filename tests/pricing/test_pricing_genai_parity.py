"""Our cost equals genai-prices' ``calc_price`` to the nano-dollar for the same usage.

Each case goes through ``PricingEngine.estimate_cost`` on the genai-prices catalog, at the
same instant as genai-prices' calculation (dated prices differ over time), and compares
``base_cost`` (no platform fee) with genai-prices' ``total_price`` rounded to nine places.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from smartspace_budget.money import quantize
from smartspace_budget.pricing import PriceBook, PricingEngine

from .conftest import Clock

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    at: datetime = AT
    # usage of other units: (our keyword, genai-prices usage key, value)
    extra: tuple[str, str, int] | None = None
    # how genai-prices needs the names, when we accept a form it does not
    genai_provider: str | None = None
    genai_model: str | None = None


CASES = [
    Case("openai", "gpt-4", 1000, 500),
    Case("openai", "gpt-3.5-turbo", 1234, 567),
    Case("openai", "gpt-4o", 10_000, 2000, cache_read=4000),
    Case("openai", "gpt-4o-mini", 1, 1),
    Case("openai", "gpt-4o-2024-05-13", 3000, 1000),
    Case("openai", "gpt-4o-2024-08-06", 777, 333, cache_read=512),
    Case("openai", "o1", 5000, 20_000, cache_read=1000),
    Case("openai", "gpt-4.1", 100_000, 5000),
    Case("openai", "gpt-5", 7, 0),
    Case("openai", "openai/gpt-4o-mini", 113_456, 7890, genai_model="gpt-4o-mini"),
    Case("anthropic", "claude-3-opus-20240229", 2000, 1000, cache_read=500, cache_write=300),
    Case("anthropic", "claude-3-sonnet", 1000, 500),
    Case("anthropic", "claude-3-5-haiku-20241022", 50_000, 4000, cache_write=10_000),
    Case("anthropic", "claude-sonnet-4-5", 200_000, 1000, cache_read=50_000),  # at the tier start
    Case("anthropic", "claude-sonnet-4-5", 200_001, 1000, cache_read=50_000),  # in the tier
    Case("anthropic", "claude-sonnet-4-5", 250_000, 9000, cache_read=50_000, cache_write=10_000),
    Case("google", "gemini-pro", 1000, 500),
    Case("google", "gemini-1.5-pro", 128_000, 100),
    Case("google", "gemini-1.5-pro", 128_001, 100),
    Case("google", "gemini-2.5-pro", 300_000, 20_000, cache_read=100_000),
    Case("vertex_ai", "claude-3-opus@20240229", 4000, 200, genai_provider="google"),
    Case("mistral", "mistral-large-latest", 3000, 3000),
    Case("mistral", "mistral-large-4", 10_000, 1000, at=datetime(2026, 1, 1, tzinfo=UTC)),
    Case("mistral", "mistral-large-4", 10_000, 1000, at=datetime(2026, 10, 21, tzinfo=UTC)),
    Case("mistral", "mistral-large-4", 10_000, 1000, at=datetime(2026, 11, 2, tzinfo=UTC)),
    Case("x-ai", "grok-3", 2500, 800),
    Case("groq", "llama-3.1-8b-instant", 90_000, 4096),
    Case("cohere", "command-r-plus", 1500, 1500),
    Case("perplexity", "sonar", 1000, 1000),  # plus a per-request price
    Case("azure", "gpt-4o", 2000, 100),
    Case("aws", "amazon.nova-pro-v1:0", 6000, 600),
    Case("openai", "tts-1", extra=("characters", "input_characters", 4321)),
    Case("openai", "whisper-1", extra=("seconds", "audio_seconds", 97)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.provider}/{c.model}@{c.input_tokens}")
async def test_cost_equals_genai_prices(case: Case) -> None:
    engine = PricingEngine(PriceBook(catalog=True, clock=Clock(case.at)))
    usage: dict[str, int] = {
        "input_tokens": case.input_tokens,
        "output_tokens": case.output_tokens,
        "cache_read_tokens": case.cache_read,
        "cache_write_tokens": case.cache_write,
    }
    kwargs: dict[str, int] = {}
    if case.extra is not None:
        ours, theirs, value = case.extra
        usage = {theirs: value}
        kwargs[ours] = value
    expected = calc_price(
        Usage(**{k: v for k, v in usage.items() if v}),
        case.genai_model or case.model,
        provider_id=case.genai_provider or case.provider,
        genai_request_timestamp=case.at,
    )
    estimate = await engine.estimate_cost(
        case.provider,
        case.model,
        input_tokens=case.input_tokens,
        expected_output_tokens=case.output_tokens,
        cached_input_tokens=case.cache_read,
        cache_write_tokens=case.cache_write,
        **kwargs,  # type: ignore[arg-type]
    )
    assert expected.total_price > 0
    assert estimate.base_cost == quantize(expected.total_price)
    assert estimate.total_cost == estimate.base_cost + quantize(estimate.base_cost * 5 / 100)


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({(c.provider, c.model, c.input_tokens, c.at) for c in CASES}) == len(CASES)


async def test_long_context_tier_reprices_every_token() -> None:
    """Crossing a tier changes the price of all input tokens, as genai-prices models it."""
    book = PriceBook(catalog=True, clock=Clock(AT))
    pricing = await book.get_pricing("anthropic", "claude-sonnet-4-5")
    assert pricing.tiers is not None
    assert pricing.tiers[0].min_input_tokens == 200_001
    engine = PricingEngine(book)
    below = await engine.estimate_cost("anthropic", "claude-sonnet-4-5", input_tokens=200_000,
                                       expected_output_tokens=0)  # fmt: skip
    above = await engine.estimate_cost("anthropic", "claude-sonnet-4-5", input_tokens=200_001,
                                       expected_output_tokens=0)  # fmt: skip
    assert below.base_cost == Decimal("0.6")
    assert above.base_cost == quantize(
        Decimal(200_001) * pricing.tiers[0].input_price_per_1k / 1000
    )
    assert above.base_cost > 2 * below.base_cost - Decimal("0.01")
