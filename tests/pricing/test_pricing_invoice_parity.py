"""Every charge equals genai-prices' own price, over the whole catalog and every dimension.

For every provider/model the catalog prices, usages exercise each dimension that model
prices (with their nested counts), each long-context tier boundary (at, just below and just
above), the catalog's minimums, each time-of-day window's edges and the instants around each
dated price change. The project's cost (the price version in force at the instant, through
the price book, then ``exact_cost``) must equal genai-prices' ``calc_price`` for the same
usage and instant, to the nano-dollar. A hypothesis property test adds random usages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartspace_budget.models import PricingData
from smartspace_budget.models.dimensions import DIMENSIONS, Usage
from smartspace_budget.money import quantize
from smartspace_budget.prices.snapshot import GenaiCatalog
from smartspace_budget.pricing import PriceBook
from smartspace_budget.pricing.cost import exact_cost

CASES: dict[str, int] = {}
"""Cases run per test, reported in pytest's summary (tests/pricing/conftest.py)."""

_MICRO = timedelta(microseconds=1)
_DAY = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def genai_usage(usage: Usage) -> genai_prices.Usage:
    """The same usage in genai-prices' keys (our seconds are input audio seconds)."""
    values: dict[str, Any] = {
        d.usage_key: usage.amount(d.field) for d in DIMENSIONS if d.field != "request_count"
    }
    values["audio_seconds"] = values["input_audio_seconds"]
    return genai_prices.Usage(**values)


def catalog_models() -> list[tuple[str, Any, Any]]:
    """(provider id, genai-prices provider, model) for every model that has prices."""
    catalog = GenaiCatalog()
    found = []
    for provider in catalog.providers:
        for model in provider.models:
            try:
                catalog.versions(provider.id, model.id)
            except Exception:  # models the catalog lists without prices
                continue
            found.append((provider.id, provider, model))
    return found


MODELS = catalog_models()


def priced_dimensions(pricing: PricingData) -> set[str]:
    """The usage dimensions a version (its tiers and time-of-day windows too) prices."""
    names = {"input_tokens", "output_tokens", "request_count"}
    sources: list[Any] = [pricing, *(pricing.tiers or ()), *(pricing.time_of_day or ())]
    for window in pricing.time_of_day or ():
        sources += window.tiers or ()
    for source in sources:
        names |= set(source.dimension_prices or {})
        if source.cached_input_price_per_1k is not None:
            names.add("cached_input_tokens")
        if source.cache_write_price_per_1k is not None:
            names.add("cache_write_tokens")
    if pricing.price_per_character is not None:
        names.add("characters")
    if pricing.price_per_second is not None:
        names.add("seconds")
    if "cache_write_1h_tokens" in names:
        names.add("cache_write_tokens")
    return names


def usage_for(dims: set[str], input_tokens: int, rng: random.Random, **fixed: Any) -> Usage:
    """A consistent usage with ``input_tokens`` input, touching every dimension in ``dims``."""
    counts: dict[str, Any] = {"input_tokens": input_tokens}
    room = input_tokens

    def take(name: str, share: int, within: int | None = None) -> int:
        nonlocal room
        limit = room if within is None else min(room, within)
        value = rng.randint(0, max(0, limit // share)) if name in dims else 0
        counts[name] = value
        room -= value
        return value

    cached = take("cached_input_tokens", 3)
    counts["cached_input_audio_tokens"] = (
        rng.randint(0, cached // 2) if "cached_input_audio_tokens" in dims else 0
    )
    counts["cached_input_image_tokens"] = (
        rng.randint(0, (cached - counts["cached_input_audio_tokens"]) // 2)
        if "cached_input_image_tokens" in dims
        else 0
    )
    writes = take("cache_write_tokens", 3)
    counts["cache_write_1h_tokens"] = (
        rng.randint(0, writes) if "cache_write_1h_tokens" in dims else 0
    )
    audio = take("input_audio_tokens", 3)
    counts["input_audio_tokens"] = audio + counts["cached_input_audio_tokens"]
    image = take("input_image_tokens", 3)
    counts["input_image_tokens"] = image + counts["cached_input_image_tokens"]
    take("input_video_tokens", 3)
    output = rng.choice([0, 1, 777, 20_000])
    counts["output_tokens"] = output
    out_room = output
    for name in (
        "reasoning_tokens",
        "citation_tokens",
        "output_audio_tokens",
        "output_image_tokens",
        "output_video_tokens",
    ):
        value = rng.randint(0, out_room // 2) if name in dims else 0
        counts[name] = value
        out_room -= value
    for name in ("web_searches", "file_searches", "messages"):
        counts[name] = rng.randint(1, 7) if name in dims else 0
    pages = rng.randint(1, 40) if "pages" in dims else 0
    counts["pages"] = pages
    counts["annotated_pages"] = rng.randint(0, pages) if "annotated_pages" in dims else 0
    counts["characters"] = rng.randint(1, 9_000) if "characters" in dims else None
    counts["seconds"] = Decimal(rng.choice([1, 9, 10, 11, 61, 3599])) if "seconds" in dims else None
    counts.update(fixed)
    return Usage.of(**counts)


def instants(versions: list[PricingData]) -> Iterator[datetime]:
    """Around each dated change, and each time-of-day window's edges on a plain day."""
    yield _DAY
    for version in versions[1:]:
        yield version.effective_date
        yield version.effective_date - _MICRO
        yield version.effective_date + timedelta(hours=13)
    for version in versions:
        for window in version.time_of_day or ():
            for edge in (window.start_time, window.end_time):
                at = datetime.combine(max(_DAY, version.effective_date).date(), edge, UTC)
                yield at
                yield at - _MICRO


def tier_sizes(pricing: PricingData) -> set[int]:
    sizes = {0, 1, 1_000}
    tiers = [*(pricing.tiers or ())]
    for window in pricing.time_of_day or ():
        tiers += window.tiers or ()
    for tier in tiers:
        start = tier.min_input_tokens
        sizes |= {start - 2, start - 1, start, start + 1}
    return {size for size in sizes if size >= 0}


def ours(book_pricing: PricingData, usage: Usage, at: datetime) -> Decimal | str:
    try:
        return quantize(exact_cost(book_pricing, usage, at=at).total)
    except Exception as error:
        return f"{type(error).__name__}"


def theirs(provider: Any, model: Any, usage: Usage, at: datetime) -> Decimal | str:
    try:
        price = model.calc_price(genai_usage(usage), provider, genai_request_timestamp=at)
    except Exception as error:
        return f"{type(error).__name__}"
    return quantize(price.total_price)


async def test_every_catalog_model_charges_what_genai_prices_charges() -> None:
    book = PriceBook.in_memory()
    rng = random.Random(20261203)
    mismatches = []
    cases = 0
    for provider_id, provider, model in MODELS:
        versions = await book.get_price_history(provider_id, model.id)
        for at in instants(versions):
            pricing = await book.get_pricing(provider_id, model.id, at=at)
            dims = priced_dimensions(pricing)
            for size in sorted(tier_sizes(pricing)):
                usage = usage_for(dims, size, rng)
                cases += 1
                mine, genai = ours(pricing, usage, at), theirs(provider, model, usage, at)
                if mine != genai:
                    mismatches.append((provider_id, model.id, at, usage.to_dict(), mine, genai))
    CASES["whole catalog"] = cases
    assert cases > 10_000
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize(
    ("seconds", "billed"),
    [("0", "0"), ("1", "10"), ("9.5", "10"), ("10", "10"), ("10.25", "10.25"), ("61", "61")],
)
async def test_groq_whisper_bills_at_least_ten_seconds(seconds: str, billed: str) -> None:
    book = PriceBook.in_memory()
    pricing = await book.get_pricing("groq", "whisper-large-v3")
    assert pricing.minimum_billed_seconds == 10
    cost = exact_cost(pricing, Usage.of(seconds=Decimal(seconds)), at=_DAY)
    assert pricing.price_per_hour is not None
    assert quantize(cost.total) == quantize(pricing.price_per_hour * Decimal(billed) / 3600)


async def test_deepseek_off_peak_is_charged_off_peak() -> None:
    """The issue's case: half of DeepSeek's day was charged the peak price."""
    book = PriceBook.in_memory()
    pricing = await book.get_pricing("deepseek", "deepseek-chat")
    usage = Usage.of(input_tokens=1_000_000, output_tokens=1_000_000)
    peak = exact_cost(pricing, usage, at=datetime.combine(_DAY.date(), time(8), UTC)).total
    off_peak = exact_cost(pricing, usage, at=datetime.combine(_DAY.date(), time(20), UTC)).total
    assert (peak, off_peak) == (Decimal("1.37"), Decimal("0.685"))


@pytest.mark.parametrize(
    ("provider", "model", "counts", "expected"),
    [
        # 1-hour cache writes at their own price (the 5-minute one was charged before).
        ("anthropic", "claude-sonnet-4-5", {"input_tokens": 100_000,
         "cache_write_tokens": 100_000, "cache_write_1h_tokens": 100_000}, "0.6"),
        # Web searches at $10 per thousand on top of the tokens.
        ("anthropic", "claude-sonnet-4-5", {"input_tokens": 1000, "web_searches": 3}, "0.033"),
        # Audio output tokens at the audio price, not the text one.
        ("openai", "gpt-realtime", {"output_tokens": 1000, "output_audio_tokens": 1000}, "0.064"),
        # Reasoning tokens at their own price where the catalog has one.
        ("openrouter", "perplexity/sonar-deep-research", {"output_tokens": 1000,
         "reasoning_tokens": 1000}, "0.003"),
        # Pages (Mistral OCR), no longer refused.
        ("mistral", "mistral-ocr-latest", {"pages": 1000}, "4"),
    ],
)  # fmt: skip
async def test_the_issues_examples(
    provider: str, model: str, counts: dict[str, int], expected: str
) -> None:
    book = PriceBook.in_memory()
    pricing = await book.get_pricing(provider, model)
    assert exact_cost(pricing, Usage.of(**counts), at=_DAY).total == Decimal(expected)


def test_unpriced_dimensions_are_named_not_dropped() -> None:
    pricing = PricingData.model_validate(
        {
            "provider": "acme",
            "model_name": "m",
            "input_price_per_1k": "0.001",
            "output_price_per_1k": "0.002",
            "effective_date": "2026-01-01T00:00:00Z",
            "last_updated": "2026-01-01T00:00:00Z",
        }
    )
    cost = exact_cost(
        pricing, Usage.of(input_tokens=1000, input_audio_tokens=10, web_searches=2), at=_DAY
    )
    assert cost.total == Decimal("0.001")  # audio falls back to the input price
    assert cost.unpriced == (("web_searches", 2),)


MODEL_INDEX = st.integers(min_value=0, max_value=len(MODELS) - 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=MODEL_INDEX,
    seed=st.integers(min_value=0, max_value=2**32),
    size=st.integers(min_value=0, max_value=3_000_000),
    minute=st.integers(min_value=0, max_value=60 * 24 * 400),
)
async def test_random_usages_agree_with_genai_prices(
    index: int, seed: int, size: int, minute: int
) -> None:
    provider_id, provider, model = MODELS[index]
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    book = PriceBook.in_memory()
    pricing = await book.get_pricing(provider_id, model.id, at=at)
    usage = usage_for(priced_dimensions(pricing), size, random.Random(seed))
    CASES["random usages"] = CASES.get("random usages", 0) + 1
    assert ours(pricing, usage, at) == theirs(provider, model, usage, at)
