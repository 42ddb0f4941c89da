"""The usage model at the engine's door: unknown names refused, every dimension estimated and
itemized, prices taken at the instant asked for."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import ContextLimitExceededError, InvalidInputError, UnknownModelError
from smartspace_budget.models import CostEstimate
from smartspace_budget.models.dimensions import Usage
from smartspace_budget.pricing import PriceBook, PricingEngine

from .test_pricing_invoice_parity import MODELS, priced_dimensions, usage_for


@pytest.fixture
def engine() -> PricingEngine:
    return PricingEngine(PriceBook.in_memory())


@pytest.mark.parametrize("name", ["gpt-4o-2099-01-01", "gpt-4o-9999", "gpt-4o-latest-beta"])
async def test_names_the_catalog_does_not_know_are_refused(
    engine: PricingEngine, name: str
) -> None:
    with pytest.raises(UnknownModelError, match="did you mean") as caught:
        await engine.get_provider_pricing("openai", name)
    assert "gpt-4o" in caught.value.detail


@pytest.mark.parametrize(
    ("provider", "name", "model"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "openai/gpt-4o", "gpt-4o"),
        ("openai", "GPT-4o", "gpt-4o"),
        ("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("anthropic", "claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ],
)
async def test_known_aliases_keep_working(
    engine: PricingEngine, provider: str, name: str, model: str
) -> None:
    assert (await engine.get_provider_pricing(provider, name)).model_name == model


async def test_an_estimate_itemizes_every_dimension(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost(
        "anthropic",
        "claude-sonnet-4-5",
        input_tokens=10_000,
        expected_output_tokens=2_000,
        cache_write_tokens=4_000,
        usage={"cache_write_1h_tokens": 1_000, "web_searches": 2},
    )
    lines = {line.dimension: line for line in estimate.line_items or ()}
    assert {name: line.quantity for name, line in lines.items()} == {
        "input_tokens": 6_000,
        "output_tokens": 2_000,
        "cache_write_tokens": 3_000,  # the 5-minute writes
        "cache_write_1h_tokens": 1_000,
        "web_searches": 2,
    }
    assert lines["cache_write_1h_tokens"].unit_price == Decimal("0.006")
    assert lines["web_searches"].unit_price == Decimal("0.01")
    assert sum(line.cost for line in lines.values()) == estimate.base_cost
    assert estimate.unpriced is None


async def test_an_estimate_names_what_it_cannot_price(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost(
        "openai", "gpt-4o-mini", input_tokens=100, usage={"pages": 3}
    )
    assert estimate.unpriced == {"pages": Decimal(3)}


async def test_a_usage_object_is_taken_whole(engine: PricingEngine) -> None:
    usage = Usage.of(input_tokens=1000, output_tokens=100, output_audio_tokens=100)
    estimate = await engine.estimate_cost("openai", "gpt-realtime", usage=usage)
    assert (estimate.input_tokens, estimate.output_tokens) == (1000, 100)
    assert [line.dimension for line in estimate.line_items or ()] == [
        "input_tokens",
        "output_audio_tokens",
    ]


async def test_a_dimension_given_twice_is_refused(engine: PricingEngine) -> None:
    with pytest.raises(InvalidInputError, match="given twice"):
        await engine.estimate_cost("openai", "gpt-4o", input_tokens=10, usage={"input_tokens": 20})
    with pytest.raises(InvalidInputError, match="cannot exceed"):
        await engine.estimate_cost(
            "openai", "gpt-4o", input_tokens=10, usage={"input_audio_tokens": 20}
        )
    with pytest.raises(InvalidInputError, match="unknown usage dimension"):
        await engine.estimate_cost("openai", "gpt-4o", usage={"tokens": 20})


@pytest.mark.parametrize(("hour", "per_million"), [(2, "0.3"), (12, "0.15")])
async def test_at_prices_the_call_at_that_instant(
    engine: PricingEngine, hour: int, per_million: str
) -> None:
    at = datetime(2026, 12, 3, hour, tzinfo=UTC)
    estimate = await engine.estimate_cost(
        "deepseek", "deepseek-flash", input_tokens=1_000_000, expected_output_tokens=0, at=at
    )
    assert estimate.base_cost == Decimal(per_million)
    assert estimate.priced_at == at


def _comparable(estimate: CostEstimate) -> dict[str, Any]:
    data = estimate.model_dump()
    data.pop("estimated_at", None)
    data.pop("priced_at", None)
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(MODELS) - 1),
    seed=st.integers(min_value=0, max_value=2**32),
    size=st.sampled_from([0, 1, 999, 128_001, 200_001, 1_000_001]),
)
async def test_compiled_rate_cards_give_the_exact_path_digit_for_digit(
    index: int, seed: int, size: int
) -> None:
    """Whole-usage estimates from a cached price go through a compiled rate card; an
    estimate ``at`` an instant goes through the Decimal arithmetic: they must agree."""
    provider_id, _, model = MODELS[index]
    book = PriceBook.in_memory()
    engine = PricingEngine(book)
    now = datetime.now(UTC)
    pricing = await book.get_pricing(provider_id, model.id, at=now)
    usage = usage_for(priced_dimensions(pricing), size, random.Random(seed))
    try:
        exact = await engine.estimate_cost(provider_id, model.id, usage=usage, at=now)
    except ContextLimitExceededError:
        return
    compiled = await engine.estimate_cost(provider_id, model.id, usage=usage)  # caches the price
    assert _comparable(compiled) == _comparable(exact)
    warm = await engine.estimate_cost(provider_id, model.id, usage=usage)  # the cached fast entry
    assert _comparable(warm) == _comparable(exact)
    assert warm.model_fields_set == exact.model_fields_set


async def test_a_rate_card_answers_cached_whole_usage_estimates(engine: PricingEngine) -> None:
    usage = Usage.of(input_tokens=1000, cached_input_tokens=100, output_tokens=10, web_searches=1)
    await engine.estimate_cost("anthropic", "claude-sonnet-4-5", usage=usage)
    cards = [card for _, card in engine._cards.values()]
    assert cards
    assert all(card is not None for card in cards)
