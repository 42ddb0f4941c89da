"""``serve``: the ledger service (FastAPI under uvicorn)."""

from __future__ import annotations

import typer

from smartspace_budget.cli.runtime import options
from smartspace_budget.errors import InvalidInputError

__all__ = ["register"]


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", envvar="SMARTSPACE_BUDGET_HOST"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, envvar="SMARTSPACE_BUDGET_PORT"),
    workers: int = typer.Option(1, "--workers", min=1, max=64, envvar="SMARTSPACE_BUDGET_WORKERS"),
    no_auth: bool = typer.Option(False, "--no-auth", help="Local development only (loopback)."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Serve the budget API (the spec's endpoints and the ledger writes) until Ctrl-C.

    Run several replicas against one PostgreSQL (``--database-url postgresql+asyncpg://...``)
    behind a load balancer; each is stateless.
    """
    from smartspace_budget.server.run import serve

    opts = options(ctx)
    if opts.url:
        raise InvalidInputError("serve runs the service itself: give --database-url, not --url")
    serve(
        host=host,
        port=port,
        workers=workers,
        database_url=opts.database_url,
        auth=not no_auth,
        log_level=log_level,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("serve")(serve_command)
