"""Operator prices persist in the ledger's database (SQLite and PostgreSQL) and its migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from smartspace_budget.errors import BackendUnavailableError, IdempotencyConflictError
from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.ledger.price_store import PriceStore
from smartspace_budget.ledger.price_tables import price_versions
from smartspace_budget.models import PricingData, PricingModel
from smartspace_budget.pricing import PriceBook, PricingEngine

from .conftest import NOW, Clock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'prices.db'}"
    # A database of the module's own: these tests drop and re-create the price table, which
    # would leave the session's shared database without one (outside the event loop: the
    # fixture runs one).
    url: str = request.getfixturevalue("own_postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(price_versions.drop, checkfirst=True)
        await conn.run_sync(price_versions.create)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(price_versions.drop, checkfirst=True)
        await engine.dispose()


def price(model: str, value: str, *, days: int = 0, **fields: object) -> PricingData:
    return PricingData.model_validate(
        {
            "provider": "acme",
            "model_name": model,
            "input_price_per_1k": Decimal(value),
            "output_price_per_1k": Decimal(value) * 2,
            "effective_date": NOW + timedelta(days=days),
            "last_updated": NOW,
            **fields,
        }
    )


async def test_overrides_survive_a_restart(db: AsyncEngine) -> None:
    clock = Clock(NOW + timedelta(days=100))
    book = PriceBook(PriceStore(db), catalog=True, clock=clock)
    first = await book.add_price(price("m", "0.0000001234567891"))
    second = await book.add_price(price("m", "0.0000002", days=30))
    gpt = await book.add_price(
        PricingData(
            provider="openai",
            model_name="gpt-4o",
            input_price_per_1k=Decimal("0.002"),
            output_price_per_1k=Decimal("0.008"),
            effective_date=NOW,
            last_updated=NOW,
        )
    )

    reopened = PriceBook(PriceStore(db), catalog=True, clock=clock)
    assert await reopened.get_pricing("acme", "m") == second
    assert [v.version for v in await reopened.get_price_history("acme", "m")] == [
        first.version,
        second.version,
    ]
    # Prices finer than a nano-unit are kept exactly.
    old = await reopened.get_pricing("acme", "m", at=NOW + timedelta(days=1))
    assert old.input_price_per_1k == Decimal("0.0000001234567891")
    assert (await reopened.get_pricing("openai", "gpt-4o-2024-08-06")).version == gpt.version
    assert ("acme", "m") in await reopened.list_models("acme")
    engine = PricingEngine(reopened)
    estimate = await engine.estimate_cost("acme", "m", input_tokens=1000, expected_output_tokens=0)
    assert estimate.price_version == second.version
    assert estimate.base_cost == Decimal("0.0000002")


async def test_every_pricing_model_round_trips(db: AsyncEngine) -> None:
    store = PriceStore(db)
    book = PriceBook(store, catalog=False, clock=Clock(NOW))
    added = [
        await book.add_price(
            price("req", "0", pricing_model=PricingModel.PER_REQUEST, request_price=Decimal("0.01"))
        ),
        await book.add_price(
            price(
                "sec",
                "0",
                pricing_model=PricingModel.PER_SECOND,
                price_per_second=Decimal("0.0001666666666666666666666666667"),
                max_input_tokens=100,
                max_output_tokens=10,
            )
        ),
    ]
    for version in added:
        assert version.version is not None
        assert await store.get_version(version.version) == version


async def test_same_version_twice(db: AsyncEngine) -> None:
    store = PriceStore(db)
    book = PriceBook(store, catalog=False, clock=Clock(NOW))
    first = await book.add_price(price("m", "0.001", version="release-7"))
    assert await store.add(first, forced=False) == first
    with pytest.raises(IdempotencyConflictError, match="release-7"):
        await store.add(price("m", "0.002", version="release-7", source="override"), forced=False)
    assert len(await store.versions("acme", "m")) == 1


async def test_unreachable_database_is_a_backend_error() -> None:
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    try:
        with pytest.raises(BackendUnavailableError, match="price store"):
            await PriceStore(engine).versions("acme", "m")
    finally:
        await engine.dispose()


async def test_migration_creates_the_table_as_declared(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from smartspace_budget.ledger.migrate import VERSION_TABLE, alembic_config, upgrade

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_revision("0002_price_versions").down_revision == "ledger_0001"
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    try:
        await upgrade(engine, "0002_price_versions")

        def differences(connection: object) -> list[object]:
            context = MigrationContext.configure(
                connection,  # type: ignore[arg-type]
                opts={"version_table": VERSION_TABLE, "compare_type": True},
            )
            return [
                diff
                for diff in compare_metadata(context, metadata)
                if "price_versions" in repr(diff)
            ]

        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("price_versions")}
            )
        assert columns == {c.name for c in price_versions.columns}
        store = PriceStore(engine)
        added = await PriceBook(store, catalog=False, clock=Clock(NOW)).add_price(price("m", "1"))
        assert await store.versions("acme", "m") == [added]
    finally:
        await engine.dispose()


async def test_dates_come_back_aware(db: AsyncEngine) -> None:
    store = PriceStore(db)
    book = PriceBook(store, catalog=False, clock=Clock(NOW))
    await book.add_price(price("m", "0.001", effective_date=datetime(2026, 1, 1, 5, tzinfo=UTC)))
    (stored,) = await store.versions("acme", "m")
    assert stored.effective_date == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert stored.effective_date.tzinfo is not None
