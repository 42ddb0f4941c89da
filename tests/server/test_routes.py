"""The service's routes: the spec's shapes, exact amounts, errors, idempotency, odd names."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tests.server.conftest import Service, account_path, ledger_path

from smartspace_budget.models import (
    BudgetStatus,
    PricingData,
    SpecModel,
    SpendingAnalytics,
    loads,
)

# The spec's example documents ("Expected Response Formats"), verbatim.
SPEC_STATUS = """{
  "total_balance": 100.00, "available_balance": 75.50, "reserved_amount": 5.00,
  "spent_today": 19.50, "spent_this_month": 250.00, "spent_total": 1500.00,
  "daily_limit": 50.00, "monthly_limit": 1000.00, "per_request_limit": 5.00
}"""
SPEC_PRICING = """{
  "provider": "openai", "model_name": "gpt-4", "pricing_model": "token_based",
  "input_price_per_1k": 0.03, "output_price_per_1k": 0.06,
  "max_input_tokens": 8192, "max_output_tokens": 4096,
  "effective_date": "2026-01-01T00:00:00Z", "last_updated": "2026-01-13T12:00:00Z"
}"""
SPEC_ANALYTICS = """{
  "total_spent": 250.00, "request_count": 1250, "average_per_request": 0.20,
  "spending_by_provider": {"openai": 150.00, "anthropic": 75.00, "google": 25.00},
  "requests_by_provider": {"openai": 750, "anthropic": 375, "google": 125},
  "spending_by_model": {"gpt-4": 120.00, "gpt-3.5-turbo": 30.00, "claude-3-opus": 75.00,
                        "gemini-pro": 25.00},
  "spending_trend": "stable", "anomaly_detected": false
}"""


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, Decimal)):
        return "number"
    return type(value).__name__


def assert_spec_shape(
    ours: dict[str, object], spec: dict[str, object], model: type[SpecModel]
) -> None:
    """Every key of the spec's example is there with the same JSON type (null: unlimited).

    Keys the model documents as optional (a context limit the catalog does not know) may be
    absent, never of another type; keys beyond the spec's are the model's declared fields.
    """
    assert set(ours) <= set(model.model_fields), set(ours) - set(model.model_fields)
    for name, example in spec.items():
        if name not in ours:
            assert name in model._optional_keys, f"{name} missing"
            continue
        if ours[name] is not None:
            assert json_type(ours[name]) == json_type(example), name
        if isinstance(example, dict):
            assert isinstance(ours[name], dict)


async def test_status_has_the_spec_shape_with_exact_numbers(service: Service) -> None:
    t = service.tenants
    _user, _project = t.a
    await service.write(
        "PUT",
        ledger_path(t.a, "policy"),
        {"daily_limit": 50, "monthly_limit": "1000.00", "per_request_limit": 5},
        t.admin_key,
    )
    usage = {"provider": "openai", "model": "gpt-4", "actual_cost": 19.5}
    answer = await service.write("POST", ledger_path(t.a, "usage"), usage, t.a_key)
    assert answer.status_code == 200, answer.text
    response = await service.client.get(
        account_path(t.a) + "/status", headers=service.auth(t.a_key)
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = loads(response.content)
    assert_spec_shape(body, loads(SPEC_STATUS), BudgetStatus)
    assert body["total_balance"] == Decimal("80.5")
    assert body["spent_today"] == Decimal("19.5")
    assert body["daily_limit"] == Decimal(50)
    assert '"total_balance": 80.5' in response.text  # a JSON number, not a string


async def test_unlimited_limits_are_null(service: Service) -> None:
    t = service.tenants
    response = await service.client.get(
        account_path(t.b) + "/status", headers=service.auth(t.b_key)
    )
    body = loads(response.content)
    assert body["daily_limit"] is None
    assert body["monthly_limit"] is None


async def test_pricing_has_the_spec_shape(service: Service) -> None:
    response = await service.client.get(
        "/api/v1/pricing/provider/openai/model/gpt-4",
        headers=service.auth(service.tenants.pricing_key),
    )
    assert response.status_code == 200, response.text
    assert_spec_shape(loads(response.content), loads(SPEC_PRICING), PricingData)
    history = await service.client.get(
        "/api/v1/pricing/provider/openai/model/gpt-4/history?days=3650",
        headers=service.auth(service.tenants.pricing_key),
    )
    assert history.status_code == 200
    versions = loads(history.content)
    assert isinstance(versions, list)
    assert versions
    assert_spec_shape(versions[-1], loads(SPEC_PRICING), PricingData)


async def test_analytics_has_the_spec_shape_and_takes_a_period(service: Service) -> None:
    t = service.tenants
    for provider, model, cost in [("openai", "gpt-4", "0.5"), ("anthropic", "claude-3", "1")]:
        usage = {"provider": provider, "model": model, "actual_cost": cost}
        await service.write("POST", ledger_path(t.a, "usage"), usage, t.a_key)
    response = await service.client.get(
        account_path(t.a) + "/analytics?period=daily", headers=service.auth(t.a_key)
    )
    assert response.status_code == 200, response.text
    body = loads(response.content)
    assert_spec_shape(body, loads(SPEC_ANALYTICS), SpendingAnalytics)
    assert body["total_spent"] == Decimal("1.5")
    assert body["requests_by_provider"] == {"openai": 1, "anthropic": 1}
    bad = await service.client.get(
        account_path(t.a) + "/analytics?period=fortnightly", headers=service.auth(t.a_key)
    )
    assert bad.status_code == 400
    assert loads(bad.content)["error"] == "InvalidInputError"


async def test_spending_for_each_period(service: Service) -> None:
    t = service.tenants
    for period in ("hourly", "daily", "weekly", "monthly", "yearly"):
        response = await service.client.get(
            account_path(t.a) + f"/spending/{period}", headers=service.auth(t.a_key)
        )
        assert response.status_code == 200, response.text
        assert loads(response.content)["period"] == period
    naive = await service.client.get(
        account_path(t.a) + "/spending/daily?at=2026-01-01T00:00:00",
        headers=service.auth(t.a_key),
    )
    assert naive.status_code == 400


async def test_amounts_in_bodies_are_read_exactly(service: Service) -> None:
    t = service.tenants
    body = '{"amount": 0.123456789}'
    response = await service.client.post(
        ledger_path(t.a, "deposit"),
        content=body,
        headers={**service.auth(t.admin_key), "Idempotency-Key": "exact-1"},
    )
    assert response.status_code == 200, response.text
    assert loads(response.content)["amount"] == Decimal("0.123456789")
    assert loads(response.content)["balance_after"] == Decimal("100.123456789")


async def test_writes_need_an_idempotency_key_and_replay_it(service: Service) -> None:
    t = service.tenants
    path = ledger_path(t.a, "deposit")
    missing = await service.client.post(
        path, content='{"amount": 1}', headers=service.auth(t.admin_key)
    )
    assert missing.status_code == 400
    assert loads(missing.content)["error"] == "InvalidInputError"
    first = await service.write("POST", path, {"amount": 1}, t.admin_key, idem="same")
    again = await service.write("POST", path, {"amount": "1.0"}, t.admin_key, idem="same")
    assert loads(first.content)["entry_id"] == loads(again.content)["entry_id"]
    clash = await service.write("POST", path, {"amount": 2}, t.admin_key, idem="same")
    assert clash.status_code == 409
    assert loads(clash.content) == {
        "error": "IdempotencyConflictError",
        "detail": loads(clash.content)["detail"],
    }


async def test_bad_bodies_are_400_with_the_error_shape(service: Service) -> None:
    t = service.tenants
    for body in ["", "not json", '{"amount": NaN}', '{"amount": "abc"}', '{"amount": 1, "x": 2}']:
        response = await service.client.post(
            ledger_path(t.a, "deposit"),
            content=body,
            headers={**service.auth(t.admin_key), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 400, body
        assert set(loads(response.content)) == {"error", "detail"}


async def test_reservation_flow_over_http(service: Service) -> None:
    t = service.tenants
    held = await service.write("POST", ledger_path(t.a, "reserve"), {"amount": 3}, t.a_key)
    assert held.status_code == 200, held.text
    rid = loads(held.content)["reservation_id"]
    usage = {"usage": {"provider": "openai", "model": "gpt-4", "actual_cost": "2.5"}}
    settled = await service.write(
        "POST", f"/api/v1/ledger/reservations/{rid}/settle", usage, t.a_key
    )
    assert settled.status_code == 200, settled.text
    again = await service.write("POST", f"/api/v1/ledger/reservations/{rid}/release", None, t.a_key)
    assert again.status_code == 409
    too_much = await service.write("POST", ledger_path(t.a, "reserve"), {"amount": 1000}, t.a_key)
    assert too_much.status_code == 402
    assert loads(too_much.content)["error"] == "BudgetExceededError"


async def test_ids_and_model_names_with_slashes(service: Service) -> None:
    user, project = "org/alice", "team a/b%c"
    admin = service.tenants.admin_key
    encoded = "/api/v1/ledger/user/org%2Falice/project/team%20a%2Fb%25c/deposit"
    response = await service.write("POST", encoded, {"amount": 2}, admin)
    assert response.status_code == 200, response.text
    entry = loads(response.content)
    assert (entry["user_id"], entry["project_id"]) == (user, project)
    status = await service.client.get(
        "/api/v1/budgets/user/org%2Falice/project/team%20a%2Fb%25c/balance",
        headers=service.auth(admin),
    )
    assert loads(status.content)["total_balance"] == Decimal(2)


async def test_unknown_routes_and_models_answer_the_error_shape(service: Service) -> None:
    auth = service.auth(service.tenants.pricing_key)
    missing_route = await service.client.get("/api/v1/nothing", headers=auth)
    assert missing_route.status_code == 404
    assert loads(missing_route.content)["error"] == "NotFoundError"
    model = await service.client.get(
        "/api/v1/pricing/provider/openai/model/no-such-model-xyz", headers=auth
    )
    assert model.status_code == 404
    assert loads(model.content)["error"] == "UnknownModelError"


async def test_health_and_readiness(service: Service) -> None:
    assert loads((await service.client.get("/healthz")).content) == {"status": "ok"}
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200
    assert loads(ready.content) == {"status": "ready"}
