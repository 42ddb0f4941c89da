"""Run the ledger's Alembic migrations from the installed package, without an ``alembic.ini``.

The configuration is built in code and points at ``ledger/migrations`` inside the package,
so ``Ledger.connect`` (and the CLI, the service, the tests) bring any database to the
current schema wherever the package is installed. The revision table is named
``smartspace_budget_alembic_version`` so a PostgreSQL database shared with an application
that has its own Alembic history is left alone.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from smartspace_budget.ledger.engine import create_engine

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "import_table_modules",
    "upgrade",
    "upgrade_blocking",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "smartspace_budget_alembic_version"
_LOCK_KEY = 0x5353_4255_4447_4554  # "SSBUDGET": the advisory lock migrations take on PostgreSQL
_TABLE_MODULES = (
    "smartspace_budget.ledger.tables",
    "smartspace_budget.ledger.price_tables",
    "smartspace_budget.server.key_tables",
)


def import_table_modules() -> None:
    """Import every module that defines tables on the shared metadata (those that exist)."""
    for name in _TABLE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations (``url`` for command-line use)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision the package ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""

    def read(connection: Connection) -> str | None:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(target: str | AsyncEngine, revision: str = "head") -> None:
    """Bring the database at ``target`` (URL or engine) up to ``revision``, in one transaction.

    Safe to call on every start: an up-to-date database is left as it is. On SQLite the
    transaction holds the write lock, so two processes starting at once migrate one after
    the other; on PostgreSQL the DDL is transactional too.
    """
    engine = create_engine(target) if isinstance(target, str) else target
    config = alembic_config()

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    finally:
        if isinstance(target, str):
            await engine.dispose()


def upgrade_blocking(url: str, revision: str = "head") -> None:
    """:func:`upgrade` for synchronous callers (the command line); not inside an event loop."""
    asyncio.run(upgrade(url, revision))
