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


async def test_cancelled_first_caller_does_not_fail_the_others() -> None:
    """The first caller runs the fetch; cancelled, its waiters fetch again (one leads)."""
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    first = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    waiters = [asyncio.create_task(cache.get_or_fetch("k", source.fetch)) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    for _ in range(5):  # the waiters learn of it; one leads a new fetch, the others join it
        await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(*waiters) == ["v1"] * 3
    assert first.cancelled()
    assert source.calls == 2  # the cancelled fetch, and the one a waiter led instead
    assert cache.peek("k") == "v1"


async def test_a_cancelled_waiter_does_not_cancel_the_fetch() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    first = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    waiter = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.sleep(0)
    source.gate.set()
    assert await first == "v1"
    assert waiter.cancelled()
    assert source.calls == 1


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


async def test_a_fetch_that_answers_at_once_runs_in_the_callers_task() -> None:
    cache: TTLCache[str] = TTLCache(30)
    ran_in: list[asyncio.Task[object] | None] = []

    async def at_once() -> str:
        ran_in.append(asyncio.current_task())
        return "now"

    assert await cache.get_or_fetch("k", at_once) == "now"
    assert ran_in == [asyncio.current_task()]
    assert cache.peek("k") == "now"
    assert (cache.stats.misses, cache.stats.fetches) == (1, 1)


async def test_a_fetch_failing_at_once_is_counted_and_not_stored() -> None:
    cache: TTLCache[str] = TTLCache(30)

    async def broken() -> str:
        raise BackendUnavailableError("down")

    with pytest.raises(BackendUnavailableError):
        await cache.get_or_fetch("k", broken)
    assert cache.peek("k") is None
    assert cache.stats.failures == 1


async def test_a_fetch_that_waits_gets_outcomes_and_errors_delivered_as_in_a_task() -> None:
    """Values and exceptions of what the fetch awaits reach it; other callers join it."""
    cache: TTLCache[str] = TTLCache(30)
    loop = asyncio.get_running_loop()
    failing: asyncio.Future[str] = loop.create_future()
    second: asyncio.Future[str] = loop.create_future()
    calls = 0

    async def two_waits() -> str:
        nonlocal calls
        calls += 1
        try:
            await failing
        except ValueError as exc:
            first = f"caught {exc}"
        return first + " then " + await second

    callers = [asyncio.create_task(cache.get_or_fetch("k", two_waits)) for _ in range(3)]
    await asyncio.sleep(0)
    failing.set_exception(ValueError("boom"))
    await asyncio.sleep(0)
    second.set_result("done")
    assert await asyncio.gather(*callers) == ["caught boom then done"] * 3
    assert calls == 1
    assert cache.peek("k") == "caught boom then done"


async def test_any_awaitable_fetch_works() -> None:
    cache: TTLCache[str] = TTLCache(30)
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(cache.get_or_fetch("k", lambda: future))
    await asyncio.sleep(0)
    future.set_result("from a future")
    assert await waiting == "from a future"
    assert cache.peek("k") == "from a future"


async def test_a_fetch_cancelled_with_its_only_caller_leaves_nothing_behind() -> None:
    cache: TTLCache[str] = TTLCache(30)
    source = Source()
    source.gate.clear()
    only = asyncio.create_task(cache.get_or_fetch("k", source.fetch))
    await asyncio.sleep(0)
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    assert cache.peek("k") is None
    assert cache.stats.failures == 0  # a cancellation is not the backend failing
    source.gate.set()
    assert await cache.get_or_fetch("k", source.fetch) == "v1"
    assert source.calls == 2
