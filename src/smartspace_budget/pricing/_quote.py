"""A cached token price compiled for the estimate hot path: integer rates, integer rounding.

Once a price version is cached, most estimates are "this many tokens in, that many out" at
it. Through Decimal contexts that took a dozen context calls and four wrapped roundings per
estimate, most of ``estimate_cost``'s time after the tokenizer. Python integers are exact at
any size, so a price is compiled once into per-token rates in whole units of 10^-(9+k) USDC
(k: the fewest extra places that make both rates whole, 0 for most prices), each reported
amount is rounded half-even to nano-USDC by one integer division, and a Decimal is made only
for each amount reported (exponent -9, as :func:`money.quantize` gives it).

The amounts are those of :func:`cost.exact_cost`, :func:`money.quantize` and
:func:`cost.platform_fee`, digit for digit (the hot-path tests compare every field with the
general path). Those functions are exact within 60 significant digits, so a price or fee
whose amounts could come near that is not compiled, and the general path answers for it.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from smartspace_budget.models import (
    CostEstimate,
    CostLine,
    PricingData,
    PricingModel,
    TokenEstimate,
)
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.money import DEFAULT_CURRENCY, NANO_DIGITS

__all__ = ["Fee", "Quote", "compile_fee", "compile_quote"]

# Limits that keep every intermediate of the general path within its 60 exact digits:
# price coefficients (a price's significant digits), extra places below nano, base costs in
# nano-USDC and fee coefficients.
_MAX_PRICE_DIGITS = 30
_MAX_EXTRA_PLACES = 20
_MAX_BASE_NANO = 10**30
_MAX_FEE_DIGITS = 20

# Multiplying an int by 1E-9 gives exactly that int at exponent -9, with no rounding in a
# 60-digit context: one C call, context-independent, cheaper than scaleb or a string.
_NANO = Decimal(1).scaleb(-NANO_DIGITS)
_to_nano = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN).multiply
_PER_TOKEN_PLACES = NANO_DIGITS - 3  # a price per 1,000 tokens, in nano-units per token

_cost_estimate = builder(CostEstimate)
_cost_line = builder(CostLine)


def _half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-even (both non-negative)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = remainder + remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        return quotient + 1
    return quotient


def _coefficient(amount: object, max_digits: int) -> tuple[int, int] | None:
    """``(c, e)`` with ``amount == c * 10**e``, for a finite non-negative Decimal of at most
    ``max_digits`` significant digits; ``None`` for anything else."""
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount.is_signed():
        return None
    _, digits, exponent = amount.as_tuple()
    if len(digits) > max_digits or not isinstance(exponent, int):
        return None
    return int("".join(map(str, digits))), exponent


@dataclass(frozen=True, slots=True)
class Fee:
    """A platform fee percentage as ``numerator / denominator`` of the base cost."""

    percent: Decimal
    numerator: int
    denominator: int


def compile_fee(percent: object) -> Fee | None:
    """The fee as an exact fraction, or ``None`` when only the general path may apply it."""
    parts = _coefficient(percent, _MAX_FEE_DIGITS)
    if parts is None or not -_MAX_FEE_DIGITS <= parts[1] <= _MAX_FEE_DIGITS:
        return None
    coefficient, exponent = parts
    assert isinstance(percent, Decimal)
    if exponent >= 0:
        return Fee(percent, coefficient * 10**exponent, 100)
    return Fee(percent, coefficient, 100 * 10**-exponent)


@dataclass(frozen=True, slots=True)
class Quote:
    """A token price in USDC ready for :meth:`estimate` (see the module docstring).

    ``input_rate`` and ``output_rate`` are per token in units of ``1 / divisor`` nano-USDC.
    ``max_input``, ``max_output`` and ``context_window`` (input plus output) are the
    model's limits, ``MAX_TOKENS`` (twice that for the window) where the model has none (no
    valid count is above it). ``tier_start`` is the input size from which a
    long-context tier applies (the general path prices those). ``fields`` holds the
    estimate's fields that do not depend on the request: copying it is cheaper than writing
    all seventeen fields per estimate.
    """

    key: str
    pricing: PricingData
    provider: str
    input_rate: int
    output_rate: int
    divisor: int
    max_input: int
    max_output: int
    context_window: int
    tier_start: int
    fields: dict[str, object]
    input_line: dict[str, object]
    output_line: dict[str, object]

    def estimate(
        self,
        fee: Fee,
        input_tokens: int,
        output_tokens: int,
        token_estimate: TokenEstimate | None,
    ) -> CostEstimate:
        """The USDC estimate of in-range, within-limit token counts: each amount rounded once."""
        input_exact = self.input_rate * input_tokens
        output_exact = self.output_rate * output_tokens
        divisor = self.divisor
        if divisor == 1:
            input_nano, output_nano = input_exact, output_exact
            base = input_exact + output_exact
        else:
            input_nano = _half_even(input_exact, divisor)
            output_nano = _half_even(output_exact, divisor)
            base = _half_even(input_exact + output_exact, divisor)
        # The fee, rounded half-even (inline: this runs on every estimate).
        platform_fee, remainder = divmod(base * fee.numerator, fee.denominator)
        remainder += remainder
        if remainder > fee.denominator or (remainder == fee.denominator and platform_fee & 1):
            platform_fee += 1
        to_nano, nano = _to_nano, _NANO
        fields = self.fields.copy()
        fields["input_tokens"] = input_tokens
        fields["output_tokens"] = output_tokens
        input_cost = fields["input_cost"] = to_nano(input_nano, nano)
        output_cost = fields["output_cost"] = to_nano(output_nano, nano)
        lines = []
        if input_tokens and self.input_rate:
            line = self.input_line.copy()
            line["quantity"] = Decimal(input_tokens)
            line["cost"] = input_cost
            lines.append(_cost_line(line))
        if output_tokens and self.output_rate:
            line = self.output_line.copy()
            line["quantity"] = Decimal(output_tokens)
            line["cost"] = output_cost
            lines.append(_cost_line(line))
        fields["line_items"] = lines
        fields["base_cost"] = to_nano(base, nano)
        fields["platform_fee_percent"] = fee.percent
        fields["platform_fee"] = to_nano(platform_fee, nano)
        fields["total_cost"] = to_nano(base + platform_fee, nano)
        fields["input_token_estimate"] = token_estimate
        fields["estimated_at"] = datetime.now(UTC)
        return _cost_estimate(fields)


def _limit(tokens: int | None) -> int:
    return MAX_TOKENS if tokens is None else tokens


def compile_quote(key: str, pricing: PricingData) -> Quote | None:
    """The hot-path form of a cached price version, or ``None`` when it does not qualify.

    Only token prices in USDC without a per-request price qualify (other currencies depend
    on exchange rates, which can change), and only within the module's digit limits.
    """
    if (
        pricing.pricing_model is not PricingModel.TOKEN_BASED
        or pricing.request_price is not None
        or pricing.time_of_day
        or pricing.price_currency != DEFAULT_CURRENCY
    ):
        return None
    input_parts = _coefficient(pricing.input_price_per_1k, _MAX_PRICE_DIGITS)
    output_parts = _coefficient(pricing.output_price_per_1k, _MAX_PRICE_DIGITS)
    if input_parts is None or output_parts is None:
        return None
    exponents = (input_parts[1] + _PER_TOKEN_PLACES, output_parts[1] + _PER_TOKEN_PLACES)
    if not all(-_MAX_EXTRA_PLACES <= exponent <= _MAX_EXTRA_PLACES for exponent in exponents):
        return None
    places = max(0, -min(exponents))
    input_rate = input_parts[0] * 10 ** (exponents[0] + places)
    output_rate = output_parts[0] * 10 ** (exponents[1] + places)
    divisor = 10**places
    if (input_rate + output_rate) * MAX_TOKENS >= _MAX_BASE_NANO * divisor:
        return None
    tiers = [tier.min_input_tokens for tier in pricing.tiers or ()]
    # Every field of CostEstimate, in its declared order; estimate() fills in the others.
    fields: dict[str, object] = dict.fromkeys(CostEstimate.model_fields)
    fields.update(
        provider=pricing.provider,
        model=pricing.model_name,
        currency=DEFAULT_CURRENCY,
        price_version=pricing.version,
        exchange_rate=None,
        request_count=None,
        seconds=None,
    )
    return Quote(
        key=key,
        pricing=pricing,
        provider=pricing.provider,
        input_rate=input_rate,
        output_rate=output_rate,
        divisor=divisor,
        max_input=_limit(pricing.max_input_tokens),
        max_output=_limit(pricing.max_output_tokens),
        context_window=2 * MAX_TOKENS if pricing.context_window is None else pricing.context_window,
        tier_start=min(tiers, default=MAX_TOKENS + 1),
        fields=fields,
        input_line=_line("input_tokens", pricing.input_price_per_1k),
        output_line=_line("output_tokens", pricing.output_price_per_1k),
    )


def _line(dimension: str, price: Decimal | None) -> dict[str, object]:
    """A line item's fields but its quantity and cost, in CostLine's declared order."""
    line: dict[str, object] = dict.fromkeys(CostLine.model_fields)
    line.update(dimension=dimension, unit_price=price, per=1000)
    return line
