"""run_monitor: rounds over every account or the named ones, isolation, and clean stops."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from smartspace_budget.budgets import SpendingAlert, SpendingMonitor, run_monitor
from smartspace_budget.errors import BackendUnavailableError, InvalidInputError

if TYPE_CHECKING:
    from tests.budgets.conftest import FakeBackend, FakeClock

FAST = timedelta(milliseconds=5)


def seeded(backend: FakeBackend) -> None:
    for user in ("alice", "bob", "carol"):
        backend.deposit("100", user, "p")
        backend.set_policy(user, "p", daily_limit="10")
        backend.spend("9", user_id=user, project_id="p")


async def stop_after(stop: asyncio.Event, backend: FakeBackend, call: str, count: int) -> None:
    await backend.reached(call, count).wait()
    stop.set()


async def test_every_account_is_checked_each_round_and_alerted_once(
    backend: FakeBackend, clock: FakeClock
) -> None:
    seeded(backend)
    monitor = SpendingMonitor(backend, clock=clock, handler_retry_delay=0)
    received: list[SpendingAlert] = []
    monitor.register_alert_handler(received.append)
    stop = asyncio.Event()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    await asyncio.gather(
        run_monitor(monitor, every=FAST, accounts=None, stop=stop),
        stop_after(stop, backend, "list_accounts", 3),
    )
    assert backend.calls["list_accounts"] >= 3
    await monitor.wait_for_delivery()
    daily = sorted(a.user_id for a in received if a.threshold_id == "policy:daily")
    assert daily == ["alice", "bob", "carol"]  # 90% each, announced once over all rounds
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


async def test_named_accounts_only_and_failures_are_isolated(
    backend: FakeBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seeded(backend)
    monitor = SpendingMonitor(backend, clock=clock, handler_retry_delay=0)
    received: list[SpendingAlert] = []
    monitor.register_alert_handler(received.append)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="smartspace_budget.budgets.periodic"):
        await asyncio.gather(
            run_monitor(
                monitor,
                every=FAST,
                accounts=[("ghost", "p"), ("bob", "p")],
                stop=stop,
                install_signal_handlers=False,
            ),
            stop_after(stop, backend, "get_budget_status", 4),
        )
    assert "list_accounts" not in backend.calls
    await monitor.wait_for_delivery()
    assert {a.user_id for a in received} == {"bob"}
    assert any("ghost/p failed" in r.getMessage() for r in caplog.records)


async def test_unlisted_accounts_are_retried_next_round(
    backend: FakeBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seeded(backend)
    monitor = SpendingMonitor(backend, clock=clock)
    stop = asyncio.Event()
    backend.fail_with = BackendUnavailableError("down")

    async def recover() -> None:
        await backend.reached("list_accounts", 2).wait()
        backend.fail_with = None
        await stop_after(stop, backend, "get_budget_status", 3)

    with caplog.at_level(logging.ERROR, logger="smartspace_budget.budgets.periodic"):
        await asyncio.gather(
            run_monitor(monitor, every=FAST, accounts=None, stop=stop),
            recover(),
        )
    assert any("cannot list accounts" in r.getMessage() for r in caplog.records)
    assert backend.calls["get_budget_status"] >= 3


async def test_stop_interrupts_the_wait_between_rounds(backend: FakeBackend) -> None:
    monitor = SpendingMonitor(backend)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_monitor(monitor, every=timedelta(hours=1), accounts=None, stop=stop)
    )
    await backend.reached("list_accounts", 1).wait()
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert backend.calls["list_accounts"] == 1


@pytest.mark.parametrize("every", [timedelta(0), timedelta(seconds=-1)])
async def test_interval_must_be_positive(backend: FakeBackend, every: timedelta) -> None:
    with pytest.raises(InvalidInputError):
        await run_monitor(SpendingMonitor(backend), every=every, accounts=[], stop=asyncio.Event())


CHILD = textwrap.dedent(
    """
    import asyncio
    from datetime import timedelta

    from smartspace_budget.budgets import SpendingMonitor, run_monitor

    class EmptyBackend:
        rounds = 0

        async def list_accounts(self):
            EmptyBackend.rounds += 1
            print(f"round {EmptyBackend.rounds}", flush=True)
            return []

    async def main():
        stop = asyncio.Event()
        monitor = SpendingMonitor(EmptyBackend())
        await run_monitor(monitor, every=timedelta(hours=1), accounts=None, stop=stop)
        print("stopped cleanly", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_monitor_cleanly(sig: signal.Signals) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "round 1"
        child.send_signal(sig)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    assert out.strip() == "stopped cleanly"
    assert "Traceback" not in err
