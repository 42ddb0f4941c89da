"""A revocation anywhere empties every replica's cache of verified keys within a poll."""

from __future__ import annotations

import asyncio
import time

from tests.server.conftest import Service

from smartspace_budget.errors import UnauthorizedError
from smartspace_budget.server.auth import Authenticator
from smartspace_budget.server.key_tables import (
    ApiKeyInfo,
    create_api_key,
    find_api_key,
    revoke_api_key,
)
from smartspace_budget.server.revocations import revocation_count, watching_revocations


async def test_a_revoked_key_is_forgotten_despite_a_long_cache(service: Service) -> None:
    engine = service.ledger.engine
    key_id, raw = await create_api_key(engine, scope="pricing_read")
    other_id, _ = await create_api_key(engine, scope="pricing_read")
    lookups = 0

    async def lookup(key: str) -> ApiKeyInfo | None:
        nonlocal lookups
        lookups += 1
        return await find_api_key(engine, key)

    authenticator = Authenticator(lookup, cache_ttl=3600)
    before = await revocation_count(engine)
    async with watching_revocations(engine, authenticator, 0.05):
        await authenticator.authenticate(raw)
        await authenticator.authenticate(raw)
        assert lookups == 1  # cached
        await revoke_api_key(engine, other_id)  # another key: the cache is emptied anyway
        await asyncio.sleep(0.3)
        await authenticator.authenticate(raw)
        assert lookups == 2
        await revoke_api_key(engine, key_id)
        revoked = time.monotonic()
        while True:
            try:
                await authenticator.authenticate(raw)
            except UnauthorizedError:
                break
            assert time.monotonic() - revoked < 1.0
            await asyncio.sleep(0.02)
    assert await revocation_count(engine) == before + 2


async def test_without_the_watch_the_cache_keeps_a_revoked_key(service: Service) -> None:
    engine = service.ledger.engine
    key_id, raw = await create_api_key(engine, scope="pricing_read")
    authenticator = Authenticator(lambda key: find_api_key(engine, key), cache_ttl=3600)
    async with watching_revocations(engine, authenticator, 0):
        await authenticator.authenticate(raw)
        await revoke_api_key(engine, key_id)
        await asyncio.sleep(0.2)
        await authenticator.authenticate(raw)  # what key_revocation_poll=0 leaves


async def test_the_app_watches_while_it_runs(service: Service) -> None:
    app = service.app
    assert app.router.lifespan_context is not None
    async with app.router.lifespan_context(app):
        key_id, raw = await create_api_key(service.ledger.engine, scope="pricing_read")
        headers = {"Authorization": f"Bearer {raw}"}
        assert (await service.client.get("/api/v1/pricing/models", headers=headers)).is_success
        await revoke_api_key(service.ledger.engine, key_id)
        await asyncio.sleep(1.0)  # the default poll is half a second
        refused = await service.client.get("/api/v1/pricing/models", headers=headers)
        assert refused.status_code == 401
