"""A caller's decimal context (say, 3 digits of precision) never rounds our amounts or counts."""

from __future__ import annotations

import decimal
from typing import Any

from smartspace_budget.pricing import PricingEngine

TEXT = "Summarise the quarterly spending report for the platform team. " * 40


async def estimates(engine: PricingEngine) -> list[Any]:
    return [
        await engine.estimate_cost(
            "anthropic", "claude-3-5-sonnet", input_text=TEXT, expected_output_tokens=777
        ),
        await engine.estimate_cost(
            "openai", "gpt-4o", input_tokens=113_457, expected_output_tokens=9_999
        ),
        await engine.estimate_cost("openai", "gpt-4o", input_text=TEXT),
    ]


async def test_a_low_precision_context_changes_nothing(engine: PricingEngine) -> None:
    expected = [e.model_dump(exclude={"estimated_at"}) for e in await estimates(engine)]
    with decimal.localcontext() as context:
        context.prec = 3
        context.rounding = decimal.ROUND_DOWN
        got = [e.model_dump(exclude={"estimated_at"}) for e in await estimates(engine)]
    assert got == expected
    assert any(e["total_cost"].as_tuple().digits[3:] for e in expected), "amounts too short"
