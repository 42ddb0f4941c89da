"""The price book: names as users write them, versions, history, overrides and the 100x guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from smartspace_budget.errors import (
    IdempotencyConflictError,
    InvalidInputError,
    MissingPricingError,
    UnknownModelError,
    UnknownProviderError,
)
from smartspace_budget.models import PricingData, PricingModel
from smartspace_budget.prices.snapshot import CATALOG_EPOCH, GenaiCatalog
from smartspace_budget.pricing import PriceBook

from .conftest import NOW, Clock


@pytest.mark.parametrize(
    ("provider", "model", "canonical"),
    [
        ("openai", "gpt-4", ("openai", "gpt-4")),
        ("openai", "gpt-3.5-turbo", ("openai", "gpt-3.5-turbo")),
        ("anthropic", "claude-3-opus", ("anthropic", "claude-3-opus-latest")),
        ("anthropic", "claude-3-sonnet", ("anthropic", "claude-3-sonnet")),
        ("google", "gemini-pro", ("google", "gemini-pro")),
        ("openai", "gpt-4o-2024-08-06", ("openai", "gpt-4o")),
        ("anthropic", "claude-3-opus-20240229", ("anthropic", "claude-3-opus-latest")),
        ("openai", "openai/gpt-4o", ("openai", "gpt-4o")),
        ("OpenAI", "  GPT-4o ", ("openai", "gpt-4o")),
        ("gemini", "models/gemini-1.5-pro", ("google", "gemini-1.5-pro")),
        ("vertex_ai", "claude-3-opus@20240229", ("google", "claude-3-opus")),
        ("Vertex", "gemini-1.5-pro-002", ("google", "gemini-1.5-pro")),
        ("mistralai", "mistral-large-latest", ("mistral", "mistral-large")),
        ("bedrock", "amazon.nova-pro-v1:0", ("aws", "amazon.nova-pro-v1:0")),
        ("xai", "grok-3", ("x-ai", "grok-3")),
        ("azure_openai", "gpt-4o-mini-2024-07-18", ("azure", "gpt-4o-mini")),
        ("openrouter", "openai/gpt-4o", ("openrouter", "openai/gpt-4o")),
    ],
)
async def test_names_as_users_write_them(
    book: PriceBook, provider: str, model: str, canonical: tuple[str, str]
) -> None:
    assert await book.resolve(provider, model) == canonical
    pricing = await book.get_pricing(provider, model)
    assert (pricing.provider, pricing.model_name) == canonical


async def test_spec_example_prices(book: PriceBook) -> None:
    gpt4 = await book.get_pricing("openai", "gpt-4")
    assert gpt4.input_price_per_1k == Decimal("0.03")
    assert gpt4.output_price_per_1k == Decimal("0.06")
    assert gpt4.max_input_tokens == 8192
    assert gpt4.pricing_model is PricingModel.TOKEN_BASED
    assert gpt4.source == "genai-prices"
    assert gpt4.version is not None
    assert gpt4.version.startswith("gp-")
    assert gpt4.effective_date == CATALOG_EPOCH


async def test_per_million_prices_become_exact_per_thousand(book: PriceBook) -> None:
    mini = await book.get_pricing("openai", "gpt-4o-mini")
    assert mini.input_price_per_1k == Decimal("0.00015")
    assert mini.cached_input_price_per_1k == Decimal("0.000075")
    opus = await book.get_pricing("anthropic", "claude-3-opus")
    assert opus.cache_write_price_per_1k == Decimal("0.01875")


async def test_unknown_names_suggest_close_ones(book: PriceBook) -> None:
    with pytest.raises(UnknownModelError, match=r"did you mean 'claude-3-sonnet'"):
        await book.get_pricing("anthropic", "claude-3-sonet")
    with pytest.raises(UnknownProviderError, match=r"'antropic'.*'anthropic'"):
        await book.get_pricing("antropic", "claude-3-opus")


async def test_dated_prices_are_history(book: PriceBook, clock: Clock) -> None:
    history = await book.get_price_history("mistral", "mistral-large-4")
    assert [v.effective_date.date().isoformat() for v in history] == [
        "1970-01-01",
        "2026-10-20",
        "2026-10-29",
    ]
    assert [v.input_price_per_1k for v in history] == [
        Decimal("0.00068"),
        Decimal("0.00136"),
        Decimal("0.0007"),
    ]
    at = datetime(2026, 10, 25, tzinfo=UTC)
    assert (await book.get_pricing("mistral", "mistral-large-4", at=at)).version == history[
        1
    ].version
    clock.now = datetime(2026, 11, 1, tzinfo=UTC)

    async def versions(days: int) -> list[str | None]:
        return [
            v.version for v in await book.get_price_history("mistral", "mistral-large-4", days=days)
        ]

    # In force at some moment of the window: the one current when it opens, and later ones.
    assert await versions(2) == [history[2].version]
    assert await versions(5) == [history[1].version, history[2].version]
    assert await versions(15) == [v.version for v in history]
    assert await versions(0) == [history[2].version]


async def test_history_days_must_be_a_count(book: PriceBook) -> None:
    with pytest.raises(InvalidInputError, match="days"):
        await book.get_price_history("openai", "gpt-4", days=-1)


async def test_versions_cannot_be_changed_through_the_book(book: PriceBook) -> None:
    first = await book.get_pricing("openai", "gpt-4")
    first.input_price_per_1k = Decimal(0)
    assert (await book.get_pricing("openai", "gpt-4")).input_price_per_1k == Decimal("0.03")


async def test_version_ids_are_content_hashes() -> None:
    one, other = GenaiCatalog(), GenaiCatalog()
    assert [v.version for v in one.versions("openai", "gpt-4o")] == [
        v.version for v in other.versions("openai", "gpt-4o")
    ]
    assert one.versions("openai", "gpt-4o")[0].version != one.versions("azure", "gpt-4o")[0].version


async def test_list_models(book: PriceBook) -> None:
    everything = await book.list_models()
    assert ("openai", "gpt-4") in everything
    assert ("anthropic", "claude-3-opus-latest") in everything
    assert len(everything) > 1000
    google = await book.list_models("gemini")
    assert google
    assert {p for p, _ in google} == {"google"}


def operator_price(model: str = "gpt-4o", provider: str = "openai", **fields: Any) -> PricingData:
    values: dict[str, Any] = {
        "input_price_per_1k": Decimal("0.002"),
        "output_price_per_1k": Decimal("0.008"),
        "effective_date": NOW + timedelta(days=10),
        "last_updated": NOW,
    }
    values.update(fields)
    return PricingData(provider=provider, model_name=model, **values)


async def test_override_layers_on_the_catalog(book: PriceBook, clock: Clock) -> None:
    catalog = await book.get_pricing("openai", "gpt-4o")
    added = await book.add_price(operator_price())
    assert added.source == "override"
    assert added.version is not None
    assert added.version.startswith("ovr-")
    assert added.last_updated == NOW
    # Not yet in force; then in force for every name that resolves to gpt-4o.
    assert (await book.get_pricing("openai", "gpt-4o")).version == catalog.version
    clock.now = NOW + timedelta(days=11)
    for name in ("gpt-4o", "gpt-4o-2024-08-06", "openai/gpt-4o"):
        assert (await book.get_pricing("openai", name)).version == added.version
    history = await book.get_price_history("openai", "gpt-4o", days=30)
    assert [v.version for v in history] == [catalog.version, added.version]


async def test_a_later_override_wins_a_tie(book: PriceBook, clock: Clock) -> None:
    first = await book.add_price(operator_price())
    second = await book.add_price(operator_price(input_price_per_1k=Decimal("0.0021")))
    clock.now = NOW + timedelta(days=11)
    assert (await book.get_pricing("openai", "gpt-4o")).version == second.version
    history = [v.version for v in await book.get_price_history("openai", "gpt-4o")]
    assert first.version not in history
    assert second.version in history


async def test_override_of_an_alias_only_applies_to_that_name(
    book: PriceBook, clock: Clock
) -> None:
    clock.now = NOW + timedelta(days=11)
    special = await book.add_price(operator_price("gpt-4o-2024-08-06"))
    assert special.model_name == "gpt-4o-2024-08-06"
    assert (await book.get_pricing("openai", "gpt-4o-2024-08-06")).version == special.version
    assert (await book.get_pricing("openai", "gpt-4o")).source == "genai-prices"


async def test_new_models_and_providers(book: PriceBook) -> None:
    price = operator_price("Llama-Internal", provider="Acme-Cloud", effective_date=NOW)
    added = await book.add_price(price)
    assert (added.provider, added.model_name) == ("acme-cloud", "llama-internal")
    assert await book.resolve("ACME-cloud", "acme-cloud/llama-internal") == (
        "acme-cloud",
        "llama-internal",
    )
    assert ("acme-cloud", "llama-internal") in await book.list_models()
    with pytest.raises(UnknownModelError, match="did you mean 'llama-internal'"):
        await book.get_pricing("acme-cloud", "llama-internl")


async def test_scheduled_price_is_not_in_force_yet(book: PriceBook) -> None:
    await book.add_price(operator_price("future-model", provider="acme"))
    with pytest.raises(MissingPricingError, match="effective from"):
        await book.get_pricing("acme", "future-model")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_price_per_1k", Decimal("0.2501")),  # 100.04x the catalog's 0.0025
        ("output_price_per_1k", Decimal("0.00009")),  # 111x cheaper than 0.01
        ("input_price_per_1k", Decimal(0)),  # to zero: free by mistake
    ],
)
async def test_changes_over_100x_need_force(book: PriceBook, field: str, value: Decimal) -> None:
    changed: dict[str, Any] = {field: value}
    with pytest.raises(InvalidInputError, match=rf"{field}.*force=True"):
        await book.add_price(operator_price(**changed))
    forced = await book.add_price(operator_price(**changed), force=True)
    assert getattr(forced, field) == value


async def test_exactly_100x_is_allowed(book: PriceBook) -> None:
    added = await book.add_price(operator_price(input_price_per_1k=Decimal("0.25")))
    assert added.input_price_per_1k == Decimal("0.25")


async def test_changing_the_pricing_model_needs_force(book: PriceBook) -> None:
    per_request = operator_price(
        pricing_model=PricingModel.PER_REQUEST,
        request_price=Decimal("0.01"),
        input_price_per_1k=None,
        output_price_per_1k=None,
    )
    with pytest.raises(InvalidInputError, match="pricing model changes"):
        await book.add_price(per_request)
    assert (await book.add_price(per_request, force=True)).request_price == Decimal("0.01")


async def test_readding_a_version_is_idempotent(book: PriceBook) -> None:
    price = operator_price(version="ops-2026-06-01")
    first = await book.add_price(price)
    again = await book.add_price(price)
    assert again == first
    with pytest.raises(IdempotencyConflictError, match="ops-2026-06-01"):
        await book.add_price(
            operator_price(version="ops-2026-06-01", output_price_per_1k=Decimal(1))
        )


async def test_naive_effective_date_is_utc(book: PriceBook) -> None:
    naive = datetime(2027, 1, 1)
    added = await book.add_price(operator_price(effective_date=naive))
    assert added.effective_date == datetime(2027, 1, 1, tzinfo=UTC)


async def test_book_without_genai_prices_starts_empty() -> None:
    empty = PriceBook.in_memory(genai_prices=False)
    assert await empty.list_models() == []
    with pytest.raises(UnknownProviderError):
        await empty.get_pricing("openai", "gpt-4")


@pytest.mark.parametrize(
    ("hour", "minute", "per_million_in", "per_million_out"),
    [
        (0, 59, "0.15", "0.6"),  # standard
        (1, 0, "0.3", "1.2"),  # the 01:00-04:00 UTC window opens
        (3, 59, "0.3", "1.2"),
        (4, 0, "0.15", "0.6"),  # ... and closes
        (6, 0, "0.3", "1.2"),  # the second window
        (12, 0, "0.15", "0.6"),
    ],
)
async def test_time_of_day_prices_are_those_of_the_instant(
    book: PriceBook, hour: int, minute: int, per_million_in: str, per_million_out: str
) -> None:
    """DeepSeek's prices change with the hour: the version keeps its windows, in UTC."""
    pricing = await book.get_pricing("deepseek", "deepseek-flash")
    assert pricing.input_price_per_1k == Decimal("0.00015")  # the standard price
    instant = datetime(2026, 12, 3, hour, minute, tzinfo=UTC)
    prices = pricing.prices_at(instant)
    assert prices.input_price_per_1k == Decimal(per_million_in).scaleb(-3)
    assert prices.output_price_per_1k == Decimal(per_million_out).scaleb(-3)


async def test_free_variants_cost_nothing_but_unpriced_models_are_errors(book: PriceBook) -> None:
    free = await book.get_pricing("openrouter", "deepseek/deepseek-r1:free")
    assert (free.input_price_per_1k, free.output_price_per_1k) == (Decimal(0), Decimal(0))
    with pytest.raises(MissingPricingError, match="no price at all"):
        await book.get_pricing("google", "gemma-3")
