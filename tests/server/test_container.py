"""The container story without a container runtime: the image's entry point and the
migration lock run here as plain processes, and the Dockerfile and compose.yaml say what
the README promises (non-root, health on /readyz, migrations once before two replicas)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import yaml
from tests.conftest import POSTGRES_ADMIN_URL
from tests.server.service_processes import (
    ENTRYPOINT,
    REPO,
    free_port,
    service_env,
    start,
    stop,
    wait_ready,
)

from smartspace_budget.ledger.migrate import MIGRATION_LOCK_KEY, VERSION_TABLE, packaged_head


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own, with no schema yet."""
    name = f"ssb_migrate_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(_dsn(POSTGRES_ADMIN_URL), timeout=5)
    except (TimeoutError, OSError) as exc:
        if os.environ.get("SMARTSPACE_BUDGET_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but does not answer: {exc}")
        pytest.skip(f"PostgreSQL does not answer: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
        yield f"{base}/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _revisions(url: str) -> list[str]:
    conn = await asyncpg.connect(_dsn(url), timeout=5)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", VERSION_TABLE)
        if not exists:
            return []
        return [row[0] for row in await conn.fetch(f"SELECT version_num FROM {VERSION_TABLE}")]
    finally:
        await conn.close()


def _migrate(url: str) -> subprocess.Popen[bytes]:
    env = service_env(SMARTSPACE_BUDGET_DATABASE_URL=url)
    return subprocess.Popen(
        [str(ENTRYPOINT), "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


@pytest.mark.postgres
async def test_migrate_waits_for_the_lock_another_replica_holds(empty_database: str) -> None:
    holder = await asyncpg.connect(_dsn(empty_database), timeout=5)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        process = _migrate(empty_database)
        await asyncio.sleep(3.0)  # long enough to have migrated an empty database
        assert process.poll() is None  # it waits for the lock...
        assert await _revisions(empty_database) == []  # ...having changed nothing
        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        output, _ = await asyncio.to_thread(process.communicate, timeout=60)
    finally:
        await holder.close()
    assert process.returncode == 0, output.decode()
    assert await _revisions(empty_database) == [packaged_head()]


@pytest.mark.postgres
async def test_replicas_migrating_at_once_take_turns(empty_database: str) -> None:
    processes = [_migrate(empty_database) for _ in range(3)]
    outputs = [await asyncio.to_thread(p.communicate, timeout=90) for p in processes]
    for process, (output, _) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output.decode()
    assert await _revisions(empty_database) == [packaged_head()]


def test_the_entry_point_migrates_serves_and_reports_health(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(
        SMARTSPACE_BUDGET_HOST="127.0.0.1",
        SMARTSPACE_BUDGET_PORT=str(port),
        SMARTSPACE_BUDGET_DATA_DIR=str(tmp_path / "data"),
        SMARTSPACE_BUDGET_ADMIN_KEY="ssb_entrypoint_" + uuid.uuid4().hex,
        SMARTSPACE_BUDGET_LOG_FORMAT="json",
    )

    def healthcheck() -> int:
        return subprocess.run(
            [str(ENTRYPOINT), "healthcheck"], env=env, capture_output=True
        ).returncode

    assert healthcheck() == 1  # nothing listens yet
    service = start([str(ENTRYPOINT)], env, tmp_path, "entrypoint", port)
    try:
        wait_ready(service)
        deadline = time.monotonic() + 30
        while healthcheck() != 0:
            assert time.monotonic() < deadline, service.output()
            time.sleep(0.2)
    finally:
        stop(service)
    assert "ledger schema is up to date" in service.stdout.read_text()
    assert '"message": "request"' in service.stderr.read_text()  # the image logs JSON
    assert healthcheck() == 1


def test_the_image_runs_unprivileged_and_checks_readiness() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert any('CMD ["entrypoint.sh", "healthcheck"]' in line for line in lines)
    assert 'ENTRYPOINT ["entrypoint.sh"]' in lines


def test_compose_migrates_once_before_two_replicas() -> None:
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    replicas = [s for s in services.values() if s.get("ports") and "depends_on" in s]
    assert len(replicas) == 2
    for replica in replicas:
        assert replica["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert replica["environment"]["SMARTSPACE_BUDGET_REDIS_URL"].startswith("redis://")
    assert services["migrate"]["command"] == ["migrate"]
    assert services["postgres"]["image"].startswith("postgres")
