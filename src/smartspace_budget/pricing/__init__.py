"""Prices, token estimates and costs: the spec's PricingEngine and the price book behind it."""

from smartspace_budget.prices.catalog import MemoryPriceStore, OverrideStore, PriceBook
from smartspace_budget.pricing.pricing_engine import (
    DEFAULT_EXPECTED_OUTPUT_TOKENS,
    PricingEngine,
    PricingReader,
    ProviderComparison,
)
from smartspace_budget.pricing.tokens import estimate_tokens

__all__ = [
    "DEFAULT_EXPECTED_OUTPUT_TOKENS",
    "MemoryPriceStore",
    "OverrideStore",
    "PriceBook",
    "PricingEngine",
    "PricingReader",
    "ProviderComparison",
    "estimate_tokens",
]
