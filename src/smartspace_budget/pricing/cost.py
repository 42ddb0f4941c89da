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
from datetime import UTC, datetime
from decimal import Decimal

from smartspace_budget.errors import ContextLimitExceededError, InvalidInputError
from smartspace_budget.models import PriceTier, PricingData, PricingModel
from smartspace_budget.models.dimensions import (
    DIMENSIONS,
    DIMENSIONS_BY_FIELD,
    NESTS_IN,
    SPECIFICITY,
    Usage,
)
from smartspace_budget.models.pricing import TimeOfDayPrice
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
    "tier_for",
    "to_usdc",
    "unit_prices",
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
class ExactCost:
    """Unrounded cost in the price's currency, with the line of each dimension charged.

    ``input_cost`` is every line but the output tokens' (requests, tool calls, pages and
    other per-call fees included, as the spec's input/output split has no third part);
    ``unpriced`` holds the dimensions the usage reports that no price covers.
    """

    input_cost: Decimal
    output_cost: Decimal
    lines: tuple[tuple[str, Decimal, Decimal, int, Decimal], ...] = ()
    unpriced: tuple[tuple[str, Decimal | int], ...] = ()

    @property
    def total(self) -> Decimal:
        return _CTX.add(self.input_cost, self.output_cost)

    def scaled(self, factor: Decimal) -> ExactCost:
        """The same cost in another currency (``factor`` units per unit), still unrounded."""
        if factor == 1:
            return self
        return ExactCost(
            _CTX.multiply(self.input_cost, factor),
            _CTX.multiply(self.output_cost, factor),
            tuple(
                (name, quantity, _CTX.multiply(price, factor), per, _CTX.multiply(cost, factor))
                for name, quantity, price, per, cost in self.lines
            ),
            self.unpriced,
        )


_PRICE_SOURCES = PricingData | TimeOfDayPrice | PriceTier


def tier_for(tiers: list[PriceTier] | None, input_tokens: int) -> PriceTier | None:
    """The long-context tier a request of ``input_tokens`` reaches, if any."""
    chosen = None
    for tier in sorted(tiers or (), key=lambda t: t.min_input_tokens):
        if input_tokens >= tier.min_input_tokens:
            chosen = tier
    return chosen


def _token_prices(source: _PRICE_SOURCES) -> dict[str, Decimal | None]:
    prices: dict[str, Decimal | None] = {
        "input_tokens": source.input_price_per_1k,
        "output_tokens": source.output_price_per_1k,
        "cached_input_tokens": source.cached_input_price_per_1k,
        "cache_write_tokens": source.cache_write_price_per_1k,
    }
    for name, price in (source.dimension_prices or {}).items():
        if DIMENSIONS_BY_FIELD[name].is_tokens:
            prices[name] = price
    return prices


def unit_prices(pricing: PricingData, usage: Usage, at: datetime) -> dict[str, tuple[Decimal, int]]:
    """``{dimension: (price, per)}`` for every dimension this request can be charged for.

    The version's time-of-day window at ``at`` (if any) replaces its token, request and
    dimension prices, as genai-prices does; a long-context tier reached by
    ``usage.input_tokens`` then replaces every token price. Seconds are priced per hour when
    the version has an hourly price (exact, where the per-second price of an hourly one
    rarely is), else per second.
    """
    window = pricing.prices_at(at)
    prices: dict[str, Decimal | None] = dict(window.dimension_prices or {})
    prices.update(_token_prices(window))
    prices["request_count"] = window.request_price
    tier = tier_for(window.tiers, usage.input_tokens)
    if tier is not None:
        for name in [n for n in prices if DIMENSIONS_BY_FIELD[n].is_tokens]:
            del prices[name]
        prices.update(_token_prices(tier))
    prices["characters"] = pricing.price_per_character
    result = {
        name: (price, DIMENSIONS_BY_FIELD[name].price_per)
        for name, price in prices.items()
        if price is not None
    }
    if pricing.price_per_hour is not None:
        result["seconds"] = (pricing.price_per_hour, 3600)
    elif pricing.price_per_second is not None:
        result["seconds"] = (pricing.price_per_second, 1)
    return result


_OUTPUT = ("direction", "output")


def _SPECIFIC_FIRST(name: str) -> tuple[int, str]:
    return (-SPECIFICITY[name], name)


def _billed(pricing: PricingData, usage: Usage, name: str) -> Decimal | int:
    """The amount of a dimension that is billed: the catalog's minimum seconds applied."""
    value = usage.amount(name)
    if name == "seconds" and value and pricing.minimum_billed_seconds is not None:
        return max(value, pricing.minimum_billed_seconds)
    return value


def exact_cost(pricing: PricingData, usage: Usage, *, at: datetime | None = None) -> ExactCost:
    """The exact cost of ``usage`` at ``pricing`` for a call made at ``at`` (now by default).

    Every token and unit is charged once, at the most specific price the version has for it
    (the same rule as genai-prices): cached audio input at the cached-audio price if there
    is one, else at the cached-input or audio-input price, else at the input price. So a
    dimension without its own price falls back to its parent's; one with no priced parent
    at all (a web search on a model without a search price) is reported in ``unpriced``
    rather than charged nothing silently. Raises :class:`InvalidInputError` when a nested
    count exceeds its parent's, or when a per-character/per-second price has no count.
    """
    instant = at if at is not None else datetime.now(UTC)
    prices = unit_prices(pricing, usage, instant)
    for name in ("characters", "seconds"):
        if name in prices and getattr(usage, name) is None:
            kind = "per character" if name == "characters" else "per second"
            hint = "input_text, messages or characters" if name == "characters" else "seconds"
            if pricing.pricing_model in (PricingModel.PER_CHARACTER, PricingModel.PER_SECOND):
                raise InvalidInputError(
                    f"{pricing.provider}/{pricing.model_name} is priced {kind}: pass {hint}"
                )
    # Most specific first, so each dimension's leaf can take away those nested in it.
    leaves: dict[str, Decimal | int] = {}
    for name in sorted(prices, key=_SPECIFIC_FIRST):
        leaf = _billed(pricing, usage, name)
        for child, value in leaves.items():
            if name in NESTS_IN[child]:
                leaf -= value
        if leaf < 0:
            raise InvalidInputError(
                f"usage is inconsistent: the counts nested in {name} add up to more "
                f"than its {usage.amount(name)}",
                field=name,
            )
        leaves[name] = leaf
    input_cost = output_cost = Decimal(0)
    lines = []
    for dimension in DIMENSIONS:
        name = dimension.field
        if name not in leaves:
            continue
        quantity = leaves[name]
        price, per = prices[name]
        cost = _CTX.multiply(price, Decimal(quantity))
        if per != 1:
            cost = _CTX.divide(cost, Decimal(per))
        if _OUTPUT in dimension.traits:
            output_cost = _CTX.add(output_cost, cost)
        else:
            input_cost = _CTX.add(input_cost, cost)
        if quantity and price:
            lines.append((name, Decimal(quantity), price, per, cost))
    unpriced = tuple(
        (name, value)
        for name, value in usage.nonzero()
        if name not in prices
        and name not in ("request_count", "characters")  # characters measure text, as tokens do
        and not NESTS_IN[name] & prices.keys()
    )
    return ExactCost(input_cost, output_cost, tuple(lines), unpriced)


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
    window = pricing.context_window
    if window is not None and input_tokens + output_tokens > window:
        raise ContextLimitExceededError(
            f"{input_tokens:,} input and {output_tokens:,} expected output tokens exceed the "
            f"{window:,}-token context window (context_window) of {name}",
            limit=window,
            tokens=input_tokens + output_tokens,
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
