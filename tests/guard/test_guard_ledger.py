"""The guard over the real ledger (LocalBackend on SQLite) and the real pricing engine.

Prices are genai-prices' (gpt-4o: $0.0025 input, $0.00125 cached input, $0.01 output per 1K
tokens); the fake provider reports whatever usage the test sets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import openai
import pytest
import sqlalchemy as sa
from tests.guard.guard_provider_server import ProviderServer

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import SpendingMonitor
from smartspace_budget.errors import BudgetExceededError, PolicyViolationError
from smartspace_budget.guard import Guard
from smartspace_budget.ledger.tables import entries
from smartspace_budget.models import AlertLevel, AlertType, BudgetPolicy, SpendingAlert
from smartspace_budget.money import from_nano
from smartspace_budget.pricing import PricingEngine

USER, PROJECT = "u_guard", "p_guard"
MESSAGES = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper"}]


def gpt4o_cost(fresh: int, cached: int, output: int) -> Decimal:
    base = (
        fresh * Decimal("0.0025") + cached * Decimal("0.00125") + output * Decimal("0.010")
    ) / 1000
    base = base.quantize(Decimal("1e-9"))
    return base + (base * 5 / 100).quantize(Decimal("1e-9"))


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = await LocalBackend.open(
        f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}", status_ttl=0
    )
    yield backend
    await backend.aclose()


@pytest.fixture
async def client(server: ProviderServer) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
    yield c
    await c.close()


class EntryRow(NamedTuple):
    kind: str
    amount_nano: int
    cost_is_estimate: bool
    price_version: str | None


async def rows(local: LocalBackend) -> list[EntryRow]:
    query = sa.select(
        entries.c.kind, entries.c.amount_nano, entries.c.cost_is_estimate, entries.c.price_version
    ).order_by(entries.c.id)
    async with local.ledger.engine.connect() as conn:
        return [EntryRow(*row) for row in (await conn.execute(query)).all()]


async def reservation_for(engine: PricingEngine, max_tokens: int) -> Decimal:
    estimate = await engine.estimate_cost(
        "openai", "gpt-4o", messages=MESSAGES, expected_output_tokens=max_tokens
    )
    return estimate.total_cost


async def test_settled_at_the_real_cost_in_the_ledger(
    server: ProviderServer, local: LocalBackend, client: openai.AsyncOpenAI
) -> None:
    await local.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    engine = PricingEngine(local)
    guard = Guard(local, engine, user_id=USER, project_id=PROJECT)
    server.behaviour.input_tokens = 3000
    server.behaviour.cached_tokens = 2048
    server.behaviour.output_tokens = 700
    server.behaviour.reasoning_tokens = 300
    await guard.wrap(client).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=800
    )
    cost = gpt4o_cost(952, 2048, 700)
    balance = await local.get_balance(USER, PROJECT)
    assert balance.total_balance == Decimal(10) - cost
    assert balance.reserved_amount == 0
    usage = [r for r in await rows(local) if r.kind == "usage"]
    assert [from_nano(r.amount_nano) for r in usage] == [-cost]
    assert not usage[0].cost_is_estimate
    assert usage[0].price_version == (await engine.get_provider_pricing("openai", "gpt-4o")).version
    assert (await local.ledger.check_integrity()).ok


async def test_unknown_usage_is_charged_at_the_reservation_and_flagged(
    server: ProviderServer, local: LocalBackend, client: openai.AsyncOpenAI
) -> None:
    await local.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    engine = PricingEngine(local)
    guard = Guard(local, engine, user_id=USER, project_id=PROJECT)
    stream = await guard.wrap(client).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=400, stream=True
    )
    async for _ in stream:
        break
    await stream.close()
    reserved = await reservation_for(engine, 400)
    usage = [r for r in await rows(local) if r.kind == "usage"]
    assert [from_nano(r.amount_nano) for r in usage] == [-reserved]
    assert usage[0].cost_is_estimate
    assert (await local.get_balance(USER, PROJECT)).total_balance == Decimal(10) - reserved


async def fifty_against_twenty(
    server: ProviderServer, local: LocalBackend, client: openai.AsyncOpenAI, user: str
) -> None:
    engine = PricingEngine(local)
    reserved = await reservation_for(engine, 200)
    input_tokens = (await engine.estimate_cost("openai", "gpt-4o", messages=MESSAGES)).input_tokens
    # The provider reports exactly the worst case, so a settlement frees nothing early.
    server.behaviour.input_tokens = input_tokens
    server.behaviour.output_tokens = 200
    await local.deposit(user, PROJECT, reserved * 20, idempotency_key=f"{user}:d20")
    guarded = Guard(local, engine, user_id=user, project_id=PROJECT).wrap(client)

    async def one() -> object:
        return await guarded.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=200
        )

    results = await asyncio.gather(*(one() for _ in range(50)), return_exceptions=True)
    denied = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(denied) == 30
    assert len(results) - len(denied) == 20
    assert server.count == 20
    balance = await local.get_balance(user, PROJECT)
    assert balance.total_balance == 0
    assert balance.reserved_amount == 0
    usage = await local.ledger.list_entries(user, PROJECT, limit=100)
    charged = [e.amount for e in usage if e.kind.value == "usage"]
    assert charged == [-reserved] * 20
    assert (await local.ledger.check_integrity()).ok


async def test_fifty_concurrent_calls_against_a_balance_for_twenty(
    server: ProviderServer, local: LocalBackend, client: openai.AsyncOpenAI
) -> None:
    await fifty_against_twenty(server, local, client, USER)


@pytest.mark.postgres
async def test_fifty_concurrent_calls_on_postgresql(
    server: ProviderServer, postgres_url: str, client: openai.AsyncOpenAI
) -> None:
    backend = await LocalBackend.open(postgres_url, status_ttl=0)
    try:
        await fifty_against_twenty(server, backend, client, f"u_{uuid.uuid4().hex[:10]}")
    finally:
        await backend.aclose()


async def test_policy_limit_refuses_before_any_request(
    server: ProviderServer, local: LocalBackend, client: openai.AsyncOpenAI
) -> None:
    await local.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    await local.set_policy(USER, PROJECT, BudgetPolicy(per_request_limit=Decimal("0.001")))
    guard = Guard(local, PricingEngine(local), user_id=USER, project_id=PROJECT)
    with pytest.raises(PolicyViolationError):
        await guard.wrap(client).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=4000
        )
    assert server.count == 0
    assert (await local.get_balance(USER, PROJECT)).reserved_amount == 0


async def test_request_block_and_cost_anomaly_reaches_the_monitor(local: LocalBackend) -> None:
    await local.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    engine = PricingEngine(local)
    monitor = SpendingMonitor(local)
    received: list[SpendingAlert] = []
    monitor.register_alert_handler(received.append)
    guard = Guard(local, engine, user_id=USER, project_id=PROJECT, monitor=monitor)
    async with guard.request(
        "openai", "gpt-4o", messages=MESSAGES, max_tokens=4000, expected_output_tokens=100
    ) as call:
        call.record_usage(input_tokens=12, output_tokens=4000)
    assert call.actual_cost == gpt4o_cost(12, 0, 4000)
    assert call.anomaly is not None
    assert call.anomaly.severity.value == "critical"
    assert await monitor.wait_for_delivery(10)  # handlers run in the background
    [alert] = received
    assert alert.alert_type is AlertType.COST_ANOMALY
    assert alert.level is AlertLevel.EMERGENCY
    # The sentence names the alert's level, never the anomaly band's other word for it.
    assert alert.message.endswith("(emergency)")
    assert "critical" not in alert.message
    assert "% above its estimate of $" in alert.message
    assert alert.metadata["severity"] == "critical"
    assert alert.metadata["request_id"] == call.request_id
    active = await monitor.get_active_alerts(USER, PROJECT)
    assert [a.alert_id for a in active] == [alert.alert_id]

    # Usage within the estimate's band raises nothing.
    async with guard.request(
        "openai", "gpt-4o", messages=MESSAGES, max_tokens=200, expected_output_tokens=200
    ) as quiet:
        quiet.record_usage(input_tokens=12, output_tokens=190)
    assert quiet.anomaly is not None
    assert quiet.anomaly.severity.value == "none"
    assert await monitor.wait_for_delivery(10)
    assert len(received) == 1


async def test_request_block_that_fails_is_charged_at_the_reservation(
    local: LocalBackend,
) -> None:
    await local.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    guard = Guard(local, PricingEngine(local), user_id=USER, project_id=PROJECT)
    with pytest.raises(TimeoutError):
        async with guard.request("openai", "gpt-4o", input_text="hi", max_tokens=100) as call:
            raise TimeoutError
    assert call.cost_is_estimate
    assert call.actual_cost == call.reserved_amount
    async with guard.request("openai", "gpt-4o", input_text="hi", max_tokens=100) as nothing:
        await guard.release_call(nothing)  # the caller knows nothing was sent
    assert nothing.released
    usage = [r for r in await rows(local) if r.kind == "usage"]
    assert len(usage) == 1
    assert (await local.get_balance(USER, PROJECT)).reserved_amount == 0


def test_sync_client_over_the_real_ledger(server: ProviderServer, tmp_path: Path) -> None:
    from smartspace_budget.config import Settings

    backend = LocalBackend.default(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'sync.sqlite3'}", status_ttl=0)
    )
    guard = Guard(backend, PricingEngine(backend), user_id=USER, project_id=PROJECT)
    guard.portal.run(backend.deposit(USER, PROJECT, Decimal(1), idempotency_key="d1"))
    server.behaviour.input_tokens, server.behaviour.output_tokens = 100, 50
    with openai.OpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0) as raw:
        client = guard.wrap(raw)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=60)
        with client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=60, stream=True
        ) as stream:
            for _ in stream:
                pass
    balance = guard.portal.run(backend.get_balance(USER, PROJECT))
    assert balance.total_balance == Decimal(1) - 2 * gpt4o_cost(100, 0, 50)
    assert balance.reserved_amount == 0
    guard.portal.run(backend.aclose())
    guard.portal.close()


async def test_without_a_cap_the_models_output_limit_is_held(local: LocalBackend) -> None:
    from datetime import UTC, datetime

    from smartspace_budget.models import PricingData

    now = datetime.now(UTC)
    await local.price_book.add_price(
        PricingData(
            provider="acme",
            model_name="rocket-1",
            input_price_per_1k=Decimal("0.001"),
            output_price_per_1k=Decimal("0.002"),
            max_output_tokens=2000,
            effective_date=now,
            last_updated=now,
        )
    )
    await local.deposit(USER, PROJECT, Decimal(10), idempotency_key="d1")
    engine = PricingEngine(local)
    monitor = SpendingMonitor(local)
    received: list[SpendingAlert] = []
    monitor.register_alert_handler(received.append)
    guard = Guard(local, engine, user_id=USER, project_id=PROJECT, monitor=monitor)
    async with guard.request("acme", "rocket-1", input_text="hello there") as call:
        call.record_usage(input_tokens=20, output_tokens=30)
    assert call.estimate.output_tokens == 2000
    assert call.reserved_amount > Decimal("0.004")  # 2000 output tokens at 0.002/1K
    assert call.anomaly is not None
    assert call.anomaly.direction.value == "under"
    assert call.anomaly.severity.value in ("medium", "high")
    assert await monitor.wait_for_delivery(10)
    assert received == []  # far under a worst-case hold is what the hold is for
    assert call.actual_cost == Decimal("0.000084")  # (20*0.001 + 30*0.002)/1K + 5%


async def test_guard_through_the_service_with_an_account_key(
    server: ProviderServer, tmp_path: Path, client: openai.AsyncOpenAI
) -> None:
    """A platform's deployment: the guard talks to the service (HttpBackend), not the DB."""
    import httpx

    from smartspace_budget.backend.http import HttpBackend
    from smartspace_budget.config import Settings
    from smartspace_budget.ledger.ledger import Ledger
    from smartspace_budget.prices.catalog import PriceBook
    from smartspace_budget.server.app import create_app
    from smartspace_budget.server.key_tables import create_api_key, ensure_key_table

    url = f"sqlite+aiosqlite:///{tmp_path / 'svc.sqlite3'}"
    ledger = await Ledger.connect(url)
    try:
        app = create_app(
            Settings(database_url=url, rate_limit_per_second=0),
            ledger=ledger,
            price_book=PriceBook.from_genai_prices(),
        )
        await ensure_key_table(ledger.engine)
        _, key = await create_api_key(
            ledger.engine, scope="account", user_id=USER, project_id=PROJECT
        )
        await ledger.deposit(USER, PROJECT, Decimal(1), idempotency_key="seed")
        backend = HttpBackend(
            "http://service", key, transport=httpx.ASGITransport(app=app), status_ttl=0
        )
        try:
            guard = Guard(backend, PricingEngine(backend), user_id=USER, project_id=PROJECT)
            server.behaviour.input_tokens, server.behaviour.output_tokens = 500, 100
            await guard.wrap(client).chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=150
            )
            stream = await guard.wrap(client).chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=150, stream=True
            )
            async for _ in stream:
                pass
        finally:
            await backend.aclose()
        balance = await ledger.get_balance(USER, PROJECT)
        assert balance.total_balance == Decimal(1) - 2 * gpt4o_cost(500, 0, 100)
        assert balance.reserved_amount == 0
    finally:
        await ledger.close()
