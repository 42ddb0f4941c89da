"""Guarded LLM calls: estimate, reserve, call, settle at the real cost, flag the difference.

In one line, on the default backend (the embedded ledger unless configured otherwise)::

    client = smartspace_budget.guard.wrap(openai.AsyncOpenAI(), user_id="u1", project_id="p1")

or with every part chosen::

    guard = Guard(backend, PricingEngine(backend), user_id="user_001", project_id="proj_001")
    client = guard.wrap(openai.AsyncOpenAI())
    reply = await client.chat.completions.create(model="gpt-4o", messages=[...], max_tokens=200)

or around any provider call::

    async with guard.request("openai", "gpt-4o", messages=messages, max_tokens=200) as call:
        reply = await my_http_call(...)
        call.record_usage(input_tokens=..., output_tokens=...)
"""

from smartspace_budget.guard.anomalies import deliver_alert
from smartspace_budget.guard.call import GuardBackend, GuardedCall, PricingSource
from smartspace_budget.guard.core import Guard
from smartspace_budget.guard.costing import (
    ProviderUsage,
    call_cost,
    usage_base_cost,
    with_platform_fee,
)
from smartspace_budget.guard.one_line import wrap
from smartspace_budget.guard.portal import Portal

__all__ = [
    "Guard",
    "GuardBackend",
    "GuardedCall",
    "Portal",
    "PricingSource",
    "ProviderUsage",
    "call_cost",
    "deliver_alert",
    "usage_base_cost",
    "with_platform_fee",
    "wrap",
]
