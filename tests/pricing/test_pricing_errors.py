"""Bad names and bad counts are typed errors whose message names what is wrong; never $0."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smartspace_budget.errors import (
    ContextLimitExceededError,
    InvalidInputError,
    UnknownModelError,
    UnknownProviderError,
)
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.pricing import PricingEngine


async def test_unknown_model(engine: PricingEngine) -> None:
    with pytest.raises(UnknownModelError) as caught:
        await engine.estimate_cost("openai", "gpt-4o-mni", input_tokens=10)
    assert "gpt-4o-mni" in caught.value.detail
    assert "did you mean 'gpt-4o-mini'" in caught.value.detail
    assert caught.value.status_code == 404
    assert caught.value.to_dict()["error"] == "UnknownModelError"


async def test_unknown_provider(engine: PricingEngine) -> None:
    with pytest.raises(UnknownProviderError, match=r"unknown provider 'opneai'.*'openai'"):
        await engine.get_provider_pricing("opneai", "gpt-4")


async def test_unknown_never_costs_nothing(engine: PricingEngine) -> None:
    comparison = await engine.compare_provider_costs(
        [("openai", "no-such-model"), ("nobody", "gpt-4")], 1000, 500
    )
    assert dict(comparison) == {}
    assert isinstance(comparison.failures["openai/no-such-model"], UnknownModelError)
    assert isinstance(comparison.failures["nobody/gpt-4"], UnknownProviderError)


async def test_a_model_priced_per_page_is_charged_per_page(engine: PricingEngine) -> None:
    """Mistral OCR bills pages only: per request at no request fee, pages in the estimate."""
    pricing = await engine.get_provider_pricing("mistral", "mistral-ocr-latest")
    assert pricing.request_price == 0
    page_price = (pricing.dimension_prices or {})["pages"]
    estimate = await engine.estimate_cost(
        "mistral", "mistral-ocr-latest", expected_output_tokens=0, usage={"pages": 12}
    )
    assert estimate.base_cost == 12 * page_price
    assert [(line.dimension, line.quantity) for line in estimate.line_items or ()] == [
        ("pages", Decimal(12))
    ]


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("input_tokens", -1, "input_tokens must be at least 0"),
        ("input_tokens", float("nan"), "input_tokens must be a whole number, got nan"),
        ("input_tokens", 1.5, "input_tokens must be a whole number"),
        ("input_tokens", True, "input_tokens must be a whole number"),
        ("input_tokens", MAX_TOKENS + 1, "above the limit"),
        ("expected_output_tokens", -5, "expected_output_tokens must be at least 0"),
        ("expected_output_tokens", float("nan"), "expected_output_tokens must be a whole number"),
        ("expected_output_tokens", "500", "expected_output_tokens must be a whole number"),
        ("cached_input_tokens", -1, "cached_input_tokens must be at least 0"),
        ("request_count", 0, "request_count must be at least 1"),
        ("characters", -3, "characters must be at least 0"),
        ("seconds", float("nan"), "seconds must be a Decimal"),
        ("seconds", Decimal(-1), "seconds must not be negative"),
    ],
)
async def test_bad_counts(
    engine: PricingEngine, argument: str, value: object, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await engine.estimate_cost("openai", "gpt-4", **{argument: value})  # type: ignore[arg-type]


async def test_bad_counts_in_comparisons(engine: PricingEngine) -> None:
    with pytest.raises(InvalidInputError, match="output_tokens must be at least 0"):
        await engine.compare_provider_costs([("openai", "gpt-4")], 10, -1)
    with pytest.raises(InvalidInputError, match="input_tokens must be a whole number"):
        await engine.compare_provider_costs([("openai", "gpt-4")], float("nan"), 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="pair"):
        await engine.compare_provider_costs(["openai/gpt-4"], 10, 1)  # type: ignore[list-item]


async def test_only_one_kind_of_input(engine: PricingEngine) -> None:
    with pytest.raises(InvalidInputError, match="only one of input_text, input_tokens"):
        await engine.estimate_cost("openai", "gpt-4", "hello", input_tokens=5)


@pytest.mark.parametrize(("provider", "model"), [("", "gpt-4"), ("openai", "   "), ("openai", 4)])
async def test_bad_names(engine: PricingEngine, provider: str, model: object) -> None:
    with pytest.raises(InvalidInputError, match=r"provider|model"):
        await engine.estimate_cost(provider, model, input_tokens=1)  # type: ignore[arg-type]


async def test_over_the_input_limit(engine: PricingEngine) -> None:
    with pytest.raises(ContextLimitExceededError) as caught:
        await engine.estimate_cost("openai", "gpt-4", input_tokens=8193)
    assert "8,193 input tokens exceed the 8,192-token input limit" in caught.value.detail
    assert "openai/gpt-4" in caught.value.detail
    assert caught.value.context["limit"] == 8192
    assert caught.value.status_code == 400
    within = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=8192, expected_output_tokens=0
    )
    assert within.input_tokens == 8192


async def test_over_the_limit_from_text(engine: PricingEngine) -> None:
    text = "token " * 9000
    with pytest.raises(ContextLimitExceededError, match="8,192-token input limit"):
        await engine.estimate_cost("openai", "gpt-4", text)


async def test_input_and_output_together_must_fit_the_context_window(
    engine: PricingEngine,
) -> None:
    """gpt-4's 8,192-token window holds input and output together: 100,000 output is refused."""
    with pytest.raises(ContextLimitExceededError) as caught:
        await engine.estimate_cost(
            "openai", "gpt-4", input_tokens=10, expected_output_tokens=100_000
        )
    assert "exceed the 8,192-token context window" in caught.value.detail
    assert caught.value.context == {"limit": 8192, "tokens": 100_010}
    with pytest.raises(ContextLimitExceededError, match="context window"):
        await engine.estimate_cost(
            "openai", "gpt-4", input_tokens=4_000, expected_output_tokens=4_193
        )
    fits = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=4_000, expected_output_tokens=4_192
    )
    assert fits.output_tokens == 4_192
    pricing = await engine.get_provider_pricing("openai", "gpt-4")
    assert pricing.context_window == pricing.max_input_tokens == 8192
