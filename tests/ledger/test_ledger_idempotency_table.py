"""SQLite's idempotency table went ``WITHOUT ROWID`` (ledger_0005) and back to a rowid table
(ledger_0006): every key survives each step, down and up, and replays at head."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.errors import IdempotencyConflictError
from smartspace_budget.ledger import Ledger, create_engine
from smartspace_budget.ledger.migrate import alembic_config, upgrade


def _idempotency_sql(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_idempotency'"
        ).fetchone()
    finally:
        conn.close()
    return str(row[0])


async def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    engine = create_engine(url)

    def run(connection: object) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        await engine.dispose()


async def test_keys_survive_the_idempotency_table_migrations(tmp_path: Path) -> None:
    """Keys written at head survive the way down through 0005 to 0004 and back up again (the
    ledger's code writes only at head, where every column it writes exists)."""
    path = tmp_path / "ledger.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    async with Ledger(create_engine(url), owns_engine=True) as ledger:
        deposit = await ledger.deposit("kim", "p", D("5"), idempotency_key="d", now=T0)
        spent = await ledger.record_usage("kim", "p", usage("1.5"), idempotency_key="u", now=T0)

    await _downgrade(url, "ledger_0005")
    assert _idempotency_sql(path).rstrip().endswith("WITHOUT ROWID")
    assert _keys(path) == ["d", "u"]
    await _downgrade(url, "ledger_0004")
    assert "WITHOUT ROWID" not in _idempotency_sql(path)
    assert _keys(path) == ["d", "u"]
    await upgrade(url, "ledger_0005")
    assert _idempotency_sql(path).rstrip().endswith("WITHOUT ROWID")
    assert _keys(path) == ["d", "u"]
    await upgrade(url)
    assert "WITHOUT ROWID" not in _idempotency_sql(path)
    async with await Ledger.connect(url) as ledger:
        assert await ledger.deposit("kim", "p", D("5"), idempotency_key="d", now=T0) == deposit
        again = await ledger.record_usage("kim", "p", usage("1.5"), idempotency_key="u", now=T0)
        assert again == spent
        with pytest.raises(IdempotencyConflictError):
            await ledger.record_usage("kim", "p", usage("2"), idempotency_key="u", now=T0)
        await ledger.record_usage("kim", "p", usage("1"), idempotency_key="u2", now=T0)
        assert (await ledger.get_balance("kim", "p")).total_balance == D("2.5")
        report = await ledger.check_integrity()
        assert report.ok, str(report)
    assert _keys(path) == ["d", "u", "u2"]


def _keys(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [key for (key,) in conn.execute("SELECT key FROM ledger_idempotency ORDER BY key")]
    finally:
        conn.close()
