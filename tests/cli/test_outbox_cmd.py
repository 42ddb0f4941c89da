"""``smartspace-budget outbox``: pending and dead entries shown, ``--flush`` delivers and
exits 1 while anything remains."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from tests.cli.cli_harness import Cli

from smartspace_budget.backend.local import ledger_target
from smartspace_budget.backend.outbox import Outbox
from smartspace_budget.errors import NotFoundError
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import UsageEvent

USAGE = UsageEvent(
    provider="openai",
    model="gpt-4o",
    input_tokens=1200,
    output_tokens=300,
    actual_cost=Decimal("0.006300000"),
    request_id="req_cli",
)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("SMARTSPACE_BUDGET_OUTBOX_PATH", raising=False)  # the default place
    return Cli(tmp_path)


async def _hold(url: str) -> str:
    ledger = await Ledger.connect(url)
    try:
        await ledger.deposit("u1", "p1", Decimal(5), idempotency_key="dep")
        hold = await ledger.reserve("u1", "p1", Decimal("0.01"), idempotency_key="hold")
        return hold.reservation_id
    finally:
        await ledger.close()


async def _ledger_state(url: str) -> tuple[Decimal, Decimal, int]:
    ledger = await Ledger.connect(url)
    try:
        balance = await ledger.get_balance("u1", "p1")
        entries = await ledger.list_entries("u1", "p1")
    finally:
        await ledger.close()
    usage = [e for e in entries if e.kind.value == "usage"]
    return balance.total_balance, balance.reserved_amount, len(usage)


def test_empty_outbox(cli: Cli) -> None:
    result = cli("outbox")
    assert result.exit_code == 0, result.stderr
    assert "is empty" in result.stdout
    assert cli("outbox", "--flush").exit_code == 0
    data = cli("outbox", "--json").json()
    assert isinstance(data, dict)
    assert (data["pending"], data["dead"]) == ([], [])
    assert data["path"] == str(cli.data_dir / "ledger.outbox.sqlite3")


def test_show_flush_and_dead_entries(cli: Cli) -> None:
    reservation = asyncio.run(_hold(cli.database_url))
    target = ledger_target(cli.database_url)
    outbox = Outbox(cli.data_dir / "ledger.outbox.sqlite3")
    try:
        outbox.journal(
            target,
            "guard:c1:settle",
            "settle",
            user_id="u1",
            project_id="p1",
            usage=USAGE,
            reservation_id=reservation,
            fallback_key="guard:c1:usage",
        )
        dead = outbox.journal(
            target, "guard:c2:usage", "record_usage", user_id="u1", project_id="p1", usage=USAGE
        )
        outbox.attempted(dead, NotFoundError("no account"), dead=True)
    finally:
        outbox.close()

    shown = cli("outbox")
    assert shown.exit_code == 0, shown.stderr
    assert "1 pending, 1 dead" in shown.stdout
    assert "guard:c1:settle" in shown.stdout
    assert "NotFoundError" in shown.stdout
    data = cli("outbox", "--json").json()
    assert isinstance(data, dict)
    (pending,) = data["pending"]
    assert pending["idempotency_key"] == "guard:c1:settle"
    assert pending["amount"] == Decimal("0.006300000")
    assert pending["reservation_id"] == reservation
    assert [d["idempotency_key"] for d in data["dead"]] == ["guard:c2:usage"]

    flushed = cli("outbox", "--flush")
    assert flushed.exit_code == 1  # the dead entry remains
    assert "Delivered 1 entry" in flushed.stdout
    assert "0 pending, 1 dead" in flushed.stdout
    assert asyncio.run(_ledger_state(cli.database_url)) == (Decimal("4.9937"), Decimal(0), 1)

    cleared = cli("outbox", "--discard-dead", "--flush")
    assert cleared.exit_code == 0, cleared.stdout
    assert "is empty" in cleared.stdout
    # Nothing was charged twice.
    assert asyncio.run(_ledger_state(cli.database_url)) == (Decimal("4.9937"), Decimal(0), 1)


def test_flush_while_the_ledger_is_unreachable_keeps_the_entry(cli: Cli) -> None:
    url = "http://127.0.0.1:9"  # nothing listens there
    outbox = Outbox(cli.data_dir / "outbox.sqlite3")
    try:
        outbox.journal(
            url,
            "guard:c3:settle",
            "settle",
            user_id="u1",
            project_id="p1",
            usage=USAGE,
            reservation_id="r-unknown",
        )
    finally:
        outbox.close()
    result = cli("--url", url, "outbox", "--flush", "--path", str(cli.data_dir / "outbox.sqlite3"))
    assert result.exit_code == 1
    assert "1 pending, 0 dead" in result.stdout
    data = cli("--url", url, "outbox", "--json", "--path", str(cli.data_dir / "outbox.sqlite3"))
    entry = data.json()["pending"][0]  # type: ignore[index]
    assert entry["attempts"] == 1
    assert entry["last_error"].startswith("BackendUnavailableError")
