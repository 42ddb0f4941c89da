"""Every pricing model of the spec is priced exactly, with the platform fee, in USDC and EUR."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import InvalidInputError, UnknownCurrencyError
from smartspace_budget.models import CostEstimate, PriceTier, PricingData, PricingModel
from smartspace_budget.money import ExchangeRates, quantize
from smartspace_budget.pricing import PriceBook, PricingEngine

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
RATES = ExchangeRates.from_mapping({"EUR": "0.92", "JPY": "150"}, as_of=EPOCH)


def price(model: str, **fields: Any) -> PricingData:
    return PricingData(
        provider="acme", model_name=model, effective_date=EPOCH, last_updated=EPOCH, **fields
    )


@pytest.fixture
async def acme() -> PricingEngine:
    book = PriceBook.in_memory(genai_prices=False)
    await book.add_price(
        price("tok", input_price_per_1k=Decimal("0.03"), output_price_per_1k=Decimal("0.06"))
    )
    await book.add_price(
        price("req", pricing_model=PricingModel.PER_REQUEST, request_price=Decimal("0.002"))
    )
    await book.add_price(
        price(
            "chr", pricing_model=PricingModel.PER_CHARACTER, price_per_character=Decimal("0.000015")
        )
    )
    await book.add_price(
        price("sec", pricing_model=PricingModel.PER_SECOND, price_per_second=Decimal("0.0001"))
    )
    await book.add_price(
        price("tiny", input_price_per_1k=Decimal("0.0000375"), output_price_per_1k=Decimal(0))
    )
    return PricingEngine(book, exchange_rates=RATES)


# (model, estimate_cost kwargs, input_cost, output_cost, base, fee, total) in USDC
CASES = [
    ("tok", {"input_tokens": 1234, "expected_output_tokens": 567},
     "0.03702", "0.03402", "0.07104", "0.003552", "0.074592"),
    ("req", {"request_count": 3, "expected_output_tokens": 0},
     "0.006", "0", "0.006", "0.0003", "0.0063"),
    ("chr", {"input_text": "x" * 4321, "expected_output_tokens": 0},
     "0.064815", "0", "0.064815", "0.00324075", "0.06805575"),
    ("sec", {"seconds": Decimal("97.5"), "expected_output_tokens": 0},
     "0.00975", "0", "0.00975", "0.0004875", "0.0102375"),
    # 7 x 0.0000375 / 1000 = 0.0000002625: half-even to 0.000000262; fee 0.0000000131 -> 13
    ("tiny", {"input_tokens": 7, "expected_output_tokens": 0},
     "0.000000262", "0", "0.000000262", "0.000000013", "0.000000275"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "kwargs", "inp", "out", "base", "fee", "total"), CASES)
async def test_priced_exactly_in_usdc(
    acme: PricingEngine,
    model: str,
    kwargs: dict[str, Any],
    inp: str,
    out: str,
    base: str,
    fee: str,
    total: str,
) -> None:
    estimate = await acme.estimate_cost("acme", model, **kwargs)
    assert estimate.currency == "USDC"
    assert (estimate.input_cost, estimate.output_cost) == (Decimal(inp), Decimal(out))
    assert estimate.base_cost == Decimal(base)
    assert estimate.platform_fee_percent == 5
    assert estimate.platform_fee == Decimal(fee)
    assert estimate.total_cost == Decimal(total)
    assert estimate.price_version is not None
    assert estimate.price_version.startswith("ovr-")


@pytest.mark.parametrize(("model", "kwargs", "inp", "out", "base", "fee", "total"), CASES)
async def test_priced_exactly_in_euros(
    acme: PricingEngine,
    model: str,
    kwargs: dict[str, Any],
    inp: str,
    out: str,
    base: str,
    fee: str,
    total: str,
) -> None:
    estimate = await acme.estimate_cost("acme", model, currency="EUR", **kwargs)
    rate = Decimal("0.92")
    assert estimate.currency == "EUR"
    assert estimate.exchange_rate == rate

    def eur(usdc: str) -> Decimal:  # a rate below 1 keeps one more decimal place (money.py)
        return quantize(Decimal(usdc) * rate, 10)

    assert estimate.input_cost == eur(inp)
    assert estimate.output_cost == eur(out)
    assert estimate.base_cost == eur(base)
    assert estimate.platform_fee == eur(fee)
    assert estimate.total_cost == estimate.base_cost + estimate.platform_fee
    if model != "tiny":  # the sub-nano case rounds; all others convert exactly
        assert estimate.total_cost == Decimal(total) * rate


async def test_convert_any_estimate(acme: PricingEngine) -> None:
    usdc = await acme.estimate_cost("acme", "tok", input_tokens=1000, expected_output_tokens=1000)
    yen = acme.convert(usdc, "jpy")
    assert (yen.currency, yen.exchange_rate) == ("JPY", Decimal(150))
    assert yen.total_cost == Decimal("0.0945") * 150
    back = acme.convert(yen, "USDC")
    assert back.total_cost == usdc.total_cost
    assert back.currency == "USDC"
    assert acme.convert(usdc, "USDC") == usdc
    with pytest.raises(UnknownCurrencyError, match="GBP"):
        acme.convert(usdc, "GBP")


async def test_fee_is_configurable(acme: PricingEngine) -> None:
    engine = PricingEngine(acme.backend, platform_fee_percent=Decimal("2.5"))
    estimate = await engine.estimate_cost(
        "acme", "tok", input_tokens=1000, expected_output_tokens=0
    )
    assert estimate.platform_fee == Decimal("0.00075")
    assert await engine.calculate_total_cost(Decimal("0.03")) == Decimal("0.03075")
    assert await engine.calculate_total_cost(Decimal("0.03"), Decimal(0)) == Decimal("0.03")
    with pytest.raises(InvalidInputError, match="platform_fee_percent"):
        PricingEngine(acme.backend, platform_fee_percent=Decimal(-1))
    with pytest.raises(InvalidInputError, match="platform_fee_percent"):
        await engine.calculate_total_cost(Decimal(1), Decimal(101))


async def test_calculate_total_cost_matches_estimates(acme: PricingEngine) -> None:
    estimate = await acme.estimate_cost("acme", "tok", input_tokens=999, expected_output_tokens=1)
    assert await acme.calculate_total_cost(estimate.base_cost) == estimate.total_cost
    # The spec: 5% default; a base cost with more digits is rounded once first.
    assert await acme.calculate_total_cost(Decimal("0.0100000004")) == Decimal("0.0105")


async def test_pricing_models_need_their_inputs(acme: PricingEngine) -> None:
    with pytest.raises(InvalidInputError, match="per second: pass seconds"):
        await acme.estimate_cost("acme", "sec")
    with pytest.raises(InvalidInputError, match="per character"):
        await acme.estimate_cost("acme", "chr", input_tokens=10)
    chars = await acme.estimate_cost("acme", "chr", characters=1000, expected_output_tokens=0)
    assert chars.base_cost == Decimal("0.015")


async def test_request_price_on_top_of_tokens() -> None:
    book = PriceBook.in_memory(genai_prices=False)
    await book.add_price(
        price(
            "search",
            input_price_per_1k=Decimal("0.001"),
            output_price_per_1k=Decimal("0.001"),
            request_price=Decimal("0.012"),
        )
    )
    estimate = await PricingEngine(book).estimate_cost(
        "acme", "search", input_tokens=1000, expected_output_tokens=1000
    )
    assert estimate.base_cost == Decimal("0.014")
    assert estimate.request_count == 1


async def test_cache_prices_and_tiers() -> None:
    book = PriceBook.in_memory(genai_prices=False)
    await book.add_price(
        price(
            "long",
            input_price_per_1k=Decimal("0.003"),
            output_price_per_1k=Decimal("0.015"),
            cached_input_price_per_1k=Decimal("0.0003"),
            cache_write_price_per_1k=Decimal("0.00375"),
            tiers=[
                PriceTier(
                    min_input_tokens=200_001,
                    input_price_per_1k=Decimal("0.006"),
                    output_price_per_1k=Decimal("0.0225"),
                )
            ],
        )
    )
    engine = PricingEngine(book)
    small = await engine.estimate_cost(
        "acme", "long", input_tokens=10_000, cached_input_tokens=4000, cache_write_tokens=1000,
        expected_output_tokens=100,
    )  # fmt: skip
    assert small.input_cost == Decimal("0.015") + Decimal("0.0012") + Decimal("0.00375")
    assert small.output_cost == Decimal("0.0015")
    big = await engine.estimate_cost(
        "acme", "long", input_tokens=300_000, cached_input_tokens=100_000,
        expected_output_tokens=1000,
    )  # fmt: skip
    # In the tier, without a tier cache price, cached tokens pay the tier's input price.
    assert big.input_cost == Decimal("0.006") * 300
    assert big.output_cost == Decimal("0.0225")
    with pytest.raises(InvalidInputError, match="exceed input_tokens"):
        await engine.estimate_cost("acme", "long", input_tokens=10, cached_input_tokens=11)


@settings(max_examples=80, deadline=None)
@given(
    input_tokens=st.integers(0, 5_000_000),
    output_tokens=st.integers(0, 500_000),
    input_price=st.decimals("0", "1", places=7),
    output_price=st.decimals("0", "1", places=7),
    fee=st.decimals("0", "100", places=3),
)
async def test_estimates_are_exact_and_valid(
    input_tokens: int, output_tokens: int, input_price: Decimal, output_price: Decimal, fee: Decimal
) -> None:
    book = PriceBook.in_memory(genai_prices=False)
    await book.add_price(
        price("m", input_price_per_1k=input_price, output_price_per_1k=output_price)
    )
    engine = PricingEngine(book, platform_fee_percent=fee)
    estimate = await engine.estimate_cost(
        "acme", "m", input_tokens=input_tokens, expected_output_tokens=output_tokens
    )
    exact = (input_price * input_tokens + output_price * output_tokens) / 1000
    assert estimate.base_cost == quantize(exact)
    assert estimate.platform_fee == quantize(estimate.base_cost * fee / 100)
    assert estimate.total_cost == estimate.base_cost + estimate.platform_fee
    assert abs(estimate.input_cost + estimate.output_cost - estimate.base_cost) <= Decimal("1e-9")
    assert CostEstimate.from_json(estimate.to_json()) == estimate
