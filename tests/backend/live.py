"""The real service on a loopback port, in a thread of the test process (helpers, no tests).

The server thread has its own event loop, so the ledger it opens belongs to that loop and
tests talk to it only over HTTP, exactly like a client in another process would.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from smartspace_budget.config import Settings
from smartspace_budget.server.app import create_app

ADMIN_KEY = "ssb_test_admin_key_0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceThread:
    """uvicorn serving ``app`` on 127.0.0.1 until :meth:`stop`."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def service_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "admin_key": ADMIN_KEY,
        "rate_limit_per_second": 0,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_service(database_url: str, **overrides: object) -> Iterator[ServiceThread]:
    """The service on ``database_url`` for the duration of the block."""
    service = ServiceThread(create_app(service_settings(database_url, **overrides))).start()
    try:
        yield service
    finally:
        service.stop()
