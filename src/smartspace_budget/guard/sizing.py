"""How big a guarded call can get: its estimate, the worst-case output, several choices.

The estimate is the pricing engine's (exact input tokens where a tokenizer exists). The
output held is ``max_tokens`` when the caller gives it; without it, the most the model can
produce (:func:`worst_case_output`). OpenAI's ``n`` multiplies the output
(:func:`for_choices`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smartspace_budget.guard.call import PricingSource
from smartspace_budget.models import CostEstimate

__all__ = ["DEFAULT_MAX_OUTPUT_TOKENS", "estimate_call", "for_choices", "worst_case_output"]

DEFAULT_MAX_OUTPUT_TOKENS = 65_536
"""Output held for a call without ``max_tokens`` when the model's limits are unknown.

Large enough for the longest outputs current chat models allow by default (Gemini 2.5 Pro,
Claude Sonnet 4.5: 64K tokens); settlement charges what was really produced.
"""


async def estimate_call(
    pricing: PricingSource,
    provider: str,
    model: str,
    input_text: str | None,
    messages: Sequence[dict[str, Any]] | None,
    output_tokens: int | None,
    *,
    input_tokens: int | None = None,
) -> CostEstimate:
    """The pricing engine's estimate of one call (``None`` output: the engine's default)."""
    kwargs: dict[str, Any] = {}
    if output_tokens is not None:
        kwargs["expected_output_tokens"] = output_tokens
    if input_tokens is not None:
        kwargs["input_tokens"] = input_tokens
    elif messages is not None:
        kwargs["messages"] = list(messages)
    elif input_text is not None:
        kwargs["input_text"] = input_text  # a one-message chat (the engine's default)
    return await pricing.estimate_cost(provider, model, **kwargs)


async def worst_case_output(
    pricing: PricingSource,
    provider: str,
    model: str,
    input_text: str | None,
    messages: Sequence[dict[str, Any]] | None,
    default: int,
) -> tuple[int, str]:
    """The most output a call without ``max_tokens`` can produce, and why.

    The smaller of the model's output limit and what its context window leaves after the
    input (input and output share the window, so the output cannot be larger), as far as
    the price version knows them; else ``default`` (the guard's
    ``default_max_output_tokens``).
    """
    price = await pricing.get_provider_pricing(provider, model)
    window = price.context_window if price.context_window is not None else price.max_input_tokens
    left: int | None = None
    if window is not None:
        sized = await estimate_call(pricing, provider, model, input_text, messages, 0)
        left = max(window - sized.input_tokens, 0)
    if price.max_output_tokens is not None and (left is None or price.max_output_tokens <= left):
        return price.max_output_tokens, "the model's output limit"
    if left is not None:
        return left, "the model's context window minus the input"
    return default, "the guard's default_max_output_tokens"


async def for_choices(pricing: PricingSource, one: CostEstimate, choices: int) -> CostEstimate:
    """``one`` choice's estimate with the output of ``choices`` choices.

    Each further choice costs what the output adds to the call; computed as the difference
    of two estimates, so tiers and the model's output limit apply per choice.
    """
    bare = await estimate_call(
        pricing, one.provider, one.model, None, None, 0, input_tokens=one.input_tokens
    )
    more = choices - 1
    base = one.base_cost + more * (one.base_cost - bare.base_cost)
    fee = one.platform_fee + more * (one.platform_fee - bare.platform_fee)
    return one.model_copy(
        update={
            "output_tokens": one.output_tokens * choices,
            "output_cost": one.output_cost * choices,
            "base_cost": base,
            "platform_fee": fee,
            "total_cost": base + fee,
        }
    )
