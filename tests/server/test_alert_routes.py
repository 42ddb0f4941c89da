"""The shared alert state through the service (``/api/v1/alerts``), on SQLite and PostgreSQL.

Monitors reading through the service (``HttpBackend``) keep their memory of raised alerts in
the service's ledger database, so two of them (two replicas, or one restarted) deliver each
alert once per threshold per period, share acknowledgements, and agree with a monitor that
reads the ledger directly. The routes claim atomically and guard their doors like the
ledger's: tenants, scopes, strict bodies, ``{"error", "detail"}`` answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from tests.server.conftest import Service

from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import HttpAlertStore, LedgerAlertStore, SpendingMonitor
from smartspace_budget.errors import ConflictError, NotFoundError
from smartspace_budget.ledger.alert_state import AlertState
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    BudgetPolicy,
    SpendingAlert,
    UsageEvent,
    dumps,
    loads,
)
from smartspace_budget.prices.catalog import PriceBook

PERIOD = datetime(2026, 3, 1, tzinfo=UTC)


def _alerts_path(account: tuple[str, str], action: str) -> str:
    user, project = account
    return f"/api/v1/alerts/user/{user}/project/{project}/{action}"


def _alert(account: tuple[str, str], **fields: Any) -> SpendingAlert:
    user, project = account
    data: dict[str, Any] = {
        "user_id": user,
        "project_id": project,
        "alert_type": AlertType.DAILY_LIMIT,
        "level": AlertLevel.WARNING,
        "title": "Daily limit",
        "message": "80% of the daily limit",
        "current_value": Decimal("8.5"),
        "threshold_value": Decimal("10"),
        "metadata": {"percentage": Decimal(80)},
        "created_at": PERIOD + timedelta(hours=1),
    }
    return SpendingAlert.model_validate({**data, **fields})


def _claim_body(alert: SpendingAlert, rank: Any = 80, **changes: Any) -> dict[str, Any]:
    return {
        "alert": alert.model_dump(mode="python"),
        "rule": "threshold:policy:daily",
        "period_start": PERIOD.isoformat(),
        "period_end": (PERIOD + timedelta(days=1)).isoformat(),
        "rank": rank,
        **changes,
    }


async def _post(service: Service, path: str, body: Any, key: str) -> httpx.Response:
    return await service.client.post(
        path,
        content=body if isinstance(body, bytes) else dumps(body),
        headers={**service.auth(key), "Content-Type": "application/json"},
    )


async def _kept(service: Service, account: tuple[str, str]) -> int:
    """How many alerts the ledger keeps for the account (the database may be shared)."""
    kept = await AlertState(service.ledger).recent(
        since=datetime(1970, 1, 1, tzinfo=UTC),
        user_id=account[0],
        project_id=account[1],
        include_acknowledged=True,
    )
    return len(kept)


@pytest.fixture
async def http_backends(service: Service) -> AsyncIterator[tuple[HttpBackend, HttpBackend]]:
    """Two clients of the one service with tenant A's account key (two monitor replicas)."""
    transport = httpx.ASGITransport(app=service.app)
    key = service.tenants.a_key
    async with (
        HttpBackend("http://service", key, transport=transport, status_ttl=0) as first,
        HttpBackend("http://service", key, transport=transport, status_ttl=0) as second,
    ):
        yield first, second


async def _spend(service: Service, cost: str) -> None:
    user, project = service.tenants.a
    usage = UsageEvent(provider="openai", model="gpt-4o", actual_cost=Decimal(cost))
    await service.ledger.record_usage(user, project, usage, idempotency_key=uuid.uuid4().hex)


async def test_two_monitors_over_the_service_deliver_each_alert_once(
    service: Service, http_backends: tuple[HttpBackend, HttpBackend]
) -> None:
    user, project = service.tenants.a
    await service.ledger.set_policy(user, project, BudgetPolicy(daily_limit=Decimal(10)))
    delivered: list[SpendingAlert] = []
    monitors = [SpendingMonitor(backend) for backend in http_backends]
    for monitor in monitors:
        assert isinstance(monitor.alert_store, HttpAlertStore)
        monitor.register_alert_handler(delivered.append)

    async def check_together(rounds: int) -> list[set[str]]:
        seen: list[set[str]] = [set(), set()]
        for _ in range(rounds):
            answers = await asyncio.gather(
                *(m.check_spending_status(user, project) for m in monitors)
            )
            for found, alerts in zip(seen, answers, strict=True):
                found.update(alert.alert_id for alert in alerts)
        for monitor in monitors:
            assert await monitor.wait_for_delivery(10)
        return seen

    await _spend(service, "6")  # 60% of the daily limit: the 50% alert
    first = await check_together(3)
    await _spend(service, "4.5")  # 105%: the 100% alert, and nothing again
    second = await check_together(3)
    # A monitor started afresh (a restart) announces nothing already announced.
    restarted = SpendingMonitor(http_backends[0])
    restarted.register_alert_handler(delivered.append)
    again = {a.alert_id for a in await restarted.check_spending_status(user, project)}
    assert await restarted.wait_for_delivery(10)

    ids = [alert.alert_id for alert in delivered]
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    daily = Counter(
        alert.metadata["percentage"] for alert in delivered if alert.threshold_id == "policy:daily"
    )
    assert daily == {Decimal(50): 1, Decimal(100): 1}
    assert first[0] == first[1]
    assert second[0] == second[1] == again
    assert set(ids) <= first[0] | second[0]

    # An acknowledgement through one monitor is what every other one sees.
    hundred = next(a for a in delivered if a.metadata.get("percentage") == 100)
    acked = await monitors[0].acknowledge(hundred.alert_id, by="ops")
    assert acked.acknowledged
    assert acked.metadata["acknowledged_by"] == "ops"
    active = await monitors[1].get_active_alerts(user, project, minutes=60)
    assert hundred.alert_id not in {a.alert_id for a in active}
    listed = await monitors[1].get_active_alerts(
        user, project, minutes=60, include_acknowledged=True
    )
    (elsewhere,) = [a for a in listed if a.alert_id == hundred.alert_id]
    assert elsewhere.acknowledged
    assert elsewhere.acknowledged_at == acked.acknowledged_at
    assert elsewhere.metadata["acknowledged_by"] == "ops"
    everywhere = await monitors[1].get_active_alerts(minutes=60, include_acknowledged=True)
    assert {a.alert_id for a in everywhere} == {a.alert_id for a in listed}
    for monitor in [*monitors, restarted]:
        await monitor.aclose()


async def test_a_monitor_over_the_service_shares_the_ledgers_memory(
    service: Service, http_backends: tuple[HttpBackend, HttpBackend]
) -> None:
    user, project = service.tenants.a
    await service.ledger.set_policy(user, project, BudgetPolicy(daily_limit=Decimal(10)))
    await _spend(service, "8.5")
    local = SpendingMonitor(LocalBackend(service.ledger, PriceBook.from_genai_prices()))
    assert isinstance(local.alert_store, LedgerAlertStore)
    remote = SpendingMonitor(http_backends[0])
    heard: list[SpendingAlert] = []
    remote.register_alert_handler(heard.append)
    raised = await local.check_spending_status(user, project)
    assert raised
    answered = await remote.check_spending_status(user, project)
    assert await remote.wait_for_delivery(10)
    assert heard == []  # the library's monitor claimed them all; the service's sends none
    assert {a.alert_id for a in answered} == {a.alert_id for a in raised}
    await remote.acknowledge(raised[0].alert_id)
    seen = await local.get_active_alerts(user, project, include_acknowledged=True)
    assert next(a for a in seen if a.alert_id == raised[0].alert_id).acknowledged
    for monitor in (local, remote):
        await monitor.aclose()


async def test_concurrent_claims_have_one_winner_and_retries_win_again(
    service: Service,
) -> None:
    a = service.tenants.a
    path = _alerts_path(a, "claims")
    alerts = [_alert(a) for _ in range(12)]
    answers = await asyncio.gather(
        *(_post(service, path, _claim_body(alert), service.tenants.a_key) for alert in alerts)
    )
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    bodies = [loads(answer.content) for answer in answers]
    winners = [body for body in bodies if body["claimed"]]
    assert len(winners) == 1
    winner_id = winners[0]["alert"]["alert_id"]
    assert {body["alert"]["alert_id"] for body in bodies} == {winner_id}
    # The winner retrying (its answer lost) is told it won; a lower rank loses to it.
    won = next(alert for alert in alerts if alert.alert_id == winner_id)
    retry = await _post(service, path, _claim_body(won), service.tenants.a_key)
    assert loads(retry.content)["claimed"] is True
    lower = await _post(service, path, _claim_body(_alert(a), rank=50), service.tenants.a_key)
    assert loads(lower.content)["claimed"] is False
    higher = await _post(
        service, path, _claim_body(_alert(a), rank=Decimal("100.5")), service.tenants.a_key
    )
    assert loads(higher.content)["claimed"] is True
    # The winner's id used again for another period is a conflict, and keeps nothing.
    before = await _kept(service, a)
    reused = await _post(
        service,
        path,
        _claim_body(won, period_start="2026-03-05T00:00:00Z", period_end="2026-03-06T00:00:00Z"),
        service.tenants.a_key,
    )
    assert reused.status_code == 409, reused.text
    assert loads(reused.content)["error"] == "ConflictError"
    assert await _kept(service, a) == before


async def test_claims_through_http_backend_are_retry_safe(
    service: Service, http_backends: tuple[HttpBackend, HttpBackend]
) -> None:
    first, second = http_backends
    alert = _alert(service.tenants.a)
    claim: dict[str, Any] = {
        "rule": "threshold:x",
        "period_start": PERIOD,
        "period_end": PERIOD + timedelta(days=1),
        "rank": Decimal("80.0000004"),  # kept to millionths, as the ledger keeps ranks
    }
    won, standing = await first.claim_alert(alert, **claim)
    assert won
    assert standing.alert_id == alert.alert_id
    assert (await first.claim_alert(alert, **claim))[0]  # a retry of the same claim
    lost, standing = await second.claim_alert(_alert(service.tenants.a), **claim)
    assert not lost
    assert standing.alert_id == alert.alert_id
    with pytest.raises(NotFoundError):
        await second.acknowledge_alert("no-such-alert")
    recorded = _alert(service.tenants.a, alert_type=AlertType.COST_ANOMALY)
    await first.record_alert(recorded, rule=f"report:{recorded.alert_id}")
    await first.record_alert(recorded, rule=f"report:{recorded.alert_id}")  # again: no-op
    stolen = recorded.model_copy(update={"project_id": "elsewhere"})
    with pytest.raises((ConflictError, NotFoundError)):
        await first.record_alert(stolen, rule="report:x")
    recent = await second.recent_alerts(
        since=PERIOD, user_id=service.tenants.a[0], include_acknowledged=True
    )
    assert {a.alert_id for a in recent} == {alert.alert_id, recorded.alert_id}


async def test_other_tenants_and_small_scopes_are_refused(service: Service) -> None:
    t = service.tenants
    b_alert = _alert(t.b)
    claimed = await _post(service, _alerts_path(t.b, "claims"), _claim_body(b_alert), t.b_key)
    assert loads(claimed.content)["claimed"] is True
    for key in (t.a_key, t.a_read_key, t.pricing_key):
        for path, body in (
            (_alerts_path(t.b, "claims"), _claim_body(_alert(t.b))),
            (_alerts_path(t.b, "reports"), {"alert": _claim_body(_alert(t.b))["alert"]}),
            (f"/api/v1/alerts/{b_alert.alert_id}/acknowledge", {}),
        ):
            answer = await _post(service, path, body, key)
            assert answer.status_code == 404, (path, answer.text)
            assert b_alert.alert_id not in answer.text
        mine = await service.client.get("/api/v1/alerts/recent", headers=service.auth(key))
        if key == t.pricing_key:
            assert mine.status_code == 403
        else:
            assert b_alert.alert_id not in mine.text
    # A read-only key of the account may list its alerts, not claim or acknowledge them.
    a_alert = _alert(t.a)
    refused = await _post(service, _alerts_path(t.a, "claims"), _claim_body(a_alert), t.a_read_key)
    assert refused.status_code == 403
    assert loads(refused.content)["error"] == "ForbiddenError"
    listed = await service.client.get(
        _alerts_path(t.b, "recent"),
        params={"since": "2026-01-01T00:00:00Z"},
        headers=service.auth(t.admin_key),
    )
    assert [a["alert_id"] for a in loads(listed.content)] == [b_alert.alert_id]
    acked = await _post(
        service, f"/api/v1/alerts/{b_alert.alert_id}/acknowledge", {"by": "ops"}, t.b_key
    )
    assert loads(acked.content)["acknowledged"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rank": "80"}, "rank"),
        ({"rank": Decimal("80.0000001")}, "rank"),
        ({"rank": -1}, "rank"),
        ({"rank": True}, "rank"),
        ({"period_start": "2026-03-01T00:00:00"}, "period_start"),
        ({"period_end": "2026-02-28T00:00:00Z"}, "period_end!"),
        ({"rule": ""}, "rule"),
        ({"rule": "r" * 241}, "rule"),
        ({"alert": {"alert_id": "a\u202eb"}}, "alert.alert_id"),
        ({"alert": {"user_id": "someone-else"}}, "alert!"),
        ({"alert": {"created_at": 1767225600}}, "alert.created_at"),
        ({"alert": {"acknowledged": "yes"}}, "alert.acknowledged"),
        ({"alert": {"metadata": {"x": "RAW"}}}, "alert.metadata"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_claims_are_refused_by_name_and_keep_nothing(
    service: Service, change: dict[str, Any], field: str
) -> None:
    a = service.tenants.a
    body = _claim_body(_alert(a))
    change = dict(change)  # the parameter is shared by both databases' runs
    alert_change = change.pop("alert", None)
    body.update(change)
    raw = dumps(body)
    if alert_change is not None:
        if alert_change.get("metadata") == {"x": "RAW"}:
            alert_change = {"metadata": {"x": "__RAW__"}}
        body["alert"] = {**body["alert"], **alert_change}
        raw = dumps(body).replace('"__RAW__"', "1e5")
    answer = await _post(service, _alerts_path(a, "claims"), raw.encode(), service.tenants.a_key)
    # Contradicting values (not expressible in JSON Schema) are 422, malformed ones 400.
    contradiction = field.endswith("!")
    field = field.rstrip("!")
    assert answer.status_code == (422 if contradiction else 400), answer.text
    error = loads(answer.content)
    assert set(error) == {"error", "detail"}
    assert error["error"] == ("InconsistentInputError" if contradiction else "InvalidInputError")
    assert field.split(".")[-1] in error["detail"] or field in error["detail"]
    assert await _kept(service, a) == 0


def test_the_routes_are_documented_exactly(service: Service) -> None:
    document = service.app.openapi()
    paths = document["paths"]
    claims = paths["/api/v1/alerts/user/{user_id}/project/{project_id}/claims"]["post"]
    assert claims["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AlertClaim"
    }
    assert claims["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AlertClaimResult"
    }
    schemas = document["components"]["schemas"]
    assert schemas["AlertClaim"]["additionalProperties"] is False
    assert schemas["AlertClaim"]["properties"]["rank"]["type"] == "number"
    assert schemas["AlertDocument"]["properties"]["alert_id"]["pattern"]
    for path in (
        "/api/v1/alerts/user/{user_id}/project/{project_id}/reports",
        "/api/v1/alerts/user/{user_id}/project/{project_id}/recent",
        "/api/v1/alerts/recent",
        "/api/v1/alerts/{alert_id}/acknowledge",
    ):
        assert path in paths
    recent = paths["/api/v1/alerts/recent"]["get"]
    assert {p["name"] for p in recent["parameters"]} == {
        "since",
        "include_acknowledged",
        "limit",
    }
