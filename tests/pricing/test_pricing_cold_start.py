"""The first estimate after start loads the vocabulary while the price is read (issue 20),
and ``import smartspace_budget`` leaves pydantic and the components for later."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import datetime
from typing import Any

import pytest

from smartspace_budget.models import PricingData
from smartspace_budget.pricing import PriceBook, PricingEngine, tokens


class SlowPrices:
    """A price reader that takes its time, like the default backend opening the ledger, and
    records whether the vocabulary was already loading when it was asked."""

    def __init__(self, book: PriceBook) -> None:
        self.book = book
        self.loading_when_asked: list[bool] = []
        self.loaded = threading.Event()

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        self.loading_when_asked.append("o200k_base" in tokens._loading)
        return await self.book.get_pricing(provider, model, at=at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.book, name)


@pytest.fixture
def cold_vocabulary(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """No vocabulary loaded, and loading one waits until the test lets it finish."""
    tokens.clear_encoding_cache()
    release = threading.Event()
    real_load = tokens._load_vocabulary

    def load(name: str) -> Any:
        release.wait(10)
        return real_load(name)

    monkeypatch.setattr(tokens, "_load_vocabulary", load)
    yield release
    release.set()
    tokens.clear_encoding_cache()


async def test_the_vocabulary_loads_while_the_price_is_read(
    book: PriceBook, cold_vocabulary: threading.Event
) -> None:
    prices = SlowPrices(book)
    engine = PricingEngine(prices)  # type: ignore[arg-type]
    estimate = engine.estimate_cost("openai", "gpt-4o", input_text="hello there, world")
    cold_vocabulary.set()  # the load may finish once the price read has seen it running
    result = await estimate
    assert prices.loading_when_asked == [True]
    assert result.input_token_estimate is not None
    assert result.input_token_estimate.method.value == "exact"


def test_preload_returns_at_once_and_bad_names_are_left_to_the_estimate(
    cold_vocabulary: threading.Event,
) -> None:
    tokens.preload_vocabulary("gpt-4o")  # returns although the load is held
    assert "o200k_base" in tokens._loading
    tokens.preload_vocabulary("   ")
    tokens.preload_vocabulary("gpt-4o", 3)  # type: ignore[arg-type]
    cold_vocabulary.set()
    estimate = tokens.estimate_tokens("hello", "gpt-4o")
    assert estimate.encoding == "o200k_base"
    assert estimate.method.value == "exact"


def test_importing_the_package_leaves_pydantic_and_the_components_for_later() -> None:
    code = (
        "import sys, smartspace_budget\n"
        "heavy = [m for m in ('pydantic', 'smartspace_budget.models', 'sqlalchemy', 'tiktoken',"
        " 'smartspace_budget.pricing') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from smartspace_budget import BudgetCheck, PricingEngine\n"
        "assert 'pydantic' in sys.modules and PricingEngine.__name__ == 'PricingEngine'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
