"""Run the service with uvicorn: what ``smartspace-budget serve`` calls.

Settings travel to the worker processes through the environment (``SMARTSPACE_BUDGET_*``),
so ``workers > 1`` runs the same app in each. Authentication can be switched off only for a
server listening on a loopback address: an open ledger on a network is never a default.
"""

from __future__ import annotations

import ipaddress
import logging
import os

import uvicorn

from smartspace_budget.errors import InvalidInputError

__all__ = ["is_loopback", "serve"]

log = logging.getLogger("smartspace_budget.server")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    database_url: str | None = None,
    *,
    auth: bool = True,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve the ledger API until interrupted.

    ``database_url`` defaults to ``SMARTSPACE_BUDGET_DATABASE_URL``, then to the embedded
    SQLite file. The admin key comes from ``SMARTSPACE_BUDGET_ADMIN_KEY`` (never from an
    argument, which other users could read in the process list) or from keys created with
    ``smartspace-budget keys create``. Raises :class:`InvalidInputError` for ``auth=False``
    on a non-loopback ``host`` and for a worker count below 1.
    """
    if workers < 1:
        raise InvalidInputError(f"workers must be at least 1, got {workers}")
    if not auth and not is_loopback(host):
        raise InvalidInputError(
            f"refusing to serve without authentication on {host}; use a loopback address"
        )
    if database_url:
        os.environ["SMARTSPACE_BUDGET_DATABASE_URL"] = database_url
    os.environ["SMARTSPACE_BUDGET_AUTH_ENABLED"] = "true" if auth else "false"
    if not auth:
        log.warning("authentication is OFF: every caller is an admin (local development only)")
    uvicorn.run(
        "smartspace_budget.server.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
    )
