"""Keys, tenants, limits: every route in the OpenAPI document checked against another tenant."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.server.conftest import Service, account_path, ledger_path, make_service

from smartspace_budget.models import AlertLevel, AlertType, SpendingAlert, dumps, loads

BODIES: dict[str, Any] = {
    "deposit": {"amount": 1},
    "usage": {"provider": "openai", "model": "gpt-4", "actual_cost": Decimal("0.01")},
    "refund": {"amount": Decimal("0.01")},
    "adjust": {"amount": Decimal("-0.01"), "reason": "test"},
    "reserve": {"amount": 1},
    "policy": {"daily_limit": 1},
    "settle": {"usage": {"provider": "openai", "model": "gpt-4", "actual_cost": Decimal("0.5")}},
    "release": None,
    "acknowledge": {"by": "ops"},
}


def fill(path: str, user: str, project: str, reservation: str, alert: str = "a") -> str:
    return (
        path.replace("{user_id}", user)
        .replace("{project_id}", project)
        .replace("{reservation_id}", reservation)
        .replace("{alert_id}", alert)
        .replace("{period}", "daily")
    )


async def call(service: Service, method: str, path: str, key: str | None) -> httpx.Response:
    action = path.rstrip("/").rsplit("/", 1)[-1]
    body = BODIES.get(action) if method in ("post", "put") else None
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    # Routes with required query parameters get valid ones, so that what answers is the
    # tenant check and not the parameters' validation.
    window = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    params: dict[str, str] = {}
    if path.endswith("/series"):
        params = {"granularity": "daily", **window}
    elif path.endswith("/usage-shapes"):
        params = window
    elif path.endswith("/output-history"):
        params = {"provider": "openai", "model": "gpt-4"}
    return await service.client.request(
        method.upper(),
        path,
        content=dumps(body) if body is not None else None,
        headers=headers,
        params=params,
    )


def tenant_routes(service: Service) -> list[tuple[str, str]]:
    document = service.app.openapi()
    routes: list[tuple[str, str]] = []
    for path, operations in document["paths"].items():
        if "{user_id}" in path or "{reservation_id}" in path or "{alert_id}" in path:
            routes.extend((method, path) for method in operations)
    return routes


async def test_every_tenant_route_hides_another_tenants_account(service: Service) -> None:
    t = service.tenants
    b_user, b_project = t.b
    held = await service.write("POST", ledger_path(t.b, "reserve"), {"amount": 7}, t.b_key)
    b_reservation = loads(held.content)["reservation_id"]
    b_alert = await _alert_of(service, t.b, t.b_key)
    b_balance = str(
        loads((await call(service, "get", account_path(t.b) + "/balance", t.admin_key)).content)[
            "total_balance"
        ]
    )
    routes = tenant_routes(service)
    assert len(routes) >= 14, routes
    for key in (t.a_key, t.a_read_key, t.pricing_key):
        for method, template in routes:
            path = fill(template, b_user, b_project, b_reservation, b_alert)
            response = await call(service, method, path, key)
            assert response.status_code == 404, (method, template, response.text)
            body = loads(response.content)
            assert body["error"] == "NotFoundError"
            for secret in (b_user, b_project, b_reservation, b_alert, b_balance):
                assert secret not in response.text, (method, template)
            # Indistinguishable from an account, reservation or alert that does not exist.
            ghost = fill(
                template,
                "nobody-" + uuid.uuid4().hex,
                "none",
                "res_" + uuid.uuid4().hex,
                "alert-" + uuid.uuid4().hex,
            )
            missing = await call(service, method, ghost, key)
            assert missing.status_code == 404
            assert loads(missing.content) == body
    # The routes without an account in the path never show B to A's keys either.
    document = service.app.openapi()["paths"]
    others = [(m, p) for p, ops in document.items() for m in ops if (m, p) not in routes]
    assert len(routes) + len(others) == sum(len(ops) for ops in document.values())
    for key in (t.a_key, t.a_read_key, t.pricing_key):
        for method, template in others:
            path = template.replace("{provider}", "openai").replace("{model}", "gpt-4")
            response = await call(service, method, path, key)
            assert response.status_code < 500, (method, template, response.text)
            for secret in (b_user, b_project, b_reservation, b_alert):
                assert secret not in response.text, (method, template)
    # And B's data is untouched by all those attempts.
    after = await call(service, "get", account_path(t.b) + "/balance", t.b_key)
    assert str(loads(after.content)["total_balance"]) == b_balance


async def _alert_of(service: Service, account: tuple[str, str], key: str) -> str:
    """An alert of the account in the service's shared alert state; its id."""
    user, project = account
    alert = SpendingAlert(
        user_id=user,
        project_id=project,
        alert_type=AlertType.LOW_BALANCE,
        level=AlertLevel.WARNING,
        title="Low balance",
        message="Low balance",
        current_value=Decimal(1),
    )
    body = {
        "alert": alert.model_dump(mode="python"),
        "rule": "low_balance",
        "period_start": "2026-03-01T00:00:00Z",
        "period_end": "2026-03-02T00:00:00Z",
        "rank": 1,
    }
    path = f"/api/v1/alerts/user/{user}/project/{project}/claims"
    claimed = await service.write("POST", path, body, key)
    assert loads(claimed.content)["claimed"] is True, claimed.text
    return alert.alert_id


async def test_own_account_with_too_small_a_scope_is_403(service: Service) -> None:
    t = service.tenants
    read_only = await service.write(
        "POST", ledger_path(t.a, "usage"), BODIES["usage"], t.a_read_key
    )
    assert read_only.status_code == 403
    for action in ("deposit", "refund", "adjust", "policy"):
        method = "PUT" if action == "policy" else "POST"
        response = await service.write(method, ledger_path(t.a, action), BODIES[action], t.a_key)
        assert response.status_code == 403, action
        assert loads(response.content)["error"] == "ForbiddenError"
    spend = await service.write("POST", ledger_path(t.a, "usage"), BODIES["usage"], t.a_key)
    assert spend.status_code == 200


async def test_account_list_shows_only_the_keys_own_account(service: Service) -> None:
    t = service.tenants
    mine = await call(service, "get", "/api/v1/budgets/accounts", t.a_key)
    assert [(a["user_id"], a["project_id"]) for a in loads(mine.content)] == [t.a]
    everyone = await call(service, "get", "/api/v1/budgets/accounts", t.admin_key)
    assert {tuple(a.values())[:2] for a in loads(everyone.content)} >= {t.a, t.b}
    pricing = await call(service, "get", "/api/v1/budgets/accounts", t.pricing_key)
    assert pricing.status_code == 403


async def test_missing_and_wrong_keys_get_identical_401s(service: Service) -> None:
    path = account_path(service.tenants.a) + "/status"
    answers = []
    for headers in (
        {},
        {"Authorization": "Bearer ssb_wrong"},
        {"Authorization": "Bearer " + service.tenants.a_key + "x"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ):
        response = await service.client.get(path, headers=headers)
        answers.append(
            (response.status_code, response.content, response.headers.get("www-authenticate"))
        )
    assert answers[0][0] == 401
    assert all(answer == answers[0] for answer in answers)


async def test_every_api_route_needs_a_key(service: Service) -> None:
    document = service.app.openapi()
    for template, operations in document["paths"].items():
        for method in operations:
            path = (
                fill(template, "u", "p", "r")
                .replace("{provider}", "openai")
                .replace("{model}", "gpt-4")
            )
            response = await call(service, method, path, None)
            if template in ("/healthz", "/readyz"):
                assert response.status_code == 200
            else:
                assert response.status_code == 401, (method, template)


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[Service]:
    async for made in make_service(
        database_url, rate_limit_per_second=0.5, rate_limit_burst=3, max_body_bytes=1024
    ):
        yield made


async def test_rate_limit_answers_429_with_retry_after(limited: Service) -> None:
    t = limited.tenants
    path = account_path(t.a) + "/balance"
    codes = [(await call(limited, "get", path, t.a_key)).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    refused = await call(limited, "get", path, t.a_key)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert loads(refused.content)["error"] == "RateLimitedError"
    other = await call(limited, "get", account_path(t.b) + "/balance", t.b_key)
    assert other.status_code == 200  # limits are per key


async def test_oversized_bodies_are_refused_with_413(limited: Service) -> None:
    t = limited.tenants
    big = dumps({"amount": 1, "reference": "x" * 2000})
    path = ledger_path(t.a, "deposit")
    headers = {"Authorization": f"Bearer {t.admin_key}", "Idempotency-Key": "big"}
    response = await limited.client.post(path, content=big, headers=headers)
    assert response.status_code == 413
    assert loads(response.content)["error"] == "RequestTooLargeError"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b" " * 400

    streamed = await limited.client.post(path, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    balance = await call(limited, "get", account_path(t.a) + "/balance", t.admin_key)
    assert str(loads(balance.content)["total_balance"]) in ("100", "100.000000000")


async def test_no_raw_key_in_the_database_or_the_logs(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    t = service.tenants
    raw_keys = [t.a_key, t.a_read_key, t.b_key, t.pricing_key, t.admin_key]
    caplog.set_level(logging.DEBUG)
    for key in [*raw_keys, "ssb_not_a_real_key_123"]:
        await call(service, "get", account_path(t.a) + "/status", key)
        await call(service, "post", ledger_path(t.a, "usage"), key)
        await call(service, "get", "/metrics", key)
    logged = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records)
    async with service.ledger.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        dumped: list[str] = []
        for name in names:
            rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
            dumped.extend(str(value) for row in rows for value in row)
    stored = "\n".join(dumped)
    for raw in [*raw_keys, "ssb_not_a_real_key_123"]:
        secret = raw.removeprefix("ssb_")
        assert secret not in logged
        assert secret not in stored
