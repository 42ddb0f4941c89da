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
the plain input price: charging more than the truth is safe, charging nothing is not. The
arithmetic itself is the pricing engine's, shared with the estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from smartspace_budget.errors import InvalidInputError, MissingPricingError
from smartspace_budget.models import PricingData, PricingModel
from smartspace_budget.money import quantize
from smartspace_budget.pricing.cost import Usage, exact_cost, platform_fee

__all__ = ["ProviderUsage", "call_cost", "usage_base_cost", "with_platform_fee"]


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

    The arithmetic is the pricing engine's (:func:`smartspace_budget.pricing.cost.exact_cost`),
    so an estimate and a settlement can never disagree on how a token is priced. Raises
    :class:`MissingPricingError` for pricing models that tokens cannot price (per character,
    per second).
    """
    if pricing.pricing_model in (PricingModel.PER_CHARACTER, PricingModel.PER_SECOND):
        raise MissingPricingError(
            f"{pricing.provider}/{pricing.model_name} is priced "
            f"{pricing.pricing_model.value}; token usage cannot price it",
            provider=pricing.provider,
            model=pricing.model_name,
        )
    return exact_cost(
        pricing,
        Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_input_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
    ).total


def with_platform_fee(base_cost: Decimal, fee_percent: Decimal) -> tuple[Decimal, Decimal]:
    """``(platform_fee, total_cost)`` for ``base_cost``, rounded as the pricing engine rounds.

    The base is rounded to nano-USDC (half-even), the fee is taken on the rounded base, and
    the total is their sum: the same steps as an estimate, so both compare like for like.
    """
    base = quantize(base_cost)
    fee = platform_fee(base, fee_percent)
    return fee, base + fee


def call_cost(
    pricing: PricingData,
    usage: ProviderUsage,
    fee_percent: Decimal,
    usdc_per_unit: Decimal = Decimal(1),
) -> Decimal:
    """What the account is charged for ``usage`` in USDC: provider price plus the platform fee.

    ``usdc_per_unit`` converts prices quoted in another currency (1 for USDC and USD).
    """
    _, total = with_platform_fee(usage_base_cost(pricing, usage) * usdc_per_unit, fee_percent)
    return total
