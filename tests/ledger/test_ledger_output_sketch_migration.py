"""Migration ledger_0009 (after ledger_0008) adds the output sketches and fills them from the
usage already recorded, so a migrated ledger predicts from its history at once; down and up
again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.ledger.ledger_helpers import T0, D, usage
from tests.ledger.test_ledger_idempotency_table import _downgrade

from smartspace_budget.ledger import Ledger, create_engine
from smartspace_budget.ledger.migrate import upgrade
from smartspace_budget.models import OutputScope
from smartspace_budget.models.output_sketch import bucket_of


def _sketch(path: Path) -> list[tuple[str, str, int, int]]:
    conn = sqlite3.connect(path)
    try:
        return list(
            conn.execute(
                "SELECT provider, model, bucket, calls FROM ledger_output_sketches ORDER BY 3"
            )
        )
    finally:
        conn.close()


async def test_the_sketches_are_filled_from_recorded_usage(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    async with Ledger(create_engine(url), owns_engine=True) as ledger:
        await ledger.deposit("kim", "p", D("5"), idempotency_key="d", now=T0)
        for number in range(3):
            await ledger.record_usage(
                "kim", "p", usage("0.1"), idempotency_key=f"u{number}", now=T0
            )
    at_head = _sketch(path)
    assert sum(row[3] for row in at_head) == 3
    assert {row[2] for row in at_head} == {bucket_of(50)}  # usage() produces 50 tokens
    await _downgrade(url, "ledger_0008")
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "ledger_output_sketches" not in tables
    await upgrade(url)
    assert _sketch(path) == at_head  # rebuilt from the entries
    async with await Ledger.connect(url) as ledger:
        history = await ledger.get_output_history(
            "kim", "p", at_head[0][0], at_head[0][1], min_samples=3
        )
        assert (history.scope, history.samples) == (OutputScope.ACCOUNT, 3)
        assert history.buckets == [(bucket_of(50), 3)]
        report = await ledger.check_integrity()
        assert report.ok, str(report)
