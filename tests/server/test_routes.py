"""The service's routes: the spec's shapes, exact amounts, errors, idempotency, odd names."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from tests.models.spec_examples import TITLES, spec_documents
from tests.server.conftest import Service, account_path, ledger_path

from smartspace_budget.models import (
    BudgetStatus,
    PricingData,
    SpecModel,
    SpendingAnalytics,
    loads,
)

SPEC = {title: loads(text) for title, text in spec_documents().items()}
SPEC_STATUS, SPEC_PRICING, SPEC_ANALYTICS = (SPEC[title] for title in TITLES)
# Spec keys that may be null: unlimited limits; prices and context limits we do not know
# (a per-request model has no token prices; the catalog may not know a context limit).
NULLABLE = {
    "daily_limit",
    "monthly_limit",
    "per_request_limit",
    "input_price_per_1k",
    "output_price_per_1k",
    "max_input_tokens",
    "max_output_tokens",
}


def assert_same_type(name: str, ours: object, example: object) -> None:
    """A JSON number where the spec shows one (an integer where it shows an integer)."""
    if ours is None:
        assert name in NULLABLE, f"{name} is null"
    elif isinstance(example, (bool, str)):
        assert type(ours) is type(example), name
    elif isinstance(example, int):
        assert type(ours) is int, name
    elif isinstance(example, Decimal):
        assert type(ours) in (int, Decimal), name
    else:
        assert isinstance(example, dict), name
        assert isinstance(ours, dict), name
        sample = next(iter(example.values()))
        for key, value in ours.items():
            assert isinstance(key, str)
            assert_same_type(f"{name}.{key}", value, sample)


def assert_spec_shape(ours: dict[str, object], spec: dict[str, object]) -> None:
    """Exactly the spec example's keys, in its order, each with the example's JSON type."""
    assert set(ours) == set(spec), (set(ours) - set(spec), set(spec) - set(ours))
    assert list(ours) == list(spec)
    for name, example in spec.items():
        assert_same_type(name, ours[name], example)


def assert_extended_shape(ours: dict[str, object], model: type[SpecModel]) -> None:
    """The spec's keys first, then only the model's own extension fields."""
    assert tuple(ours)[: len(model.SPEC_KEYS)] == model.SPEC_KEYS
    assert set(ours) - set(model.SPEC_KEYS) <= set(model.model_fields) - set(model.SPEC_KEYS)
    assert model.from_data(ours) is not None


async def test_status_has_the_spec_shape_with_exact_numbers(service: Service) -> None:
    t = service.tenants
    _user, _project = t.a
    await service.write(
        "PUT",
        ledger_path(t.a, "policy"),
        {"daily_limit": 50, "monthly_limit": Decimal("1000.00"), "per_request_limit": 5},
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
    assert_spec_shape(body, SPEC_STATUS)
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
    assert_spec_shape(loads(response.content), SPEC_PRICING)
    history = await service.client.get(
        "/api/v1/pricing/provider/openai/model/gpt-4/history?days=3650",
        headers=service.auth(service.tenants.pricing_key),
    )
    assert history.status_code == 200
    versions = loads(history.content)
    assert isinstance(versions, list)
    assert versions
    for version in versions:
        assert_spec_shape(version, SPEC_PRICING)


async def test_analytics_has_the_spec_shape_and_takes_a_period(service: Service) -> None:
    t = service.tenants
    for provider, model, cost in [
        ("openai", "gpt-4", Decimal("0.5")),
        ("anthropic", "claude-3", Decimal(1)),
    ]:
        usage = {"provider": provider, "model": model, "actual_cost": cost}
        await service.write("POST", ledger_path(t.a, "usage"), usage, t.a_key)
    response = await service.client.get(
        account_path(t.a) + "/analytics?period=daily", headers=service.auth(t.a_key)
    )
    assert response.status_code == 200, response.text
    body = loads(response.content)
    assert_spec_shape(body, SPEC_ANALYTICS)
    assert body["total_spent"] == Decimal("1.5")
    assert body["requests_by_provider"] == {"openai": 1, "anthropic": 1}
    bad = await service.client.get(
        account_path(t.a) + "/analytics?period=fortnightly", headers=service.auth(t.a_key)
    )
    assert bad.status_code == 400
    assert loads(bad.content)["error"] == "InvalidInputError"


async def test_extended_true_adds_our_keys_after_the_spec_ones(service: Service) -> None:
    t = service.tenants
    policy = {"daily_limit": 50, "low_balance_threshold": 150}
    assert (await service.write("PUT", ledger_path(t.a, "policy"), policy, t.admin_key)).is_success
    usage = {"provider": "openai", "model": "gpt-4", "actual_cost": Decimal("0.5")}
    await service.write("POST", ledger_path(t.a, "usage"), usage, t.a_key)

    async def both(path: str, key: str, **params: str) -> tuple[Any, Any]:
        """The answer without and with ``extended=true``."""
        plain = await service.client.get(path, params=params, headers=service.auth(key))
        extended = await service.client.get(
            path, params={**params, "extended": "true"}, headers=service.auth(key)
        )
        assert plain.status_code == extended.status_code == 200, (plain.text, extended.text)
        return loads(plain.content), loads(extended.content)

    plain, extended = await both(account_path(t.a) + "/status", t.a_key)
    assert_spec_shape(plain, SPEC_STATUS)
    assert_extended_shape(extended, BudgetStatus)
    assert {"currency", "timezone", "as_of", "low_balance_threshold"} <= set(extended)
    assert extended["low_balance_threshold"] == 150
    assert BudgetStatus.from_data(extended).low_balance_warning  # 99.5 left <= 150
    assert {k: extended[k] for k in BudgetStatus.SPEC_KEYS} == plain

    pricing = "/api/v1/pricing/provider/anthropic/model/claude-3-5-sonnet"
    plain, extended = await both(pricing, t.pricing_key)
    assert_spec_shape(plain, SPEC_PRICING)
    assert_extended_shape(extended, PricingData)
    assert {"cached_input_price_per_1k", "cache_write_price_per_1k", "version", "source"} <= set(
        extended
    )
    assert {k: extended[k] for k in PricingData.SPEC_KEYS} == plain
    _, tiered = await both("/api/v1/pricing/provider/google/model/gemini-1.5-pro", t.pricing_key)
    assert tiered["tiers"]
    plain, extended = await both(pricing + "/history", t.pricing_key)
    assert len(plain) == len(extended) > 0
    for spec_form, our_form in zip(plain, extended, strict=True):
        assert_spec_shape(spec_form, SPEC_PRICING)
        assert_extended_shape(our_form, PricingData)
        assert "version" in our_form

    plain, extended = await both(account_path(t.a) + "/analytics", t.a_key, period="daily")
    assert_spec_shape(plain, SPEC_ANALYTICS)
    assert_extended_shape(extended, SpendingAnalytics)
    assert extended["period"] == "daily"
    assert {"period_start", "period_end", "currency"} <= set(extended)
    assert extended["requests_by_model"] == {"gpt-4": 1}
    assert {k: extended[k] for k in SpendingAnalytics.SPEC_KEYS} == plain


async def test_extended_false_is_the_default_and_other_values_are_refused(
    service: Service,
) -> None:
    t = service.tenants
    path, headers = account_path(t.b) + "/status", service.auth(t.b_key)
    default = loads((await service.client.get(path, headers=headers)).content)
    explicit = loads((await service.client.get(path + "?extended=false", headers=headers)).content)
    assert default == explicit
    assert_spec_shape(explicit, SPEC_STATUS)
    bad = await service.client.get(path + "?extended=maybe", headers=headers)
    assert bad.status_code == 400
    assert loads(bad.content)["error"] == "InvalidInputError"
    assert "extended" in loads(bad.content)["detail"]


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
    again = await service.write("POST", path, {"amount": Decimal("1.0")}, t.admin_key, idem="same")
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
    usage = {"usage": {"provider": "openai", "model": "gpt-4", "actual_cost": Decimal("2.5")}}
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
