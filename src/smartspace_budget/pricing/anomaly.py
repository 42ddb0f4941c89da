"""Estimated vs actual cost of one request, sorted into the spec's severity bands.

The difference is measured against the estimate: ``|actual - estimated| / estimated``.
Bands (a band's lower bound belongs to it): below 20% none, 20% up to 50% low, 50% up to
100% medium, 100% up to and including 200% high, above 200% critical. The band is decided
on exact Decimals (no division, so 19.9999999% is never rounded into "low");
``difference_percent`` is then reported rounded to nine places.

Edge cases: an estimate of zero with a non-zero actual cost has no finite percentage
(``None``) and is critical; zero against zero is no anomaly. Negative actual costs (a
credit) are compared like any other; a negative estimate is refused, since no price makes
a request cost less than nothing before it happens.
"""

from __future__ import annotations

from decimal import Decimal

from smartspace_budget import display
from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.models import AnomalyDirection, AnomalySeverity, CostAnomaly
from smartspace_budget.models.usage import MAX_ID_LENGTH
from smartspace_budget.money import parse_amount, quantize

__all__ = ["BANDS", "CRITICAL_ABOVE", "classify", "detect_cost_anomaly"]

CRITICAL_ABOVE = Decimal(200)
"""Percent strictly above which a difference is critical (exactly 200% is high)."""

BANDS: tuple[tuple[Decimal, AnomalySeverity], ...] = (
    (Decimal(100), AnomalySeverity.HIGH),
    (Decimal(50), AnomalySeverity.MEDIUM),
    (Decimal(20), AnomalySeverity.LOW),
)
"""Inclusive lower bounds in percent, highest first; below the last is no anomaly."""

_PERCENT_DIGITS = 9


def classify(
    estimated: Decimal, actual: Decimal
) -> tuple[AnomalySeverity, AnomalyDirection, Decimal | None]:
    """Severity, direction and rounded difference percent for two exact amounts."""
    difference = actual - estimated
    direction = (
        AnomalyDirection.OVER
        if difference > 0
        else AnomalyDirection.UNDER
        if difference < 0
        else AnomalyDirection.EQUAL
    )
    gap = abs(difference)
    if estimated == 0:
        if gap == 0:
            return AnomalySeverity.NONE, direction, Decimal(0)
        return AnomalySeverity.CRITICAL, direction, None
    scaled = gap * 100  # compare gap * 100 with bound * estimated: exact, no division
    if scaled > CRITICAL_ABOVE * estimated:
        severity = AnomalySeverity.CRITICAL
    else:
        severity = next(
            (band for bound, band in BANDS if scaled >= bound * estimated), AnomalySeverity.NONE
        )
    percent = quantize(scaled / estimated, _PERCENT_DIGITS)
    return severity, direction, percent


def detect_cost_anomaly(
    request_id: str,
    provider: str,
    model: str,
    estimated_cost: object,
    actual_cost: object,
) -> CostAnomaly:
    """Compare one request's estimate with what it really cost (see the module docstring).

    Amounts are Decimals, ints or decimal strings (floats are refused). Raises
    :class:`InvalidAmountError` for a bad or negative estimate and
    :class:`InvalidInputError` for an empty id, provider or model.
    """
    for name, value in (("request_id", request_id), ("provider", provider), ("model", model)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInputError(f"{name} must be a non-empty string")
        if len(value) > MAX_ID_LENGTH:
            raise InvalidInputError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    estimated = parse_amount(estimated_cost, name="estimated_cost")
    actual = parse_amount(actual_cost, name="actual_cost")
    if estimated < 0:
        raise InvalidAmountError(
            f"estimated_cost must not be negative, got {estimated}", field="estimated_cost"
        )
    severity, direction, percent = classify(estimated, actual)
    return CostAnomaly(
        request_id=request_id,
        provider=provider,
        model=model,
        estimated_cost=estimated,
        actual_cost=actual,
        difference=actual - estimated,
        difference_percent=percent,
        severity=severity,
        direction=direction,
        message=_message(provider, model, estimated, actual, severity, direction, percent),
    )


def _message(
    provider: str,
    model: str,
    estimated: Decimal,
    actual: Decimal,
    severity: AnomalySeverity,
    direction: AnomalyDirection,
    percent: Decimal | None,
) -> str:
    where = f"{provider}/{model}"
    shown = display.amount(actual)
    if direction is AnomalyDirection.EQUAL:
        return f"actual cost {shown} equals the estimate for {where}"
    side = "above" if direction is AnomalyDirection.OVER else "below"
    if percent is None:
        return (
            f"actual cost {shown} for {where} against an estimate of $0 "
            f"({severity.value} severity: no finite percentage)"
        )
    return (
        f"actual cost {shown} is {display.percent(percent)} {side} the estimate "
        f"{display.amount(estimated)} for {where} ({severity.value} severity)"
    )
