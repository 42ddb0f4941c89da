"""The pure cost of a finished call: each class of token at its own price."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import InvalidInputError, MissingPricingError
from smartspace_budget.guard.costing import (
    ProviderUsage,
    call_cost,
    usage_base_cost,
    with_platform_fee,
)
from smartspace_budget.guard.usage import anthropic_usage, openai_chat_usage
from smartspace_budget.models import PriceTier, PricingData, PricingModel

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def price(**kw: object) -> PricingData:
    base: dict[str, object] = {
        "provider": "p",
        "model_name": "m",
        "input_price_per_1k": Decimal("0.003"),
        "output_price_per_1k": Decimal("0.015"),
        "effective_date": T0,
        "last_updated": T0,
    }
    base.update(kw)
    return PricingData.model_validate(base)


def test_openai_usage_counts_cached_inside_prompt_and_reasoning_inside_completion() -> None:
    usage = openai_chat_usage(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 400},
            "completion_tokens_details": {"reasoning_tokens": 300},
        }
    )
    assert usage == ProviderUsage(1000, 500, cached_input_tokens=400, reasoning_tokens=300)
    pricing = price(cached_input_price_per_1k=Decimal("0.0015"))
    # 600 fresh * 0.003 + 400 cached * 0.0015 + 500 output (reasoning included) * 0.015
    assert usage_base_cost(pricing, usage) == Decimal("0.0018") + Decimal("0.0006") + Decimal(
        "0.0075"
    )


def test_anthropic_usage_adds_cache_reads_and_writes_to_input() -> None:
    usage = anthropic_usage(
        {
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_read_input_tokens": 2000,
            "cache_creation_input_tokens": 300,
        }
    )
    assert usage == ProviderUsage(2400, 50, cached_input_tokens=2000, cache_write_tokens=300)
    pricing = price(
        cached_input_price_per_1k=Decimal("0.0003"), cache_write_price_per_1k=Decimal("0.00375")
    )
    expected = (
        Decimal(100) * Decimal("0.003")
        + Decimal(2000) * Decimal("0.0003")
        + Decimal(300) * Decimal("0.00375")
        + Decimal(50) * Decimal("0.015")
    ) / 1000
    assert usage_base_cost(pricing, usage) == expected


def test_missing_cache_prices_fall_back_to_the_input_price() -> None:
    usage = ProviderUsage(1000, 0, cached_input_tokens=500, cache_write_tokens=500)
    assert usage_base_cost(price(), usage) == Decimal("0.003")


def test_long_context_tier_applies_from_its_threshold() -> None:
    tier = PriceTier(
        min_input_tokens=200_000,
        input_price_per_1k=Decimal("0.006"),
        output_price_per_1k=Decimal("0.0225"),
    )
    pricing = price(tiers=[tier])
    assert usage_base_cost(pricing, ProviderUsage(199_999, 0)) == Decimal("0.599997")
    assert usage_base_cost(pricing, ProviderUsage(200_000, 1000)) == Decimal("1.2225")


def test_per_request_and_request_fee() -> None:
    per_request = price(
        pricing_model=PricingModel.PER_REQUEST,
        input_price_per_1k=None,
        output_price_per_1k=None,
        request_price=Decimal("0.01"),
    )
    assert usage_base_cost(per_request, ProviderUsage(10, 10)) == Decimal("0.01")
    with_fee = price(request_price=Decimal("0.001"))
    assert usage_base_cost(with_fee, ProviderUsage(1000, 0)) == Decimal("0.004")


def test_per_second_pricing_cannot_be_priced_from_tokens() -> None:
    per_second = price(
        pricing_model=PricingModel.PER_SECOND,
        input_price_per_1k=None,
        output_price_per_1k=None,
        price_per_second=Decimal("0.01"),
    )
    with pytest.raises(MissingPricingError):
        usage_base_cost(per_second, ProviderUsage(1, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_tokens": -1, "output_tokens": 0},
        {"input_tokens": 10, "output_tokens": 0, "cached_input_tokens": 11},
        {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 6},
        {"input_tokens": True, "output_tokens": 0},
    ],
)
def test_inconsistent_usage_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        ProviderUsage(**kwargs)


def test_platform_fee_is_rounded_half_even_to_nano() -> None:
    fee, total = with_platform_fee(Decimal("0.00000001"), Decimal(5))
    assert fee == Decimal("0.000000000")  # 0.5 nano rounds to even (0)
    assert total == Decimal("0.000000010")
    assert call_cost(price(), ProviderUsage(1000, 1000), Decimal(5)) == Decimal("0.018900000")


@settings(max_examples=60, deadline=None)
@given(
    fresh=st.integers(0, 10**7),
    cached=st.integers(0, 10**7),
    written=st.integers(0, 10**7),
    output=st.integers(0, 10**6),
)
def test_cost_never_decreases_with_more_tokens_and_total_is_base_plus_fee(
    fresh: int, cached: int, written: int, output: int
) -> None:
    pricing = price(
        cached_input_price_per_1k=Decimal("0.0003"), cache_write_price_per_1k=Decimal("0.00375")
    )
    usage = ProviderUsage(fresh + cached + written, output, cached, written)
    more = ProviderUsage(fresh + cached + written + 1, output + 1, cached, written)
    assert usage_base_cost(pricing, more) > usage_base_cost(pricing, usage)
    fee, total = with_platform_fee(usage_base_cost(pricing, usage), Decimal(5))
    assert total - fee == usage_base_cost(pricing, usage).quantize(Decimal("1e-9"))
