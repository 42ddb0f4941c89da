"""Run the service with uvicorn: what ``smartspace-budget serve`` calls.

Settings travel to the worker processes through the environment (``SMARTSPACE_BUDGET_*``),
so ``workers > 1`` runs the same app in each. Authentication can be switched off only for a
server listening on a loopback address: an open ledger on a network is never a default.

With several workers the Prometheus values of all of them must reach ``/metrics``, which
any one worker answers: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory (the
one given, emptied at start as prometheus-client asks, or a fresh temporary one removed at
exit) before the workers start and import prometheus-client.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.server.log_format import LogFormat, log_config
from smartspace_budget.server.telemetry import MULTIPROC_ENV

__all__ = ["is_loopback", "metrics_directory", "serve"]

log = logging.getLogger("smartspace_budget.server")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def metrics_directory(workers: int) -> Iterator[Path | None]:
    """The multiprocess metrics directory for ``workers`` (set in the environment), or
    ``None`` for one worker without ``PROMETHEUS_MULTIPROC_DIR``.

    A given directory is emptied first: values left by an earlier run would be summed in.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    if workers == 1:
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="smartspace-budget-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    database_url: str | None = None,
    *,
    auth: bool = True,
    log_level: str = "info",
    log_format: LogFormat = "text",
) -> None:
    """Serve the ledger API until interrupted.

    ``database_url`` defaults to ``SMARTSPACE_BUDGET_DATABASE_URL``, then to the embedded
    SQLite file. The admin key comes from ``SMARTSPACE_BUDGET_ADMIN_KEY`` (never from an
    argument, which other users could read in the process list) or from keys created with
    ``smartspace-budget keys create``. Raises :class:`InvalidInputError` for ``auth=False``
    on a non-loopback ``host``, for a worker count below 1 and for an unknown
    ``log_format`` (``json`` or ``text``; one line per request either way).
    """
    if log_format not in ("json", "text"):
        raise InvalidInputError(f"log format must be json or text, got {log_format!r}")
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
    with metrics_directory(workers):
        uvicorn.run(
            "smartspace_budget.server.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            log_config=log_config(log_format, log_level),
            # One line per request comes from the service itself (request_log.py).
            access_log=False,
            server_header=False,
        )
