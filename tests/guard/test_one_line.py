"""``smartspace_budget.guard.wrap(client, user_id=..., project_id=...)``: one line, the default
backend (here the embedded ledger in a temporary data directory)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from tests.guard.guard_provider_server import ProviderServer

import smartspace_budget.guard
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.errors import BudgetExceededError
from smartspace_budget.guard import Guard

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Plan my week"}]


async def test_one_line_guards_a_client_on_the_default_backend(
    server: ProviderServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path))
    for name in ("SMARTSPACE_BUDGET_URL", "SMARTSPACE_BUDGET_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    raw = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.base_url}/v1", max_retries=0)
    client = smartspace_budget.guard.wrap(raw, user_id="u1", project_id="p1")
    assert isinstance(client.guard, Guard)  # type: ignore[attr-defined]  # the proxy adds it

    with pytest.raises(BudgetExceededError):  # no money yet: refused before sending
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    assert not server.requests

    ledger = await LocalBackend.open(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        await ledger.deposit("u1", "p1", Decimal("5"), idempotency_key="top-up")
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
        assert len(server.requests) == 1
        balance = await ledger.get_balance("u1", "p1", fresh=True)
        assert Decimal("4.99") < balance.total_balance < Decimal("5")
        assert balance.reserved_amount == 0
    finally:
        await ledger.aclose()
        await client.guard.backend.aclose()  # type: ignore[attr-defined]
        await raw.close()
