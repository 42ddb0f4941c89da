"""Two monitor processes over one ledger deliver each alert once per threshold per period.

Real processes (a monitor each, as two replicas or a restarted one would be), checking the
same account at the same time, each with a webhook to one receiver in this test. The alert
state lives in the ledger's database (SQLite and PostgreSQL): whichever process claims an
alert delivers it; the other returns the same alert and sends nothing. Acknowledging it in
one process shows in the other.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import SpendingAlert, SpendingMonitor
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import BudgetPolicy, UsageEvent

MONITOR = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from smartspace_budget.backend.local import LocalBackend
    from smartspace_budget.budgets import SpendingMonitor, WebhookNotifier

    url, hook, user, start_at, rounds = sys.argv[1:6]

    async def main() -> None:
        backend = await LocalBackend.open(url, status_ttl=0)
        monitor = SpendingMonitor(backend)
        monitor.register_alert_handler(WebhookNotifier(hook))
        while time.time() < float(start_at):  # both processes start checking together
            await asyncio.sleep(0.005)
        seen = set()
        for _ in range(int(rounds)):
            for alert in await monitor.check_spending_status(user, "p"):
                seen.add(alert.alert_id)
        assert await monitor.wait_for_delivery(20)
        print(json.dumps(sorted(seen)))
        await monitor.aclose()
        await backend.aclose()

    asyncio.run(main())
    """
)


class Receiver:
    """An HTTP server on 127.0.0.1 recording every alert posted to it."""

    def __init__(self) -> None:
        self.alerts: list[SpendingAlert] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(SpendingAlert.from_json(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _two_monitors(script: Path, url: str, hook: str, user: str, rounds: int) -> list[set[str]]:
    import time

    start_at = str(time.time() + 2.0)  # after both have imported and opened the ledger
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), url, hook, user, start_at, str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    seen = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        seen.append(set(json.loads(out.strip().splitlines()[-1])))
    return seen


def _usage(cost: str) -> UsageEvent:
    return UsageEvent(provider="openai", model="gpt-4o", actual_cost=Decimal(cost))


async def _spend(url: str, user: str, cost: str) -> None:
    async with await Ledger.connect(url) as ledger:
        await ledger.record_usage(user, "p", _usage(cost), idempotency_key=uuid.uuid4().hex)


def test_two_monitor_processes_deliver_each_alert_once(
    database_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    script = tmp_path / "monitor.py"
    script.write_text(MONITOR)
    user = f"u-{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        async with await Ledger.connect(database_url) as ledger:
            await ledger.deposit(user, "p", Decimal(1000), idempotency_key="fund")
            await ledger.set_policy(user, "p", BudgetPolicy(daily_limit=Decimal(10)))

    asyncio.run(seed())
    asyncio.run(_spend(database_url, user, "6"))  # 60% of the daily limit: the 50% alert
    first = _two_monitors(script, database_url, receiver.url, user, rounds=5)
    asyncio.run(_spend(database_url, user, "4.5"))  # 105%: the 100% alert, nothing else again
    second = _two_monitors(script, database_url, receiver.url, user, rounds=5)
    third = _two_monitors(script, database_url, receiver.url, user, rounds=2)  # nothing new

    ids = [alert.alert_id for alert in receiver.alerts]
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    daily = Counter(
        alert.metadata["percentage"]
        for alert in receiver.alerts
        if alert.threshold_id == "policy:daily"
    )
    assert daily == {Decimal(50): 1, Decimal(100): 1}
    # Both processes answered with the same alerts, whichever of them delivered.
    assert first[0] == first[1]
    assert second[0] == second[1]
    assert third[0] == third[1] == second[0]
    assert set(ids) <= first[0] | second[0]

    async def acknowledge_and_look() -> tuple[SpendingAlert, list[SpendingAlert]]:
        backends = [await LocalBackend.open(database_url) for _ in range(2)]
        monitors = [SpendingMonitor(backend) for backend in backends]
        try:
            hundred = next(a for a in receiver.alerts if a.metadata.get("percentage") == 100)
            acked = await monitors[0].acknowledge(hundred.alert_id, by="ops")
            listed = await monitors[1].get_active_alerts(
                user, "p", minutes=60, include_acknowledged=True
            )
            return acked, listed
        finally:
            for monitor, backend in zip(monitors, backends, strict=True):
                await monitor.aclose()
                await backend.aclose()

    acked, listed = asyncio.run(acknowledge_and_look())
    assert acked.acknowledged
    assert acked.metadata["acknowledged_by"] == "ops"
    (seen_elsewhere,) = [a for a in listed if a.alert_id == acked.alert_id]
    assert seen_elsewhere.acknowledged
    assert seen_elsewhere.acknowledged_at == acked.acknowledged_at
