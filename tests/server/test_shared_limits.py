"""Rate limits shared through Redis: replicas charge one counter per key (``limits``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from tests.server.conftest import Service, account_path, make_service

from smartspace_budget.errors import BackendUnavailableError, RateLimitedError
from smartspace_budget.server.auth import RateLimiter
from smartspace_budget.server.shared_limits import SharedRateLimiter, window_for

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("rate", "burst", "window"),
    [(100, 200, (200, 2)), (10, 10, (10, 1)), (1000, 1, (1000, 1)), (3, 200, (201, 67))],
)
def test_the_window_keeps_the_rate(rate: float, burst: int, window: tuple[int, int]) -> None:
    assert window_for(rate, burst) == window


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[SharedRateLimiter, SharedRateLimiter]]:
    namespace = "ssb-test-" + uuid.uuid4().hex
    first = SharedRateLimiter(REDIS_URL, 5, 5, namespace=namespace)
    second = SharedRateLimiter(REDIS_URL, 5, 5, namespace=namespace)
    yield first, second
    await first.aclose()
    await second.aclose()


async def test_two_replicas_share_one_limit_per_key(
    replicas: tuple[SharedRateLimiter, SharedRateLimiter],
) -> None:
    first, second = replicas
    for limiter in (first, second, first, second, first):
        await limiter.acquire("key_a")
    for limiter in (first, second):
        with pytest.raises(RateLimitedError) as refused:
            await limiter.acquire("key_a")
        assert 1 <= refused.value.retry_after <= 1
    await second.acquire("key_b")  # limits are per key


async def test_an_unreachable_store_refuses_instead_of_admitting() -> None:
    limiter = SharedRateLimiter("redis://127.0.0.1:1/0", 5, 5)
    try:
        with pytest.raises(BackendUnavailableError, match="rate limit store"):
            await limiter.acquire("key_a")
        with pytest.raises(BackendUnavailableError, match="rate limit store"):
            await limiter.ping()
    finally:
        await limiter.aclose()


@pytest.fixture
async def unreachable(database_url: str) -> AsyncIterator[Service]:
    async for made in make_service(
        database_url, redis_url="redis://127.0.0.1:1/0", rate_limit_per_second=5
    ):
        try:
            yield made
        finally:
            await made.app.state.rate_limiter.aclose()


async def test_a_service_without_its_store_is_not_ready(unreachable: Service) -> None:
    ready = await unreachable.client.get("/readyz")
    assert ready.status_code == 503
    # The answer names no internals (the log does); see server/responses.py.
    assert "rate-limit store" in ready.json()["detail"]
    t = unreachable.tenants
    refused = await unreachable.client.get(
        account_path(t.a) + "/balance", headers=unreachable.auth(t.a_key)
    )
    assert refused.status_code == 503


async def test_a_zero_rate_never_asks_redis() -> None:
    limiter = SharedRateLimiter("redis://127.0.0.1:1/0", 0, 5)
    await limiter.acquire("key_a")
    await limiter.aclose()


@pytest.fixture
async def shared(database_url: str) -> AsyncIterator[Service]:
    async for made in make_service(
        database_url, redis_url=REDIS_URL, rate_limit_per_second=1, rate_limit_burst=2
    ):
        try:
            yield made
        finally:
            await made.app.state.rate_limiter.aclose()


async def test_the_service_uses_redis_when_a_url_is_set(shared: Service) -> None:
    assert isinstance(shared.app.state.rate_limiter, SharedRateLimiter)
    t = shared.tenants
    path = account_path(t.a) + "/balance"
    codes = [
        (await shared.client.get(path, headers=shared.auth(t.a_key))).status_code for _ in range(3)
    ]
    assert codes == [200, 200, 429]
    assert (await shared.client.get("/readyz")).status_code == 200


async def test_without_redis_each_process_limits_alone(service: Service) -> None:
    assert isinstance(service.app.state.rate_limiter, RateLimiter)
