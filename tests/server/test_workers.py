"""``serve --workers 2``: ``/metrics`` counts the requests every worker answered.

Either worker may answer a scrape, so each must report the sum of both; with
``PROMETHEUS_MULTIPROC_DIR`` (which ``serve`` points at a directory when it starts several
workers) they all write their values there.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tests.server.service_processes import (
    free_port,
    serve_argv,
    service_env,
    start,
    stop,
    wait_ready,
)

HEALTHZ = re.compile(
    r'^smartspace_budget_http_requests_total\{method="GET",route="/healthz",status="200"\} '
    r"(\d+)\.0$",
    re.MULTILINE,
)


def _get_fresh(url: str) -> int:
    """One request on a connection of its own, so the kernel may hand it to either worker."""
    with httpx.Client(timeout=10.0) as client:
        return client.get(url).status_code


def _workers_that_counted(directory: Path) -> set[str]:
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}


def test_metrics_sum_the_requests_of_both_workers(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    port = free_port()
    env = service_env(
        SMARTSPACE_BUDGET_DATA_DIR=str(tmp_path / "data"),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    argv = serve_argv("--port", str(port), "--workers", "2", "--no-auth", "--log-level", "warning")
    service = start(argv, env, tmp_path, "workers", port)
    try:
        wait_ready(service)
        sent = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            # Until both workers have answered some (the kernel picks; it rarely takes long).
            while (sent < 400 and len(_workers_that_counted(metrics_dir)) < 2) or sent < 40:
                statuses = list(pool.map(_get_fresh, [service.url + "/healthz"] * 40))
                assert statuses == [200] * 40
                sent += 40
        assert len(_workers_that_counted(metrics_dir)) == 2
        scrapes = [_scrape(service.url) for _ in range(6)]  # whichever worker answers
    finally:
        stop(service)
    # wait_ready's own /healthz calls were answered and counted too.
    assert all(count >= sent for count in scrapes)
    assert len(set(scrapes)) == 1


def _scrape(url: str) -> int:
    with httpx.Client(timeout=10.0) as client:
        text = client.get(url + "/metrics").text
    found = HEALTHZ.search(text)
    assert found is not None, text
    return int(found[1])
