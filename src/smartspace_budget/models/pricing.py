"""Pricing models of the spec: prices, token and cost estimates, and cost anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import Field, field_serializer, field_validator, model_validator

from smartspace_budget.errors import IdempotencyConflictError
from smartspace_budget.models._base import Money, NonNegativeMoney, SpecModel
from smartspace_budget.models.dimensions import DIMENSIONS, DIMENSIONS_BY_FIELD
from smartspace_budget.models.output_sketch import OutputEstimate

__all__ = [
    "MAX_HISTORY_DAYS",
    "SPEC_PRICE_FIELDS",
    "AnomalyDirection",
    "AnomalySeverity",
    "CostAnomaly",
    "CostEstimate",
    "CostLine",
    "PriceTier",
    "PricingData",
    "PricingModel",
    "TimeOfDayPrice",
    "TokenEstimate",
    "TokenEstimationMethod",
    "same_version_or_conflict",
]

SPEC_PRICE_FIELDS: dict[str, str] = {
    "input_tokens": "input_price_per_1k",
    "output_tokens": "output_price_per_1k",
    "cached_input_tokens": "cached_input_price_per_1k",
    "cache_write_tokens": "cache_write_price_per_1k",
    "request_count": "request_price",
    "characters": "price_per_character",
    "seconds": "price_per_second",
}
"""Dimensions priced by the spec's own fields; every other one is in ``dimension_prices``."""


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


def _check_dimension_prices(
    prices: dict[str, Decimal] | None, *, tokens_only: bool = False
) -> dict[str, Decimal] | None:
    """Keys of ``dimension_prices`` are usage dimensions the spec's fields do not price."""
    if prices is None:
        return None
    for key in prices:
        dimension = DIMENSIONS_BY_FIELD.get(key)
        if dimension is None:
            known = ", ".join(d.field for d in DIMENSIONS if d.field not in SPEC_PRICE_FIELDS)
            raise ValueError(f"unknown usage dimension {key!r} (known: {known})")
        if key in SPEC_PRICE_FIELDS:
            raise ValueError(f"{key} is priced by {SPEC_PRICE_FIELDS[key]}, not dimension_prices")
        if tokens_only and not dimension.is_tokens:
            raise ValueError(f"{key} is not a token dimension: a tier prices tokens only")
    return prices


class PriceTier(SpecModel):
    """Prices that apply once a request's input reaches ``min_input_tokens`` (long context).

    A tier re-prices every token of the request ("cliff" pricing): its token prices replace
    the version's, including ``dimension_prices`` of token dimensions (audio, image...).
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"cached_input_price_per_1k", "cache_write_price_per_1k", "dimension_prices"}
    )

    min_input_tokens: int = Field(ge=0)
    input_price_per_1k: NonNegativeMoney
    output_price_per_1k: NonNegativeMoney
    cached_input_price_per_1k: NonNegativeMoney | None = None
    cache_write_price_per_1k: NonNegativeMoney | None = None
    dimension_prices: dict[str, NonNegativeMoney] | None = None

    @field_validator("dimension_prices")
    @classmethod
    def _known_token_dimensions(
        cls, prices: dict[str, Decimal] | None
    ) -> dict[str, Decimal] | None:
        return _check_dimension_prices(prices, tokens_only=True)


class TimeOfDayPrice(SpecModel):
    """Prices in force every day from ``start_time`` to ``end_time`` (UTC), e.g. off-peak.

    Inside the window these prices replace the version's token, request and dimension
    prices and tiers (as genai-prices does); a window whose end is before its start runs
    over midnight. When windows overlap, the one listed last wins.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "input_price_per_1k",
            "output_price_per_1k",
            "cached_input_price_per_1k",
            "cache_write_price_per_1k",
            "request_price",
            "dimension_prices",
            "tiers",
        }
    )

    start_time: time
    end_time: time
    input_price_per_1k: NonNegativeMoney | None = None
    output_price_per_1k: NonNegativeMoney | None = None
    cached_input_price_per_1k: NonNegativeMoney | None = None
    cache_write_price_per_1k: NonNegativeMoney | None = None
    request_price: NonNegativeMoney | None = None
    dimension_prices: dict[str, NonNegativeMoney] | None = None
    tiers: list[PriceTier] | None = None

    @field_validator("dimension_prices")
    @classmethod
    def _known_dimensions(cls, prices: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        return _check_dimension_prices(prices)

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: time) -> time:
        if value.tzinfo is not None and value.utcoffset() not in (None, UTC.utcoffset(None)):
            raise ValueError("time-of-day windows are in UTC")
        return value.replace(tzinfo=None)

    @field_serializer("start_time", "end_time")
    def _written_as_utc(self, value: time) -> str:
        """RFC 3339's time of day in UTC (``00:30:00Z``): what ``format: time`` means."""
        return value.isoformat() + "Z"

    def active(self, instant: datetime) -> bool:
        """Whether ``instant`` (aware, or naive UTC) falls in this window."""
        if instant.tzinfo is not None:
            instant = instant.astimezone(UTC)
        moment = instant.time().replace(tzinfo=None)
        if self.end_time < self.start_time:
            return moment >= self.start_time or moment < self.end_time
        return self.start_time <= moment < self.end_time


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
            "dimension_prices",
            "price_per_hour",
            "minimum_billed_seconds",
            "time_of_day",
            "context_window",
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
    dimension_prices: dict[str, NonNegativeMoney] | None = None
    price_per_hour: NonNegativeMoney | None = None
    minimum_billed_seconds: NonNegativeMoney | None = None
    time_of_day: list[TimeOfDayPrice] | None = None
    context_window: int | None = Field(default=None, ge=0)
    """Input and output tokens of one call together (providers refuse a request whose input
    plus ``max_tokens`` exceeds it), beside the separate input and output limits."""

    @field_validator("dimension_prices")
    @classmethod
    def _known_dimensions(cls, prices: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        return _check_dimension_prices(prices)

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

    def prices_at(self, instant: datetime) -> PricingData | TimeOfDayPrice:
        """The price set in force at ``instant``: the last active time-of-day window, or this.

        Only token, request and dimension prices (and tiers) vary by time of day; character,
        second and page prices are the version's own.
        """
        for window in reversed(self.time_of_day or ()):
            if window.active(instant):
                return window
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


class CostLine(SpecModel):
    """One dimension of a cost: how much was used, at what price, and what it cost.

    ``unit_price`` is per ``per`` units (1,000 for tokens, as the spec's prices; 3,600 for
    seconds priced per hour; one otherwise). ``quantity`` is what that price was charged on:
    tokens already charged at a more specific price (cached, audio...) are not counted again
    under their parent. ``cost`` is the exact cost rounded once to nano-USDC, in the
    estimate's currency.
    """

    dimension: str
    quantity: Decimal
    unit_price: NonNegativeMoney
    per: int
    cost: NonNegativeMoney


class CostEstimate(SpecModel):
    """Cost of one request before it is made: base cost, platform fee (5% default), total.

    ``total_cost = base_cost + platform_fee``, all in ``currency`` and exact. When converted,
    ``exchange_rate`` is the rate from USDC used.
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "input_token_estimate",
            "price_version",
            "exchange_rate",
            "request_count",
            "seconds",
            "line_items",
            "priced_at",
            "unpriced",
            "output_estimate",
        }
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
    line_items: list[CostLine] | None = None
    priced_at: datetime | None = None
    """The instant the call was priced at, when one was asked for (else: when estimated)."""
    unpriced: dict[str, Decimal] | None = None
    output_estimate: OutputEstimate | None = None
    """How ``output_tokens`` was chosen (given, predicted from history, the default) and
    with what confidence; set when the caller did not give the output."""

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


def same_version_or_conflict(existing: PricingData, new: PricingData) -> PricingData:
    """The stored version when a retried add carries the same price; a conflict otherwise."""
    ignore = {"last_updated"}
    if existing.model_dump(exclude=ignore) != new.model_dump(exclude=ignore):
        raise IdempotencyConflictError(
            f"price version {new.version!r} already exists with different content",
            version=new.version,
        )
    return existing
