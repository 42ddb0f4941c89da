"""What a finished call cost: a pure function of the provider's usage and one price version.

Providers count tokens differently, so usage is first normalised to :class:`ProviderUsage`:
``input_tokens`` is *every* input token (fresh, read from the cache, and written to the
cache) and ``output_tokens`` every output token (reasoning included). OpenAI already reports
that way (``prompt_tokens`` includes ``cached_tokens``; ``completion_tokens`` includes
``reasoning_tokens``); Anthropic reports fresh input apart from cache reads and writes, so
its three counts are added up.

Each class of token is then charged at its own price from the version in force: cached
input at the cached-input price, cache writes at the cache-write price, the rest of the
input at the input price (or at a long-context tier's prices once the input reaches it),
output and reasoning at the output price. A missing cached/cache-write price falls back to
the plain input price: charging more than the truth is safe, charging nothing is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from smartspace_budget.errors import InvalidInputError, MissingPricingError
from smartspace_budget.models import PricingData, PricingModel
from smartspace_budget.money import quantize

__all__ = ["ProviderUsage", "call_cost", "usage_base_cost", "with_platform_fee"]

_THOUSAND = Decimal(1000)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class ProviderUsage:
    """Token counts of one call; cached/cache-write are part of input, reasoning of output."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be a non-negative int, got {value!r}")
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise InvalidInputError(
                f"cached ({self.cached_input_tokens}) and cache-write ({self.cache_write_tokens})"
                f" tokens exceed the input tokens ({self.input_tokens})"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise InvalidInputError(
                f"reasoning tokens ({self.reasoning_tokens}) exceed the output tokens "
                f"({self.output_tokens})"
            )

    @property
    def fresh_input_tokens(self) -> int:
        """Input tokens charged at the plain input price."""
        return self.input_tokens - self.cached_input_tokens - self.cache_write_tokens


def usage_base_cost(pricing: PricingData, usage: ProviderUsage) -> Decimal:
    """The provider's price of ``usage`` (before the platform fee), exact, in the price currency.

    Raises :class:`MissingPricingError` for pricing models that tokens cannot price
    (per character, per second).
    """
    if pricing.pricing_model is PricingModel.PER_REQUEST:
        return _require(pricing.request_price, pricing, "request_price")
    if pricing.pricing_model is not PricingModel.TOKEN_BASED:
        raise MissingPricingError(
            f"{pricing.provider}/{pricing.model_name} is priced "
            f"{pricing.pricing_model.value}; token usage cannot price it",
            provider=pricing.provider,
            model=pricing.model_name,
        )
    input_price = _require(pricing.input_price_per_1k, pricing, "input_price_per_1k")
    output_price = _require(pricing.output_price_per_1k, pricing, "output_price_per_1k")
    cached_price = pricing.cached_input_price_per_1k
    write_price = pricing.cache_write_price_per_1k
    tier = None
    for candidate in sorted(pricing.tiers or [], key=lambda t: t.min_input_tokens):
        if usage.input_tokens >= candidate.min_input_tokens:
            tier = candidate
    if tier is not None:
        input_price = tier.input_price_per_1k
        output_price = tier.output_price_per_1k
        cached_price = tier.cached_input_price_per_1k or cached_price
        write_price = tier.cache_write_price_per_1k or write_price
    per_1k = (
        usage.fresh_input_tokens * input_price
        + usage.cached_input_tokens * (cached_price if cached_price is not None else input_price)
        + usage.cache_write_tokens * (write_price if write_price is not None else input_price)
        + usage.output_tokens * output_price
    )
    cost = per_1k / _THOUSAND
    if pricing.request_price is not None:
        cost += pricing.request_price
    return cost


def with_platform_fee(base_cost: Decimal, fee_percent: Decimal) -> tuple[Decimal, Decimal]:
    """``(platform_fee, total_cost)`` for ``base_cost``, each rounded to nano-USDC half-even.

    The total is the sum of the two rounded parts, so ``total == base + fee`` holds exactly
    for the rounded base.
    """
    base = quantize(base_cost)
    fee = quantize(base_cost * fee_percent / _HUNDRED)
    return fee, base + fee


def call_cost(pricing: PricingData, usage: ProviderUsage, fee_percent: Decimal) -> Decimal:
    """What the account is charged for ``usage``: provider price plus the platform fee."""
    _, total = with_platform_fee(usage_base_cost(pricing, usage), fee_percent)
    return total


def _require(value: Decimal | None, pricing: PricingData, name: str) -> Decimal:
    if value is None:
        raise MissingPricingError(
            f"{pricing.provider}/{pricing.model_name} has no {name}",
            provider=pricing.provider,
            model=pricing.model_name,
        )
    return value
