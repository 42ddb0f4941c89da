"""Where the ledger lives and how its connections are set up; migrations match the tables."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert
from sqlalchemy.engine import Connection
from tests.ledger.ledger_helpers import T0, D

from smartspace_budget.errors import BackendUnavailableError, InvalidInputError
from smartspace_budget.ledger import Ledger, create_engine, default_database_url
from smartspace_budget.ledger.engine import normalise_url
from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.ledger.migrate import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    import_table_modules,
    upgrade,
)
from smartspace_budget.ledger.tables import accounts, entries, rollups
from smartspace_budget.models import SpendingPeriod

POSTGRES_ADMIN_URL = os.environ.get(
    "SMARTSPACE_BUDGET_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/ledger.db", "sqlite+aiosqlite:///data/ledger.db"),
        ("sqlite+aiosqlite:////abs/ledger.db", "sqlite+aiosqlite:////abs/ledger.db"),
        ("postgresql://u@db:5432/ledger", "postgresql+asyncpg://u@db:5432/ledger"),
        ("postgres://u@db/ledger", "postgresql+asyncpg://u@db/ledger"),
        ("postgresql+asyncpg://u@db/ledger", "postgresql+asyncpg://u@db/ledger"),
    ],
)
def test_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert normalise_url(given).render_as_string() == expected


@pytest.mark.parametrize(
    "url", ["mysql://u@db/x", "postgresql+psycopg2://u@db/x", "sqlite+pysqlite:///x", "nonsense"]
)
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(InvalidInputError):
        normalise_url(url)


def test_default_database_is_in_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path))
    assert default_database_url() == f"sqlite+aiosqlite:///{tmp_path.resolve()}/ledger.sqlite3"
    monkeypatch.delenv("SMARTSPACE_BUDGET_DATA_DIR")
    assert "smartspace-budget" in default_database_url()


async def test_sqlite_connections_are_durable_and_strict(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/nested/dir/ledger.db")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "busy_timeout": 30000,
    }
    assert (tmp_path / "nested" / "dir" / "ledger.db").exists()


async def test_connect_without_a_url_uses_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path / "data"))
    async with await Ledger.connect() as ledger:
        await ledger.deposit("lee", "p", D("3"), idempotency_key="d", now=T0)
    assert (tmp_path / "data" / "ledger.sqlite3").exists()
    async with await Ledger.connect() as reopened:
        assert (await reopened.get_balance("lee", "p")).total_balance == D("3")


async def test_an_in_memory_url_works_like_a_file() -> None:
    async with await Ledger.connect("sqlite+aiosqlite://") as ledger:
        await ledger.deposit("lee", "p", D("3"), idempotency_key="d", now=T0)
        hold = await ledger.reserve("lee", "p", D("1"), idempotency_key="r", now=T0)
        assert hold.amount == D("1")
        assert (await ledger.get_balance("lee", "p")).available_balance == D("2")


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return list(compare_metadata(context, metadata))


async def test_migrations_and_tables_agree(database_url: str) -> None:
    """Every table on the shared metadata is created by the migrations, exactly."""
    import_table_modules()
    engine = create_engine(database_url)
    try:
        await upgrade(engine)  # already at head: nothing to do
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def _fresh_database(kind: str, tmp_path: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/fresh.db", None
    import asyncpg

    name = f"ssb_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("+asyncpg", "", 1))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", name


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_replicas_starting_together_migrate_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "postgresql":
        request.getfixturevalue("postgres_url")  # skips (or fails in CI) without a server
    url, created = await _fresh_database(kind, tmp_path)
    engine = create_engine(url)
    try:
        await asyncio.gather(*(upgrade(url) for _ in range(3)))
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()
        if created is not None:
            import asyncpg

            admin = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("+asyncpg", "", 1))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
            finally:
                await admin.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_daily_rollups_are_backfilled_from_history(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A ledger with entries from before daily rollups existed reads the same after upgrade."""
    if kind == "postgresql":
        request.getfixturevalue("postgres_url")
    url, created = await _fresh_database(kind, tmp_path)
    try:
        await upgrade(url, "0003_api_keys")
        engine = create_engine(url)
        when = datetime(2026, 1, 31, 18, 45, tzinfo=UTC)  # 00:15 on 1 February in India
        hour = datetime(2026, 1, 31, 18, 30, tzinfo=UTC)
        try:
            async with engine.begin() as conn:
                account_id = await conn.scalar(
                    insert(accounts)
                    .values(
                        user_id="old",
                        project_id="p",
                        timezone="Asia/Kolkata",
                        balance_nano=-3_000_000_000,
                        spent_nano=3_000_000_000,
                        created_at=when,
                        updated_at=when,
                    )
                    .returning(accounts.c.id)
                )
                await conn.execute(
                    insert(entries).values(
                        entry_id="e1",
                        account_id=account_id,
                        kind="usage",
                        amount_nano=-3_000_000_000,
                        hold_nano=0,
                        balance_after_nano=-3_000_000_000,
                        occurred_at=when,
                        recorded_at=when,
                        bucket_start=hour,
                        provider="openai",
                        model="gpt-4o",
                        input_tokens=10,
                        output_tokens=5,
                        cached_input_tokens=0,
                        cache_write_tokens=0,
                        reasoning_tokens=0,
                    )
                )
                await conn.execute(
                    insert(rollups).values(
                        account_id=account_id,
                        bucket_start=hour,
                        provider="openai",
                        model="gpt-4o",
                        spent_nano=3_000_000_000,
                        request_count=1,
                        input_tokens=10,
                        output_tokens=5,
                    )
                )
        finally:
            await engine.dispose()
        async with await Ledger.connect(url) as ledger:
            report = await ledger.check_integrity()
            assert report.ok, str(report)
            february = await ledger.get_spending("old", "p", SpendingPeriod.MONTHLY, at=when)
            assert (february.total_spent, february.request_count) == (D("3"), 1)
            january = await ledger.get_spending(
                "old", "p", SpendingPeriod.MONTHLY, at=when - timedelta(hours=1)
            )
            assert january.total_spent == 0
    finally:
        if created is not None:
            import asyncpg

            admin = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("+asyncpg", "", 1))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')
            finally:
                await admin.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres:s3cret@127.0.0.1:1/ledger",  # nothing listens on port 1
        "sqlite+aiosqlite:////proc/no-such-dir/ledger.sqlite3",
    ],
)
async def test_an_unreachable_database_is_backend_unavailable(url: str) -> None:
    with pytest.raises(BackendUnavailableError, match="cannot open the ledger database") as info:
        await Ledger.connect(url)
    assert "s3cret" not in str(info.value)
