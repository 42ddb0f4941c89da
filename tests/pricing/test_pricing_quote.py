"""Compiled quotes (``pricing._quote``) give the general path's estimate, digit for digit.

The general path computes with Decimal contexts and ``money.quantize``; a quote computes
with integers and makes each Decimal at the end. These tests drive both with prices whose
per-token rates are not whole nano-units (extra places, half-way cases), fees that are not
whole percents, and token counts up to the limit, and compare every field and the JSON.
Prices and fees a quote must not take (digits beyond its limits, negative zero) still
answer through the general path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import PrivateAttr

from smartspace_budget.models import CostEstimate, PricingData, SpecModel, TokenEstimate
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.pricing import PricingEngine, tokens
from smartspace_budget.pricing._quote import compile_fee, compile_quote

EFFECTIVE = datetime(2026, 1, 1, tzinfo=UTC)


class OnePrice:
    """A pricing reader that knows one price version."""

    def __init__(self, pricing: PricingData) -> None:
        self.pricing = pricing

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        return self.pricing

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        return [self.pricing]

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        return [(self.pricing.provider, self.pricing.model_name)]


def price(input_price: Decimal, output_price: Decimal, **extra: Any) -> PricingData:
    return PricingData(
        provider="acme",
        model_name="m1",
        input_price_per_1k=input_price,
        output_price_per_1k=output_price,
        effective_date=EFFECTIVE,
        last_updated=EFFECTIVE,
        version="v1",
        **extra,
    )


def comparable(estimate: CostEstimate) -> dict[str, Any]:
    data = estimate.model_dump()
    del data["estimated_at"]
    return data


async def both(
    pricing: PricingData, fee: Decimal, **kwargs: Any
) -> tuple[CostEstimate, CostEstimate, bool]:
    """The general path's estimate, the warm engine's, and whether a quote answered."""
    general = PricingEngine(OnePrice(pricing), platform_fee_percent=fee, cache_ttl_seconds=0)
    warm = PricingEngine(OnePrice(pricing), platform_fee_percent=fee)
    await warm.estimate_cost("acme", "m1", input_tokens=0)
    expected = await general.estimate_cost("acme", "m1", **kwargs)
    estimate = await warm.estimate_cost("acme", "m1", **kwargs)
    compiled = ("acme", "m1") in warm._quotes and warm._fee is not None
    return expected, estimate, compiled


def assert_same(estimate: CostEstimate, expected: CostEstimate) -> None:
    assert comparable(estimate) == comparable(expected)
    same_instant = expected.model_copy(update={"estimated_at": estimate.estimated_at})
    assert estimate.to_json() == same_instant.to_json()
    assert estimate.model_fields_set == expected.model_fields_set
    assert CostEstimate.model_validate(estimate.model_dump()) == estimate


prices = st.decimals(min_value=0, max_value=1000, places=12, allow_nan=False).map(
    lambda d: d.normalize() if d else d
)
fees = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    input_price=prices,
    output_price=prices,
    fee=fees,
    tokens=st.one_of(st.integers(0, 10_000), st.integers(0, MAX_TOKENS)),
    output=st.integers(0, 100_000),
)
async def test_a_quote_equals_the_general_path(
    input_price: Decimal, output_price: Decimal, fee: Decimal, tokens: int, output: int
) -> None:
    expected, estimate, compiled = await both(
        price(input_price, output_price),
        fee,
        input_tokens=tokens,
        expected_output_tokens=output,
    )
    assert compiled
    assert_same(estimate, expected)


@pytest.mark.parametrize(
    ("input_price", "output_price", "tokens", "fee"),
    [
        # 0.0000000005 per token: every odd count is half a nano-unit, rounded to even.
        (Decimal("0.0000005"), Decimal("0.0000015"), 1, Decimal("5")),
        (Decimal("0.0000005"), Decimal("0.0000015"), 3, Decimal("5")),
        (Decimal("0.0000005"), Decimal("0.0000015"), 5, Decimal("2.5")),
        # Fees landing exactly half-way: 10 nano x 5% = 0.5 nano, 50 nano x 5% = 2.5 nano.
        (Decimal("0.00001"), Decimal("0"), 1, Decimal("5")),
        (Decimal("0.00001"), Decimal("0"), 5, Decimal("5")),
        (Decimal("0.00001"), Decimal("0"), 3, Decimal("5")),
        (Decimal("2.5E+2"), Decimal("1E-20"), 7, Decimal("1E+1")),
        (Decimal("0"), Decimal("0"), 12345, Decimal("0")),
    ],
)
async def test_rounding_edges_match(
    input_price: Decimal, output_price: Decimal, tokens: int, fee: Decimal
) -> None:
    expected, estimate, compiled = await both(
        price(input_price, output_price), fee, input_tokens=tokens, expected_output_tokens=1
    )
    assert compiled
    assert_same(estimate, expected)


async def test_a_text_estimate_matches() -> None:
    expected, estimate, compiled = await both(
        price(Decimal("0.0025"), Decimal("0.01")),
        Decimal("5"),
        input_text="What is machine learning?",
    )
    assert compiled
    assert estimate.input_token_estimate is not None
    assert_same(estimate, expected)


@pytest.mark.parametrize(
    "pricing",
    [
        price(Decimal("1.234567890123456789012345678901"), Decimal("1")),  # 31 digits
        price(Decimal("1E-30"), Decimal("1")),  # 27 places below nano per token
        price(Decimal("1E+20"), Decimal("1")),  # too dear to stay within the exact digits
        price(Decimal("1"), Decimal("1"), request_price=Decimal("0.01")),
        price(Decimal("1"), Decimal("1"), currency="EUR"),
    ],
)
async def test_prices_outside_the_limits_are_not_compiled(pricing: PricingData) -> None:
    assert compile_quote("acme\x1fm1", pricing) is None


@pytest.mark.parametrize(
    "fee", [Decimal("-0"), Decimal("1.23456789012345678901"), Decimal("5E+21"), Decimal("NaN")]
)
def test_fees_outside_the_limits_are_not_compiled(fee: Decimal) -> None:
    assert compile_fee(fee) is None


async def test_an_uncompiled_fee_still_answers() -> None:
    pricing = price(Decimal("0.0025"), Decimal("0.01"))
    fee = Decimal("1.23456789012345678901")
    expected, estimate, compiled = await both(pricing, fee, input_tokens=1000)
    assert not compiled
    assert_same(estimate, expected)


def test_the_builder_refuses_models_it_cannot_build_unvalidated() -> None:
    class WithPrivate(SpecModel):
        name: str
        _seen: int = PrivateAttr(default=0)

    with pytest.raises(TypeError, match="WithPrivate"):
        builder(WithPrivate)


@pytest.mark.parametrize(
    ("model", "provider"),
    [("gpt-4o", "openai"), ("gpt-4", None), ("claude-3-opus-20240229", "anthropic")],
)
@pytest.mark.parametrize("text", ["", "What is machine learning?", "word " * 200])
def test_a_planned_token_estimate_equals_the_first(
    model: str, provider: str | None, text: str
) -> None:
    tokens.clear_encoding_cache()
    first = tokens.estimate_tokens(text, model, provider)  # plans and loads: general path
    again = tokens.estimate_tokens(text, model, provider)  # the hot path's template
    assert again == first
    assert again.to_json() == first.to_json()
    assert again.model_fields_set == first.model_fields_set
    assert TokenEstimate.model_validate(again.model_dump()) == again
