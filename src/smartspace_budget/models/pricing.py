"""Pricing models of the spec: prices, token and cost estimates, and cost anomalies."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from smartspace_budget.models._base import Money, NonNegativeMoney, SpecModel

__all__ = [
    "MAX_HISTORY_DAYS",
    "AnomalyDirection",
    "AnomalySeverity",
    "CostAnomaly",
    "CostEstimate",
    "PriceTier",
    "PricingData",
    "PricingModel",
    "TokenEstimate",
    "TokenEstimationMethod",
]


MAX_HISTORY_DAYS = 36_500
"""The longest price history one may ask for (``days``, 0 to this), in the library and over
HTTP alike."""


def _now() -> datetime:
    return datetime.now(UTC)


class PricingModel(StrEnum):
    """How a provider charges for a model."""

    TOKEN_BASED = "token_based"
    PER_REQUEST = "per_request"
    PER_CHARACTER = "per_character"
    PER_SECOND = "per_second"


class PriceTier(SpecModel):
    """Prices that apply once a request's input reaches ``min_input_tokens`` (long context)."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"cached_input_price_per_1k", "cache_write_price_per_1k"}
    )

    min_input_tokens: int = Field(ge=0)
    input_price_per_1k: NonNegativeMoney
    output_price_per_1k: NonNegativeMoney
    cached_input_price_per_1k: NonNegativeMoney | None = None
    cache_write_price_per_1k: NonNegativeMoney | None = None


class PricingData(SpecModel):
    """One immutable price version for a provider/model.

    Token prices are per 1,000 tokens (the spec's unit), in ``currency``. Which of the other
    prices apply depends on ``pricing_model``; ``request_price`` may also be charged on top of
    token prices where a provider does so.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "input_price_per_1k",
            "output_price_per_1k",
            "max_input_tokens",
            "max_output_tokens",
            "cached_input_price_per_1k",
            "cache_write_price_per_1k",
            "request_price",
            "price_per_character",
            "price_per_second",
            "tiers",
            "currency",
            "version",
            "source",
        }
    )
    SPEC_KEYS: ClassVar[tuple[str, ...]] = (
        "provider",
        "model_name",
        "pricing_model",
        "input_price_per_1k",
        "output_price_per_1k",
        "max_input_tokens",
        "max_output_tokens",
        "effective_date",
        "last_updated",
    )

    provider: str = Field(min_length=1, max_length=200)
    model_name: str = Field(min_length=1, max_length=200)
    pricing_model: PricingModel = PricingModel.TOKEN_BASED
    input_price_per_1k: NonNegativeMoney | None = None
    output_price_per_1k: NonNegativeMoney | None = None
    max_input_tokens: int | None = Field(default=None, ge=0)
    max_output_tokens: int | None = Field(default=None, ge=0)
    effective_date: datetime
    last_updated: datetime
    cached_input_price_per_1k: NonNegativeMoney | None = None
    cache_write_price_per_1k: NonNegativeMoney | None = None
    request_price: NonNegativeMoney | None = None
    price_per_character: NonNegativeMoney | None = None
    price_per_second: NonNegativeMoney | None = None
    tiers: list[PriceTier] | None = None
    currency: str | None = None
    version: str | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _has_the_prices_its_model_needs(self) -> PricingData:
        needed = {
            PricingModel.TOKEN_BASED: ("input_price_per_1k", "output_price_per_1k"),
            PricingModel.PER_REQUEST: ("request_price",),
            PricingModel.PER_CHARACTER: ("price_per_character",),
            PricingModel.PER_SECOND: ("price_per_second",),
        }[self.pricing_model]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.pricing_model.value} pricing needs {', '.join(missing)}")
        return self

    @property
    def price_currency(self) -> str:
        """The currency of every price here (USDC unless stated)."""
        return self.currency or "USDC"


class TokenEstimationMethod(StrEnum):
    """How a token count was obtained, from most to least trustworthy."""

    EXACT = "exact"
    CALIBRATED = "calibrated"
    HEURISTIC = "heuristic"


class TokenEstimate(SpecModel):
    """A token count with how it was made and how far to trust it (confidence 0..1)."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset({"encoding", "note"})

    model: str
    token_count: int = Field(ge=0)
    method: TokenEstimationMethod
    confidence: float = Field(ge=0.0, le=1.0)
    character_count: int = Field(default=0, ge=0)
    encoding: str | None = None
    note: str | None = None


class CostEstimate(SpecModel):
    """Cost of one request before it is made: base cost, platform fee (5% default), total.

    ``total_cost = base_cost + platform_fee``, all in ``currency`` and exact. When converted,
    ``exchange_rate`` is the rate from USDC used.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"input_token_estimate", "price_version", "exchange_rate", "request_count", "seconds"}
    )

    provider: str
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    input_cost: NonNegativeMoney
    output_cost: NonNegativeMoney
    base_cost: NonNegativeMoney
    platform_fee_percent: NonNegativeMoney
    platform_fee: NonNegativeMoney
    total_cost: NonNegativeMoney
    currency: str = "USDC"
    input_token_estimate: TokenEstimate | None = None
    price_version: str | None = None
    exchange_rate: Money | None = None
    request_count: int | None = None
    seconds: Money | None = None
    estimated_at: datetime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _total_is_base_plus_fee(self) -> CostEstimate:
        if self.base_cost + self.platform_fee != self.total_cost:
            raise ValueError(
                f"total_cost {self.total_cost} != base_cost {self.base_cost} "
                f"+ platform_fee {self.platform_fee}"
            )
        return self


class AnomalySeverity(StrEnum):
    """The spec's bands on |actual - estimated| / estimated.

    < 20% none, 20-50% low, 50-100% medium, 100-200% high, > 200% critical (a band's lower
    bound belongs to it: exactly 20% is low, exactly 200% is high).
    """

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AnomalyDirection(StrEnum):
    """Whether the actual cost came out above or below the estimate."""

    OVER = "over"
    UNDER = "under"
    EQUAL = "equal"


class CostAnomaly(SpecModel):
    """Estimated vs actual cost of one request, with the spec's severity band."""

    request_id: str
    provider: str
    model: str
    estimated_cost: Money
    actual_cost: Money
    difference: Money
    difference_percent: Decimal | None
    severity: AnomalySeverity
    direction: AnomalyDirection
    message: str = ""
    detected_at: datetime = Field(default_factory=_now)

    @property
    def is_anomaly(self) -> bool:
        """True from the low band up."""
        return self.severity is not AnomalySeverity.NONE
