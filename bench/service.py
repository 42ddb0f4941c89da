"""Throughput and latency of the ledger service on loopback.

    python bench/service.py [--seconds 3] [--databases sqlite,postgres,empty] [--workers 1,2]
                            [--clients 1,8,64] [--client auto|wrk|python] [--rate 0]

For each database and uvicorn worker count, the service is started for real
(``uvicorn --factory``) with one admin key and no rate limit, 16 accounts are seeded with
deposits, a policy and usage, and closed-loop clients (each connection sends its next
request when the previous answer arrives) hammer the endpoints a budget check reads:
``status`` (what ``check_against_policy`` fetches), ``balance``, and ``pricing`` (what an
estimate fetches). Requests are spread over the 16 accounts.

Load generator (``--client``):

- ``wrk`` (the default when it is on ``PATH``): C, one thread, epoll; a Lua script adds the
  ``Authorization`` header and reports exact percentiles. It costs a few per cent of a core,
  so the figures are the server's. Install it with ``apt-get install wrk`` (Debian/Ubuntu)
  or ``brew install wrk`` (macOS); without it the bench falls back to ``python``.
- ``python``: a minimal keep-alive HTTP/1.1 client on asyncio streams in this process. It
  needs nothing installed, but at high rates it takes a good part of a core itself, which
  on a small machine is taken from the server. ``--rate`` (paced, open-loop clients: send
  on schedule whatever the previous answer took) always uses it.

The load generator shares the machine's cores with the service, as a sidecar would. The
``empty`` rows serve ``bench/empty_app.py`` (every request answered with a fixed status-sized
body, no work at all) the same way: the ceiling of uvicorn on this machine under this load.
PostgreSQL runs in a throwaway database on the server at
``SMARTSPACE_BUDGET_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import httpx

from smartspace_budget.models import dumps

ADMIN_KEY = "ssb_bench_admin_" + uuid.uuid4().hex
ACCOUNTS = 16
POSTGRES_ADMIN_URL = os.environ.get(
    "SMARTSPACE_BUDGET_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
ENDPOINTS = {
    "status": "/api/v1/budgets/user/bench-{i}/project/p/status",
    "balance": "/api/v1/budgets/user/bench-{i}/project/p/balance",
    "pricing": "/api/v1/pricing/provider/openai/model/gpt-4o",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def postgres_database() -> Iterator[str]:
    import asyncpg

    dsn = POSTGRES_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"ssb_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


EMPTY_APP = "empty"
"""The --databases name of the ceiling: an empty ASGI app (``bench/empty_app.py``)."""


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == EMPTY_APP:
        yield EMPTY_APP
    elif kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite+aiosqlite:///{Path(directory) / 'ledger.sqlite3'}"


@contextmanager
def service(database_url: str, workers: int) -> Iterator[str]:
    """The ledger service on ``database_url`` (or the empty app), started with uvicorn."""
    port = free_port()
    env = {
        **os.environ,
        "SMARTSPACE_BUDGET_DATABASE_URL": database_url,
        "SMARTSPACE_BUDGET_ADMIN_KEY": ADMIN_KEY,
        "SMARTSPACE_BUDGET_RATE_LIMIT_PER_SECOND": "0",
    }
    if database_url == EMPTY_APP:
        target = ["empty_app:app", "--app-dir", str(Path(__file__).parent)]
    else:
        target = ["smartspace_budget.server.app:create_app_from_env", "--factory"]
    command = [
        sys.executable, "-m", "uvicorn", *target,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def seed(url: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for i in range(ACCOUNTS):
            base = f"/api/v1/ledger/user/bench-{i}/project/p"

            def write(method: str, action: str, body: object, base: str = base) -> None:
                response = client.request(
                    method,
                    f"{base}/{action}",
                    content=dumps(body),
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                response.raise_for_status()

            write("POST", "deposit", {"amount": Decimal(1000)})
            write("PUT", "policy", {"daily_limit": Decimal(50), "monthly_limit": Decimal(900)})
            for n in range(20):
                usage = {
                    "provider": "openai" if n % 2 else "anthropic",
                    "model": "gpt-4o" if n % 2 else "claude-3-5-sonnet",
                    "input_tokens": 1000,
                    "output_tokens": 200,
                    "actual_cost": Decimal("0.0123"),
                }
                write("POST", "usage", usage)


async def _client(
    port: int, paths: list[str], stop_at: float, latencies: list[float], interval: float = 0.0
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n"
        ).encode()
        for path in paths
    ]
    n = 0
    # Random phase, so paced clients do not all send in the same instant.
    next_send = time.perf_counter() + random.uniform(0, interval)
    try:
        while time.perf_counter() < stop_at:
            if interval:
                # Paced (open loop): send on schedule, whatever the previous answer took.
                next_send += interval
                await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
            started = time.perf_counter()
            writer.write(requests[n % len(requests)])
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def measure(
    url: str, endpoint: str, clients: int, seconds: float, rate: float = 0.0
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms); ``rate`` > 0 paces all clients to that total rate."""
    interval = clients / rate if rate else 0.0
    port = int(url.rsplit(":", 1)[1])
    warm: list[float] = []
    paths_for = [[ENDPOINTS[endpoint].format(i=c % ACCOUNTS)] for c in range(clients)]
    await asyncio.gather(
        *(_client(port, paths_for[c], time.perf_counter() + 0.3, warm) for c in range(clients))
    )
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_client(port, paths_for[c], stop_at, latencies, interval) for c in range(clients))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(latencies) / elapsed, statistics.median(ordered) * 1000, p99 * 1000


WRK_SCRIPT = """
local paths = {%(paths)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1], {["Authorization"] = "Bearer %(key)s"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def measure_wrk(
    url: str, endpoint: str, clients: int, seconds: float
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from ``wrk`` with ``clients`` connections, one thread."""
    paths = ", ".join(f'"{ENDPOINTS[endpoint].format(i=i)}"' for i in range(ACCOUNTS))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"paths": paths, "key": ADMIN_KEY})
    try:

        def run(duration: float) -> list[int]:
            command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(duration))}s"]
            command += ["--timeout", "10s", "-s", script.name, url]
            output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            line = next(li for li in output.splitlines() if li.startswith("WRK "))
            return [int(field) for field in line.split()[1:]]

        run(1)  # warm-up: connections, caches, the first queries of each account
        requests, duration_us, p50_us, p99_us, errors = run(seconds)
    finally:
        os.unlink(script.name)
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors or non-2xx answers")
    return requests / (duration_us / 1e6), p50_us / 1000, p99_us / 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--databases",
        default=f"sqlite,postgres,{EMPTY_APP}",
        help=f"{EMPTY_APP!r}: the ceiling, an app that does nothing, under the same load",
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument(
        "--rate", type=float, default=0.0, help="total requests/s (paced clients); 0: closed loop"
    )
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator; auto: wrk when installed (and --rate is 0), else python",
    )
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") and not args.rate else "python"
    if client == "wrk" and args.rate:
        parser.error("--rate needs --client python (wrk is closed loop)")
    if client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk); use --client python")
    print("| database | workers | endpoint | clients | client | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in args.databases.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            with database(kind) as url, service(url, workers) as base:
                if kind != EMPTY_APP:
                    seed(base)
                for endpoint in args.endpoints.split(","):
                    for clients in (int(c) for c in args.clients.split(",")):
                        if client == "wrk":
                            rate, p50, p99 = measure_wrk(base, endpoint, clients, args.seconds)
                        else:
                            rate, p50, p99 = asyncio.run(
                                measure(base, endpoint, clients, args.seconds, args.rate)
                            )
                        cells = [kind, workers, endpoint, clients, client, f"{rate:,.0f}"]
                        cells += [f"{p50:.2f}", f"{p99:.2f}"]
                        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
