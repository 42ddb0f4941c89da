"""The service as real processes (``smartspace-budget serve``, the image's entry point).

Each process writes its output to files in the test's directory (a full pipe would stall
it), is waited for until ``/healthz`` answers, and is stopped with SIGINT, as an operator
stops it, then killed if it lingers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(**values: str) -> dict[str, str]:
    """The test's environment without any ``SMARTSPACE_BUDGET_*``, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTSPACE_BUDGET_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(values)
    return env


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


def start(
    argv: list[str], env: dict[str, str], directory: Path, name: str, port: int
) -> ServiceProcess:
    stdout, stderr = directory / f"{name}.out", directory / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=directory)
    return ServiceProcess(process, f"http://127.0.0.1:{port}", stdout, stderr)


def wait_ready(service: ServiceProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"the service exited:\n{service.output()}")
        try:
            if httpx.get(service.url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the service did not start:\n{service.output()}")


def stop(service: ServiceProcess) -> None:
    if service.process.poll() is None:
        service.process.send_signal(signal.SIGINT)
        try:
            service.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def serve_argv(*options: str) -> list[str]:
    return [str(BIN / "smartspace-budget"), "serve", *options]


@contextmanager
def serving(
    env: dict[str, str], directory: Path, count: int, *options: str
) -> Iterator[list[ServiceProcess]]:
    """``count`` replicas of ``serve`` with ``env``, ready, stopped at the end of the block."""
    services: list[ServiceProcess] = []
    try:
        for index in range(count):
            port = free_port()
            argv = serve_argv("--port", str(port), *options)
            services.append(start(argv, env, directory, f"replica-{index}", port))
        for service in services:
            wait_ready(service)
        yield services
    finally:
        for service in services:
            stop(service)
