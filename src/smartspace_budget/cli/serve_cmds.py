"""``serve``: the ledger service (FastAPI under uvicorn); ``migrate``: its schema, before."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, cast

import typer

from smartspace_budget.cli.output import EXIT_ERROR, console
from smartspace_budget.cli.runtime import options, settings
from smartspace_budget.errors import InvalidInputError

if TYPE_CHECKING:
    from smartspace_budget.server.log_format import LogFormat

__all__ = ["ensure_can_listen", "register"]


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", envvar="SMARTSPACE_BUDGET_HOST"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, envvar="SMARTSPACE_BUDGET_PORT"),
    workers: int = typer.Option(1, "--workers", min=1, max=64, envvar="SMARTSPACE_BUDGET_WORKERS"),
    no_auth: bool = typer.Option(False, "--no-auth", help="Local development only (loopback)."),
    log_level: str = typer.Option("info", "--log-level"),
    log_format: str = typer.Option(
        "text",
        "--log-format",
        envvar="SMARTSPACE_BUDGET_LOG_FORMAT",
        help="json: one JSON object per line (request id, route, status, duration, key id).",
    ),
) -> None:
    """Serve the budget API (the spec's endpoints and the ledger writes) until Ctrl-C.

    Run several replicas against one PostgreSQL (--database-url postgresql+asyncpg://...)
    behind a load balancer; each is stateless. With SMARTSPACE_BUDGET_REDIS_URL set they
    share their rate limits.
    """
    from smartspace_budget.server.run import serve

    opts = options(ctx)
    if opts.url:
        raise InvalidInputError("serve runs the service itself: give --database-url, not --url")
    ensure_can_listen(host, port)
    try:
        serve(
            host=host,
            port=port,
            workers=workers,
            database_url=opts.database_url,
            auth=not no_auth,
            log_level=log_level,
            log_format=cast("LogFormat", log_format),  # serve() refuses anything else
        )
    except SystemExit as exc:
        # uvicorn exits 1 or 3 when it cannot start; the CLI's codes are 0/1/2, and 1 means
        # "denied", so any failure to serve is 2 (uvicorn has logged why).
        if exc.code not in (None, 0):
            raise typer.Exit(EXIT_ERROR) from None
        raise


def ensure_can_listen(host: str, port: int) -> None:
    """Refuse at once, with a clear message and exit 2, when ``host:port`` cannot be bound
    (already in use, or not an address of this machine)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InvalidInputError(f"cannot listen on {host}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise InvalidInputError(
                f"cannot listen on {host}:{port}: {reason}; pick another with --port"
            ) from None


def migrate_command(ctx: typer.Context) -> None:
    """Bring the ledger database to the schema this version needs, then exit.

    Run it once before starting (or upgrading) replicas. Several may run at once: on
    PostgreSQL they take turns under an advisory lock and all but the first find nothing
    to do. ``serve`` would migrate on start too; this makes it a step of its own.
    """
    from smartspace_budget.ledger.engine import default_database_url
    from smartspace_budget.ledger.migrate import upgrade_blocking

    opts = options(ctx)
    if opts.url:
        raise InvalidInputError("migrate works on the database: give --database-url, not --url")
    url = settings(opts).database_url or default_database_url()
    upgrade_blocking(url)
    console.print("ledger schema is up to date")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("serve")(serve_command)
    app.command("migrate")(migrate_command)
