"""A TTL cache for backend reads with one fetch in flight per key.

The spec caches pricing for 5 minutes and budget status for 30 seconds. Two things matter
as much as the expiry:

- **Single flight**: when many callers ask for the same cold key at once (a burst of budget
  checks for one account), only the first one calls the backend; the others wait for its
  answer. The first caller runs the fetch itself, in its own task: no task is made per
  fetch (a task and its scheduling cost 20-30 µs, more than an in-process read). If that
  caller is cancelled, its fetch ends with it and the callers waiting on it fetch again
  (one of them leads), so a cancellation never fails anyone else.
- **Failures are not cached**: a fetch that raises is forgotten, so the next caller tries
  again instead of reading a stored error (or worse, a made-up value).

Invalidation (after a local write) drops stored values and detaches fetches already in
flight: their answer may have been read before the write, so it is handed to the callers
that were already waiting but never stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CacheStats", "TTLCache"]

V = TypeVar("V")


@dataclass
class CacheStats:
    """Counters a test or a metrics endpoint can read."""

    hits: int = 0
    misses: int = 0
    fetches: int = 0
    failures: int = 0


@dataclass
class _Entry(Generic[V]):
    value: V
    expires_at: float


@dataclass
class _Flight(Generic[V]):
    answer: asyncio.Future[V]
    loop: asyncio.AbstractEventLoop
    detached: bool = False


class _LeaderGone(Exception):
    """The caller running a fetch was cancelled (or interrupted): its waiters fetch again."""


class TTLCache(Generic[V]):
    """Values by string key, each kept ``ttl`` seconds; see the module docstring.

    ``ttl=0`` stores nothing but still joins concurrent callers onto one fetch. ``clock``
    returns seconds (monotonic by default) and is there so tests can move time. At most
    ``max_entries`` values are kept; the oldest go first.
    """

    def __init__(
        self,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        if ttl < 0:
            raise ValueError(f"ttl must not be negative, got {ttl}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be positive, got {max_entries}")
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, _Entry[V]] = {}
        self._flights: dict[str, _Flight[V]] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: str) -> V | None:
        """The stored, unexpired value for ``key``, without fetching (``None`` if absent)."""
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self._clock():
            return None
        return entry.value

    async def get_or_fetch(
        self, key: str, fetch: Callable[[], Awaitable[V]], *, ttl: float | None = None
    ) -> V:
        """The cached value of ``key``, or the result of ``fetch()`` shared by concurrent callers.

        Whatever ``fetch`` raises is raised to every caller waiting on it and nothing is
        stored. ``ttl`` overrides the cache's default for this value.
        """
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires_at > self._clock():
                self.stats.hits += 1
                return entry.value
            del self._entries[key]
        self.stats.misses += 1
        loop = asyncio.get_running_loop()
        while True:
            flight = self._flights.get(key)
            if flight is None or flight.loop is not loop:
                return await self._lead(key, fetch, loop, self.ttl if ttl is None else ttl)
            try:
                # shield: a cancelled waiter must not cancel the answer the others wait for.
                return await asyncio.shield(flight.answer)
            except _LeaderGone:
                continue  # the fetch died with its caller: fetch again, or join who does

    async def _lead(
        self,
        key: str,
        fetch: Callable[[], Awaitable[V]],
        loop: asyncio.AbstractEventLoop,
        ttl: float,
    ) -> V:
        flight: _Flight[V] = _Flight(answer=loop.create_future(), loop=loop)
        self._flights[key] = flight
        self.stats.fetches += 1
        try:
            value = await fetch()
        except BaseException as exc:
            self._land(key, flight)
            if isinstance(exc, Exception):
                self.stats.failures += 1
                flight.answer.set_exception(exc)
            else:  # cancelled or interrupted: not the backend's answer
                flight.answer.set_exception(_LeaderGone())
            flight.answer.exception()  # retrieved: there may be no waiter to read it
            raise
        self._land(key, flight)
        # A detached fetch was invalidated while running: its answer may predate a write.
        if not flight.detached and ttl > 0:
            self._store(key, value, ttl)
        flight.answer.set_result(value)
        return value

    def _land(self, key: str, flight: _Flight[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    def _store(self, key: str, value: V, ttl: float) -> None:
        now = self._clock()
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            for stale in [k for k, e in self._entries.items() if e.expires_at <= now]:
                del self._entries[stale]
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(value=value, expires_at=now + ttl)

    def invalidate(self, key: str | None = None, *, prefix: str | None = None) -> int:
        """Forget ``key``, every key starting with ``prefix``, or (neither given) everything.

        Fetches in flight for those keys are detached: their callers still get the answer,
        but it is not stored. Returns how many stored values were dropped.
        """
        if key is not None and prefix is not None:
            raise ValueError("pass key or prefix, not both")
        if key is not None:
            self._detach([key] if key in self._flights else [])
            return 1 if self._entries.pop(key, None) is not None else 0
        stale = [k for k in self._entries if prefix is None or k.startswith(prefix)]
        self._detach([k for k in self._flights if prefix is None or k.startswith(prefix)])
        for k in stale:
            del self._entries[k]
        return len(stale)

    def _detach(self, keys: list[str]) -> None:
        for k in keys:
            self._flights.pop(k).detached = True
