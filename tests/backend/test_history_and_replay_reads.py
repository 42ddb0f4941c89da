"""Issue 17's reads on every backend and database: output history (with its fallbacks),
usage grouped for a replay, the miss rate in analytics, and the replay endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from tests.backend.live import ADMIN_KEY, ServiceThread

from smartspace_budget.backend import LedgerBackend
from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.models import OutputScope, UsageEvent
from smartspace_budget.models.output_sketch import bucket_of
from smartspace_budget.pricing import PricingEngine


def event(output: int, *, model: str, when: datetime | None = None, **extra: object) -> UsageEvent:
    return UsageEvent(
        provider="openai",
        model=model,
        input_tokens=100,
        output_tokens=output,
        actual_cost=Decimal("0.002"),
        occurred_at=when,
        **extra,
    )


async def test_output_history_falls_back_from_account_to_project_to_everyone(
    backend: LedgerBackend, account: tuple[str, str]
) -> None:
    user, project = account
    model = f"m-{uuid.uuid4().hex[:8]}"  # no other test records this model
    for number in range(12):
        await backend.record_usage(
            user, project, event(100 * (number + 1), model=model), idempotency_key=f"h{number}"
        )
    await backend.record_usage(
        user, project, event(9_999, model=model, cost_is_estimate=True), idempotency_key="est"
    )
    history = await backend.get_output_history(user, project, "openai", model, min_samples=10)  # type: ignore[attr-defined]
    assert (history.scope, history.samples) == (OutputScope.ACCOUNT, 12)  # estimates left out
    assert dict(history.buckets)[bucket_of(1200)] == 1
    newcomer = await backend.get_output_history("new-" + user, project, "openai", model)  # type: ignore[attr-defined]
    assert (newcomer.scope, newcomer.samples) == (OutputScope.ALL, 12)  # fewer than 30 anywhere
    project_wide = await backend.get_output_history(  # type: ignore[attr-defined]
        "new-" + user, project, "openai", model, min_samples=5
    )
    assert (project_wide.scope, project_wide.samples) == (OutputScope.PROJECT, 12)


async def test_usage_is_grouped_by_model_minute_and_shape(
    backend: LedgerBackend, account: tuple[str, str]
) -> None:
    user, project = account
    minute = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
    for number in range(5):
        await backend.record_usage(
            user,
            project,
            event(40, model="gpt-4o", when=minute + timedelta(seconds=number), web_searches=1),
            idempotency_key=f"s{number}",
        )
    await backend.record_usage(
        user, project, event(41, model="gpt-4o", when=minute), idempotency_key="other"
    )
    await backend.record_usage(
        user, project, event(40, model="gpt-4o", when=minute + timedelta(minutes=1)),
        idempotency_key="later",
    )  # fmt: skip
    shapes = await backend.get_usage_shapes(  # type: ignore[attr-defined]
        user, project, minute, minute + timedelta(hours=1)
    )
    calls = sorted((s.minute, s.output_tokens, s.calls, s.charged) for s in shapes)
    assert calls == [
        (minute, 40, 5, Decimal("0.010")),
        (minute, 41, 1, Decimal("0.002")),
        (minute + timedelta(minutes=1), 40, 1, Decimal("0.002")),
    ]
    searched = next(s for s in shapes if s.calls == 5)
    assert searched.usage().web_searches == 1
    engine = PricingEngine(backend)
    report = await engine.replay(user, project, (minute, minute + timedelta(hours=1)),
                                 ["openai/gpt-4o-mini"])  # fmt: skip
    assert report.calls == 7
    # The ledger prices plain usage itself; over HTTP every group is priced by the client.
    assert report.groups == (1 if isinstance(backend, LocalBackend) else 3)
    assert report.targets[0].calls_served == 7


async def test_misses_show_in_analytics(backend: LedgerBackend, account: tuple[str, str]) -> None:
    user, project = account
    await backend.deposit(user, project, Decimal(10), idempotency_key="d")
    for number, cost in enumerate(("0.001", "0.005")):
        hold = await backend.reserve(user, project, Decimal("0.002"), idempotency_key=f"r{number}")
        await backend.settle(
            hold.reservation_id,
            UsageEvent(
                provider="openai",
                model="gpt-4o",
                input_tokens=10,
                output_tokens=50,
                actual_cost=Decimal(cost),
                predicted_output_tokens=60,
            ),
            idempotency_key=f"s{number}",
        )
    analytics = await backend.get_analytics(user, project)
    assert analytics.predictions is not None
    assert analytics.predictions.predicted_calls == 2
    assert analytics.predictions.missed_calls == 1
    assert analytics.predictions.miss_rate == Decimal("0.5")
    balance = await backend.get_balance(user, project)
    assert balance.total_balance == Decimal("9.994")  # the miss was charged in full


@pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)
async def test_the_replay_endpoint(live_service: ServiceThread, account: tuple[str, str]) -> None:
    user, project = account
    async with HttpBackend(live_service.url, ADMIN_KEY) as remote:
        await remote.record_usage(user, project, event(200, model="gpt-4o"), idempotency_key="u")
    path = f"/api/v1/budgets/user/{user}/project/{project.replace('/', '%2F')}/replay"
    async with httpx.AsyncClient(
        base_url=live_service.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:
        answer = await client.get(path, params=[("target", "openai/gpt-4o-mini"),
                                                ("target", "openai/gpt-4o")])  # fmt: skip
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["calls"] == 1
        assert [t["model"] for t in data["targets"]] == ["gpt-4o-mini", "gpt-4o"]
        assert data["cheapest"] == "openai/gpt-4o-mini"
        bad = await client.get(path, params={"target": "no-slash"})
        assert bad.status_code == 400
