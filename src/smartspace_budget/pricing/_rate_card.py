"""A price version compiled for whole-usage estimates: integer rates, one pass per call.

:func:`cost.exact_cost` is the reference: it resolves a version's prices for the call
(time-of-day window, long-context tier), charges each unit once at its most specific
price, and rounds each amount once. Doing that with Decimals for every dimension costs
hundreds of microseconds per call; but for a given (version, window, tier) everything but
the counts is fixed. A :class:`RateCard` holds that fixed part: the priced dimensions in the
order their leaves are taken, which priced dimensions nest in each, and each price as an
integer rate in units of ``10**-(9 + places)`` USDC. An estimate is then integer arithmetic
and one half-even division per reported amount, digit for digit what the Decimal path
gives (Python integers are exact at any size; tests compare every field with it).

Only USDC-priced versions compile, and only dimensions whose price divides into whole
units per count: seconds priced per hour (a division by 3,600) and the catalog's minimum
seconds go to the general path, as does anything else it does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from smartspace_budget.models import (
    CostEstimate,
    CostLine,
    PricingData,
    PricingModel,
    TokenEstimate,
)
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.dimensions import DIMENSIONS, NESTS_IN, SPECIFICITY, Usage
from smartspace_budget.money import DEFAULT_CURRENCY, NANO_DIGITS
from smartspace_budget.pricing._quote import _NANO, Fee, _half_even, _to_nano

__all__ = ["RateCard", "compile_card"]

_MAX_PLACES = 30
_ORDER = {d.field: index for index, d in enumerate(DIMENSIONS)}
_OUTPUT = {d.field for d in DIMENSIONS if ("direction", "output") in d.traits}
_FIELDS = tuple(d.field for d in DIMENSIONS)
_cost_line = builder(CostLine)
_cost_estimate = builder(CostEstimate)


def _nano(value: int) -> Decimal:
    """Exactly ``value`` nano-USDC, at exponent -9 (as :func:`money.quantize` gives it)."""
    return _to_nano(value, _NANO)


@dataclass(frozen=True, slots=True)
class _Rate:
    field: str
    rate: int  # per unit of the dimension, in 10**-(9 + places) USDC
    price: Decimal
    per: int
    nested: tuple[int, ...]  # indexes (in RateCard.rates) of priced dimensions nested here
    output: bool


@dataclass(frozen=True, slots=True)
class RateCard:
    """One price version's prices for calls in one time-of-day window and tier."""

    pricing: PricingData
    rates: tuple[_Rate, ...]  # most specific first: each leaf subtracts those nested in it
    divisor: int  # 10**places
    uncovered: tuple[str, ...]  # used dimensions that no price covers, if used
    line_order: tuple[int, ...]  # indexes of rates in DIMENSIONS order, for the line items
    template: dict[str, Any]  # the estimate's fields that do not depend on the call
    uses_requests: bool

    def estimate(
        self,
        usage: Usage,
        fee: Fee,
        token_estimate: TokenEstimate | None,
        estimated_at: datetime,
    ) -> CostEstimate | None:
        """The estimate of ``usage`` (``None`` when a count is not a whole number)."""
        leaves: list[int] = []
        for rate in self.rates:
            value = getattr(usage, rate.field)
            if type(value) is not int:
                return None
            for index in rate.nested:
                value -= leaves[index]
            if value < 0:
                return None  # inconsistent: the general path says why
            leaves.append(value)
        divisor = self.divisor
        input_exact = output_exact = 0
        lines = []
        for index in self.line_order:
            rate = self.rates[index]
            quantity = leaves[index]
            exact = rate.rate * quantity
            if rate.output:
                output_exact += exact
            else:
                input_exact += exact
            if quantity and rate.rate:
                lines.append(
                    _cost_line(
                        {
                            "dimension": rate.field,
                            "quantity": Decimal(quantity),
                            "unit_price": rate.price,
                            "per": rate.per,
                            "cost": _nano(_half_even(exact, divisor)),
                        }
                    )
                )
        base = _half_even(input_exact + output_exact, divisor)
        platform_fee = _half_even(base * fee.numerator, fee.denominator)
        unpriced = {
            name: Decimal(value) for name in self.uncovered if (value := getattr(usage, name))
        }
        values = self.template.copy()
        values.update(
            input_token_estimate=token_estimate,
            request_count=usage.request_count if self.uses_requests else None,
            seconds=usage.seconds,
            estimated_at=estimated_at,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            input_cost=_nano(_half_even(input_exact, divisor)),
            output_cost=_nano(_half_even(output_exact, divisor)),
            base_cost=_nano(base),
            platform_fee_percent=fee.percent,
            platform_fee=_nano(platform_fee),
            total_cost=_nano(base + platform_fee),
            line_items=lines,
            unpriced=unpriced or None,
        )
        return _cost_estimate(values)


def compile_card(pricing: PricingData, prices: dict[str, tuple[Decimal, int]]) -> RateCard | None:
    """The card for ``prices`` (:func:`cost.unit_prices` of one call), or ``None``."""
    if pricing.price_currency != DEFAULT_CURRENCY or "seconds" in prices:
        return None
    parts = []
    for name, (price, per) in prices.items():
        if per not in (1, 1000) or not price.is_finite():
            return None
        sign, digits, exponent = price.as_tuple()
        if sign or not isinstance(exponent, int) or len(digits) > _MAX_PLACES:
            return None
        coefficient = int("".join(map(str, digits)) or "0")
        shift = exponent + NANO_DIGITS - (3 if per == 1000 else 0)
        parts.append((name, coefficient, shift, price, per))
    places = max([0, *(-part[2] for part in parts)])
    if places > _MAX_PLACES:
        return None
    names = sorted(prices, key=lambda n: (-SPECIFICITY[n], n))
    by_name = {p[0]: p for p in parts}
    position = {name: index for index, name in enumerate(names)}
    rates = []
    for name in names:
        _, coefficient, shift, price, per = by_name[name]
        nested = tuple(position[other] for other in names if name in NESTS_IN[other])
        rates.append(
            _Rate(name, coefficient * 10 ** (shift + places), price, per, nested, name in _OUTPUT)
        )
    uncovered = tuple(
        name
        for name in _FIELDS
        if name not in prices
        and name not in ("request_count", "characters")
        and not NESTS_IN[name] & prices.keys()
    )
    line_order = tuple(sorted(range(len(names)), key=lambda i: _ORDER[names[i]]))
    template: dict[str, Any] = dict.fromkeys(CostEstimate.model_fields)
    template.update(
        provider=pricing.provider,
        model=pricing.model_name,
        currency=DEFAULT_CURRENCY,
        price_version=pricing.version,
    )
    uses_requests = (
        pricing.pricing_model is PricingModel.PER_REQUEST or pricing.request_price is not None
    )
    return RateCard(
        pricing, tuple(rates), 10**places, uncovered, line_order, template, uses_requests
    )
