"""The durable outbox: settlements the ledger could not take are kept on disk and delivered
later, exactly once, by this process or the next one (SQLite and PostgreSQL ledgers).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tests.backend.live import ADMIN_KEY, ServiceThread, free_port, service_settings
from tests.guard.guard_provider_server import ProviderServer

import smartspace_budget
from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.backend.outbox import Outbox, OutboxWriter, default_outbox_path
from smartspace_budget.config import Settings
from smartspace_budget.errors import BackendError, BackendUnavailableError, NotFoundError
from smartspace_budget.guard import Guard
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import UsageEvent
from smartspace_budget.pricing import PricingEngine
from smartspace_budget.server.app import create_app

SRC = Path(smartspace_budget.__file__).resolve().parents[1]


def gpt4o_cost(fresh: int, output: int) -> Decimal:
    base = ((fresh * Decimal("0.0025") + output * Decimal("0.01")) / 1000).quantize(Decimal("1e-9"))
    return base + (base * 5 / 100).quantize(Decimal("1e-9"))


@pytest.fixture
def outboxes() -> Iterator[Any]:
    """Opens outbox files for a test and closes them after it."""
    opened: list[Outbox] = []

    def open_outbox(path: Path, **delays: float) -> Outbox:
        outbox = Outbox(path, **delays)
        opened.append(outbox)
        return outbox

    yield open_outbox
    for outbox in opened:
        outbox.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def account() -> tuple[str, str]:
    """An account of this test alone (the PostgreSQL database is shared by the session)."""
    tag = uuid.uuid4().hex[:10]
    return f"u_{tag}", f"p_{tag}"


@pytest.fixture
async def local(ledger_url: str, account: tuple[str, str]) -> AsyncIterator[LocalBackend]:
    backend = await LocalBackend.open(ledger_url, status_ttl=0)
    await backend.deposit(*account, Decimal(10), idempotency_key=f"dep-{account[0]}")
    yield backend
    await backend.aclose()


class Outage:
    """A backend whose ledger writes fail while ``down`` (the database cannot be reached), or
    are refused for good with ``refusal``."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.down = False
        self.refusal: Exception | None = None
        self.settles = 0
        self.outbox_target = inner.outbox_target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _gate(self) -> None:
        if self.refusal is not None:
            raise self.refusal
        if self.down:
            raise BackendUnavailableError("the ledger database failed: connection refused")

    async def settle(self, reservation_id: str, usage: UsageEvent, *, idempotency_key: str) -> Any:
        self.settles += 1
        self._gate()
        return await self.inner.settle(reservation_id, usage, idempotency_key=idempotency_key)

    async def record_usage(self, *args: Any, **kwargs: Any) -> Any:
        self._gate()
        return await self.inner.record_usage(*args, **kwargs)


async def usage_entries(url: str, account: tuple[str, str]) -> list[Any]:
    ledger = await Ledger.connect(url, migrate=False)
    try:
        entries = await ledger.list_entries(*account, limit=1000)
        assert (await ledger.check_integrity()).ok
    finally:
        await ledger.close()
    return [e for e in entries if e.kind.value == "usage"]


async def test_a_settlement_waits_in_the_outbox_until_the_ledger_is_back(
    local: LocalBackend, ledger_url: str, account: tuple[str, str], tmp_path: Path, outboxes: Any
) -> None:
    flaky = Outage(local)
    outbox = outboxes(tmp_path / "outbox.sqlite3", base_delay=0.05, max_delay=0.2)
    guard = Guard(
        flaky,
        PricingEngine(local),
        user_id=account[0],
        project_id=account[1],
        outbox=outbox,
    )
    flaky.down = True
    async with guard.request("openai", "gpt-4o", input_text="Plan my week", max_tokens=400) as call:
        call.record_usage(input_tokens=100, output_tokens=50)
    cost = gpt4o_cost(100, 50)
    assert call.delivery == "queued"
    assert call.entry is None
    assert call.actual_cost == cost
    # The hold covers the call meanwhile; nothing is charged yet.
    balance = await local.get_balance(*account)
    assert balance.total_balance == 10
    assert balance.reserved_amount == call.reserved_amount
    # On disk: another handle on the same file sees the entry, with its key and body.
    (entry,) = outboxes(outbox.path).entries(flaky.outbox_target)
    assert entry.key == f"guard:{call.call_id}:settle"
    assert entry.usage.actual_cost == cost
    assert entry.status == "pending"

    await asyncio.sleep(0.3)  # a few background attempts fail
    assert outboxes(outbox.path).entries()[0].attempts >= 2
    flaky.down = False
    assert await guard.outbox.wait_delivered(within=30)
    balance = await local.get_balance(*account)
    assert balance.total_balance == 10 - cost
    assert balance.reserved_amount == 0
    assert [e.amount for e in await usage_entries(ledger_url, account)] == [-cost]
    assert outbox.count() == 0


async def test_a_definitive_refusal_is_dead_lettered_not_retried(
    local: LocalBackend, account: tuple[str, str], tmp_path: Path, outboxes: Any
) -> None:
    flaky = Outage(local)
    flaky.refusal = NotFoundError("no reservation 'r-1'")
    outbox = outboxes(tmp_path / "outbox.sqlite3", base_delay=0.05, max_delay=0.1)
    guard = Guard(
        flaky,
        PricingEngine(local),
        user_id=account[0],
        project_id=account[1],
        outbox=outbox,
    )
    async with guard.request("openai", "gpt-4o", input_text="hi", max_tokens=100) as call:
        call.record_usage(input_tokens=5, output_tokens=5)
    assert call.delivery == "dead"
    await asyncio.sleep(0.3)
    assert flaky.settles == 1  # never sent again on its own
    (dead,) = outbox.entries(status="dead")
    assert dead.attempts == 1
    assert dead.last_error == "NotFoundError: no reservation 'r-1'"
    # Once the cause is fixed, the operator requeues it and it is delivered.
    flaky.refusal = None
    writer = OutboxWriter(flaky, outbox, flaky.outbox_target)
    assert await writer.flush(include_dead=True) == 0
    assert (await local.get_balance(*account)).reserved_amount == 0


async def test_a_hold_gone_before_delivery_is_charged_without_it(
    local: LocalBackend, ledger_url: str, account: tuple[str, str], tmp_path: Path, outboxes: Any
) -> None:
    flaky = Outage(local)
    outbox = outboxes(tmp_path / "outbox.sqlite3", base_delay=0.05, max_delay=0.1)
    guard = Guard(
        flaky,
        PricingEngine(local),
        user_id=account[0],
        project_id=account[1],
        outbox=outbox,
        reservation_ttl=1,
    )
    flaky.down = True
    async with guard.request("openai", "gpt-4o", input_text="hi", max_tokens=100) as call:
        call.record_usage(input_tokens=40, output_tokens=60)
    await asyncio.sleep(1.1)  # the hold expires while the ledger is away
    flaky.down = False
    assert await guard.outbox.wait_delivered(within=30)
    cost = gpt4o_cost(40, 60)
    (usage,) = await usage_entries(ledger_url, account)
    assert usage.amount == -cost
    assert usage.reservation_id is None  # recorded without the hold, which had expired
    balance = await local.get_balance(*account)
    assert (balance.total_balance, balance.reserved_amount) == (10 - cost, Decimal(0))


async def test_an_entry_goes_to_its_own_ledger_only_and_keeps_its_first_body(
    tmp_path: Path, outboxes: Any
) -> None:
    outbox = outboxes(tmp_path / "outbox.sqlite3")
    first, second = (
        UsageEvent(
            provider="openai",
            model="gpt-4o",
            input_tokens=1,
            output_tokens=1,
            actual_cost=Decimal(cost),
        )
        for cost in ("0.1", "0.2")
    )
    kept = outbox.journal(
        "ledger-a", "k1", "record_usage", user_id="u", project_id="p", usage=first
    )
    again = outbox.journal(
        "ledger-a", "k1", "record_usage", user_id="u", project_id="p", usage=second
    )
    assert again.usage.actual_cost == kept.usage.actual_cost == Decimal("0.1")
    outbox.journal("ledger-b", "k1", "record_usage", user_id="u", project_id="p", usage=second)

    class Recorder:
        outbox_target = "ledger-a"
        sent: ClassVar[list[tuple[str, Decimal]]] = []

        async def record_usage(
            self, user_id: str, project_id: str, usage: UsageEvent, *, idempotency_key: str
        ) -> None:
            self.sent.append((idempotency_key, usage.actual_cost))

    writer = OutboxWriter(Recorder(), outbox, "ledger-a")  # type: ignore[arg-type]
    assert await writer.flush() == 0
    assert Recorder.sent == [("k1", Decimal("0.1"))]
    assert [e.target for e in outbox.entries()] == ["ledger-b"]  # left for its own ledger


def test_default_outbox_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMARTSPACE_BUDGET_OUTBOX_PATH", raising=False)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path / "data"))
    ledger = tmp_path / "books.sqlite3"
    local = LocalBackend.default(Settings(database_url=f"sqlite+aiosqlite:///{ledger}"))
    assert local.outbox_target == f"sqlite:///{ledger.resolve()}"
    assert default_outbox_path(local.outbox_target) == tmp_path / "books.outbox.sqlite3"
    http = HttpBackend("http://127.0.0.1:9/")
    assert default_outbox_path(http.outbox_target) == tmp_path / "data" / "outbox.sqlite3"
    pg = LocalBackend.default(Settings(database_url="postgresql+asyncpg://me:secret@db:5432/l"))
    assert pg.outbox_target == "postgresql://me:***@db:5432/l"
    monkeypatch.setenv("SMARTSPACE_BUDGET_OUTBOX_PATH", str(tmp_path / "o.sqlite3"))
    assert default_outbox_path(local.outbox_target) == tmp_path / "o.sqlite3"


# -- the ledger down while 200 guarded calls are in flight ---------------------------------


async def test_ledger_down_during_200_calls_charges_each_exactly_once(
    ledger_url: str, account: tuple[str, str], tmp_path: Path, outboxes: Any
) -> None:
    port = free_port()
    app_settings = service_settings(ledger_url)
    service = ServiceThread(create_app(app_settings), port).start()
    http = HttpBackend(service.url, ADMIN_KEY, deadline=20.0, status_ttl=0)
    calls_made = 200
    try:
        await http.deposit(*account, Decimal(100), idempotency_key=f"dep-{account[0]}")
        outbox = outboxes(tmp_path / "outbox.sqlite3", base_delay=0.1, max_delay=0.5)
        guard = Guard(
            http, PricingEngine(http), user_id=account[0], project_id=account[1], outbox=outbox
        )
        held = 0
        all_held, answered = asyncio.Event(), asyncio.Event()

        async def one(i: int) -> Any:
            nonlocal held
            async with guard.request(
                "openai", "gpt-4o", input_text=f"call {i}", max_tokens=60
            ) as call:
                held += 1
                if held == calls_made:
                    all_held.set()
                await answered.wait()  # the provider answers once the ledger is down
                call.record_usage(input_tokens=10 + i, output_tokens=20 + i % 7)
            return call

        tasks = [asyncio.create_task(one(i)) for i in range(calls_made)]
        await asyncio.wait_for(all_held.wait(), 120)
        service.stop()  # the ledger goes down
        answered.set()
        calls = await asyncio.gather(*tasks)
        assert {call.delivery for call in calls} == {"queued"}
        assert outbox.count(http.outbox_target, "pending") == calls_made
        # While it is down, a new call is refused before it is made (never approved blind).
        with pytest.raises(BackendError):
            async with guard.request("openai", "gpt-4o", input_text="x", max_tokens=10):
                pytest.fail("a call was allowed without a hold")
        await asyncio.sleep(2)  # down for a while; the outbox keeps trying
        service = ServiceThread(create_app(app_settings), port).start()  # back up
        assert await guard.outbox.wait_delivered(within=120)
        usage = await usage_entries(ledger_url, account)
        assert len(usage) == calls_made
        assert sorted(e.request_id for e in usage) == sorted(c.request_id for c in calls)
        total = sum((c.actual_cost for c in calls), Decimal(0))
        assert -sum((e.amount for e in usage), Decimal(0)) == total
        balance = await http.get_balance(*account)
        assert balance.total_balance == 100 - total
        assert balance.reserved_amount == 0
    finally:
        await http.aclose()
        service.stop()


# -- kill -9 between the provider's answer and the settlement ------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import openai
    from smartspace_budget.backend.local import LocalBackend
    from smartspace_budget.backend.outbox import Outbox
    from smartspace_budget.config import Settings
    from smartspace_budget.guard import Guard
    from smartspace_budget.pricing import PricingEngine

    url, outbox_path, provider_url, user, project, mode = sys.argv[1:7]

    class Stalls(LocalBackend):
        # The settlement never completes: the process is killed while it is under way.
        async def settle(self, reservation_id, usage, *, idempotency_key):
            if mode == "after_commit":
                await super().settle(reservation_id, usage, idempotency_key=idempotency_key)
            print("SETTLING", flush=True)
            await asyncio.sleep(3600)

    backend = Stalls.default(Settings(database_url=url, status_ttl=0))
    guard = Guard(backend, PricingEngine(backend), user_id=user, project_id=project,
                  outbox=Outbox(outbox_path))
    client = guard.wrap(openai.OpenAI(api_key="sk-test", base_url=provider_url, max_retries=0))
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Plan my week"}], max_tokens=300)
    print("RETURNED", flush=True)
    """
)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.parametrize("mode", ["before_commit", "after_commit"])
async def test_kill_9_between_answer_and_settlement_then_restart_charges_once(
    server: ProviderServer,
    local: LocalBackend,
    ledger_url: str,
    account: tuple[str, str],
    tmp_path: Path,
    mode: str,
    outboxes: Any,
) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    outbox_path = tmp_path / "outbox.sqlite3"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        ledger_url,
        str(outbox_path),
        f"{server.base_url}/v1",
        *account,
        mode,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if line.strip() != b"SETTLING":
            child.kill()
            _, err = await child.communicate()
            pytest.fail(f"the child did not reach the settlement: {line!r} {err.decode()}")
        child.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(child.wait(), 30) == -signal.SIGKILL
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert server.count == 1  # the provider answered (and billed) the call
    before = await local.get_balance(*account)
    if mode == "before_commit":
        assert before.reserved_amount > 0  # the hold covers the call meanwhile
        assert await usage_entries(ledger_url, account) == []
    else:
        assert len(await usage_entries(ledger_url, account)) == 1

    # The next process using the same outbox: its guard delivers what the killed one left.
    restarted = Guard(
        local,
        PricingEngine(local),
        user_id=account[0],
        project_id=account[1],
        outbox=outboxes(outbox_path, base_delay=0.05, max_delay=0.2),
    )
    assert await restarted.outbox.wait_delivered(within=30)
    cost = gpt4o_cost(12, 30)  # what the stand-in provider reported
    usage = await usage_entries(ledger_url, account)
    assert [e.amount for e in usage] == [-cost]
    balance = await local.get_balance(*account)
    assert (balance.total_balance, balance.reserved_amount) == (10 - cost, Decimal(0))
    assert outboxes(outbox_path).count() == 0
    started = time.monotonic()
    assert await restarted.outbox.flush() == 0  # nothing left, nothing sent twice
    assert time.monotonic() - started < 30
    assert len(await usage_entries(ledger_url, account)) == 1


def test_a_synchronous_client_delivers_what_was_left_on_its_portal(
    tmp_path: Path, outboxes: Any
) -> None:
    import openai

    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    backend = LocalBackend.default(Settings(database_url=url, status_ttl=0))
    outbox = outboxes(tmp_path / "outbox.sqlite3", base_delay=0.05, max_delay=0.2)
    left = UsageEvent(
        provider="openai",
        model="gpt-4o",
        input_tokens=3,
        output_tokens=4,
        actual_cost=Decimal("0.25"),
        request_id="req_left",
    )
    outbox.journal(
        backend.outbox_target,
        "guard:left:usage",
        "record_usage",
        user_id="u",
        project_id="p",
        usage=left,
    )
    guard = Guard(backend, PricingEngine(backend), user_id="u", project_id="p", outbox=outbox)
    try:
        guard.wrap(openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1"))
        deadline = time.monotonic() + 30
        while outbox.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.count() == 0
        balance = guard.portal.run(backend.get_balance("u", "p"))
        assert balance.total_balance == Decimal("-0.25")
    finally:
        guard.portal.run(backend.aclose())
        guard.close()
