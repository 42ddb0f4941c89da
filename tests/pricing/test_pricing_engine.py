"""PricingEngine: the spec's methods, its 5-minute price cache, comparisons and failures."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from smartspace_budget.backend.base import Backend
from smartspace_budget.errors import (
    BackendUnavailableError,
    InvalidInputError,
    UnknownModelError,
)
from smartspace_budget.models import CostEstimate, PricingData, TokenEstimationMethod
from smartspace_budget.pricing import PriceBook, PricingEngine, ProviderComparison

SPEC_PAIRS = [
    ("openai", "gpt-4"),
    ("openai", "gpt-3.5-turbo"),
    ("anthropic", "claude-3-opus"),
    ("anthropic", "claude-3-sonnet"),
    ("google", "gemini-pro"),
]


class CountingBackend:
    """A price source that counts reads and can be made to fail or to be slow."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self.calls = 0
        self.fail = False
        self.delay = 0.0

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise BackendUnavailableError("backend down")
        return await self.book.get_pricing(provider, model, at=at)

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        return await self.book.get_price_history(provider, model, days=days)

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        return await self.book.list_models(provider)


async def test_spec_example_estimate(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost(
        provider="openai",
        model="gpt-4",
        input_text="What is machine learning?",
        expected_output_tokens=500,
    )
    # A one-message chat: 5 text tokens (cl100k_base) + 3 per message + 1 for the role
    # "user" + 3 for the reply primer = 12 at $0.03/1K, 500 at $0.06/1K, plus 5%.
    assert estimate.input_tokens == 12
    assert estimate.input_token_estimate is not None
    assert estimate.input_token_estimate.method is TokenEstimationMethod.EXACT
    assert estimate.input_token_estimate.character_count == len("What is machine learning?")
    assert estimate.base_cost == Decimal("0.03036")
    assert estimate.platform_fee == Decimal("0.001518")
    assert estimate.total_cost == Decimal("0.031878")
    assert CostEstimate.from_json(estimate.to_json()) == estimate
    chat = await engine.estimate_cost(
        "openai", "gpt-4", messages=[{"role": "user", "content": "What is machine learning?"}]
    )
    assert chat.input_tokens == estimate.input_tokens  # as the guard counts the chat


async def test_as_chat_false_counts_the_bare_text(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost(
        provider="openai",
        model="gpt-4",
        input_text="What is machine learning?",
        expected_output_tokens=500,
        as_chat=False,
    )
    # 5 tokens (cl100k_base) at $0.03/1K + 500 at $0.06/1K, plus 5%.
    assert estimate.input_tokens == 5
    assert estimate.base_cost == Decimal("0.03015")
    assert estimate.total_cost == Decimal("0.0316575")
    with pytest.raises(InvalidInputError):
        await engine.estimate_cost("openai", "gpt-4", input_text="x", as_chat=1)  # type: ignore[arg-type]


async def test_calibrated_chat_scales_the_formatting_too(engine: PricingEngine) -> None:
    text = "Summarise the quarterly report in three bullet points."
    bare = await engine.estimate_cost("anthropic", "claude-3-opus", input_text=text, as_chat=False)
    chat = await engine.estimate_cost("anthropic", "claude-3-opus", input_text=text)
    messages = await engine.estimate_cost(
        "anthropic", "claude-3-opus", messages=[{"role": "user", "content": text}]
    )
    assert chat.input_tokens == messages.input_tokens > bare.input_tokens


async def test_spec_example_comparison(engine: PricingEngine) -> None:
    comparison = await engine.compare_provider_costs(
        providers=SPEC_PAIRS, input_tokens=1000, output_tokens=500
    )
    assert isinstance(comparison, ProviderComparison)
    assert list(comparison) == [f"{p}/{m}" for p, m in SPEC_PAIRS]
    assert comparison.failures == {}
    assert comparison["openai/gpt-4"].total_cost == Decimal("0.063")
    assert comparison["anthropic/claude-3-opus"].total_cost == Decimal("0.055125")
    cheapest = comparison.cheapest()
    assert cheapest is not None
    assert cheapest[0] == "google/gemini-pro"


async def test_one_failing_pair_does_not_fail_the_rest(book: PriceBook) -> None:
    class Flaky(CountingBackend):
        async def get_pricing(
            self, provider: str, model: str, *, at: datetime | None = None
        ) -> PricingData:
            if model == "claude-3-sonnet":
                raise BackendUnavailableError("timeout for this one")
            return await super().get_pricing(provider, model, at=at)

    engine = PricingEngine(Flaky(book))
    comparison = await engine.compare_provider_costs(
        [*SPEC_PAIRS, ("openai", "gpt-99")], input_tokens=1000, output_tokens=500
    )
    assert set(comparison) == {"openai/gpt-4", "openai/gpt-3.5-turbo", "anthropic/claude-3-opus",
                               "google/gemini-pro"}  # fmt: skip
    assert isinstance(comparison.failures["anthropic/claude-3-sonnet"], BackendUnavailableError)
    assert isinstance(comparison.failures["openai/gpt-99"], UnknownModelError)


async def test_comparisons_run_concurrently(book: PriceBook) -> None:
    backend = CountingBackend(book)
    backend.delay = 0.2
    engine = PricingEngine(backend)
    started = asyncio.get_running_loop().time()
    comparison = await engine.compare_provider_costs(SPEC_PAIRS, 100, 100)
    assert len(comparison) == 5
    assert asyncio.get_running_loop().time() - started < 0.2 * 3


async def test_prices_are_cached_five_minutes(book: PriceBook) -> None:
    now = [1000.0]
    backend = CountingBackend(book)
    engine = PricingEngine(backend, clock=lambda: now[0])
    for _ in range(3):
        await engine.estimate_cost("openai", "gpt-4", input_tokens=10)
    await engine.get_provider_pricing("OpenAI", " GPT-4 ")
    assert backend.calls == 1
    now[0] += 299
    await engine.get_provider_pricing("openai", "gpt-4")
    assert backend.calls == 1
    now[0] += 2
    await engine.get_provider_pricing("openai", "gpt-4")
    assert backend.calls == 2


async def test_concurrent_cold_reads_share_one_fetch(book: PriceBook) -> None:
    backend = CountingBackend(book)
    backend.delay = 0.05
    engine = PricingEngine(backend)
    results = await asyncio.gather(
        *(engine.estimate_cost("openai", "gpt-4", input_tokens=i) for i in range(20))
    )
    assert backend.calls == 1
    assert len({r.price_version for r in results}) == 1


async def test_backend_failure_is_raised_and_not_cached(book: PriceBook) -> None:
    backend = CountingBackend(book)
    backend.fail = True
    engine = PricingEngine(backend)
    with pytest.raises(BackendUnavailableError):
        await engine.estimate_cost("openai", "gpt-4", input_tokens=10)
    backend.fail = False
    estimate = await engine.estimate_cost("openai", "gpt-4", input_tokens=10)
    assert estimate.base_cost > 0
    assert backend.calls == 2


async def test_cache_ttl_zero_reads_every_time(book: PriceBook) -> None:
    backend = CountingBackend(book)
    engine = PricingEngine(backend, cache_ttl_seconds=0)
    await engine.get_provider_pricing("openai", "gpt-4")
    await engine.get_provider_pricing("openai", "gpt-4")
    assert backend.calls == 2
    with pytest.raises(InvalidInputError, match="cache_ttl_seconds"):
        PricingEngine(backend, cache_ttl_seconds=-1)


async def test_handed_out_prices_do_not_touch_the_cache(engine: PricingEngine) -> None:
    pricing = await engine.get_provider_pricing("openai", "gpt-4")
    pricing.input_price_per_1k = Decimal(0)
    estimate = await engine.estimate_cost(
        "openai", "gpt-4", input_tokens=1000, expected_output_tokens=0
    )
    assert estimate.base_cost == Decimal("0.03")


async def test_price_history(engine: PricingEngine) -> None:
    history = await engine.get_price_history("mistral", "mistral-large-4", days=30)
    assert history
    assert all(isinstance(v, PricingData) for v in history)
    everything = await engine.get_price_history("mistral", "mistral-large-4", days=None)
    assert len(everything) == 3
    with pytest.raises(InvalidInputError, match="days"):
        await engine.get_price_history("openai", "gpt-4", days=-3)


async def test_estimate_tokens_on_the_engine(engine: PricingEngine) -> None:
    small = await engine.estimate_tokens("Hello world", "gpt-4o")
    assert (small.token_count, small.method) == (2, TokenEstimationMethod.EXACT)
    big = await engine.estimate_tokens("word " * 100_000, "gpt-4o")  # tokenized off the loop
    assert big.token_count == 100_001  # 100,000 x " word" pieces... and the last space
    calibrated = await engine.estimate_tokens("Hello world", "claude-3-haiku", provider="anthropic")
    assert calibrated.method is TokenEstimationMethod.CALIBRATED


async def test_estimate_from_messages(engine: PricingEngine) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is machine learning?"},
    ]
    estimate = await engine.estimate_cost(
        "openai", "gpt-4o", messages=messages, expected_output_tokens=0
    )
    assert estimate.input_token_estimate is not None
    assert estimate.input_tokens == estimate.input_token_estimate.token_count
    assert estimate.input_tokens > 10  # content plus formatting overhead
    assert estimate.base_cost == Decimal(estimate.input_tokens) * Decimal("0.0025") / 1000


async def test_estimate_without_input(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost("openai", "gpt-4")
    assert (estimate.input_tokens, estimate.output_tokens) == (0, 500)
    assert estimate.input_token_estimate is None


async def test_canonical_names_in_estimates(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost("vertex_ai", "claude-3-opus@20240229", input_tokens=1)
    assert (estimate.provider, estimate.model) == ("google", "claude-3-opus")


async def test_anomaly_through_the_engine(engine: PricingEngine) -> None:
    estimate = await engine.estimate_cost("openai", "gpt-4", input_tokens=100)
    anomaly = await engine.detect_cost_anomaly(
        "req-9", "openai", "gpt-4", estimate.total_cost, estimate.total_cost * 3
    )
    assert anomaly.severity.value == "high"


def test_a_price_book_is_a_backend_for_prices() -> None:
    book = PriceBook.in_memory()
    for name in ("get_pricing", "get_price_history", "list_models"):
        assert callable(getattr(book, name))
        assert name in dir(Backend)


async def test_default_backend_is_the_embedded_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PricingEngine()`` reads the embedded ledger's price book: genai-prices by default."""
    for name in ("SMARTSPACE_BUDGET_URL", "SMARTSPACE_BUDGET_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path))
    engine = PricingEngine()
    try:
        estimate = await engine.estimate_cost(
            "openai", "gpt-4", input_tokens=1000, expected_output_tokens=0
        )
        assert estimate.base_cost == Decimal("0.03")
        assert estimate.price_version is not None
        assert estimate.price_version.startswith("gp-")
    finally:
        await engine.backend.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_text": "What is machine learning?"},
        {"messages": [{"role": "user", "content": "Hi", "name": "bob"}]},
        {"input_tokens": 1234, "expected_output_tokens": 7},
        {"input_tokens": 10, "currency": "USD"},
    ],
)
async def test_estimates_equal_their_validated_twins(
    engine: PricingEngine, kwargs: dict[str, object]
) -> None:
    """Estimates are built without re-validation; they must be exactly what validation gives."""
    estimate = await engine.estimate_cost("openai", "gpt-4o", **kwargs)  # type: ignore[arg-type]
    twin = CostEstimate.model_validate(estimate.model_dump())
    assert twin == estimate
    assert twin.to_json() == estimate.to_json()
    if estimate.input_token_estimate is not None:
        token_twin = type(estimate.input_token_estimate).model_validate(
            estimate.input_token_estimate.model_dump()
        )
        assert token_twin == estimate.input_token_estimate
    estimate.total_cost = estimate.total_cost  # still validated on assignment
    with pytest.raises(ValueError, match="total_cost"):
        estimate.total_cost = estimate.total_cost + 1
