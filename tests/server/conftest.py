"""The service in process (httpx over ASGI) on a fresh ledger, with keys for two tenants."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from tests.backend.live import ADMIN_KEY, service_settings

from smartspace_budget.ledger.ledger import Ledger
from smartspace_budget.models import dumps
from smartspace_budget.prices.catalog import PriceBook
from smartspace_budget.server.app import create_app
from smartspace_budget.server.key_tables import create_api_key, ensure_key_table


@dataclass
class Tenants:
    """Two tenants with money and usage, and a key of every scope."""

    a: tuple[str, str]
    b: tuple[str, str]
    a_key: str
    a_read_key: str
    b_key: str
    pricing_key: str
    admin_key: str = ADMIN_KEY


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    ledger: Ledger
    tenants: Tenants

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def write(
        self, method: str, path: str, body: object, key: str, idem: str | None = None
    ) -> httpx.Response:
        return await self.client.request(
            method,
            path,
            content=dumps(body) if body is not None else None,
            headers={**self.auth(key), "Idempotency-Key": idem or uuid.uuid4().hex},
        )


def account_path(account: tuple[str, str]) -> str:
    user, project = account
    return f"/api/v1/budgets/user/{user}/project/{project}"


def ledger_path(account: tuple[str, str], action: str) -> str:
    user, project = account
    return f"/api/v1/ledger/user/{user}/project/{project}/{action}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('svc') / 'ledger.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def make_service(database_url: str, **overrides: object) -> AsyncIterator[Service]:
    ledger = await Ledger.connect(database_url)
    app = create_app(
        service_settings(database_url, **overrides),
        ledger=ledger,
        price_book=PriceBook.from_genai_prices(),
    )
    engine = ledger.engine
    await ensure_key_table(engine)
    tag = uuid.uuid4().hex[:8]
    a, b = (f"ua-{tag}", f"pa-{tag}"), (f"ub-{tag}", f"pb-{tag}")
    _, a_key = await create_api_key(engine, scope="account", user_id=a[0], project_id=a[1])
    _, a_read = await create_api_key(engine, scope="account_read", user_id=a[0], project_id=a[1])
    _, b_key = await create_api_key(engine, scope="account", user_id=b[0], project_id=b[1])
    _, pricing_key = await create_api_key(engine, scope="pricing_read")
    tenants = Tenants(a, b, a_key, a_read, b_key, pricing_key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        service = Service(app, client, ledger, tenants)
        for account in (a, b):
            user, project = account
            await ledger.deposit(user, project, Decimal("100.00"), idempotency_key="seed")
        yield service
    await ledger.close()


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    async for made in make_service(database_url):
        yield made
