"""Copies of one write racing through ``serve --workers 2`` on PostgreSQL, with one key.

Every copy goes on a connection of its own, so the kernel hands them to either worker: those
with the winning body all get the first answer (status and JSON, byte for byte), those with
another body all get 409 ``IdempotencyConflictError``. Settles, releases, deposits, usages,
refunds and reserves, 30 rounds of 20 copies each.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.server.service_processes import ServiceProcess, service_env, serving

from smartspace_budget.ledger.ledger import Ledger
from smartspace_budget.models import dumps

pytestmark = pytest.mark.postgres

COPIES = 20
ROUNDS = 30
OTHER_BODY = 3
LEDGER = "/api/v1/ledger"

Send = Callable[[httpx.AsyncClient, str, bool], Awaitable[httpx.Response]]


@pytest.fixture(scope="module")
def service(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    asyncio.run(_migrate(postgres_url))
    env = service_env(
        SMARTSPACE_BUDGET_DATABASE_URL=postgres_url,
        SMARTSPACE_BUDGET_RATE_LIMIT_PER_SECOND="0",
        SMARTSPACE_BUDGET_EXPIRY_INTERVAL="0",
    )
    directory: Path = tmp_path_factory.mktemp("retries")
    services: list[ServiceProcess]
    with serving(env, directory, 1, "--workers", "2", "--no-auth", "--log-level", "warning") as (
        services
    ):
        yield services[0].url


async def _migrate(url: str) -> None:
    ledger = await Ledger.connect(url)
    await ledger.close()


def _client(base: str) -> httpx.AsyncClient:
    # No keep-alive: each copy opens its own connection, which either worker may accept.
    limits = httpx.Limits(max_connections=COPIES * 2, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0)


def _usage(cost: str) -> dict[str, Any]:
    return {
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 50,
        "actual_cost": Decimal(cost),
    }


async def _post(client: httpx.AsyncClient, path: str, key: str, body: Any) -> httpx.Response:
    # Amounts go as exact JSON numbers (issue 16: never strings), written by ``dumps``.
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    return await client.post(f"{LEDGER}{path}", content=dumps(body), headers=headers)


async def _race(client: httpx.AsyncClient, key: str, send: Send) -> None:
    bodies = [index < OTHER_BODY for index in range(COPIES)]
    replies = await asyncio.gather(*(send(client, key, other) for other in bodies))
    answers: dict[bool, list[tuple[int, bytes]]] = {False: [], True: []}
    for other, reply in zip(bodies, replies, strict=True):
        answers[other].append((reply.status_code, reply.content))
    winners = [other for other, group in answers.items() if any(s == 200 for s, _ in group)]
    assert len(winners) == 1, answers
    won, lost = answers[winners[0]], answers[not winners[0]]
    assert all(answer == won[0] for answer in won), won
    assert all(
        status == 409 and b"IdempotencyConflictError" in content for status, content in lost
    ), lost


class Account:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.path = f"/user/u-{uuid.uuid4().hex[:10]}/project/p"

    async def write(self, action: str, key: str, body: Any) -> dict[str, Any]:
        reply = await _post(self.client, f"{self.path}/{action}", key, body)
        assert reply.status_code == 200, reply.text
        answer: dict[str, Any] = reply.json()
        return answer

    async def holds(self) -> list[str]:
        return [
            (await self.write("reserve", f"hold-{index}", {"amount": Decimal("1")}))[
                "reservation_id"
            ]
            for index in range(ROUNDS)
        ]


async def _rounds(service: str, make: Callable[[Account], Awaitable[Send]]) -> None:
    async with _client(service) as client:
        account = Account(client)
        await account.write("deposit", "fund", {"amount": Decimal("1000000")})
        send = await make(account)
        for round_ in range(ROUNDS):
            await _race(client, f"k-{round_}", send)


def _per_round(items: list[str]) -> Callable[[str], str]:
    """The item of the round named in the key ``k-N``."""
    return lambda key: items[int(key.rsplit("-", 1)[1])]


async def test_settles(service: str) -> None:
    async def make(account: Account) -> Send:
        hold = _per_round(await account.holds())

        async def send(client: httpx.AsyncClient, key: str, other: bool) -> httpx.Response:
            body = {"usage": _usage("0.75" if other else "0.5")}
            return await _post(client, f"/reservations/{hold(key)}/settle", key, body)

        return send

    await _rounds(service, make)


async def test_releases(service: str) -> None:
    async def make(account: Account) -> Send:
        hold = _per_round(await account.holds())

        async def send(client: httpx.AsyncClient, key: str, other: bool) -> httpx.Response:
            if other:  # the same key on another write: a settle of the same hold
                body = {"usage": _usage("0.5")}
                return await _post(client, f"/reservations/{hold(key)}/settle", key, body)
            return await _post(client, f"/reservations/{hold(key)}/release", key, None)

        return send

    await _rounds(service, make)


async def test_deposits(service: str) -> None:
    async def make(account: Account) -> Send:
        async def send(client: httpx.AsyncClient, key: str, other: bool) -> httpx.Response:
            body = {"amount": Decimal("2" if other else "1")}
            return await _post(client, f"{account.path}/deposit", key, body)

        return send

    await _rounds(service, make)


async def test_usages(service: str) -> None:
    async def make(account: Account) -> Send:
        async def send(client: httpx.AsyncClient, key: str, other: bool) -> httpx.Response:
            return await _post(
                client, f"{account.path}/usage", key, _usage("0.02" if other else "0.01")
            )

        return send

    await _rounds(service, make)


async def test_refunds(service: str) -> None:
    async def make(account: Account) -> Send:
        entries = [
            (await account.write("usage", f"target-{index}", _usage("1")))["entry_id"]
            for index in range(ROUNDS)
        ]
        target = _per_round(entries)

        async def send(client: httpx.AsyncClient, key: str, other: bool) -> httpx.Response:
            # The whole cost: a second refund of it, decided without the key, is refused.
            body = {
                "amount": Decimal("1"),
                "usage_entry_id": target(key),
                "reason": "x" if other else "",
            }
            return await _post(client, f"{account.path}/refund", key, body)

        return send

    await _rounds(service, make)


async def test_reserves(service: str) -> None:
    async def make(account: Account) -> Send:
        async def send(client: httpx.AsyncClient, key: str, other: bool) -> httpx.Response:
            body = {"amount": Decimal("2" if other else "1"), "ttl_seconds": 60}
            return await _post(client, f"{account.path}/reserve", key, body)

        return send

    await _rounds(service, make)
