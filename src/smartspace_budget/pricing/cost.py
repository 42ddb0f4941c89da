"""Cost arithmetic: exact Decimals from a price version and a usage, rounded once at the end.

Everything here is a pure function of its arguments, so the engine, the ledger and tests
compute the same numbers. Prices are exact (per 1,000 tokens, per request, per character,
per second); products and sums are computed with 60 significant digits, which is exact for
any in-range count and price, and only then rounded by :func:`money.quantize` (half-even,
nine decimal places). Each reported amount is rounded once from its exact value, never
from another rounded amount, except where the spec makes one amount the sum of others
(``total_cost = base_cost + platform_fee``).
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal

from smartspace_budget.errors import ContextLimitExceededError, InvalidInputError
from smartspace_budget.models import PriceTier, PricingData, PricingModel
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.money import ExchangeRates, parse_amount, quantize

__all__ = [
    "EXACT_CONTEXT",
    "ExactCost",
    "Usage",
    "check_limits",
    "count",
    "exact_cost",
    "fee_percent",
    "platform_fee",
    "to_usdc",
]

_CTX = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN)
EXACT_CONTEXT = _CTX
"""The context of every product and sum here: 60 digits, exact for in-range values."""
_HUNDRED = Decimal(100)


def count(value: object, name: str, *, at_least: int = 0) -> int:
    """A whole number of tokens, requests or characters; :class:`InvalidInputError` otherwise.

    Refuses bools, floats (including NaN), negatives and counts above ``MAX_TOKENS``, with a
    message naming the argument.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            f"{name} must be a whole number, got {value!r} ({type(value).__name__})", field=name
        )
    if value < at_least:
        raise InvalidInputError(f"{name} must be at least {at_least}, got {value}", field=name)
    if value > MAX_TOKENS:
        raise InvalidInputError(f"{name} {value} is above the limit of {MAX_TOKENS}", field=name)
    return value


def fee_percent(value: object) -> Decimal:
    """A platform fee percentage between 0 and 100 (a Decimal, int or decimal string)."""
    percent = parse_amount(value, name="platform_fee_percent", allow_negative=False)
    if percent > _HUNDRED:
        raise InvalidInputError(f"platform_fee_percent must be at most 100, got {percent}")
    return percent


def platform_fee(base_cost: Decimal, percent: Decimal) -> Decimal:
    """``percent`` of ``base_cost``, rounded once (half-even, nine places)."""
    return quantize(_CTX.divide(_CTX.multiply(base_cost, percent), _HUNDRED))


@dataclass(frozen=True, slots=True)
class Usage:
    """What one request uses; counts are validated by the caller (:func:`count`).

    ``input_tokens`` includes ``cached_input_tokens`` and ``cache_write_tokens``, as the
    providers report it. ``characters`` and ``seconds`` matter for per-character and
    per-second prices only.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    request_count: int = 1
    characters: int | None = None
    seconds: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExactCost:
    """Unrounded cost in the price's currency."""

    input_cost: Decimal
    output_cost: Decimal

    @property
    def total(self) -> Decimal:
        return _CTX.add(self.input_cost, self.output_cost)

    def scaled(self, factor: Decimal) -> ExactCost:
        """The same cost in another currency (``factor`` units per unit), still unrounded."""
        if factor == 1:
            return self
        return ExactCost(
            _CTX.multiply(self.input_cost, factor), _CTX.multiply(self.output_cost, factor)
        )


def _tier(pricing: PricingData, input_tokens: int) -> PriceTier | None:
    chosen = None
    for tier in sorted(pricing.tiers or (), key=lambda t: t.min_input_tokens):
        if input_tokens >= tier.min_input_tokens:
            chosen = tier
    return chosen


def _per_1k(price: Decimal, tokens: int) -> Decimal:
    return _CTX.multiply(price, Decimal(tokens)).scaleb(-3, context=_CTX)


def exact_cost(pricing: PricingData, usage: Usage) -> ExactCost:
    """The exact cost of ``usage`` at ``pricing``; raises :class:`InvalidInputError`.

    Token prices: uncached input at the input price, cache reads at the cached price and
    cache writes at the cache-write price (each falling back to the input price when the
    version has none); a long-context tier, when the input reaches it, re-prices all tokens.
    A ``request_price`` on a token-priced model is charged per request on top, into
    ``input_cost``. Per-request, per-character and per-second prices are ``input_cost``.
    """
    model = pricing.pricing_model
    request_part = Decimal(0)
    if pricing.request_price is not None and model is not PricingModel.PER_REQUEST:
        request_part = _CTX.multiply(pricing.request_price, Decimal(usage.request_count))
    if model is PricingModel.TOKEN_BASED:
        return _token_cost(pricing, usage, request_part)
    if model is PricingModel.PER_REQUEST:
        assert pricing.request_price is not None
        return ExactCost(
            _CTX.multiply(pricing.request_price, Decimal(usage.request_count)), Decimal(0)
        )
    if model is PricingModel.PER_CHARACTER:
        assert pricing.price_per_character is not None
        if usage.characters is None:
            raise InvalidInputError(
                f"{pricing.provider}/{pricing.model_name} is priced per character: "
                "pass input_text, messages or characters"
            )
        cost = _CTX.multiply(pricing.price_per_character, Decimal(usage.characters))
        return ExactCost(_CTX.add(cost, request_part), Decimal(0))
    assert pricing.price_per_second is not None
    if usage.seconds is None:
        raise InvalidInputError(
            f"{pricing.provider}/{pricing.model_name} is priced per second: pass seconds"
        )
    cost = _CTX.multiply(pricing.price_per_second, usage.seconds)
    return ExactCost(_CTX.add(cost, request_part), Decimal(0))


def _token_cost(pricing: PricingData, usage: Usage, request_part: Decimal) -> ExactCost:
    cached, written = usage.cached_input_tokens, usage.cache_write_tokens
    uncached = usage.input_tokens - cached - written
    if uncached < 0:
        raise InvalidInputError(
            f"cached_input_tokens ({cached}) + cache_write_tokens ({written}) exceed "
            f"input_tokens ({usage.input_tokens}); input_tokens counts them all"
        )
    tier = _tier(pricing, usage.input_tokens)
    source: PriceTier | PricingData = tier if tier is not None else pricing
    input_price = source.input_price_per_1k
    output_price = source.output_price_per_1k
    assert input_price is not None
    assert output_price is not None
    cached_price = source.cached_input_price_per_1k
    write_price = source.cache_write_price_per_1k
    input_cost = _CTX.add(_per_1k(input_price, uncached), request_part)
    if cached:
        input_cost = _CTX.add(input_cost, _per_1k(cached_price or input_price, cached))
    if written:
        input_cost = _CTX.add(input_cost, _per_1k(write_price or input_price, written))
    return ExactCost(input_cost, _per_1k(output_price, usage.output_tokens))


def check_limits(pricing: PricingData, input_tokens: int, output_tokens: int) -> None:
    """Raise :class:`ContextLimitExceededError` when a request cannot fit the model."""
    name = f"{pricing.provider}/{pricing.model_name}"
    if pricing.max_input_tokens is not None and input_tokens > pricing.max_input_tokens:
        raise ContextLimitExceededError(
            f"{input_tokens:,} input tokens exceed the {pricing.max_input_tokens:,}-token "
            f"input limit (max_input_tokens) of {name}",
            limit=pricing.max_input_tokens,
            tokens=input_tokens,
        )
    if pricing.max_output_tokens is not None and output_tokens > pricing.max_output_tokens:
        raise ContextLimitExceededError(
            f"{output_tokens:,} expected output tokens exceed the "
            f"{pricing.max_output_tokens:,}-token output limit (max_output_tokens) of {name}",
            limit=pricing.max_output_tokens,
            tokens=output_tokens,
        )


def to_usdc(rates: ExchangeRates, currency: str) -> Decimal:
    """USDC per unit of ``currency`` (exact to 60 digits; 1 for USDC and USD by default)."""
    if currency == "USDC":
        return Decimal(1)
    source = rates.rate(currency)
    usdc = rates.rate("USDC")
    if source.currency == usdc.currency or source.rate == usdc.rate:
        return Decimal(1)
    return _CTX.divide(usdc.rate, source.rate)
