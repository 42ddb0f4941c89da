"""``serve`` in a subprocess, and the CLI talking to it with ``--url``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.cli.cli_harness import Cli

ACCOUNT = ("-u", "svc_user", "-p", "svc_project")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTSPACE_BUDGET_")}
    env["SMARTSPACE_BUDGET_DATA_DIR"] = str(tmp_path / "server")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from smartspace_budget.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--no-auth",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def test_cli_against_a_running_service(service: str, fresh: Cli) -> None:
    url = ("--url", service)
    assert fresh(*url, "deposit", "10", *ACCOUNT).exit_code == 0
    recorded: Any = fresh(
        *url, "record", "openai", "gpt-4o", *ACCOUNT, "-i", "1000", "-o", "500", "--json"
    ).json()
    assert recorded["amount"] == Decimal("-0.007875")
    status: Any = fresh(*url, "status", *ACCOUNT, "--json").json()
    assert status["total_balance"] == Decimal("9.992125")
    assert fresh(*url, "check", "openai", "gpt-4o", "hi", *ACCOUNT).exit_code == 0
    assert fresh(*url, "policy", "set", *ACCOUNT, "--per-request", "0.001").exit_code == 0
    denied = fresh(*url, "check", "openai", "gpt-4o", "hi", *ACCOUNT)
    assert denied.exit_code == 1
    # The local ledger of this data directory was never touched.
    assert fresh("status", *ACCOUNT).exit_code == 2


def test_monitor_runs_every_interval_until_interrupted(seeded: Cli) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTSPACE_BUDGET_")}
    env["SMARTSPACE_BUDGET_DATA_DIR"] = str(seeded.data_dir)
    command = "from smartspace_budget.cli import main; main()"
    args = ["monitor", "--every", "1s", "--account", "user_001/proj_001", "--json"]
    process = subprocess.Popen(
        [sys.executable, "-c", command, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any('"cost_spike"' in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # more rounds: alerts already raised must not be repeated
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        reader.join(timeout=5)
        err = process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert process.returncode == 0, err
    from smartspace_budget.models import loads

    alerts = [loads(line) for line in lines if line.strip()]
    types = [a["alert_type"] for a in alerts]
    assert "cost_spike" in types
    assert len(types) == len(set(types))
    assert "Monitoring every 1s" in err
