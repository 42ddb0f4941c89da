"""A realistic month of LLM usage for one account, to show every component on real data.

The month is planned first (deterministic for a given seed: models, token counts, times
relative to ``now``), priced with the pricing engine at the versions in force, then written
through the ledger API in concurrent batches (the ledger commits concurrent writes together).

What it contains: about 30 days of agent traffic across OpenAI, Anthropic and Google
models, busier on weekdays, with prompt caching; a burst of long-context Claude 3 Opus
calls in the last hour (the cost spike); and a single deposit sized so that the balance ends
just under the low-balance threshold of the policy set with it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from smartspace_budget.backend import LedgerBackend
from smartspace_budget.errors import NotFoundError
from smartspace_budget.models import BudgetPolicy, UsageEvent

if TYPE_CHECKING:
    from smartspace_budget.pricing import PricingEngine

__all__ = ["DEMO_POLICY", "PlannedCall", "SeedResult", "plan_month", "seed_month"]

DEMO_POLICY = BudgetPolicy(
    per_request_limit=Decimal("2"),
    daily_limit=Decimal("20"),
    monthly_limit=Decimal("150"),
    low_balance_threshold=Decimal("25"),
)
"""Limits of the demo account: the balance ends below ``low_balance_threshold``."""

FINAL_BALANCE = Decimal("18.40")
"""Roughly where the balance ends: under the low-balance threshold, above zero."""

# (provider, model, weight, input tokens range, output tokens range, share of input cached)
_MIX: list[tuple[str, str, int, tuple[int, int], tuple[int, int], float]] = [
    ("openai", "gpt-4o", 30, (6_000, 24_000), (400, 1_600), 0.5),
    ("openai", "gpt-4o-mini", 30, (4_000, 20_000), (200, 1_200), 0.3),
    ("anthropic", "claude-3-5-sonnet", 25, (8_000, 28_000), (500, 2_000), 0.6),
    ("google", "gemini-1.5-flash", 15, (3_000, 30_000), (200, 1_500), 0.0),
]
_SPIKE = ("anthropic", "claude-3-opus", 14, (28_000, 34_000), (2_500, 3_500))
BATCH = 200


@dataclass(frozen=True)
class PlannedCall:
    """One call of the month, before it is priced."""

    provider: str
    model: str
    at: datetime
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    spike: bool = False


@dataclass
class SeedResult:
    """What was written (or found already there)."""

    calls: int
    spent: Decimal
    deposited: Decimal
    spike_calls: int
    spike_cost: Decimal
    already_seeded: bool = False
    by_model: dict[str, Decimal] = field(default_factory=dict)


def plan_month(now: datetime, seed: int = 7, days: int = 30) -> list[PlannedCall]:
    """The calls of the ``days`` before ``now`` (oldest first), the spike in the last hour."""
    rng = random.Random(seed)
    weights = [m[2] for m in _MIX]
    calls: list[PlannedCall] = []
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    for day in range(days, -1, -1):
        date = (now - timedelta(days=day)).replace(hour=0, minute=0, second=0, microsecond=0)
        weekend = date.weekday() >= 5
        count = rng.randint(12, 22) if weekend else rng.randint(38, 58)
        for _ in range(count):
            # Office hours are busier: a triangular distribution peaking early afternoon.
            at = date + timedelta(seconds=int(rng.triangular(6 * 3600, 23 * 3600, 14 * 3600)))
            if at >= hour_start or at <= now - timedelta(days=days):
                continue
            provider, model, _, inputs, outputs, cache_share = rng.choices(_MIX, weights)[0]
            input_tokens = rng.randint(*inputs)
            cached = int(input_tokens * cache_share * rng.random())
            calls.append(
                PlannedCall(provider, model, at, input_tokens, rng.randint(*outputs), cached)
            )
    provider, model, count, inputs, outputs = _SPIKE
    span = max(int((now - hour_start).total_seconds()), 1)
    for i in range(count):
        at = hour_start + timedelta(seconds=span * i // count)
        calls.append(
            PlannedCall(provider, model, at, rng.randint(*inputs), rng.randint(*outputs), 0, True)
        )
    calls.sort(key=lambda c: c.at)
    return calls


async def seed_month(
    backend: LedgerBackend,
    pricing_engine: PricingEngine,
    user_id: str,
    project_id: str,
    *,
    seed: int = 7,
    now: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Write the demo month for the account (see the module docstring).

    An account that already has spending is left as it is (``already_seeded``), so running
    the demo twice shows the same books instead of doubling them.
    """
    try:
        status = await backend.get_budget_status(user_id, project_id)
    except NotFoundError:
        pass  # a new account: the deposit below creates it
    else:
        if status.spent_total > 0:
            return SeedResult(0, status.spent_total, Decimal(0), 0, Decimal(0), already_seeded=True)
    moment = now or datetime.now(UTC)
    plan = plan_month(moment, seed)
    events = await asyncio.gather(*(_price(pricing_engine, call) for call in plan))
    spent = sum((e.actual_cost for e in events), Decimal(0))
    deposit = (spent + FINAL_BALANCE).quantize(Decimal("1"))
    key = f"demo:{user_id}:{project_id}:{seed}"
    await backend.set_policy(user_id, project_id, DEMO_POLICY)
    await backend.deposit(
        user_id, project_id, deposit, idempotency_key=f"{key}:deposit", reference="demo top-up"
    )
    for start in range(0, len(events), BATCH):
        batch = events[start : start + BATCH]
        await asyncio.gather(
            *(
                backend.record_usage(
                    user_id, project_id, event, idempotency_key=f"{key}:{start + i}"
                )
                for i, event in enumerate(batch)
            )
        )
        if on_progress is not None:
            on_progress(len(batch))
    by_model: dict[str, Decimal] = {}
    for event in events:
        name = f"{event.provider}/{event.model}"
        by_model[name] = by_model.get(name, Decimal(0)) + event.actual_cost
    spike = [e for e, call in zip(events, plan, strict=True) if call.spike]
    return SeedResult(
        calls=len(events),
        spent=spent,
        deposited=deposit,
        spike_calls=len(spike),
        spike_cost=sum((e.actual_cost for e in spike), Decimal(0)),
        by_model=by_model,
    )


async def _price(engine: PricingEngine, call: PlannedCall) -> UsageEvent:
    estimate = await engine.estimate_cost(
        call.provider,
        call.model,
        input_tokens=call.input_tokens,
        expected_output_tokens=call.output_tokens,
        cached_input_tokens=call.cached_input_tokens,
    )
    return UsageEvent(
        provider=estimate.provider,
        model=estimate.model,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        cached_input_tokens=call.cached_input_tokens,
        actual_cost=estimate.total_cost,
        estimated_cost=estimate.total_cost,
        price_version=estimate.price_version,
        occurred_at=call.at,
        tags={"source": "demo"},
    )
