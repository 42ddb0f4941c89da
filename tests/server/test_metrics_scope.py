"""A ``metrics`` key reads ``/metrics`` and is refused (403) everywhere else."""

from __future__ import annotations

from tests.server.conftest import Service, account_path
from tests.server.test_security import call, fill

from smartspace_budget.models import loads
from smartspace_budget.server.key_tables import create_api_key


async def _metrics_key(service: Service) -> str:
    _, raw = await create_api_key(service.ledger.engine, scope="metrics")
    return raw


async def test_a_metrics_key_reads_metrics_and_nothing_else(service: Service) -> None:
    key = await _metrics_key(service)
    t = service.tenants
    scrape = await call(service, "get", "/metrics", key)
    assert scrape.status_code == 200
    assert "smartspace_budget_http_requests_total" in scrape.text
    document = service.app.openapi()["paths"]
    refused = 0
    for template, operations in document.items():
        for method in operations:
            path = (
                fill(template, *t.a, "res_x")
                .replace("{provider}", "openai")
                .replace("{model}", "gpt-4")
            )
            response = await call(service, method, path, key)
            if template in ("/healthz", "/readyz", "/metrics"):
                assert response.status_code == 200, (method, template)
                continue
            assert response.status_code == 403, (method, template, response.text)
            assert loads(response.content)["error"] == "ForbiddenError"
            refused += 1
    assert refused >= 15
    # Status and balance, answered ahead of the routes, refuse it alike.
    for read in ("status", "balance"):
        response = await call(service, "get", f"{account_path(t.a)}/{read}", key)
        assert response.status_code == 403
    # The dashboard too, by header or by signing in.
    page = await service.client.get("/dashboard", headers=service.auth(key))
    assert page.status_code == 403
    login = await service.client.post(
        "/dashboard/login",
        content=f"api_key={key}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 403
    assert "set-cookie" not in login.headers


async def test_other_scopes_still_cannot_read_metrics(service: Service) -> None:
    t = service.tenants
    for key in (t.a_key, t.a_read_key, t.pricing_key):
        assert (await call(service, "get", "/metrics", key)).status_code == 403
    assert (await call(service, "get", "/metrics", t.admin_key)).status_code == 200
