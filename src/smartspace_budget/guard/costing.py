"""What a finished call cost: a pure function of the provider's usage and one price version.

Usage is normalised to :class:`ProviderUsage`, the project's usage model
(:class:`~smartspace_budget.models.dimensions.Usage`: every billed dimension, nested the way
the providers and genai-prices count them: ``input_tokens`` is *every* input token, fresh,
cached, written to the cache, audio and image; ``output_tokens`` every output token,
reasoning and audio included) plus what the response reported that no dimension holds
(``unmapped``: an Anthropic web fetch, an OpenAI code-interpreter session...).

The price is the pricing engine's exact arithmetic (:func:`smartspace_budget.pricing.cost.
exact_cost`) at the instant of the call, so time-of-day prices apply and an estimate and a
settlement can never disagree on how a unit is priced: each unit once, at the most specific
price the version has for it. What cannot be priced, because the guard could not map it or
because the version has no price for a dimension the call used, is never charged as zero:
:func:`charge` then charges at least the call's reservation and names it in ``unpriced``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from smartspace_budget.errors import InvalidInputError, MissingPricingError
from smartspace_budget.models import PricingData, PricingModel
from smartspace_budget.models.dimensions import DIMENSIONS, MAX_COUNT, Usage
from smartspace_budget.money import quantize
from smartspace_budget.pricing.cost import exact_cost, platform_fee

__all__ = [
    "Charge",
    "PricedUsage",
    "ProviderUsage",
    "call_cost",
    "charge",
    "price_usage",
    "usage_base_cost",
    "usage_counts",
    "with_platform_fee",
]

_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


@dataclass(frozen=True, slots=True)
class ProviderUsage(Usage):
    """One call's usage in every dimension, plus what the response reported beyond them.

    A :class:`~smartspace_budget.models.dimensions.Usage` (counts nest: cached, cache-write,
    audio and image input are part of ``input_tokens``; reasoning and audio output part of
    ``output_tokens``), validated on construction (:class:`InvalidInputError`).
    ``unmapped`` holds ``(name, count)`` of reported usage no dimension holds, sorted by name.
    """

    unmapped: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        Usage.of(**{name: getattr(self, name) for name in _USAGE_FIELDS})
        if self.cached_input_tokens + self.cache_write_tokens > self.input_tokens:
            raise InvalidInputError(
                f"cached ({self.cached_input_tokens}) and cache-write ({self.cache_write_tokens})"
                f" tokens exceed the input tokens ({self.input_tokens})"
            )
        for name, value in self.unmapped:
            if not isinstance(name, str) or not name or isinstance(value, bool):
                raise InvalidInputError(f"unmapped usage {name!r} needs a name and a count")
            if not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"unmapped usage {name} must be a count, got {value!r}")

    @classmethod
    def of_counts(
        cls, counts: Mapping[str, Any], unmapped: Mapping[str, int] | None = None
    ) -> ProviderUsage:
        """A usage from ``{dimension: count}`` (see :data:`~smartspace_budget.models.
        dimensions.DIMENSIONS`) and the reported usage no dimension holds."""
        usage = Usage.of(**dict(counts))
        return cls(
            **{name: getattr(usage, name) for name in _USAGE_FIELDS},
            unmapped=tuple(sorted((unmapped or {}).items())),
        )

    @classmethod
    def of_usage(cls, usage: Usage) -> ProviderUsage:
        """``usage`` as a :class:`ProviderUsage` (itself when it already is one)."""
        if isinstance(usage, ProviderUsage):
            return usage
        return cls(**{name: getattr(usage, name) for name in _USAGE_FIELDS})

    @property
    def fresh_input_tokens(self) -> int:
        """Input tokens neither read from nor written to the cache."""
        return self.input_tokens - self.cached_input_tokens - self.cache_write_tokens


def usage_counts(usage: Usage) -> dict[str, Any]:
    """Every dimension of ``usage`` by field name (the keyword arguments of a UsageEvent)."""
    return {d.field: getattr(usage, d.field) for d in DIMENSIONS}


@dataclass(frozen=True, slots=True)
class PricedUsage:
    """The provider's price of a usage (exact, price currency) and what no price covered."""

    base_cost: Decimal
    unpriced: dict[str, int]


def price_usage(pricing: PricingData, usage: Usage, *, at: datetime | None = None) -> PricedUsage:
    """The exact price of ``usage`` for a call made at ``at`` (now by default).

    ``unpriced`` names, with their counts, the dimensions the call used that the version has
    no price for, and the response's ``unmapped`` usage. Raises :class:`MissingPricingError`
    for pricing models that a token usage cannot price (per character, per second).
    """
    if pricing.pricing_model in (PricingModel.PER_CHARACTER, PricingModel.PER_SECOND):
        raise MissingPricingError(
            f"{pricing.provider}/{pricing.model_name} is priced "
            f"{pricing.pricing_model.value}; token usage cannot price it",
            provider=pricing.provider,
            model=pricing.model_name,
        )
    exact = exact_cost(pricing, usage, at=at)
    unpriced = {name: _whole(value) for name, value in exact.unpriced}
    if isinstance(usage, ProviderUsage):
        for name, value in usage.unmapped:
            if value:
                unpriced[name] = unpriced.get(name, 0) + value
    return PricedUsage(exact.total, _bounded(unpriced))


def _whole(value: Decimal | int) -> int:
    """A count for ``unpriced`` (seconds are rounded up to whole seconds)."""
    return value if isinstance(value, int) else math.ceil(value)


MAX_UNPRICED = 50
"""Names a usage entry keeps in ``unpriced`` (the ledger's limit); more are summed."""


def _bounded(unpriced: dict[str, int]) -> dict[str, int]:
    """``unpriced`` within what a usage entry stores: at most :data:`MAX_UNPRICED` names of
    at most 100 characters, counts at most ``MAX_COUNT``; the rest summed as ``"other"``."""
    bounded: dict[str, int] = {}
    for name, value in unpriced.items():
        key = name if len(name) <= 100 else name[:99] + "…"
        if len(bounded) >= MAX_UNPRICED - 1 and key not in bounded:
            key = "other"
        bounded[key] = min(bounded.get(key, 0) + value, MAX_COUNT)
    return bounded


def usage_base_cost(pricing: PricingData, usage: Usage, *, at: datetime | None = None) -> Decimal:
    """The provider's price of ``usage`` (before the platform fee), exact, in the price currency.

    What no price covers adds nothing here: :func:`charge` is the rule that never lets that
    go unpaid. Raises :class:`MissingPricingError` for pricing models that tokens cannot
    price (per character, per second).
    """
    return price_usage(pricing, usage, at=at).base_cost


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
    usage: Usage,
    fee_percent: Decimal,
    usdc_per_unit: Decimal = Decimal(1),
    *,
    at: datetime | None = None,
) -> Decimal:
    """What the account is charged for ``usage`` in USDC: provider price plus the platform fee.

    ``usdc_per_unit`` converts prices quoted in another currency (1 for USDC and USD);
    ``at`` is the instant of the call (time-of-day prices), now by default.
    """
    base = usage_base_cost(pricing, usage, at=at) * usdc_per_unit
    _, total = with_platform_fee(base, fee_percent)
    return total


@dataclass(frozen=True, slots=True)
class Charge:
    """What a settlement charges: ``amount`` USDC, and why.

    ``at_hold`` is true when the reservation was charged instead of the priced amount
    (something was unpriced and the hold was the larger); ``unpriced`` names what no price
    covered, with counts.
    """

    amount: Decimal
    priced: Decimal
    at_hold: bool
    unpriced: dict[str, int]


def charge(
    pricing: PricingData,
    usage: Usage,
    fee_percent: Decimal,
    hold: Decimal,
    usdc_per_unit: Decimal = Decimal(1),
    *,
    at: datetime | None = None,
) -> Charge:
    """The settlement of a call that used ``usage`` and held ``hold``, made at ``at``.

    The priced amount (provider price plus fee, in USDC), unless something the call used
    cannot be priced: then ``max(priced, hold)``. An unpriced web fetch or code-execution
    session costs the provider's price, which the hold was sized to cover far better than
    zero does.
    """
    priced = price_usage(pricing, usage, at=at)
    _, total = with_platform_fee(priced.base_cost * usdc_per_unit, fee_percent)
    if priced.unpriced and hold > total:
        return Charge(hold, total, True, priced.unpriced)
    return Charge(total, total, False, priced.unpriced)
