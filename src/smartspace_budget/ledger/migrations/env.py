"""Alembic environment of the ledger, shipped inside the package.

:func:`smartspace_budget.ledger.migrate.upgrade` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line (``-c`` pointing at a config
whose ``sqlalchemy.url`` is set) gets an engine built with the ledger's own settings.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from smartspace_budget.ledger import tables  # noqa: F401  (registers the ledger's tables)
from smartspace_budget.ledger.engine import create_engine
from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.ledger.migrate import VERSION_TABLE, import_table_modules

import_table_modules()
config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


def _run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection to run the migrations")
    asyncio.run(_run_with_new_engine(url))


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    _run()
