"""Fixtures of the pricing tests: a price book on genai-prices with a clock we control."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from smartspace_budget.pricing import PriceBook, PricingEngine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A settable "now" for price books."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def book(clock: Clock) -> PriceBook:
    return PriceBook(catalog=True, clock=clock)


@pytest.fixture
def engine(book: PriceBook) -> PricingEngine:
    return PricingEngine(book)


@pytest.fixture
def make_engine(clock: Clock) -> Callable[..., PricingEngine]:
    def make(**kwargs: object) -> PricingEngine:
        return PricingEngine(PriceBook(catalog=True, clock=clock), **kwargs)  # type: ignore[arg-type]

    return make


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report how many usage cases the invoice-parity tests compared with genai-prices."""
    from tests.pricing.test_pricing_invoice_parity import CASES

    for name, cases in CASES.items():
        terminalreporter.write_line(f"invoice parity with genai-prices ({name}): {cases:,} cases")
