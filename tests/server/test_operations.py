"""Metrics, the OpenAPI document, and replicas sharing one database."""

from __future__ import annotations

import gc
import inspect
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from tests.backend.live import service_settings
from tests.server.conftest import Service, account_path, ledger_path, make_service

from smartspace_budget.config import Settings
from smartspace_budget.models import loads
from smartspace_budget.server.app import create_app, create_app_from_env


async def _spend_and_read(service: Service) -> None:
    t = service.tenants
    await service.write("PUT", ledger_path(t.a, "policy"), {"daily_limit": 10}, t.admin_key)
    for cost in (Decimal("1.5"), Decimal(2)):
        usage = {"provider": "openai", "model": "gpt-4o", "actual_cost": cost}
        await service.write("POST", ledger_path(t.a, "usage"), usage, t.a_key)
    await service.client.get(account_path(t.a) + "/status", headers=service.auth(t.a_key))


async def test_metrics_count_spend_requests_utilisation_and_latency(service: Service) -> None:
    t = service.tenants
    await _spend_and_read(service)
    forbidden = await service.client.get("/metrics", headers=service.auth(t.a_key))
    assert forbidden.status_code == 403
    response = await service.client.get("/metrics", headers=service.auth(t.admin_key))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'smartspace_budget_spend_usdc_total{model="gpt-4o",provider="openai"} 3.5' in text
    assert 'smartspace_budget_usage_requests_total{model="gpt-4o",provider="openai"} 2.0' in text
    # Utilisation over all accounts: the read found 3.5 / 10, in the 0.5 bucket not 0.25.
    assert 'smartspace_budget_status_utilisation_ratio_bucket{le="0.25",limit="daily"} 0.0' in text
    assert 'smartspace_budget_status_utilisation_ratio_bucket{le="0.5",limit="daily"} 1.0' in text
    template = "/api/v1/budgets/user/{user_id}/project/{project_id}/status"
    assert f'route="{template}"' in text
    assert "smartspace_budget_http_request_duration_seconds_bucket" in text
    # No series per account by default: no id appears anywhere.
    user, project = t.a
    assert user not in text
    assert project not in text
    assert "smartspace_budget_budget_utilisation_ratio{" not in text


async def test_per_account_utilisation_is_an_opt_in(database_url: str) -> None:
    async for service in make_service(database_url, metrics_account_labels=True):
        await _spend_and_read(service)
        t = service.tenants
        response = await service.client.get("/metrics", headers=service.auth(t.admin_key))
        text = response.text
        user, project = t.a
        assert (
            f'smartspace_budget_budget_utilisation_ratio{{limit="daily",project_id="{project}",'
            f'user_id="{user}"}} 0.35' in text
        )
        assert user not in text.split("budget_utilisation")[0]  # ids only in the gauge


async def test_two_apps_in_one_process_keep_separate_metrics(database_url: str) -> None:
    first = create_app(service_settings(database_url))
    second = create_app(service_settings(database_url))
    assert first.state.metrics.registry is not second.state.metrics.registry


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


async def test_openapi_documents_amounts_as_numbers_and_errors_as_400(service: Service) -> None:
    response = await service.client.get("/openapi.json")
    document = loads(response.content)
    schemas = document["components"]["schemas"]
    status = schemas["BudgetStatus"]["properties"]
    assert status["total_balance"]["type"] == "number"
    assert {"type": "number"} in status["daily_limit"]["anyOf"]
    assert schemas["DepositRequest"]["properties"]["amount"]["type"] == "number"
    assert schemas["SpendingAnalytics"]["properties"]["spending_by_provider"][
        "additionalProperties"
    ] == {"type": "number"}
    # No amount is documented as "a number or a string". A free-form value (an alert's
    # metadata: text, number, boolean or null) is not an amount and may be either.
    assert not any(
        {"number", "string"} <= types and "boolean" not in types
        for node in _walk(document)
        for types in [{o.get("type") for o in node.get("anyOf", [])}]
    )
    paths = document["paths"]
    for spec_path in (
        "/api/v1/budgets/user/{user_id}/project/{project_id}/balance",
        "/api/v1/budgets/user/{user_id}/project/{project_id}/status",
        "/api/v1/budgets/user/{user_id}/project/{project_id}/spending/{period}",
        "/api/v1/budgets/user/{user_id}/project/{project_id}/analytics",
        "/api/v1/pricing/provider/{provider}/model/{model}",
        "/api/v1/pricing/provider/{provider}/model/{model}/history",
    ):
        answer = paths[spec_path]["get"]["responses"]["200"]["content"]["application/json"]
        assert answer["schema"] != {"type": "string"}, spec_path
    status_answer = paths["/api/v1/budgets/user/{user_id}/project/{project_id}/status"]["get"]
    assert status_answer["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BudgetStatus"
    }
    for operations in paths.values():
        for operation in operations.values():
            # FastAPI's 422 is gone; a 422 left is ours: well-formed values that disagree.
            inconsistent = operation["responses"].get("422")
            assert inconsistent is None or "InconsistentInputError" in inconsistent["description"]
    deposit = paths["/api/v1/ledger/user/{user_id}/project/{project_id}/deposit"]["post"]
    assert deposit["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DepositRequest"
    }
    assert any(p["name"] == "Idempotency-Key" for p in deposit["parameters"])


async def test_openapi_documents_the_extended_parameter(service: Service) -> None:
    paths = loads((await service.client.get("/openapi.json")).content)["paths"]
    shaped = [
        "/api/v1/budgets/user/{user_id}/project/{project_id}/status",
        "/api/v1/budgets/user/{user_id}/project/{project_id}/analytics",
        "/api/v1/pricing/provider/{provider}/model/{model}",
        "/api/v1/pricing/provider/{provider}/model/{model}/history",
    ]
    for path in shaped:
        parameters = {p["name"]: p for p in paths[path]["get"]["parameters"]}
        extended = parameters["extended"]
        assert extended["in"] == "query", path
        assert not extended["required"], path
        assert extended["schema"]["type"] == "boolean", path
        assert extended["schema"]["default"] is False, path
        assert "spec's example document" in extended["description"], path
    balance = paths["/api/v1/budgets/user/{user_id}/project/{project_id}/balance"]["get"]
    assert "extended" not in {p["name"] for p in balance["parameters"]}


async def test_two_replicas_on_one_database_give_the_same_answers(database_url: str) -> None:
    async for one in make_service(database_url):
        async for two in make_service(database_url):
            t = one.tenants
            usage = {"provider": "openai", "model": "gpt-4", "actual_cost": Decimal("0.333333333")}
            for _ in range(3):
                await one.write("POST", ledger_path(t.a, "usage"), usage, t.admin_key)
            idem = uuid.uuid4().hex
            first = await one.write(
                "POST", ledger_path(t.a, "deposit"), {"amount": 5}, t.admin_key, idem
            )
            replay = await two.write(
                "POST", ledger_path(t.a, "deposit"), {"amount": 5}, t.admin_key, idem
            )
            assert loads(replay.content)["entry_id"] == loads(first.content)["entry_id"]
            for suffix in ("/balance", "/status", "/spending/daily", "/analytics"):
                answers = []
                for replica in (one, two):
                    response = await replica.client.get(
                        account_path(t.a) + suffix, headers=replica.auth(t.admin_key)
                    )
                    body = loads(response.content)
                    body.pop("as_of", None)
                    answers.append(body)
                assert answers[0] == answers[1], suffix
            assert answers[0]["total_spent"] == Decimal("0.999999999")  # the analytics


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            yield from _api_routes(route.original_router.routes)


def test_no_endpoint_or_dependency_runs_in_the_thread_pool() -> None:
    # FastAPI runs a plain ``def`` endpoint or dependency in its thread pool: a thread hop per
    # request that halved the status endpoint's throughput when one dependency was sync.
    app = create_app(Settings(database_url="sqlite://"))
    routes = list(_api_routes(app.routes))
    assert len(routes) > 20
    sync = [
        f"{route.path}: {getattr(d.call, '__name__', d.call)}"
        for route in routes
        for d in _dependants(route.dependant)
        if d.call is not None
        and not inspect.iscoroutinefunction(d.call)
        and not inspect.iscoroutinefunction(type(d.call).__call__)  # e.g. HTTPBearer()
    ]
    assert sync == []


async def test_served_app_freezes_start_up_objects_out_of_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/l.db")
    monkeypatch.setenv("SMARTSPACE_BUDGET_EXPIRY_INTERVAL", "0")
    assert gc.get_freeze_count() == 0
    app = create_app_from_env()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


async def test_the_served_ledger_shares_one_data_version_look_per_loop_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read the service makes answers a request that came over the socket, which is
    what makes one look per event-loop iteration exact (``ledger/read_memo.py``)."""
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/l.db")
    monkeypatch.setenv("SMARTSPACE_BUDGET_EXPIRY_INTERVAL", "0")
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        memo: Any = app.state.backend.ledger._memo
        assert memo._per_iteration
