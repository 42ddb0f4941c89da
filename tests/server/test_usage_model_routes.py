"""The write endpoints take the whole usage model and the ledger keeps it with the entry."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from smartspace_budget.models import loads

from .conftest import Service, ledger_path

FULL_USAGE: dict[str, Any] = {
    "provider": "anthropic",
    "model": "claude-sonnet-4-5",
    "input_tokens": 10_000,
    "cached_input_tokens": 2_000,
    "cache_write_tokens": 3_000,
    "cache_write_1h_tokens": 1_000,
    "output_tokens": 500,
    "reasoning_tokens": 100,
    "web_searches": 2,
    "unpriced": {"server_tool_use.web_fetch_requests": 1},
    "actual_cost": Decimal("0.05"),
    "price_version": "gp-test",
}


async def stored_detail(service: Service, entry_id: str) -> Any:
    async with service.ledger.engine.connect() as conn:
        row = await conn.execute(
            text("SELECT usage_detail, reasoning_tokens FROM ledger_entries WHERE entry_id = :e"),
            {"e": entry_id},
        )
        detail, reasoning = row.one()
    return (None if detail is None else json.loads(detail)), reasoning


async def test_usage_keeps_every_dimension(service: Service) -> None:
    t = service.tenants
    answer = await service.write("POST", ledger_path(t.a, "usage"), FULL_USAGE, t.a_key)
    assert answer.status_code == 200, answer.text
    detail, reasoning = await stored_detail(service, loads(answer.content)["entry_id"])
    assert reasoning == 100
    assert detail == {
        "cache_write_1h_tokens": 1_000,
        "web_searches": 2,
        "unpriced:server_tool_use.web_fetch_requests": 1,
    }


async def test_settle_keeps_every_dimension(service: Service) -> None:
    t = service.tenants
    held = await service.write("POST", ledger_path(t.a, "reserve"), {"amount": 1}, t.a_key)
    assert held.status_code == 200, held.text
    rid = loads(held.content)["reservation_id"]
    usage = {**FULL_USAGE, "output_audio_tokens": 50, "seconds": Decimal("12.5")}
    settled = await service.write(
        "POST", f"/api/v1/ledger/reservations/{rid}/settle", {"usage": usage}, t.a_key
    )
    assert settled.status_code == 200, settled.text
    body = loads(settled.content)
    entry_id = body.get("usage_entry_id") or body["entry_id"]
    detail, _ = await stored_detail(service, entry_id)
    assert detail["output_audio_tokens"] == 50
    assert detail["seconds"] == "12.5"


async def test_counts_that_do_not_nest_are_refused(service: Service) -> None:
    t = service.tenants
    bad = {**FULL_USAGE, "cache_write_1h_tokens": 5_000}  # more than all cache writes
    answer = await service.write("POST", ledger_path(t.a, "usage"), bad, t.a_key)
    # Well-formed counts that contradict each other: 422, not the schema's 400.
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "InconsistentInputError"
    assert "cache_write_1h_tokens" in answer.text
    unknown = {**FULL_USAGE, "input_smell_tokens": 5}
    answer = await service.write("POST", ledger_path(t.a, "usage"), unknown, t.a_key)
    assert 400 <= answer.status_code < 500, answer.text


async def test_price_list_shows_time_of_day_windows(service: Service) -> None:
    """A model priced by the hour (DeepSeek off-peak) is listed with its windows as times."""
    answer = await service.client.get(
        "/api/v1/pricing/prices?extended=true",
        headers=service.auth(service.tenants.pricing_key),
    )
    assert answer.status_code == 200, answer.text
    windows = [
        window
        for entry in loads(answer.content)
        for window in (entry["pricing"] or {}).get("time_of_day") or []
    ]
    assert windows, "the catalog has time-of-day prices"
    assert all(isinstance(w["start_time"], str) and w["start_time"].endswith("Z") for w in windows)
