"""The spec's contract, three ways: the library, ``HttpBackend`` and raw HTTP agree.

One account is seeded with the demo month. Every spec method (BudgetTracker,
PricingEngine, SpendingMonitor) is called through the library over the ledger in process
(``LocalBackend``) and through ``HttpBackend`` over the service; every spec endpoint is
also called as raw HTTP. Results are compared field by field: what differs between the
three ways is only what must differ (the instant an answer was made, an alert's random id).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tests.backend.live import ADMIN_KEY
from tests.server.conftest import Service, database_url, make_service

from smartspace_budget import BudgetTracker, PricingEngine, SpendingMonitor
from smartspace_budget.backend._cached import current_prices
from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import HttpAlertStore, LedgerAlertStore, MemoryAlertStore
from smartspace_budget.demo.seed import seed_month
from smartspace_budget.models import (
    BudgetPolicy,
    BudgetStatus,
    PricingData,
    SpendingAlert,
    SpendingThreshold,
    loads,
)
from smartspace_budget.models.alerts import ThresholdType
from smartspace_budget.periods import SpendingPeriod
from smartspace_budget.prices.catalog import PriceBook

__all__ = ["database_url"]  # the fixture: SQLite, and PostgreSQL when it answers

# Instants differ between two calls; alert ids are random. Nothing else may.
_MOMENTS = {"checked_at", "as_of", "estimated_at", "created_at", "alert_id", "detected_at"}

PAIRS = [
    ("openai", "gpt-4"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-opus"),
    ("google", "gemini-pro"),
]


def _monitor(backend: object) -> SpendingMonitor:
    """A monitor with its own memory: these tests compare what the library and the service
    compute, and a ledger-backed memory would hand the second one the first one's alerts."""
    return SpendingMonitor(backend, alert_store=MemoryAlertStore())  # type: ignore[arg-type]


@dataclass
class Way:
    """The spec's three components over one backend."""

    name: str
    tracker: BudgetTracker
    engine: PricingEngine
    monitor: SpendingMonitor


@dataclass
class Contract:
    service: Service
    user: str
    project: str
    at: datetime
    local: Way
    http: Way

    @property
    def ways(self) -> tuple[Way, Way]:
        return self.local, self.http

    async def raw(self, path: str, **params: Any) -> Any:
        answer = await self.service.client.get(
            path, params=params, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert answer.status_code == 200, answer.text
        return loads(answer.content)

    @property
    def account(self) -> str:
        return f"/api/v1/budgets/user/{self.user}/project/{self.project}"


def same(a: Any, b: Any) -> Any:
    """The fields of two results, instants left out, asserted equal; returns the first's."""
    left, right = _fields(a), _fields(b)
    assert left == right
    return left


def _fields(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="python")
    if isinstance(value, dict):
        return {k: _fields(v) for k, v in value.items() if k not in _MOMENTS}
    if isinstance(value, list | tuple):
        return [_fields(v) for v in value]
    return value


@pytest.fixture
async def contract(database_url: str) -> AsyncIterator[Contract]:
    async for service in make_service(database_url):
        user, project = f"cu-{uuid.uuid4().hex[:8]}", "contract"
        book = PriceBook.from_genai_prices()
        local_backend = LocalBackend(service.ledger, book)
        at = datetime.now(UTC)
        await seed_month(local_backend, PricingEngine(local_backend), user, project, now=at)
        local_backend.invalidate_all()
        transport = httpx.ASGITransport(app=service.app)
        async with HttpBackend("http://service", ADMIN_KEY, transport=transport) as remote:
            ways = []
            for name, backend in (("library", local_backend), ("http", remote)):
                tracker = BudgetTracker(backend)
                ways.append(Way(name, tracker, PricingEngine(backend), _monitor(backend)))
            yield Contract(service, user, project, at, ways[0], ways[1])


async def test_budget_reads_agree(contract: Contract) -> None:
    c = contract
    local, http = c.ways
    balance = await local.tracker.get_available_balance(c.user, c.project)
    assert balance == await http.tracker.get_available_balance(c.user, c.project)
    raw_balance = await c.raw(c.account + "/balance")
    assert raw_balance["available_balance"] == balance

    status = same(
        await local.tracker.get_budget_status(c.user, c.project),
        await http.tracker.get_budget_status(c.user, c.project),
    )
    raw_status = await c.raw(c.account + "/status")
    for key, value in raw_status.items():
        assert status[key] == value, key
    assert set(raw_status) == set(BudgetStatus.SPEC_KEYS)

    for amount in (Decimal("1"), Decimal("1000")):
        same(
            await local.tracker.check_sufficient_budget(c.user, c.project, amount),
            await http.tracker.check_sufficient_budget(c.user, c.project, amount),
        )


@pytest.mark.parametrize("period", list(SpendingPeriod))
async def test_spending_and_analytics_agree(contract: Contract, period: SpendingPeriod) -> None:
    c = contract
    local, http = c.ways
    spent = await local.tracker.get_spending_by_period(c.user, c.project, period, at=c.at)
    assert spent == await http.tracker.get_spending_by_period(c.user, c.project, period, at=c.at)
    raw = await c.raw(f"{c.account}/spending/{period.value.upper()}", at=c.at.isoformat())
    assert raw["total_spent"] == spent

    analytics = await local.tracker.get_spending_analytics(c.user, c.project, period, at=c.at)
    fields = same(
        analytics,
        await http.tracker.get_spending_analytics(c.user, c.project, period, at=c.at),
    )
    raw_analytics = await c.raw(
        c.account + "/analytics", period=period.value.upper(), at=c.at.isoformat()
    )
    assert set(raw_analytics) == set(analytics.SPEC_KEYS)
    for key, value in raw_analytics.items():
        expected = fields[key]
        assert (expected.value if hasattr(expected, "value") else expected) == value, key


async def test_the_demo_month_is_anomalous_everywhere(contract: Contract) -> None:
    """The issue's report: the endpoint said stable/false while the library said true."""
    c = contract
    raw = await c.raw(c.account + "/analytics", at=c.at.isoformat())
    library = await c.local.tracker.get_spending_analytics(c.user, c.project, at=c.at)
    assert library.anomaly_detected is True
    assert raw["anomaly_detected"] is True
    assert raw["spending_trend"] == library.spending_trend.value


async def test_policy_checks_agree(contract: Contract) -> None:
    c = contract
    own = BudgetPolicy.fetch_from_backend(c.user, c.project)
    mine = BudgetPolicy(per_request_limit=Decimal("0.5"), daily_limit=Decimal("1"))
    for amount in (Decimal("0.01"), Decimal("3"), Decimal("500")):
        for policy in (own, mine, None):
            same(
                await c.local.tracker.check_against_policy(c.user, c.project, amount, policy),
                await c.http.tracker.check_against_policy(c.user, c.project, amount, policy),
            )


async def test_pricing_agrees(contract: Contract) -> None:
    c = contract
    local, http = c.ways
    for provider, model in PAIRS:
        pricing = same(
            await local.engine.get_provider_pricing(provider, model),
            await http.engine.get_provider_pricing(provider, model),
        )
        assert pricing["currency"] == "USDC"
        raw = await c.raw(f"/api/v1/pricing/provider/{provider}/model/{model}")
        for key, value in raw.items():
            expected = pricing.get(key)
            if isinstance(expected, datetime):
                expected = expected.isoformat().replace("+00:00", "Z")
                value = value.replace("+00:00", "Z")
            assert (expected.value if hasattr(expected, "value") else expected) == value, key
        for days in (0, 1, 30, None):
            history = same(
                await local.engine.get_price_history(provider, model, days=days),
                await http.engine.get_price_history(provider, model, days=days),
            )
            params = {} if days is None else {"days": days}
            raw_history = await c.raw(
                f"/api/v1/pricing/provider/{provider}/model/{model}/history", **params
            )
            assert [h["model_name"] for h in raw_history] == [h["model_name"] for h in history]
            assert [h["input_price_per_1k"] for h in raw_history] == [
                h["input_price_per_1k"] for h in history
            ]
        same(
            await local.engine.estimate_cost(provider, model, "What is machine learning?"),
            await http.engine.estimate_cost(provider, model, "What is machine learning?"),
        )
    same(
        await local.engine.compare_provider_costs(PAIRS, 1000, 500),
        await http.engine.compare_provider_costs(PAIRS, 1000, 500),
    )
    same(
        await local.engine.estimate_tokens("What is machine learning?", "gpt-4o"),
        await http.engine.estimate_tokens("What is machine learning?", "gpt-4o"),
    )
    assert await local.engine.calculate_total_cost(
        Decimal("0.1")
    ) == await http.engine.calculate_total_cost(Decimal("0.1"))
    same(
        await local.engine.detect_cost_anomaly(
            "r", "openai", "gpt-4o", Decimal("0.010"), Decimal("0.016")
        ),
        await http.engine.detect_cost_anomaly(
            "r", "openai", "gpt-4o", Decimal("0.010"), Decimal("0.016")
        ),
    )


async def test_monitoring_agrees(contract: Contract) -> None:
    c = contract
    # What the monitors compute, each with its own memory (a shared one would hand the
    # second the first one's alerts). Forecasts (when the balance runs out) depend on the
    # current second: the two reads are taken again when a second passed between.
    for _ in range(5):
        local_monitor, http_monitor = (_monitor(way.tracker.backend) for way in c.ways)
        second = int(time.time())
        from_library = await local_monitor.check_spending_status(c.user, c.project)
        from_http = await http_monitor.check_spending_status(c.user, c.project)
        if int(time.time()) == second:
            break
    alerts = same(from_library, from_http)
    assert {a["alert_type"].value for a in alerts} >= {"spending_anomaly", "cost_spike"}
    threshold = SpendingThreshold(
        threshold_type=ThresholdType.DAILY, limit=Decimal("5"), name="five a day"
    )
    same(
        await local_monitor.check_threshold(c.user, c.project, threshold),
        await http_monitor.check_threshold(c.user, c.project, threshold),
    )
    fresh = [_monitor(way.tracker.backend) for way in c.ways]
    same(
        await fresh[0].detect_spending_anomaly(c.user, c.project),
        await fresh[1].detect_spending_anomaly(c.user, c.project),
    )
    same(
        await fresh[0].detect_cost_spike(c.user, c.project),
        await fresh[1].detect_cost_spike(c.user, c.project),
    )
    same(
        await local_monitor.get_active_alerts(c.user, c.project, minutes=60),
        await http_monitor.get_active_alerts(c.user, c.project, minutes=60),
    )
    await _shared_alert_state_agrees(c, from_library)


async def _shared_alert_state_agrees(c: Contract, computed: list[SpendingAlert]) -> None:
    """The monitors' default memory: the ledger's table, read directly by the library's
    monitor and through the service by the HTTP one. Whichever checks first claims and
    delivers; the other answers the very same alerts (ids and instants included) and
    delivers nothing; an acknowledgement through either is seen by both."""
    library, http = (SpendingMonitor(way.tracker.backend) for way in c.ways)
    assert isinstance(library.alert_store, LedgerAlertStore)
    assert isinstance(http.alert_store, HttpAlertStore)
    delivered: dict[str, list[SpendingAlert]] = {"library": [], "http": []}
    library.register_alert_handler(delivered["library"].append)
    http.register_alert_handler(delivered["http"].append)
    claimed = await library.check_spending_status(c.user, c.project)
    answered = await http.check_spending_status(c.user, c.project)
    assert await library.wait_for_delivery(10)
    assert await http.wait_for_delivery(10)
    assert _whole(answered) == _whole(claimed)
    # The same rules fired as when each computed alone (texts may differ by the second).
    assert _kinds(claimed) == _kinds(computed)
    assert sorted(a.alert_id for a in delivered["library"]) == sorted(a.alert_id for a in claimed)
    assert delivered["http"] == []
    shared = await library.get_active_alerts(c.user, c.project, minutes=60)
    assert {a.alert_id for a in shared} >= {a.alert_id for a in claimed}
    assert _whole(await http.get_active_alerts(c.user, c.project, minutes=60)) == _whole(shared)
    first, last = claimed[0], claimed[-1]
    await http.acknowledge(first.alert_id, by="ops")
    await library.acknowledge(last.alert_id, by="oncall")
    for monitor in (library, http):
        seen = {
            a.alert_id: a
            for a in await monitor.get_active_alerts(
                c.user, c.project, minutes=60, include_acknowledged=True
            )
        }
        assert seen[first.alert_id].metadata["acknowledged_by"] == "ops"
        assert seen[last.alert_id].acknowledged
        active = await monitor.get_active_alerts(c.user, c.project, minutes=60)
        assert {first.alert_id, last.alert_id}.isdisjoint(a.alert_id for a in active)
    for monitor in (library, http):
        await monitor.aclose()


def _whole(alerts: list[SpendingAlert]) -> list[dict[str, Any]]:
    """Every field, ids and instants included, as the alert's JSON document reads (the
    claimer holds its metadata's instants as datetimes, a reader of the store as text)."""
    return [loads(alert.to_json()) for alert in alerts]


def _kinds(alerts: list[SpendingAlert]) -> list[tuple[str, str | None, str]]:
    return sorted((a.alert_type.value, a.threshold_id, a.level.value) for a in alerts)


async def test_price_listing_agrees(contract: Contract) -> None:
    """``prices list``'s one-pass read: the same models and prices in process and over HTTP."""
    c = contract
    local_backend = c.local.tracker.backend
    http_backend = c.http.tracker.backend
    local = await current_prices(local_backend, "anthropic")
    remote = await current_prices(http_backend, "anthropic")
    assert [(p, m) for p, m, _ in local] == [(p, m) for p, m, _ in remote]
    assert len(local) > 10
    for (_, _, left), (_, _, right) in zip(local, remote, strict=True):
        assert _fields(left) == _fields(right)
    raw = await c.raw("/api/v1/pricing/prices", provider="anthropic")
    assert [row["model"] for row in raw] == [m for _, m, _ in local]
    priced = next(row for row in raw if row["pricing"] is not None)
    assert set(priced["pricing"]) == set(PricingData.SPEC_KEYS)
