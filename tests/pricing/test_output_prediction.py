"""Output-token prediction from history (issue 17): the sketch, the engine, the guard.

A synthetic history with a known output distribution is recorded in a real ledger
(LocalBackend on SQLite); the estimate without an output size holds the configured quantile
within the sketch's error, a new account falls back (project, everyone, then the default),
a prediction never holds less than what was already streamed, and a call that produces
more than its predicted hold is charged in full and counted as a miss.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard import Guard
from smartspace_budget.models import OutputMethod, OutputScope, UsageEvent
from smartspace_budget.models.output_sketch import (
    GAMMA,
    UPPER,
    bucket_of,
    quantile_of,
    upper_of,
)
from smartspace_budget.pricing import PricingEngine

USER, PROJECT = "u-pred", "p-pred"


def nearest_rank(values: list[int], q: Decimal) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def within_sketch_error(predicted: int, true: int) -> bool:
    """A sketch answer is at or above the true quantile, above it by at most GAMMA."""
    return true <= predicted <= max(math.floor(true * GAMMA) + 1, true)


@given(st.integers(min_value=0, max_value=10**12))
def test_a_bucket_holds_its_count(tokens: int) -> None:
    bucket = bucket_of(tokens)
    assert upper_of(bucket) >= tokens
    assert bucket == 0 or UPPER[bucket - 1] < tokens


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=300),
    st.sampled_from([Decimal("0.5"), Decimal("0.9"), Decimal("0.95"), Decimal("0.99"), 1]),
)
def test_a_quantile_is_the_true_one_within_the_sketch_error(values: list[int], q: Decimal) -> None:
    buckets: dict[int, int] = {}
    for value in values:
        buckets[bucket_of(value)] = buckets.get(bucket_of(value), 0) + 1
    found = quantile_of(buckets, Decimal(q))
    assert found is not None
    true = nearest_rank(values, Decimal(q))
    assert within_sketch_error(found.tokens, true)
    assert found.fitting == sum(1 for v in values if v <= found.tokens)


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = await LocalBackend.open(
        f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}", status_ttl=0
    )
    yield backend
    await backend.aclose()


async def record(
    backend: LocalBackend, user: str, project: str, outputs: list[int], model: str = "gpt-4o"
) -> None:
    for number, output in enumerate(outputs):
        await backend.record_usage(
            user,
            project,
            UsageEvent(
                provider="openai",
                model=model,
                input_tokens=50,
                output_tokens=output,
                actual_cost=Decimal("0.001"),
            ),
            idempotency_key=f"{user}-{model}-{number}",
        )


async def test_the_estimate_holds_the_configured_quantile(local: LocalBackend) -> None:
    rng = random.Random(17)
    outputs = [int(rng.lognormvariate(5.5, 0.8)) for _ in range(400)]
    await record(local, USER, PROJECT, outputs)
    engine = PricingEngine(local)
    for q in (Decimal("0.95"), Decimal("0.5"), Decimal("0.99")):
        estimate = await engine.estimate_cost(
            "openai", "gpt-4o", input_tokens=100, user_id=USER, project_id=PROJECT,
            output_quantile=q,
        )  # fmt: skip
        output = estimate.output_estimate
        assert output is not None
        assert output.method is OutputMethod.PREDICTED
        assert output.scope is OutputScope.ACCOUNT
        assert output.samples == 400
        assert output.quantile == q
        assert within_sketch_error(estimate.output_tokens, nearest_rank(outputs, q))
        assert output.tokens == estimate.output_tokens
        fitting = sum(1 for value in outputs if value <= estimate.output_tokens)
        assert output.confidence == pytest.approx((fitting + 1) / 402, abs=1e-4)
    # Given an output size, no prediction is made.
    given_output = await engine.estimate_cost(
        "openai", "gpt-4o", input_tokens=100, expected_output_tokens=7, user_id=USER,
        project_id=PROJECT,
    )  # fmt: skip
    assert given_output.output_tokens == 7
    assert given_output.output_estimate is None


async def test_new_accounts_fall_back_to_the_project_then_everyone_then_the_default(
    local: LocalBackend,
) -> None:
    await record(local, USER, PROJECT, [100 + i for i in range(40)])
    engine = PricingEngine(local)

    async def output_of(user: str, project: str, model: str = "gpt-4o") -> tuple[object, int]:
        estimate = await engine.estimate_cost(
            "openai", model, input_tokens=10, user_id=user, project_id=project
        )
        assert estimate.output_estimate is not None
        return estimate.output_estimate.scope, estimate.output_tokens

    assert await output_of(USER, PROJECT) == (
        OutputScope.ACCOUNT,
        upper_of(bucket_of(137)),
    )  # the 38th of 40
    assert (await output_of("newcomer", PROJECT))[0] is OutputScope.PROJECT
    assert (await output_of("stranger", "elsewhere"))[0] is OutputScope.ALL
    # An account with a few calls of its own still reads its project's longer history.
    await record(local, "few", PROJECT, [5_000] * 3)
    assert (await output_of("few", PROJECT))[0] is OutputScope.PROJECT
    # Nobody has called this model: the default, said so.
    fallback = await engine.estimate_cost(
        "openai", "gpt-4o-mini", input_tokens=10, user_id=USER, project_id=PROJECT
    )
    assert fallback.output_tokens == 500
    assert fallback.output_estimate is not None
    assert fallback.output_estimate.method is OutputMethod.DEFAULT
    assert fallback.output_estimate.samples == 0
    # Without an account the engine keeps the spec's default and says nothing more.
    plain = await engine.estimate_cost("openai", "gpt-4o", input_tokens=10)
    assert (plain.output_tokens, plain.output_estimate) == (500, None)
    with pytest.raises(InvalidInputError):
        await engine.estimate_cost("openai", "gpt-4o", input_tokens=10, user_id=USER)
    with pytest.raises(InvalidInputError):
        await engine.estimate_cost(
            "openai", "gpt-4o", user_id=USER, project_id=PROJECT, output_quantile="1.5"
        )


async def test_a_prediction_never_holds_less_than_what_was_streamed(local: LocalBackend) -> None:
    await record(local, USER, PROJECT, [200] * 50)
    engine = PricingEngine(local)
    estimate = await engine.estimate_cost(
        "openai", "gpt-4o", input_tokens=10, user_id=USER, project_id=PROJECT,
        streamed_output_tokens=900,
    )  # fmt: skip
    assert estimate.output_tokens == 900
    assert estimate.output_estimate is not None
    assert estimate.output_estimate.floor_tokens == 900
    assert estimate.output_estimate.method is OutputMethod.PREDICTED
    small = await engine.estimate_cost(
        "openai", "gpt-4o", input_tokens=10, user_id=USER, project_id=PROJECT,
        streamed_output_tokens=20,
    )  # fmt: skip
    assert small.output_tokens == upper_of(bucket_of(200))


async def test_the_guard_holds_the_prediction_and_counts_misses(local: LocalBackend) -> None:
    await local.deposit(USER, PROJECT, Decimal(5), idempotency_key="d")
    engine = PricingEngine(local)
    guard = Guard(local, engine, user_id=USER, project_id=PROJECT)
    # Too little history: the worst case (gpt-4o's context window minus the input) is held.
    async with guard.request("openai", "gpt-4o", input_text="hello") as first:
        first.record_usage(input_tokens=8, output_tokens=300)
    assert first.predicted_output is None
    assert first.estimate.output_tokens == 128_000 - first.estimate.input_tokens
    await record(local, USER, PROJECT, [300] * 40)
    async with guard.request("openai", "gpt-4o", input_text="hello") as fits:
        fits.record_usage(input_tokens=8, output_tokens=250)
    assert fits.predicted_output == upper_of(bucket_of(300))
    assert fits.estimate.output_tokens == fits.predicted_output
    assert fits.reserved_amount < first.reserved_amount / 40
    async with guard.request("openai", "gpt-4o", input_text="hello") as misses:
        misses.record_usage(input_tokens=8, output_tokens=5_000)
    assert misses.actual_cost is not None
    assert misses.actual_cost > misses.reserved_amount
    assert misses.entry is not None
    assert -misses.entry.amount == misses.actual_cost  # charged in full
    analytics = await local.get_analytics(USER, PROJECT)
    assert analytics.predictions is not None
    assert (analytics.predictions.predicted_calls, analytics.predictions.missed_calls) == (2, 1)
    assert analytics.predictions.miss_rate == Decimal("0.5")
    assert analytics.predictions_by_model is not None
    assert analytics.predictions_by_model["openai/gpt-4o"].missed_calls == 1
    report = await local.ledger.check_integrity()
    assert report.ok, str(report)
    # Prediction off: the worst case again.
    off = Guard(local, engine, user_id=USER, project_id=PROJECT, predict_output=False)
    async with off.request("openai", "gpt-4o", input_text="hello") as worst:
        worst.record_usage(input_tokens=8, output_tokens=10)
    assert worst.predicted_output is None
    assert worst.estimate.output_tokens == 128_000 - worst.estimate.input_tokens


async def test_a_dropped_stream_is_charged_at_least_what_it_streamed(local: LocalBackend) -> None:
    await local.deposit(USER, PROJECT, Decimal(5), idempotency_key="d")
    await record(local, USER, PROJECT, [100] * 40)
    engine = PricingEngine(local)
    guard = Guard(local, engine, user_id=USER, project_id=PROJECT)
    call = await guard.open_call("openai", "gpt-4o", input_text="hello")
    assert call.predicted_output == upper_of(bucket_of(100))
    call.streamed_output_tokens = 3_000  # what the stream showed before it was dropped
    await guard.finish_call(call, None)
    assert call.cost_is_estimate
    streamed = await engine.estimate_cost(
        "openai", "gpt-4o", input_tokens=call.estimate.input_tokens, expected_output_tokens=3_000
    )
    assert call.actual_cost == streamed.total_cost > call.reserved_amount
