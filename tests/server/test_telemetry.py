"""Budget utilisation gauges follow each account's limits; OpenTelemetry only when asked."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from prometheus_client import generate_latest
from tests.backend.live import service_settings

from smartspace_budget.models import BudgetStatus
from smartspace_budget.server.app import create_app
from smartspace_budget.server.telemetry import ServiceMetrics, route_template


def status(daily: str | None, monthly: str | None) -> BudgetStatus:
    return BudgetStatus(
        total_balance=Decimal(10),
        available_balance=Decimal(10),
        reserved_amount=Decimal(0),
        spent_today=Decimal(1),
        spent_this_month=Decimal(2),
        spent_total=Decimal(2),
        daily_limit=None if daily is None else Decimal(daily),
        monthly_limit=None if monthly is None else Decimal(monthly),
    )


def gauges(metrics: ServiceMetrics) -> list[str]:
    """The utilisation samples, without the metric's long name."""
    text = generate_latest(metrics.registry).decode()
    prefix = "smartspace_budget_budget_utilisation_ratio"
    return [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]


def test_a_lifted_limit_removes_its_gauge_and_a_new_one_adds_it() -> None:
    metrics = ServiceMetrics(account_labels=True)
    metrics.observe_status("u", "p", status("4", "8"))
    assert gauges(metrics) == [
        '{limit="daily",project_id="p",user_id="u"} 0.25',
        '{limit="monthly",project_id="p",user_id="u"} 0.25',
    ]
    metrics.observe_status("u", "p", status(None, "8"))
    assert gauges(metrics) == [
        '{limit="monthly",project_id="p",user_id="u"} 0.25',
    ]
    metrics.observe_status("u", "p", status(None, None))
    metrics.observe_status("u", "p", status(None, None))  # nothing left to remove
    assert gauges(metrics) == []
    metrics.observe_status("u", "p", status("0", None))
    assert gauges(metrics) == [
        '{limit="daily",project_id="p",user_id="u"} 1.0',
    ]


def test_only_the_most_recently_read_accounts_keep_gauges() -> None:
    metrics = ServiceMetrics(account_labels=True, max_accounts=2)
    for user in ("a", "b", "c"):
        metrics.observe_status(user, "p", status("4", None))
    metrics.observe_status("b", "p", status("4", None))  # b is recent again
    metrics.observe_status("d", "p", status("4", None))
    users = sorted(line.split('user_id="')[1][0] for line in gauges(metrics))
    assert users == ["b", "d"]


class RecordingTracer(trace.NoOpTracer):
    """Remembers the name of every span FastAPI starts."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append(name)
        return super().start_span(name, *args, **kwargs)


class RecordingProvider(trace.TracerProvider):
    def __init__(self) -> None:
        self.tracer = RecordingTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return self.tracer


@pytest.mark.parametrize("enabled", [False, True])
async def test_opentelemetry_tracing_only_when_configured(
    enabled: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = RecordingProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = create_app(service_settings(url, opentelemetry=enabled))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            assert (await client.get("/healthz")).status_code == 200
    assert bool(provider.tracer.spans) is enabled


def test_an_unchanged_status_keeps_its_gauges_and_its_place() -> None:
    metrics = ServiceMetrics(account_labels=True, max_accounts=2)
    metrics.observe_status("a", "p", status("4", None))
    metrics.observe_status("b", "p", status("4", None))
    metrics.observe_status("a", "p", status("4", None))  # unchanged, but read: a is recent
    metrics.observe_status("c", "p", status("4", None))
    users = sorted(line.split('user_id="')[1][0] for line in gauges(metrics))
    assert users == ["a", "c"]
    metrics.observe_status("a", "p", status("2", None))  # changed: the gauge follows
    assert '{limit="daily",project_id="p",user_id="a"} 0.5' in gauges(metrics)


def test_requests_are_counted_and_timed_by_route_and_status() -> None:
    metrics = ServiceMetrics()
    for status_code in (200, 200, 404):
        metrics.observe_request("GET", "/x/{id}", status_code, 0.002)
    text = generate_latest(metrics.registry).decode()
    assert 'http_requests_total{method="GET",route="/x/{id}",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",route="/x/{id}",status="404"} 1.0' in text
    assert 'duration_seconds_count{method="GET",route="/x/{id}"} 3.0' in text


def test_the_route_is_found_when_the_router_did_not_name_it(tmp_path: Path) -> None:
    # Older Starlette releases leave scope["route"] only for FastAPI's routes, not /docs.
    app = create_app(service_settings(f"sqlite+aiosqlite:///{tmp_path / 'l.sqlite3'}"))

    def scope(path: str) -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": path, "root_path": "", "app": app}

    assert route_template(scope("/docs")) == "/docs"
    assert route_template(scope("/openapi.json")) == "/openapi.json"
    assert route_template(scope("/no/such/page")) == "unmatched"


def test_default_metrics_have_no_series_per_account() -> None:
    metrics = ServiceMetrics()
    for user in ("a", "b", "c"):
        metrics.observe_status(user, "p", status("4", "8"))
    text = generate_latest(metrics.registry).decode()
    assert "user_id" not in text
    assert 'smartspace_budget_status_utilisation_ratio_count{limit="daily"} 3.0' in text
