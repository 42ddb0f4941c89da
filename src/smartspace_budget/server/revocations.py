"""Key revocation reaches every replica within a second: a revocation count in the database.

Each replica remembers verified keys for ``key_cache_ttl`` seconds (a lookup per request
would double the work of a status read). A key can be revoked from any replica or from the
command line, straight in the database, so no process can be told directly. Instead every
replica reads how many keys are revoked (``SELECT count(revoked_at) FROM api_keys``) every
``key_revocation_poll`` seconds and, when the number moved, forgets every verified key.
Revocation is one-way (a key is never un-revoked), so the count only grows and a change of
it is exactly "some key was revoked". The read is one count over the (small) keys table,
once per interval per replica, whatever the request rate.

A lookup in flight while the cache is emptied is handed to its waiters but not kept
(:class:`~smartspace_budget.backend.cache.TTLCache`), so a verification read just before
the revocation cannot outlive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smartspace_budget.server.auth import Authenticator
from smartspace_budget.server.key_tables import api_keys

__all__ = ["revocation_count", "watching_revocations"]

log = logging.getLogger("smartspace_budget.server")


async def revocation_count(engine: AsyncEngine) -> int:
    """How many keys have ever been revoked (the revocation version)."""
    async with engine.connect() as conn:
        found = await conn.scalar(sa.select(sa.func.count(api_keys.c.revoked_at)))
    return int(found or 0)


async def _read(engine: AsyncEngine, authenticator: Authenticator) -> int | None:
    """The count, or ``None`` (and nothing trusted any more) when it cannot be read."""
    try:
        return await revocation_count(engine)
    except Exception as exc:  # the database may be briefly away; keep watching
        # Unsure whether a key was revoked meanwhile: stop trusting what is cached.
        authenticator.forget()
        log.warning("cannot read key revocations: %s", type(exc).__name__)
        return None


async def _watch(
    engine: AsyncEngine, authenticator: Authenticator, interval: float, seen: int | None
) -> None:
    while True:
        await asyncio.sleep(interval)
        count = await _read(engine, authenticator)
        if count != seen and seen is not None:
            authenticator.forget()
        seen = count


@contextlib.asynccontextmanager
async def watching_revocations(
    engine: AsyncEngine, authenticator: Authenticator, interval: float
) -> AsyncIterator[None]:
    """Watch revocations (see the module docstring) while the block runs; ``interval=0``
    leaves revocation to the cache's expiry alone."""
    if interval <= 0:
        yield
        return
    # Read before serving: a key revoked from now on is seen by the first poll.
    seen = await _read(engine, authenticator)
    task = asyncio.create_task(_watch(engine, authenticator, interval, seen), name="revocations")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
