"""A tiny HTTP server whose behaviour each test controls: answer, hang, fail, slow, down.

It runs in the test's own event loop, speaks just enough HTTP/1.1 (keep-alive included, so
a restart leaves the client with dead pooled connections, as in real life), and records
every request it sees.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from tests.backend.live import ADMIN_KEY, ServiceThread, running_service

from smartspace_budget.backend import LedgerBackend
from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.backend.local import LocalBackend

BALANCE = (
    b'{"total_balance": 100.000000001, "available_balance": 95.5, "reserved_amount": 4.500000001}'
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = BALANCE
    delay: float = 0.0
    hang: bool = False
    drop: bool = False  # close the connection without answering
    headers: dict[str, str] = field(default_factory=dict)


class ControlledServer:
    """Answers with ``self.script`` (consumed in order), then with ``self.default``."""

    def __init__(self) -> None:
        self.default = Reply()
        self.script: list[Reply] = []
        self.seen: list[Seen] = []
        self.port = _free_port()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        """Go down: stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            for task in list(self._handlers):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    def _next(self) -> Reply:
        return self.script.pop(0) if self.script else self.default

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append(Seen(method, path, headers, body))
                reply = self._next()
                if reply.hang:
                    await asyncio.Event().wait()
                if reply.drop:
                    return
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                writer.write(
                    f"HTTP/1.1 {reply.status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(reply.body)}\r\n{extra}\r\n".encode()
                    + reply.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(writer)
            self._handlers.discard(task)
            writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def controlled() -> AsyncIterator[ControlledServer]:
    server = ControlledServer()
    await server.start()
    yield server
    await server.stop()


# -- the behavioural suite: every backend, every database ---------------------------------


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def ledger_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def live_service(ledger_url: str) -> Iterator[ServiceThread]:
    # No expiry sweep: this service lives for the whole session on the session's PostgreSQL
    # database, which the ledger tests share (truncating it between tests); a sweep at real
    # time would expire their holds made at fixed past instants, and add entries they count.
    # The sweep has its own tests (tests/server/test_sweeper.py).
    with running_service(ledger_url, expiry_interval=0) as service:
        yield service


@pytest.fixture(params=["local", "http"])
async def backend(request: pytest.FixtureRequest, ledger_url: str) -> AsyncIterator[LedgerBackend]:
    if request.param == "local":
        local = await LocalBackend.open(ledger_url)
        yield local
        await local.aclose()
    else:
        service: ServiceThread = request.getfixturevalue("live_service")
        async with HttpBackend(service.url, ADMIN_KEY) as remote:
            yield remote


@pytest.fixture
def account() -> tuple[str, str]:
    """Fresh ids, so tests sharing a database never see each other's accounts."""
    tag = uuid.uuid4().hex[:10]
    return f"user-{tag}", f"proj/{tag}"
