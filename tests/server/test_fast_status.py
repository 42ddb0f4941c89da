"""The status fast path answers exactly what the FastAPI route answers, for every outcome."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from tests.backend.live import service_settings
from tests.server.conftest import Service, account_path, make_service

from smartspace_budget.errors import BackendUnavailableError
from smartspace_budget.models import BudgetPolicy, BudgetStatus, dumps, loads
from smartspace_budget.models.usage import MAX_ID_LENGTH
from smartspace_budget.server.app import create_app
from smartspace_budget.server.auth import principal
from smartspace_budget.server.fast_status import RenderedStatus
from smartspace_budget.server.responses import spec_shaped

_AS_OF = re.compile(r'"as_of": "[^"]*"')


@dataclass
class Pair:
    service: Service  # its app answers status on the fast path
    fast: httpx.AsyncClient
    plain: httpx.AsyncClient  # an app on the same ledger without the fast path
    plain_app: FastAPI


@pytest.fixture
async def pair(database_url: str) -> AsyncIterator[Pair]:
    async for service in make_pair(database_url):
        yield service


async def make_pair(database_url: str, **overrides: object) -> AsyncIterator[Pair]:
    async for service in make_service(database_url, **overrides):
        # Any status request the fast path let through to FastAPI would answer 500 here.
        async def not_through_fastapi() -> None:
            raise AssertionError("status reached the FastAPI route")

        service.app.dependency_overrides[principal] = not_through_fastapi
        plain_app = create_app(
            service_settings(database_url, **overrides),
            ledger=service.ledger,
            price_book=service.app.state.backend.price_book,
            fast_status=False,
        )
        # Unexpected errors: both answer 500 and re-raise to the server, which logs them.
        fast = httpx.ASGITransport(app=service.app, raise_app_exceptions=False)
        plain = httpx.ASGITransport(app=plain_app, raise_app_exceptions=False)
        async with (
            httpx.AsyncClient(transport=fast, base_url="http://service") as fast_client,
            httpx.AsyncClient(transport=plain, base_url="http://service") as plain_client,
        ):
            yield Pair(service, fast_client, plain_client, plain_app)


async def same_answer(pair: Pair, method: str, path: str, headers: dict[str, str]) -> int:
    fast = await pair.fast.request(method, path, headers=headers)
    plain = await pair.plain.request(method, path, headers=headers)
    assert fast.status_code == plain.status_code, (path, headers, fast.text, plain.text)
    assert _AS_OF.sub("", fast.text) == _AS_OF.sub("", plain.text)
    for header in ("content-type", "content-length", "retry-after", "www-authenticate"):
        if header == "content-length" and "as_of" in fast.text:
            continue  # the instant differs by its digits
        assert fast.headers.get(header) == plain.headers.get(header), header
    return fast.status_code


async def test_every_outcome_matches_the_route(pair: Pair) -> None:
    t = pair.service.tenants
    a, b = account_path(t.a) + "/status", account_path(t.b) + "/status"
    a_balance, b_balance = account_path(t.a) + "/balance", account_path(t.b) + "/balance"
    long_id = "x" * (MAX_ID_LENGTH + 1)
    await pair.service.ledger.deposit("u/x", "p%", Decimal(1), idempotency_key="odd-ids")
    cases = [
        ("GET", a, f"Bearer {t.admin_key}", 200),
        ("GET", a, f"Bearer {t.a_key}", 200),
        ("GET", a, f"bearer {t.a_read_key}", 200),
        ("GET", b, f"Bearer {t.a_key}", 404),
        ("GET", a, f"Bearer {t.pricing_key}", 404),
        ("GET", a, "Bearer ssb_wrong", 401),
        ("GET", a, None, 401),
        ("GET", a, f"Basic {t.a_key}", 401),
        ("GET", a, "Bearer ", 401),
        ("GET", account_path(("ghost", "p")) + "/status", f"Bearer {t.admin_key}", 404),
        ("GET", "/api/v1/budgets/user/u%2Fx/project/p%25/status", f"Bearer {t.admin_key}", 200),
        ("GET", f"/api/v1/budgets/user/{long_id}/project/p/status", f"Bearer {t.admin_key}", 400),
        ("GET", f"/api/v1/budgets/user/{long_id}/project/p/status", "Bearer ssb_wrong", 401),
        ("POST", a, f"Bearer {t.admin_key}", 405),
        ("GET", a + "?extended=true", f"Bearer {t.a_key}", 200),
        ("GET", a + "?extended=false", f"Bearer {t.a_key}", 200),
        ("GET", a + "?extended=1", f"Bearer {t.a_key}", 200),
        ("GET", a + "?extended=TRUE&other=x", f"Bearer {t.a_key}", 400),  # unknown: refused
        ("GET", a + "?extended=true&extended=false", f"Bearer {t.a_key}", 200),
        ("GET", a + "?extended=false&extended=yes", f"Bearer {t.a_key}", 200),
        ("GET", a + "?unrelated=1", f"Bearer {t.a_key}", 400),
        ("GET", a + "?extended=TRUE", f"Bearer {t.a_key}", 200),
        ("GET", b + "?extended=true", f"Bearer {t.a_key}", 404),
        ("GET", a + "?extended=true", "Bearer ssb_wrong", 401),
        ("GET", a_balance, f"Bearer {t.admin_key}", 200),
        ("GET", a_balance, f"Bearer {t.a_key}", 200),
        ("GET", a_balance + "?extended=maybe", f"Bearer {t.a_read_key}", 400),
        ("GET", a_balance + "?api_key=x", f"Bearer {t.a_read_key}", 400),
        ("GET", b_balance, f"Bearer {t.a_key}", 404),
        ("GET", a_balance, f"Bearer {t.pricing_key}", 404),
        ("GET", a_balance, "Bearer ssb_wrong", 401),
        ("GET", a_balance, None, 401),
        ("GET", account_path(("ghost", "p")) + "/balance", f"Bearer {t.admin_key}", 404),
        ("GET", "/api/v1/budgets/user/u%2Fx/project/p%25/balance", f"Bearer {t.admin_key}", 200),
        ("GET", f"/api/v1/budgets/user/{long_id}/project/p/balance", f"Bearer {t.admin_key}", 400),
        ("POST", a_balance, f"Bearer {t.admin_key}", 405),
    ]
    for method, path, authorization, expected in cases:
        headers = {} if authorization is None else {"Authorization": authorization}
        assert await same_answer(pair, method, path, headers) == expected, (path, authorization)


async def test_both_forms_match_the_route_and_have_their_keys(pair: Pair) -> None:
    t = pair.service.tenants
    await pair.service.ledger.set_policy(
        *t.a, BudgetPolicy(daily_limit=Decimal(10), low_balance_threshold=Decimal(500))
    )
    path, headers = account_path(t.a) + "/status", {"Authorization": f"Bearer {t.a_key}"}
    spec_keys = set(BudgetStatus.SPEC_KEYS)
    plain = await pair.fast.get(path, headers=headers)
    assert set(loads(plain.content)) == spec_keys
    assert await same_answer(pair, "GET", path, headers) == 200
    extended_path = path + "?extended=true"
    extended = loads((await pair.fast.get(extended_path, headers=headers)).content)
    assert set(extended) == spec_keys | {"low_balance_threshold", "currency", "timezone", "as_of"}
    assert BudgetStatus.from_data(extended).low_balance_warning
    assert await same_answer(pair, "GET", extended_path, headers) == 200


async def test_a_malformed_extended_is_left_to_the_route(pair: Pair) -> None:
    # The fast path passes it on (the route's own 400, or its 401 first for a wrong key):
    # with the FastAPI route open again, both apps answer alike.
    pair.service.app.dependency_overrides.clear()
    t = pair.service.tenants
    path = account_path(t.a) + "/status?extended=maybe"
    for authorization, expected in [(f"Bearer {t.a_key}", 400), ("Bearer ssb_wrong", 401)]:
        headers = {"Authorization": authorization}
        assert await same_answer(pair, "GET", path, headers) == expected
    answer = await pair.fast.get(path, headers={"Authorization": f"Bearer {t.a_key}"})
    assert loads(answer.content)["error"] == "InvalidInputError"


async def test_backend_failures_match_the_route(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = pair.service.tenants
    path, headers = account_path(t.a) + "/status", {"Authorization": f"Bearer {t.a_key}"}
    backends = [pair.service.app.state.backend, pair.plain_app.state.backend]
    for error, status in [(BackendUnavailableError("ledger down"), 503), (RuntimeError("x"), 500)]:

        async def failing(user_id: str, project_id: str, error: Exception = error) -> None:
            raise error

        for backend in backends:
            monkeypatch.setattr(backend, "get_budget_status", failing)
            monkeypatch.setattr(backend, "get_balance", failing)
        assert await same_answer(pair, "GET", path, headers) == status
        balance = account_path(t.a) + "/balance"
        assert await same_answer(pair, "GET", balance, headers) == status


async def test_rate_limits_match_the_route(database_url: str) -> None:
    async for pair in make_pair(database_url, rate_limit_per_second=0.5, rate_limit_burst=2):
        t = pair.service.tenants
        path, headers = account_path(t.a) + "/status", {"Authorization": f"Bearer {t.a_key}"}
        codes = [await same_answer(pair, "GET", path, headers) for _ in range(3)]
        assert codes == [200, 200, 429]
        wrong = {"Authorization": "Bearer ssb_wrong"}
        codes = [await same_answer(pair, "GET", path, wrong) for _ in range(3)]
        assert codes == [401, 401, 429]  # failed attempts are limited per client address


async def test_repeated_and_changed_status_bodies_match_the_route(pair: Pair) -> None:
    """Bodies kept between answers (with a new ``as_of`` each time) stay byte for byte what
    the route writes, and a write is seen by the very next answer, in both forms."""
    t = pair.service.tenants
    headers = {"Authorization": f"Bearer {t.a_key}"}
    path = account_path(t.a) + "/status"
    for round_number in range(3):
        for form in (path, path + "?extended=true"):
            for _ in range(3):
                assert await same_answer(pair, "GET", form, headers) == 200
            first = loads((await pair.fast.get(form, headers=headers)).content)
            assert first["total_balance"] == Decimal(100) + round_number
        await pair.service.ledger.deposit(*t.a, Decimal(1), idempotency_key=f"r{round_number}")


def test_an_extended_body_gets_each_answers_instant() -> None:
    rendered = RenderedStatus()
    base = BudgetStatus(
        total_balance=Decimal("5.5"),
        available_balance=Decimal("5.5"),
        reserved_amount=Decimal(0),
        spent_today=Decimal(0),
        spent_this_month=Decimal(0),
        spent_total=Decimal(0),
        currency="USDC",
        timezone="UTC",
    )
    instants = [
        datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 28, 13, 0, tzinfo=timezone(timedelta(hours=2))),
        None,
    ]
    for status in [base.model_copy(update={"as_of": at}) for at in instants] * 2:
        for extended in (False, True):
            expected = dumps(spec_shaped(status, extended)).encode()
            assert rendered.body("u", "p", extended, status) == expected
    changed = base.model_copy(update={"total_balance": Decimal("4.5"), "as_of": instants[0]})
    assert rendered.body("u", "p", True, changed) == dumps(spec_shaped(changed, True)).encode()


async def test_status_answers_are_counted_and_timed_like_routed_ones(pair: Pair) -> None:
    """The fast path runs ahead of the metrics middleware, so it records its own answers: by
    route template and status code, never by concrete path."""
    t = pair.service.tenants
    path = account_path(t.a) + "/status"
    for authorization in (f"Bearer {t.a_key}", f"Bearer {t.a_key}", "Bearer ssb_wrong"):
        await pair.fast.get(path, headers={"Authorization": authorization})
    await pair.fast.get(
        account_path(t.b) + "/status", headers={"Authorization": f"Bearer {t.a_key}"}
    )
    text = generate_latest(pair.service.app.state.metrics.registry).decode()
    route = 'route="/api/v1/budgets/user/{user_id}/project/{project_id}/status"'
    for code, count in (("200", 2), ("401", 1), ("404", 1)):
        assert f'requests_total{{method="GET",{route},status="{code}"}} {count}.0' in text
    assert f'duration_seconds_count{{method="GET",{route}}} 4.0' in text


async def test_a_status_request_with_a_body_is_left_to_the_route(pair: Pair) -> None:
    pair.service.app.dependency_overrides.clear()
    t = pair.service.tenants
    path = account_path(t.a) + "/status"
    headers = {"Authorization": f"Bearer {t.a_key}", "Content-Type": "application/json"}
    fast = await pair.fast.request("GET", path, headers=headers, content=b"{}")
    plain = await pair.plain.request("GET", path, headers=headers, content=b"{}")
    assert (fast.status_code, _AS_OF.sub("", fast.text)) == (
        plain.status_code,
        _AS_OF.sub("", plain.text),
    )
    text = generate_latest(pair.service.app.state.metrics.registry).decode()
    assert 'status="200"} 1.0' in text  # counted once, by the metrics middleware


def test_an_equal_amount_written_differently_is_written_anew() -> None:
    rendered = RenderedStatus()
    amounts = {
        "available_balance": Decimal(1),
        "reserved_amount": Decimal(0),
        "spent_today": Decimal(0),
        "spent_this_month": Decimal(0),
        "spent_total": Decimal(0),
    }
    first = BudgetStatus(total_balance=Decimal("1.0"), **amounts)
    second = BudgetStatus(total_balance=Decimal("1.00"), **amounts)
    assert b'"total_balance": 1.0,' in rendered.body("u", "p", False, first)
    assert b'"total_balance": 1.00,' in rendered.body("u", "p", False, second)


async def test_of_two_authorization_headers_the_first_counts_as_for_the_route(
    pair: Pair,
) -> None:
    t = pair.service.tenants
    path = account_path(t.a) + "/status"
    for keys in ((t.a_key, "ssb_wrong"), ("ssb_wrong", t.a_key)):
        headers = [("Authorization", f"Bearer {key}") for key in keys]
        fast = await pair.fast.get(path, headers=headers)
        plain = await pair.plain.get(path, headers=headers)
        assert fast.status_code == plain.status_code
        assert _AS_OF.sub("", fast.text) == _AS_OF.sub("", plain.text)
    assert fast.status_code == 401  # the wrong key came first
