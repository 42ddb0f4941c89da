"""Every ledger test runs on SQLite (a temp file) and on PostgreSQL (this session's database).

SQLite tests copy a database migrated once per session; PostgreSQL tests share the session's
database, emptied before each test (tests of one session run one after another).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.migrate import upgrade
from smartspace_budget.ledger.tables import LEDGER_TABLES

# Tests import tests.ledger.ledger_helpers; the bare name still resolves for older tests.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger-template") / "ledger.sqlite3"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> str:
    asyncio.run(upgrade(postgres_url))
    return postgres_url


async def _empty_postgres(url: str) -> None:
    import asyncpg

    names = ", ".join(table.name for table in LEDGER_TABLES)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty ledger database of either kind."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "ledger.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    url: str = request.getfixturevalue("migrated_postgres_url")
    asyncio.run(_empty_postgres(url))
    yield url


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    opened = await Ledger.connect(database_url, migrate=False)
    try:
        yield opened
    finally:
        await opened.close()
