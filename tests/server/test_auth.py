"""API keys, scopes and rate limits, below the HTTP layer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smartspace_budget.errors import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from smartspace_budget.ledger.engine import create_engine
from smartspace_budget.server.auth import Authenticator, Principal, RateLimiter
from smartspace_budget.server.key_tables import (
    ApiKeyInfo,
    Scope,
    api_keys,
    create_api_key,
    find_api_key,
    hash_key,
    list_api_keys,
    revoke_api_key,
)


@pytest.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    engine = create_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: api_keys.create(sync))
    yield engine
    await engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_raw_key_is_returned_once_and_only_its_hash_is_stored(engine: AsyncEngine) -> None:
    key_id, raw = await create_api_key(engine, scope="account", user_id="u", project_id="p")
    assert raw.startswith("ssb_")
    assert len(raw) > 40
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(api_keys))).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert raw not in stored
    assert raw[4:] not in stored
    assert hash_key(raw) in stored
    found = await find_api_key(engine, raw)
    assert found is not None
    assert found.key_id == key_id
    assert found.scope is Scope.ACCOUNT
    assert await find_api_key(engine, raw + "x") is None


async def test_revoked_key_is_no_longer_found(engine: AsyncEngine) -> None:
    key_id, raw = await create_api_key(engine, admin=True)
    info = await revoke_api_key(engine, key_id)
    assert not info.active
    assert await find_api_key(engine, raw) is None
    assert await list_api_keys(engine) == []
    assert [k.key_id for k in await list_api_keys(engine, include_revoked=True)] == [key_id]
    with pytest.raises(NotFoundError):
        await revoke_api_key(engine, "key_missing")


@pytest.mark.parametrize(
    ("scope", "user_id", "project_id"),
    [
        ("account", None, "p"),
        ("account_read", "u", ""),
        ("admin", "u", "p"),
        ("pricing_read", "u", None),
        ("root", None, None),
    ],
)
async def test_scopes_need_exactly_their_account(
    engine: AsyncEngine, scope: str, user_id: str | None, project_id: str | None
) -> None:
    with pytest.raises(InvalidInputError):
        await create_api_key(engine, scope=scope, user_id=user_id, project_id=project_id)


def test_principal_hides_other_tenants_and_limits_scopes() -> None:
    account = Principal("k1", Scope.ACCOUNT, "u", "p")
    reader = Principal("k2", Scope.ACCOUNT_READ, "u", "p")
    pricing = Principal("k3", Scope.PRICING_READ)
    admin = Principal("k4", Scope.ADMIN)
    for key in (account, reader, pricing):
        with pytest.raises(NotFoundError) as caught:
            key.require_read("u", "other")
        assert "other" not in caught.value.detail
        with pytest.raises(NotFoundError):
            key.require_spend("v", "p")
        with pytest.raises(NotFoundError):
            key.require_admin_on("v", "p")
    account.require_spend("u", "p")
    reader.require_read("u", "p")
    with pytest.raises(ForbiddenError):
        reader.require_spend("u", "p")
    with pytest.raises(ForbiddenError):
        account.require_admin_on("u", "p")
    with pytest.raises(ForbiddenError):
        pricing.require_account_reader()
    admin.require_admin_on("anyone", "anything")
    admin.require_admin()


def test_rate_limiter_bursts_then_refills_and_says_when() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    for _ in range(3):
        limiter.take("k")
    with pytest.raises(RateLimitedError) as caught:
        limiter.take("k")
    assert caught.value.retry_after == 1
    limiter.take("other")  # buckets are per key
    clock.now += 0.5  # one token back at 2/s
    limiter.take("k")
    with pytest.raises(RateLimitedError):
        limiter.take("k")


def test_rate_limiter_disabled_at_zero() -> None:
    limiter = RateLimiter(0, 1)
    for _ in range(1000):
        limiter.take("k")


async def test_authenticator_admin_env_key_db_keys_and_uniform_failures(
    engine: AsyncEngine,
) -> None:
    _, raw = await create_api_key(engine, scope="account_read", user_id="u", project_id="p")
    calls = 0

    async def lookup(key: str) -> ApiKeyInfo | None:
        nonlocal calls
        calls += 1
        return await find_api_key(engine, key)

    auth = Authenticator(lookup, admin_key="ssb_admin", cache_ttl=60)
    assert (await auth.authenticate("ssb_admin")).is_admin
    caller = await auth.authenticate(raw)
    assert (caller.scope, caller.user_id, caller.project_id) == (Scope.ACCOUNT_READ, "u", "p")
    await auth.authenticate(raw)
    assert calls == 1  # verified keys are remembered for cache_ttl
    messages = []
    for bad in (None, "", "ssb_wrong", raw[:-1]):
        with pytest.raises(UnauthorizedError) as caught:
            await auth.authenticate(bad)
        messages.append(caught.value.to_dict())
    assert all(m == messages[0] for m in messages)


async def test_disabled_auth_is_admin_without_a_key() -> None:
    async def lookup(key: str) -> None:
        raise AssertionError("no lookup when auth is off")

    auth = Authenticator(lookup, enabled=False)
    assert (await auth.authenticate(None)).is_admin
