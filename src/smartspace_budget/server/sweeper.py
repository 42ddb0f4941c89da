"""Release reservations past their expiry while the service runs.

The ledger expires an account's overdue holds before its next reservation, so spending is
never blocked by them; but until something touches the account, its status would still show
the held amount as reserved. The service therefore sweeps every ``interval`` seconds. Several
replicas may sweep the same database: expiring is idempotent and serialised by the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["sweeping"]

logger = logging.getLogger("smartspace_budget.server")


async def _sweep_forever(expire: Callable[[], Awaitable[int]], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            released = await expire()
        except Exception:  # a failed sweep is retried at the next interval
            logger.exception("expiring reservations failed; retrying in %.0f s", interval)
        else:
            if released:
                logger.info("released %d expired reservation(s)", released)


@contextlib.asynccontextmanager
async def sweeping(expire: Callable[[], Awaitable[int]], interval: float) -> AsyncIterator[None]:
    """Run ``expire()`` every ``interval`` seconds inside the block (never when 0)."""
    if interval <= 0:
        yield
        return
    task = asyncio.create_task(_sweep_forever(expire, interval), name="expire-reservations")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
