"""Which backend a command talks to: the global options, else the environment.

``--url`` (``SMARTSPACE_BUDGET_URL``) selects a running service, ``--database-url``
(``SMARTSPACE_BUDGET_DATABASE_URL``) a database, and neither the embedded SQLite ledger in
``SMARTSPACE_BUDGET_DATA_DIR``. Options win over the environment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import typer

from smartspace_budget.backend import LedgerBackend, default_backend
from smartspace_budget.config import Settings

__all__ = ["JSON", "PROJECT", "USER", "CliOptions", "open_backend", "options", "settings"]

JSON = typer.Option(False, "--json", help="Print JSON (exact amounts) instead of a table.")
USER = typer.Option(..., "--user", "-u", help="User id of the account.")
PROJECT = typer.Option(..., "--project", "-p", help="Project id of the account.")


@dataclass(frozen=True)
class CliOptions:
    """The global options given on the command line (``None``: not given)."""

    url: str | None = None
    api_key: str | None = None
    database_url: str | None = None


def options(ctx: typer.Context) -> CliOptions:
    """The global options of the running command."""
    root = ctx.find_root()
    obj = root.obj
    return obj if isinstance(obj, CliOptions) else CliOptions()


def settings(opts: CliOptions) -> Settings:
    """The environment's settings with the command-line options on top."""
    overrides: dict[str, Any] = {}
    if opts.url:
        overrides["url"] = opts.url
    if opts.api_key:
        overrides["api_key"] = opts.api_key
    if opts.database_url:
        overrides["database_url"] = opts.database_url
        if not opts.url:
            overrides["url"] = None
    return Settings(**overrides)


@asynccontextmanager
async def open_backend(opts: CliOptions) -> AsyncIterator[LedgerBackend]:
    """The backend for this command, closed when the command is done."""
    backend = default_backend(settings(opts))
    try:
        enter = getattr(backend, "__aenter__", None)
        if enter is not None:
            await enter()  # opens the local ledger now, so .ledger and .price_book exist
        yield backend
    finally:
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()
