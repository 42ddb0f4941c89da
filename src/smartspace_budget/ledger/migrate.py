"""Run the ledger's Alembic migrations from the installed package, without an ``alembic.ini``.

The configuration is built in code and points at ``ledger/migrations`` inside the package,
so ``Ledger.connect`` (and the CLI, the service, the tests) bring any database to the
current schema wherever the package is installed. The revision table is named
``smartspace_budget_alembic_version`` so a PostgreSQL database shared with an application
that has its own Alembic history is left alone.

Alembic is imported only when there is something to migrate: a database whose revision
table already names the packaged head (read with one query; the head is read from the
revision files' ``revision``/``down_revision`` literals) is left as it is without it. That
keeps Alembic, Mako and their imports (about 11 MB and most of a second) out of every
process that opens an up-to-date ledger, such as ``PricingEngine()`` on the embedded one.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from smartspace_budget.ledger.engine import create_engine, read_options

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK_KEY",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "import_table_modules",
    "packaged_head",
    "upgrade",
    "upgrade_blocking",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "smartspace_budget_alembic_version"
MIGRATION_LOCK_KEY = (
    0x5353_4255_4447_4554  # "SSBUDGET": the advisory lock migrations take on PostgreSQL
)
_TABLE_MODULES = (
    "smartspace_budget.ledger.tables",
    "smartspace_budget.ledger.price_tables",
    "smartspace_budget.ledger.alert_state",
    "smartspace_budget.server.key_tables",
)


def import_table_modules() -> None:
    """Import every module that defines tables on the shared metadata (those that exist)."""
    for name in _TABLE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations (``url`` for command-line use)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision the package ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

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
    try:
        if revision == "head" and await _at_packaged_head(engine):
            return
        await _upgrade(engine, revision)
    finally:
        if isinstance(target, str):
            await engine.dispose()


async def _upgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    config = alembic_config()

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


@functools.cache
def packaged_head() -> str | None:
    """The one head of the revision files, read without Alembic (``None`` if unclear).

    Each file names its ``revision`` and ``down_revision`` as literals (Alembic's template);
    the head is the revision no other file names as its parent. Anything else (no files,
    a value that is not a literal, two heads) gives ``None``, and callers ask Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        values: dict[str, object] = {}
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for name in targets:
                        if isinstance(name, ast.Name) and name.id in (
                            "revision",
                            "down_revision",
                        ):
                            values[name.id] = ast.literal_eval(node.value)
        except (OSError, SyntaxError, TypeError, ValueError):
            return None
        if "revision" not in values:
            continue  # not a revision file (e.g. __init__.py)
        revision, parent = values["revision"], values.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(parent, str):
            parents.add(parent)
        elif isinstance(parent, tuple | list):
            parents.update(str(p) for p in parent)
        elif parent is not None:
            return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


async def _at_packaged_head(engine: AsyncEngine) -> bool:
    """Whether the revision table names exactly the packaged head (one read, no lock)."""
    head = packaged_head()
    if head is None:
        return False
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**read_options(engine))
            rows = (await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))).all()
    except SQLAlchemyError:
        return False  # no revision table yet (a new database): Alembic creates it
    return [row[0] for row in rows] == [head]


def upgrade_blocking(url: str, revision: str = "head") -> None:
    """:func:`upgrade` for synchronous callers (the command line); not inside an event loop."""
    asyncio.run(upgrade(url, revision))
