"""The hot path of ``estimate_cost`` (a cached token price) answers what the general path does.

Once a (provider, model) price is cached, ``estimate_cost`` prices plain token requests from
precomputed per-token rates without re-validating or re-resolving anything. These tests pin
it to the general path (an engine with ``cache_ttl_seconds=0`` never takes the hot path),
check that it really answered, and that the cache's five minutes, invalidation and every
typed error still hold on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import ContextLimitExceededError, InvalidInputError
from smartspace_budget.models import CostEstimate, PricingData, TokenEstimate
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.pricing import PriceBook, PricingEngine

from .conftest import NOW, Clock

TEXTS = ["", "What is machine learning?", "Bonjour, ça va ? 日本語 😀\n\tend", "word " * 3000]
PAIRS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4"),
    ("openai", "openai/gpt-4o-mini"),
    ("anthropic", "claude-3-opus-20240229"),
    ("anthropic", "claude-sonnet-4-5"),  # a long-context tier from 200,001 tokens
    ("google", "gemini-1.5-pro"),  # and from 128,001
    ("mistral", "mistral-large-latest"),
]


def comparable(estimate: CostEstimate) -> dict[str, Any]:
    data = estimate.model_dump()
    del data["estimated_at"]
    return data


class Counted:
    """Wraps an engine's general path to count how often it answered."""

    def __init__(self, engine: PricingEngine) -> None:
        self.calls = 0
        general: Callable[..., Awaitable[CostEstimate]] = engine._estimate_general

        async def counted(*args: Any) -> CostEstimate:
            self.calls += 1
            return await general(*args)

        engine._estimate_general = counted  # type: ignore[method-assign,assignment]


@pytest.fixture
def book() -> PriceBook:
    return PriceBook(catalog=True, clock=Clock())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pair=st.sampled_from(PAIRS),
    source=st.one_of(
        st.sampled_from(TEXTS).map(lambda text: {"input_text": text}),
        st.integers(0, 300_000).map(lambda n: {"input_tokens": n}),
        st.just({}),
    ),
    output=st.integers(0, 4096),
)
async def test_hot_path_equals_the_general_path(
    book: PriceBook, pair: tuple[str, str], source: dict[str, Any], output: int
) -> None:
    general = PricingEngine(book, cache_ttl_seconds=0)
    hot = PricingEngine(book)
    await hot.estimate_cost(*pair, input_tokens=1)  # caches the price
    counted = Counted(hot)
    kwargs = {**source, "expected_output_tokens": output}
    refused: str | None = None
    try:
        expected = await general.estimate_cost(*pair, **kwargs)
    except ContextLimitExceededError as error:
        refused = error.detail
    if refused is not None:
        with pytest.raises(ContextLimitExceededError) as caught:
            await hot.estimate_cost(*pair, **kwargs)
        assert caught.value.detail == refused
        return
    estimate = await hot.estimate_cost(*pair, **kwargs)
    assert comparable(estimate) == comparable(expected)
    same_instant = expected.model_copy(update={"estimated_at": estimate.estimated_at})
    assert estimate.to_json() == same_instant.to_json()
    assert CostEstimate.model_validate(estimate.model_dump()) == estimate
    if estimate.input_token_estimate is not None:
        assert TokenEstimate.model_validate(estimate.input_token_estimate.model_dump()) == (
            estimate.input_token_estimate
        )
    # Only a long-context tier leaves the hot path here (no text is long enough for a thread).
    tiers = (await book.get_pricing(*pair)).tiers or []
    in_tier = any(estimate.input_tokens >= tier.min_input_tokens for tier in tiers)
    assert counted.calls == (1 if in_tier else 0)


async def test_the_hot_path_answers_repeated_estimates(book: PriceBook) -> None:
    engine = PricingEngine(book)
    first = await engine.estimate_cost("openai", "gpt-4o", "What is machine learning?")
    counted = Counted(engine)
    for _ in range(3):
        again = await engine.estimate_cost("openai", "gpt-4o", "What is machine learning?")
        assert comparable(again) == comparable(first)
        assert again.estimated_at >= first.estimated_at
    assert counted.calls == 0


async def test_other_requests_take_the_general_path(book: PriceBook) -> None:
    engine = PricingEngine(book)
    await engine.estimate_cost("openai", "gpt-4o", input_tokens=1)
    counted = Counted(engine)
    others: list[dict[str, Any]] = [
        {"input_tokens": 100, "cached_input_tokens": 50},
        {"input_tokens": 100, "cache_write_tokens": 50},
        {"input_tokens": 100, "request_count": 2},
        {"input_tokens": 100, "currency": "USD"},
        {"messages": [{"role": "user", "content": "Hi"}]},
        {"input_text": "x" * 70_000},  # counted in a worker thread
    ]
    for kwargs in others:
        await engine.estimate_cost("openai", "gpt-4o", **kwargs)
    assert counted.calls == len(others)


async def test_a_new_price_reaches_the_hot_path_after_five_minutes(book: PriceBook) -> None:
    now = [1000.0]
    engine = PricingEngine(book, clock=lambda: now[0])
    before = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=1000, expected_output_tokens=0
    )
    assert before.base_cost == Decimal("0.03")
    added = await book.add_price(
        PricingData(
            provider="openai",
            model_name="gpt-4",
            input_price_per_1k=Decimal("0.02"),
            output_price_per_1k=Decimal("0.05"),
            effective_date=NOW - timedelta(seconds=1),
            last_updated=NOW,
        )
    )
    now[0] += 299
    cached = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=1000, expected_output_tokens=0
    )
    assert (cached.base_cost, cached.price_version) == (before.base_cost, before.price_version)
    now[0] += 2
    fresh = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=1000, expected_output_tokens=0
    )
    assert (fresh.base_cost, fresh.price_version) == (Decimal("0.02"), added.version)


async def test_invalidate_reaches_the_hot_path(book: PriceBook) -> None:
    engine = PricingEngine(book)
    await engine.estimate_cost("openai", "gpt-4", input_tokens=1000)
    added = await book.add_price(
        PricingData(
            provider="openai",
            model_name="gpt-4",
            input_price_per_1k=Decimal("0.02"),
            output_price_per_1k=Decimal("0.05"),
            effective_date=datetime(2026, 1, 1, tzinfo=UTC),
            last_updated=NOW,
        )
    )
    engine.invalidate()
    estimate = await engine.estimate_cost("openai", "gpt-4", input_tokens=1000)
    assert estimate.price_version == added.version


async def test_a_changed_fee_applies_on_the_hot_path(book: PriceBook) -> None:
    engine = PricingEngine(book)
    await engine.estimate_cost("openai", "gpt-4", input_tokens=1000, expected_output_tokens=0)
    engine.platform_fee_percent = Decimal("10")
    estimate = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=1000, expected_output_tokens=0
    )
    assert (estimate.platform_fee, estimate.total_cost) == (Decimal("0.003"), Decimal("0.033"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_tokens": -1}, "input_tokens must be at least 0"),
        ({"input_tokens": float("nan")}, "input_tokens must be a whole number, got nan"),
        ({"input_tokens": True}, "input_tokens must be a whole number"),
        ({"input_tokens": MAX_TOKENS + 1}, "above the limit"),
        ({"expected_output_tokens": -5}, "expected_output_tokens must be at least 0"),
        ({"expected_output_tokens": 2.0}, "expected_output_tokens must be a whole number"),
        ({"expected_output_tokens": False}, "expected_output_tokens must be a whole number"),
        ({"cached_input_tokens": 0.0}, "cached_input_tokens must be a whole number"),
        ({"cache_write_tokens": False}, "cache_write_tokens must be a whole number"),
        ({"request_count": True}, "request_count must be a whole number"),
        ({"request_count": 0}, "request_count must be at least 1"),
        ({"input_text": b"bytes"}, "input_text must be a string"),
        ({"input_text": "hi", "input_tokens": 2}, "only one of input_text, input_tokens"),
    ],
)
async def test_bad_input_is_refused_on_a_warm_engine(
    book: PriceBook, kwargs: dict[str, Any], message: str
) -> None:
    engine = PricingEngine(book)
    await engine.estimate_cost("openai", "gpt-4", input_tokens=1)
    with pytest.raises(InvalidInputError, match=message):
        await engine.estimate_cost("openai", "gpt-4", **kwargs)


async def test_over_the_limit_on_a_warm_engine(book: PriceBook) -> None:
    engine = PricingEngine(book)
    await engine.estimate_cost("openai", "gpt-4", input_tokens=1)
    with pytest.raises(ContextLimitExceededError, match="8,192-token input limit"):
        await engine.estimate_cost("openai", "gpt-4", input_tokens=8193)
    with pytest.raises(ContextLimitExceededError, match="8,192-token input limit"):
        await engine.estimate_cost("openai", "gpt-4", "token " * 9000)


async def test_unhashable_names_are_refused(book: PriceBook) -> None:
    engine = PricingEngine(book)
    await engine.estimate_cost("openai", "gpt-4", input_tokens=1)
    with pytest.raises(InvalidInputError, match="model"):
        await engine.estimate_cost("openai", ["gpt-4"], input_tokens=1)  # type: ignore[arg-type]
