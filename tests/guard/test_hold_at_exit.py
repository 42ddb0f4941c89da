"""Holds never outlive their TTL on the embedded ledger, and a stream open at process exit is
charged what is known (SQLite and PostgreSQL ledgers, real child processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.guard.guard_provider_server import ProviderServer

import smartspace_budget
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.ledger import Ledger
from smartspace_budget.pricing.tokens import estimate_tokens

SRC = Path(smartspace_budget.__file__).resolve().parents[1]
MODEL = "claude-haiku-4-5"


def haiku_cost(fresh: int, output: int) -> Decimal:
    """claude-haiku-4-5: $1 / $5 per million tokens, plus the 5% fee."""
    base = (fresh * Decimal("0.001") + output * Decimal("0.005")) / 1000
    return base.quantize(Decimal("1e-9")) + (base.quantize(Decimal("1e-9")) * 5 / 100).quantize(
        Decimal("1e-9")
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def account() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:10]
    return f"u_{tag}", f"p_{tag}"


@pytest.fixture
async def funded(ledger_url: str, account: tuple[str, str]) -> str:
    backend = await LocalBackend.open(ledger_url, status_ttl=0)
    try:
        await backend.deposit(*account, Decimal(10), idempotency_key=f"dep-{account[0]}")
    finally:
        await backend.aclose()
    return ledger_url


_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    import anthropic
    from smartspace_budget.backend.local import LocalBackend
    from smartspace_budget.backend.outbox import Outbox
    from smartspace_budget.config import Settings
    from smartspace_budget.guard import Guard
    from smartspace_budget.pricing import PricingEngine

    url, outbox_path, provider_url, user, project, mode = sys.argv[1:7]
    MESSAGES = [{"role": "user", "content": "Write a long essay"}]
    backend = LocalBackend.default(Settings(database_url=url, status_ttl=0))
    guard = Guard(backend, PricingEngine(backend), user_id=user, project_id=project,
                  outbox=Outbox(outbox_path), reservation_ttl=2)
    KEEP = []

    if mode == "sync_stream":
        client = guard.wrap(anthropic.Anthropic(api_key="k", base_url=provider_url, max_retries=0))
        stream = client.messages.create(model="claude-haiku-4-5", messages=MESSAGES,
                                        max_tokens=2000, stream=True)
        KEEP.append(stream)  # still referenced, never closed: open when the process exits
        for event in stream:
            if event.type == "content_block_delta" and event.delta.text == "w1 ":
                break
        print("READ", flush=True)
    elif mode == "async_stream":
        async def main():
            client = guard.wrap(
                anthropic.AsyncAnthropic(api_key="k", base_url=provider_url, max_retries=0))
            stream = await client.messages.create(model="claude-haiku-4-5", messages=MESSAGES,
                                                  max_tokens=2000, stream=True)
            KEEP.append(stream)
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.text == "w1 ":
                    break
        asyncio.run(main())  # the loop the stream was read on is closed when we exit
        print("READ", flush=True)
    elif mode == "killed":
        client = guard.wrap(anthropic.Anthropic(api_key="k", base_url=provider_url, max_retries=0))
        stream = client.messages.create(model="claude-haiku-4-5", messages=MESSAGES,
                                        max_tokens=2000, stream=True)
        next(iter(stream))
        print("READ", flush=True)
        os.kill(os.getpid(), 9)  # no exit hook runs: only the hold's TTL frees it
    """
)


async def _run_child(
    url: str, outbox: Path, provider: ProviderServer, account: tuple[str, str], mode: str
) -> tuple[int, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    script = outbox.parent / "child.py"
    script.write_text(_CHILD)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        url,
        str(outbox),
        provider.base_url,
        *account,
        mode,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), 120)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode is not None
    assert b"READ" in out, err.decode()
    return child.returncode, err.decode()


async def _state(url: str, account: tuple[str, str]) -> tuple[Any, list[Any]]:
    ledger = await Ledger.connect(url, migrate=False)  # a plain reader: expires nothing itself
    try:
        balance = await ledger.get_balance(*account)
        entries = await ledger.list_entries(*account)
        assert (await ledger.check_integrity()).ok
    finally:
        await ledger.close()
    return balance, [e for e in entries if e.kind.value == "usage"]


@pytest.mark.parametrize("mode", ["sync_stream", "async_stream"])
async def test_a_stream_open_at_exit_is_charged_what_was_reported_and_streamed(
    server: ProviderServer,
    funded: str,
    account: tuple[str, str],
    tmp_path: Path,
    mode: str,
) -> None:
    server.behaviour.output_tokens = 1500  # what the whole answer would have cost
    code, err = await _run_child(funded, tmp_path / "outbox.sqlite3", server, account, mode)
    assert code == 0, err
    balance, usage = await _state(funded, account)
    # message_start reported 12 input tokens; "w0 w1 " was streamed before the exit.
    streamed = estimate_tokens("w0 w1 ", MODEL, "anthropic").token_count
    cost = haiku_cost(12, streamed)
    assert [(e.amount, e.provider) for e in usage] == [(-cost, "anthropic")]
    assert balance.reserved_amount == 0  # nothing still held
    assert balance.total_balance == 10 - cost
    assert "left before its end" in err


async def test_a_hold_of_a_killed_process_is_gone_after_its_ttl(
    server: ProviderServer, funded: str, account: tuple[str, str], tmp_path: Path
) -> None:
    code, _ = await _run_child(funded, tmp_path / "outbox.sqlite3", server, account, "killed")
    assert code == -signal.SIGKILL
    balance, usage = await _state(funded, account)
    assert balance.reserved_amount > 0  # the killed call still holds
    assert usage == []
    plain = await Ledger.connect(funded, migrate=False)
    try:
        entries = await plain.list_entries(*account)
    finally:
        await plain.close()
    (hold,) = [e for e in entries if e.kind.value == "reservation"]
    reservation = await LocalBackend.open(funded, status_ttl=0)
    try:
        held = await reservation.get_reservation(hold.reservation_id or "")
        await asyncio.sleep(max((held.expires_at - datetime.now(UTC)).total_seconds(), 0) + 0.05)
        # The embedded ledger: the next read of the account releases the overdue hold.
        assert (await reservation.get_balance(*account)).reserved_amount == 0
    finally:
        await reservation.aclose()
    balance, _ = await _state(funded, account)
    assert (balance.reserved_amount, balance.total_balance) == (0, 10)
