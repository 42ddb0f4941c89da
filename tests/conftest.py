"""Shared test set-up: the tiktoken cache and a throwaway PostgreSQL database per session."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SHARED_TIKTOKEN = Path(__file__).resolve().parents[2] / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _SHARED_TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_SHARED_TIKTOKEN)

# Guards over PostgreSQL or a service journal their settlements in the data directory's
# outbox: the tests' go to a directory of their own, never the user's (tests of the default
# location set or remove the variable themselves).
if "SMARTSPACE_BUDGET_OUTBOX_PATH" not in os.environ:
    _OUTBOX_DIR = tempfile.mkdtemp(prefix="ssb-test-outbox-")
    atexit.register(shutil.rmtree, _OUTBOX_DIR, ignore_errors=True)
    os.environ["SMARTSPACE_BUDGET_OUTBOX_PATH"] = str(Path(_OUTBOX_DIR) / "outbox.sqlite3")

POSTGRES_ADMIN_URL = os.environ.get(
    "SMARTSPACE_BUDGET_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(POSTGRES_ADMIN_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _fresh_database() -> Iterator[str]:
    """Create a PostgreSQL database, yield its URL, drop it; a server that does not answer
    skips the test, or fails it when ``SMARTSPACE_BUDGET_REQUIRE_POSTGRES`` is set."""
    name = f"ssb_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        if os.environ.get("SMARTSPACE_BUDGET_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but does not answer: {exc}")
        pytest.skip(f"PostgreSQL does not answer: {exc}")
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session, dropped afterwards.

    Skipped only when the server does not answer and ``SMARTSPACE_BUDGET_REQUIRE_POSTGRES``
    is unset; CI sets it, so there a missing server fails the run instead.
    """
    yield from _fresh_database()


@pytest.fixture(scope="module")
def own_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module, dropped afterwards: for tests that
    drop or re-create tables, which must never happen to the session's shared database
    (later modules' services read their prices and accounts there)."""
    yield from _fresh_database()
