"""The price book: genai-prices' catalog and operators' overrides, as immutable versions.

A layer of its own between the ledger (which stores overrides) and the backends (which
serve prices): the pricing engine reads it through a backend, and the ledger's price store
checks new versions with its rules, so it may depend on neither.
"""

from smartspace_budget.prices.catalog import MemoryPriceStore, OverrideStore, PriceBook

__all__ = ["MemoryPriceStore", "OverrideStore", "PriceBook"]
