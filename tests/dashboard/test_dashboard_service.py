"""The dashboard with the real parts around it: ``create_app`` over a ledger holding a year
of hourly usage (over HTTP, with an account key), the PricingEngine and the SpendingMonitor."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from smartspace_budget.config import Settings
from smartspace_budget.models import loads
from smartspace_budget.server.dashboard.view import Workload, _provider_of, build_view

from .conftest import NOW, FakeBackend, make_app, serve
from .conftest import PROJECT as FAKE_PROJECT
from .conftest import USER as FAKE_USER
from .ledger_site import PROJECT, USER, SeededLedger


@pytest.fixture(scope="module")
def service(seeded_ledger: SeededLedger) -> Iterator[httpx.Client]:
    from smartspace_budget.server.app import create_app

    app = create_app(Settings(database_url=seeded_ledger.url, auth_enabled=True))
    with (
        serve(app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {seeded_ledger.key}"}, timeout=10
        ) as client,
    ):
        yield client


@pytest.mark.parametrize("period", ["day", "week", "month", "year"])
def test_each_period_renders_from_a_year_of_hourly_usage(
    service: httpx.Client, seeded_ledger: SeededLedger, period: str
) -> None:
    response = service.get(f"/dashboard?period={period}")
    assert response.status_code == 200
    assert f'data-amount="{seeded_ledger.total_balance}"' in response.text
    assert re.search(r'<tr class="top-row"><th scope="row" class="name">gpt-4o</th>', response.text)


def test_export_json_matches_the_ledger(service: httpx.Client, seeded_ledger: SeededLedger) -> None:
    data = loads(service.get("/dashboard/export.json?period=year").text)
    assert data["account"] == {"user_id": USER, "project_id": PROJECT}
    assert data["balance"]["total_balance"] == seeded_ledger.total_balance
    assert data["chart"]["granularity"] == "monthly"
    assert len(data["chart"]["current"]) == 12
    assert len(data["chart"]["previous"]) == 12
    # Every usage entry is in the last 366 days, so the two years of bars hold all the spend.
    chart_total = sum(b["spent"] for s in ("current", "previous") for b in data["chart"][s])
    assert chart_total == data["spending"]["spent_total"]


def test_the_dashboard_is_not_in_the_openapi_document(service: httpx.Client) -> None:
    paths = service.get("/openapi.json").json()["paths"]
    assert not any(path.startswith("/dashboard") for path in paths)


async def test_model_names_resolve_to_the_accounts_own_provider() -> None:
    from smartspace_budget.pricing import PriceBook

    book: Any = PriceBook.in_memory()
    known = {("github-copilot", "gpt-4o"), ("openai", "gpt-4o"), ("azure", "gpt-4o")}
    assert await _provider_of(book, "gpt-4o", known, []) == ("openai", "gpt-4o")
    assert await _provider_of(book, "gpt-4o", known, ["azure"]) == ("azure", "gpt-4o")
    assert await _provider_of(book, "azure/gpt-4o", known, []) == ("azure", "gpt-4o")
    assert await _provider_of(book, "nothing", known, []) is None
    # Only a reseller lists the bare name; the account's own provider knows it as an alias.
    haiku = {("google", "claude-3-5-haiku")}
    assert await _provider_of(book, "claude-3-5-haiku", haiku, ["openai", "anthropic"]) == (
        "anthropic",
        "claude-3-5-haiku",
    )
    assert await _provider_of(book, "claude-3-5-haiku", haiku, []) == ("google", "claude-3-5-haiku")


async def test_comparison_through_the_pricing_engine(seeded: FakeBackend) -> None:
    """The real engine prices what it can and reports the rest beside the table."""
    from smartspace_budget.pricing.pricing_engine import PricingEngine

    engine = PricingEngine(seeded)
    workload = Workload.parse("1000", "500", "openai/gpt-4o,acme/nothing,openai/gpt-4o-mini")
    view = await build_view(
        seeded,
        FAKE_USER,
        FAKE_PROJECT,
        workload=workload,
        compare=engine.compare_provider_costs,
        now=NOW,
    )
    assert [(r.provider, r.model) for r in view.comparison.rows] == [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
    ]
    # gpt-4o: 1000 x 0.0025/1k + 500 x 0.01/1k = 0.0075, plus the 5% fee
    assert view.comparison.rows[1].total_cost == Decimal("0.007875")
    assert [name for name, _ in view.comparison.failures] == ["acme/nothing"]


def test_default_sources_are_the_real_monitor_and_pricing_engine(seeded: FakeBackend) -> None:
    client = TestClient(make_app(seeded, fakes=False))
    html = client.get(
        "/dashboard?models=openai/gpt-4o,acme/nothing",
        headers={"Authorization": "Bearer ssb_alice_test"},
    ).text
    # The seeded month is past 50% of its limit and heading over it: the monitor says so.
    levels = re.findall(r'<li class="alert level-(\w+)">', html)
    assert levels
    assert "forecast" in html.lower()
    assert "0.007875" in html  # gpt-4o priced by the engine, 5% fee included
    assert "acme/nothing" in html


def test_last_period_is_replayed_on_the_compared_models(service: httpx.Client) -> None:
    query = "period=month&models=openai/gpt-4o,openai/gpt-4o-mini"
    page = service.get(f"/dashboard?{query}")
    assert page.status_code == 200
    assert 'id="replay-table"' in page.text
    data = loads(service.get(f"/dashboard/export.json?{query}").text)
    replay = data["replay"]
    assert replay["error"] is None
    assert replay["calls"] > 0
    names = [f"{t['provider']}/{t['model']}" for t in replay["targets"]]
    assert names == ["openai/gpt-4o", "openai/gpt-4o-mini"]
    mini = replay["targets"][1]
    assert mini["calls_served"] + mini["calls_unserved"] == replay["calls"]
    csv_text = service.get(f"/dashboard/export.csv?{query}").text
    assert "\nreplay,openai/gpt-4o-mini," in csv_text
