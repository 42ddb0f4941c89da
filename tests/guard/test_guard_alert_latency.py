"""A dead alert webhook costs a guarded call nothing, and gets its alerts when it recovers.

Each guarded call here ends in a cost anomaly, which the guard reports to the monitor. The
monitor's webhook first hangs (accepts the request and never answers) or refuses (nothing
listens on its port); the calls' added latency is measured against the same calls through
a monitor with no handler, in the same test, interleaved so load hits both alike. Then the
webhook recovers, and every alert is delivered.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import RetryPolicy, SpendingMonitor, WebhookNotifier
from smartspace_budget.guard import Guard
from smartspace_budget.pricing import PricingEngine

USER, PROJECT = "u_latency", "p_latency"
MESSAGES = [{"role": "user", "content": "Tell me a short story about a lighthouse keeper"}]
CALLS = 25
ADDED_LATENCY_LIMIT = 0.005  # seconds, on average


class Webhook:
    """An alert receiver on a fixed loopback port that hangs, refuses, or answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.recovered = threading.Event()
        self.delivered: set[str] = set()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if mode == "hang":
            self._listen()

    def _listen(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not hook.recovered.is_set():
                    hook.recovered.wait(30)  # hangs: the sender times out first
                    return
                hook.delivered.add(self.headers["X-Smartspace-Alert-Id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()

    def recover(self) -> None:
        self.recovered.set()
        if self._server is None:  # it refused: now something listens on its port
            self._listen()

    def close(self) -> None:
        self.recovered.set()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = await LocalBackend.open(
        f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}", status_ttl=0
    )
    await backend.deposit(USER, PROJECT, Decimal(1000), idempotency_key="fund")
    yield backend
    await backend.aclose()


@pytest.fixture(params=["hang", "refuse"])
def webhook(request: pytest.FixtureRequest) -> Iterator[Webhook]:
    hook = Webhook(request.param)
    try:
        yield hook
    finally:
        hook.close()


async def _anomalous_call(guard: Guard) -> float:
    """One guarded call whose usage is far above its estimate; returns its duration."""
    started = time.perf_counter()
    async with guard.request(
        "openai", "gpt-4o", messages=MESSAGES, max_tokens=4000, expected_output_tokens=100
    ) as call:
        call.record_usage(input_tokens=12, output_tokens=4000)
    took = time.perf_counter() - started
    assert call.anomaly is not None
    assert call.anomaly.severity.value == "critical"
    return took


async def test_a_dead_webhook_adds_no_latency_and_gets_its_alerts_later(
    local: LocalBackend, webhook: Webhook
) -> None:
    engine = PricingEngine(local)
    quick = RetryPolicy(first_delay=0.05, max_delay=0.3, attempt_timeout=0.3, deadline=60)
    watched = SpendingMonitor(local, retry_policy=quick)
    watched.register_alert_handler(WebhookNotifier(webhook.url, timeout=0.3))
    bare = SpendingMonitor(local)  # the baseline: a monitor with no handler
    guards = {
        name: Guard(local, engine, user_id=USER, project_id=PROJECT, monitor=monitor)
        for name, monitor in (("watched", watched), ("bare", bare))
    }
    await _anomalous_call(guards["bare"])  # warm up: prices, connections, the first hold
    await _anomalous_call(guards["watched"])
    times: dict[str, list[float]] = {"watched": [], "bare": []}
    for _ in range(CALLS):
        for name in ("bare", "watched"):
            times[name].append(await _anomalous_call(guards[name]))

    added = statistics.mean(times["watched"]) - statistics.mean(times["bare"])
    assert added < ADDED_LATENCY_LIMIT, (
        f"{added * 1000:.2f} ms added on average "
        f"(bare {statistics.mean(times['bare']) * 1000:.2f} ms)"
    )
    assert watched.delivery.stats.delivered == 0  # nothing got through yet
    assert watched.delivery.pending() == CALLS + 1

    webhook.recover()
    assert await watched.wait_for_delivery(30)
    raised = await watched.get_active_alerts(USER, PROJECT, minutes=60)
    assert len(raised) == 2 * (CALLS + 1)  # both monitors keep theirs in the ledger
    assert watched.delivery.stats.delivered == CALLS + 1
    assert watched.delivery_failures == 0
    assert len(webhook.delivered) == CALLS + 1
    await watched.aclose()
    await bare.aclose()
