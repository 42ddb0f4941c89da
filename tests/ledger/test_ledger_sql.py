"""What the hot-path SQL binds and stores: instants, lone and batched writes, every usage field."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from tests.ledger.ledger_helpers import T0, D, usage

from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.sql import (
    ACCOUNT_UPDATE_COLUMNS,
    HOLD_UPDATE_COLUMNS,
    INSERTS,
    Changes,
)
from smartspace_budget.ledger.sql_sqlite import SqliteSql
from smartspace_budget.ledger.state import entry_model
from smartspace_budget.ledger.tables import daily_rollups, entries, rollups
from smartspace_budget.models import EntryKind, LedgerEntry
from smartspace_budget.money import from_nano


def test_sqlite_instants_are_utc_text_whatever_their_zone() -> None:
    sql = SqliteSql()
    new_york = ZoneInfo("America/New_York")
    # 01:30 on 1 November 2026 happens twice in New York: fold picks the later one.
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)
    second = first.replace(fold=1)
    assert first == second  # same zone: compared (and hashed) by wall time
    assert sql.ts(first) == "2026-11-01 05:30:00.000000"
    assert sql.ts(second) == "2026-11-01 06:30:00.000000"
    assert sql.ts(first.astimezone(UTC)) == "2026-11-01 05:30:00.000000"
    assert sql.ts(second.astimezone(UTC)) == "2026-11-01 06:30:00.000000"
    plus_two = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert (
        sql.ts(plus_two)
        == sql.ts(datetime(2026, 1, 1, tzinfo=UTC))
        == ("2026-01-01 00:00:00.000000")
    )
    assert sql.ts(None) is None


def test_sqlite_writes_encode_every_table_as_encode_does() -> None:
    """The write statements' rows, encoded with per-table positions worked out once, are
    what the general ``encode`` makes of them: instants of any zone as UTC text, None kept."""
    sql = SqliteSql()
    paris = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris"))
    instants = [T0, paris, None, T0 + timedelta(microseconds=7)]
    changes = Changes()
    tables = [
        ("accounts", ACCOUNT_UPDATE_COLUMNS, "UPDATE ledger_accounts "),
        *(
            (attribute, columns, f"INSERT INTO {table} ")
            for attribute, table, columns, _ in INSERTS
        ),
        ("holds_resolved", HOLD_UPDATE_COLUMNS, "UPDATE ledger_reservations "),
    ]
    for number, (attribute, columns, _) in enumerate(tables):
        rows = [
            tuple(
                instants[(number + row + index) % len(instants)]
                if name.endswith("_at") or name in ("bucket_start", "day_start")
                else f"{attribute}-{row}-{index}"
                for index, name in enumerate(columns)
            )
            for row in range(2)
        ]
        setattr(changes, attribute, rows)
    calls = sql.write(changes)
    assert len(calls) == len(tables)
    for call, (attribute, columns, statement) in zip(calls, tables, strict=True):
        expected = [sql.encode(columns, row) for row in getattr(changes, attribute)]
        assert [tuple(params) for params in call.params] == expected
        assert call.sql.startswith(statement)


def test_entries_are_the_models_model_construct_and_validation_make() -> None:
    row = {
        "entry_id": "0190d7e2-0000-7000-8000-000000000001",
        "kind": "usage",
        "amount_nano": -4_200_000,
        "hold_nano": 0,
        "balance_after_nano": 995_800_000,
        "occurred_at": T0,
        "provider": "openai",
        "model": "",
        "reservation_id": None,
        "request_id": "req-1",
        "reason": None,
    }
    built = entry_model("ivy", "p", row)
    fields: dict[str, Any] = {
        "entry_id": row["entry_id"],
        "user_id": "ivy",
        "project_id": "p",
        "kind": EntryKind.USAGE,
        "amount": from_nano(-4_200_000),
        "balance_after": from_nano(995_800_000),
        "occurred_at": T0,
        "provider": "openai",
        "model": None,
        "reservation_id": None,
        "request_id": "req-1",
        "reason": None,
    }
    constructed = LedgerEntry.model_construct(**fields)
    validated = LedgerEntry.model_validate(fields)
    assert built == constructed == validated
    assert built.model_fields_set == constructed.model_fields_set == set(fields)
    assert built.__pydantic_extra__ is None
    assert built.__pydantic_private__ is None
    assert built.model_dump_json() == constructed.model_dump_json()
    again = entry_model("ivy", "p", row)
    assert again.model_fields_set is not built.model_fields_set
    again.reason = "changed"  # validated assignment still works on a built entry
    assert built.reason is None


async def test_one_write_and_a_batch_of_writes_read_the_same_account(ledger: Ledger) -> None:
    """A lone write loads its account with plain parameters, a batch with lists; both see
    the balance and the stored results."""
    await ledger.deposit("ivy", "p", D("10"), idempotency_key="fund", now=T0)
    await ledger.deposit("ivy", "q", D("10"), idempotency_key="fund", now=T0)
    lone = await ledger.record_usage("ivy", "p", usage("1"), idempotency_key="one", now=T0)
    assert lone.balance_after == D("9")
    assert await ledger.record_usage("ivy", "p", usage("1"), idempotency_key="one") == lone
    replayed, second, other = await asyncio.gather(
        ledger.record_usage("ivy", "p", usage("1"), idempotency_key="one", now=T0),
        ledger.record_usage("ivy", "p", usage("2"), idempotency_key="two", now=T0),
        ledger.record_usage("ivy", "q", usage("2"), idempotency_key="x", now=T0),
    )
    assert replayed == lone
    assert (second.balance_after, other.balance_after) == (D("7"), D("8"))
    report = await ledger.check_integrity()
    assert report.ok, str(report)


async def test_every_usage_field_is_stored(ledger: Ledger) -> None:
    """Cached-input, cache-write and reasoning tokens, estimated cost, price version, request
    id, time and tags reach the entry, and the token counts reach both rollups."""
    await ledger.deposit("ivy", "p", D("10"), idempotency_key="fund", now=T0)
    occurred = T0 - timedelta(minutes=30)
    event = usage(
        "0.5",
        input_tokens=1000,
        output_tokens=200,
        cached_input_tokens=300,
        cache_write_tokens=40,
        reasoning_tokens=150,
        estimated_cost=D("0.45"),
        price_version="2026-01-01",
        request_id="req-7",
        occurred_at=occurred,
        cost_is_estimate=True,
        tags={"team": "search", "env": "prod"},
    )
    direct = await ledger.record_usage("ivy", "p", event, idempotency_key="direct", now=T0)
    hold = await ledger.reserve("ivy", "p", D("1"), idempotency_key="hold", now=T0)
    settled = await ledger.settle(hold.reservation_id, event, idempotency_key="settle", now=T0)
    assert (direct.request_id, direct.occurred_at) == ("req-7", occurred)

    async with ledger.engine.connect() as conn:
        for entry in (direct, settled):
            row = (
                await conn.execute(select(entries).where(entries.c.entry_id == entry.entry_id))
            ).one()
            assert (
                row.input_tokens,
                row.output_tokens,
                row.cached_input_tokens,
                row.cache_write_tokens,
                row.reasoning_tokens,
            ) == (1000, 200, 300, 40, 150)
            assert (row.amount_nano, row.estimated_cost_nano) == (-500_000_000, 450_000_000)
            assert (row.price_version, row.request_id, row.cost_is_estimate) == (
                "2026-01-01",
                "req-7",
                True,
            )
            assert row.occurred_at == occurred
            assert json.loads(row.tags) == {"team": "search", "env": "prod"}
        for table in (rollups, daily_rollups):
            sums = (
                await conn.execute(
                    select(
                        table.c.spent_nano,
                        table.c.request_count,
                        table.c.input_tokens,
                        table.c.output_tokens,
                        table.c.cached_input_tokens,
                        table.c.cache_write_tokens,
                        table.c.reasoning_tokens,
                    )
                )
            ).one()
            assert tuple(sums) == (1_000_000_000, 2, 2000, 400, 600, 80, 300)
    report = await ledger.check_integrity()
    assert report.ok, str(report)
