"""Rate limits shared by every replica through Redis (the ``limits`` library).

With ``SMARTSPACE_BUDGET_REDIS_URL`` set, every process charges a key's requests to the
same counter in Redis, so three replicas with two workers each still admit the configured
rate per key, not six times it. Without it each process keeps its own token bucket
(:class:`~smartspace_budget.server.auth.RateLimiter`).

The limit is ``limits``' moving window, its exact strategy: at most ``burst`` requests in
any window of ``burst / rate`` seconds (Redis keeps the last ``burst`` instants per key).
``limits`` measures windows in whole seconds, so the window is rounded to whole seconds
(at least one) and the count scaled to keep the rate: with the defaults (100/s, burst
200), 200 requests in any 2 seconds.

When Redis does not answer, requests are refused with 503 rather than let through
unlimited (a failure of a shared part never silently loosens a limit), and ``/readyz``
answers 503 so that a balancer sends requests elsewhere.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from smartspace_budget.errors import BackendUnavailableError, RateLimitedError

__all__ = ["KEY_PREFIX", "SharedRateLimiter", "window_for"]

KEY_PREFIX = "smartspace_budget"
_TIMEOUT = 1.0


def window_for(rate: float, burst: int) -> tuple[int, int]:
    """``(requests, seconds)`` of the moving window closest to ``rate``/s with ``burst``."""
    seconds = max(1, round(burst / rate))
    return max(1, round(rate * seconds)), seconds


class SharedRateLimiter:
    """Per-key limits counted in Redis at ``redis_url`` (see the module docstring).

    ``rate=0`` disables limiting (nothing is sent to Redis). ``namespace`` separates the
    counters of services sharing one Redis.
    """

    def __init__(
        self, redis_url: str, rate: float, burst: int, *, namespace: str = KEY_PREFIX
    ) -> None:
        self.rate = rate
        self._pool = ConnectionPool.from_url(
            redis_url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT
        )
        self._storage = storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=namespace,
            # Documented by limits (passed on to redis-py) but typed as a scalar option.
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._limiter = MovingWindowRateLimiter(storage)
        amount, seconds = window_for(rate, burst) if rate > 0 else (1, 1)
        self._item = RateLimitItemPerSecond(amount, seconds)

    async def acquire(self, key: str) -> None:
        """Charge one request to ``key``: :class:`RateLimitedError` (429) when over the
        limit, :class:`BackendUnavailableError` (503) when Redis does not answer."""
        if self.rate <= 0:
            return
        try:
            if await self._limiter.hit(self._item, key):
                return
            # Refused: when the oldest request in the window leaves it, one more fits.
            stats = await self._limiter.get_window_stats(self._item, key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendUnavailableError(
                f"rate limit store not reachable: {type(exc).__name__}"
            ) from None
        raise RateLimitedError(
            f"rate limit of {self.rate:g} requests/s exceeded",
            retry_after=max(1, math.ceil(stats.reset_time - time.time())),
        )

    async def ping(self) -> None:
        """:class:`BackendUnavailableError` unless Redis answers (the service's readiness)."""
        if not await self._storage.check():  # a PING; False for any failure
            raise BackendUnavailableError("rate limit store not reachable")

    async def aclose(self) -> None:
        """Close the connections to Redis (at the app's shutdown)."""
        await self._pool.disconnect()
