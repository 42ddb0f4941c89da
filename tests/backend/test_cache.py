"""TTLCache: single flight, expiry, invalidation, failures never cached."""

from __future__ import annotations

import asyncio

import pytest

from smartspace_budget.backend.cache import TTLCache
from smartspace_budget.errors import BackendUnavailableError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """A backend double that counts calls and can be held open or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.value = "v1"
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def fetch(self) -> str:
        self.calls += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.value


async def test_hundred_concurrent_cold_reads_cause_one_fetch() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    callers = [
        asyncio.create_task(cache.get_or_fetch("status:u:p", source.fetch)) for _ in range(100)
    ]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*callers)
    assert results == ["v1"] * 100
    assert source.calls == 1
    assert cache.stats.fetches == 1


async def test_value_is_served_until_ttl_then_fetched_again() -> None:
    clock = Clock()
    cache: TTLCache[str] = TTLCache(30, clock=clock)
    source = Source()
    assert await cache.get_or_fetch("k", source.fetch) == "v1"
    source.value = "v2"
    clock.now += 29.9
    assert await cache.get_or_fetch("k", source.fetch) == "v1"
    assert source.calls == 1
    clock.now += 0.1
    assert await cache.get_or_fetch("k", source.fetch) == "v2"
    assert source.calls == 2


async def test_per_call_ttl_overrides_default() -> None:
    clock = Clock()
    cache: TTLCache[str] = TTLCache(30, clock=clock)
    source = Source()
    await cache.get_or_fetch("k", source.fetch, ttl=300)
    clock.now += 299
    assert cache.peek("k") == "v1"
    clock.now += 1
    assert cache.peek("k") is None


async def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    source.fail = BackendUnavailableError("down")
    callers = [asyncio.create_task(cache.get_or_fetch("k", source.fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, BackendUnavailableError) for r in results)
    assert source.calls == 1
    assert cache.peek("k") is None
    source.fail = None
    assert await cache.get_or_fetch("k", source.fetch) == "v1"
    assert source.calls == 2
    assert cache.stats.failures == 1


async def test_invalidate_key_prefix_and_all() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    for key in ("status:a:1", "status:a:2", "balance:a:1", "pricing:x"):
        await cache.get_or_fetch(key, source.fetch)
    assert cache.invalidate("status:a:1") == 1
    assert cache.peek("status:a:1") is None
    assert cache.peek("status:a:2") == "v1"
    assert cache.invalidate(prefix="status:") == 1
    assert cache.peek("balance:a:1") == "v1"
    assert cache.invalidate() == 2
    assert len(cache) == 0
    assert cache.invalidate("missing") == 0


async def test_invalidation_during_fetch_keeps_the_stale_answer_out() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    waiting = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    await asyncio.sleep(0)
    cache.invalidate(prefix="k")
    source.gate.set()
    assert await waiting == "v1"  # the caller that asked before the write still gets an answer
    assert cache.peek("k") is None  # but it is not served to anyone after the write
    source.value = "v2"
    assert await cache.get_or_fetch("k", source.fetch) == "v2"


async def test_cancelled_first_caller_does_not_cancel_the_fetch_for_others() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    first = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    second = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    source.gate.set()
    assert await second == "v1"
    assert first.cancelled()
    assert source.calls == 1
    assert cache.peek("k") == "v1"


async def test_zero_ttl_stores_nothing_but_still_joins_concurrent_callers() -> None:
    cache: TTLCache[str] = TTLCache(0)
    source = Source()
    source.gate.clear()
    callers = [asyncio.create_task(cache.get_or_fetch("k", source.fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    source.gate.set()
    await asyncio.gather(*callers)
    assert source.calls == 1
    assert len(cache) == 0
    await cache.get_or_fetch("k", source.fetch)
    assert source.calls == 2


async def test_oldest_entries_go_first_when_full() -> None:
    cache: TTLCache[str] = TTLCache(30, max_entries=3)
    source = Source()
    for key in "abcd":
        await cache.get_or_fetch(key, source.fetch)
    assert cache.peek("a") is None
    assert [cache.peek(k) for k in "bcd"] == ["v1"] * 3


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        TTLCache(-1)
