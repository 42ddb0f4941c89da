"""HttpBackend when the service is down, hung, failing or slow, and when it comes back."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    BudgetExceededError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    SmartspaceBudgetError,
    UnauthorizedError,
)
from smartspace_budget.models import UsageEvent, loads

from .conftest import ControlledServer, Reply

DEADLINE = 0.5
ENTRY = (
    b'{"entry_id": "e1", "user_id": "u", "project_id": "p", "kind": "usage", '
    b'"amount": -0.000000001, "balance_after": 99.999999999, '
    b'"occurred_at": "2026-01-13T12:00:00Z", "provider": "openai", "model": "gpt-4"}'
)


def client(server: ControlledServer, **options: object) -> HttpBackend:
    settings: dict[str, object] = {"deadline": DEADLINE, "status_ttl": 0, "backoff": 0.01}
    settings.update(options)
    return HttpBackend(server.url, "ssb_secret", **settings)  # type: ignore[arg-type]


async def timed(backend: HttpBackend) -> tuple[float, object]:
    started = time.monotonic()
    try:
        result: object = await backend.get_balance("u", "p")
    except SmartspaceBudgetError as exc:
        result = exc
    return time.monotonic() - started, result


async def test_answer_is_parsed_with_exact_decimals(controlled: ControlledServer) -> None:
    async with client(controlled) as backend:
        balance = await backend.get_balance("u", "p")
    assert balance.total_balance == Decimal("100.000000001")
    assert str(balance.reserved_amount) == "4.500000001"
    seen = controlled.seen[0]
    assert seen.path == "/api/v1/budgets/user/u/project/p/balance"
    assert seen.headers["authorization"] == "Bearer ssb_secret"


async def test_service_down_raises_unavailable_within_deadline_then_recovers(
    controlled: ControlledServer,
) -> None:
    async with client(controlled) as backend:
        await backend.get_balance("u", "p")  # a pooled keep-alive connection now exists
        await controlled.stop()
        elapsed, result = await timed(backend)
        assert isinstance(result, BackendUnavailableError)
        assert elapsed < DEADLINE + 0.1
        await controlled.start()  # back on the same port; the pooled connection is dead
        elapsed, result = await timed(backend)
        assert not isinstance(result, Exception), result
        assert result.total_balance == Decimal("100.000000001")  # type: ignore[attr-defined]


async def test_hung_service_raises_timeout_at_the_deadline(controlled: ControlledServer) -> None:
    controlled.script = [Reply(hang=True)]
    async with client(controlled) as backend:
        elapsed, result = await timed(backend)
        assert isinstance(result, BackendTimeoutError)
        assert DEADLINE - 0.05 < elapsed < DEADLINE + 0.2
        # The hung connection is abandoned; the next call works.
        elapsed, result = await timed(backend)
        assert not isinstance(result, Exception), result


async def test_server_errors_are_retried_a_bounded_number_of_times(
    controlled: ControlledServer,
) -> None:
    controlled.default = Reply(status=500, body=b'{"error": "X", "detail": "db down"}')
    async with client(controlled, max_retries=3) as backend:
        elapsed, result = await timed(backend)
        assert isinstance(result, BackendUnavailableError)
        assert "db down" in result.detail
        assert len(controlled.seen) == 4
        assert elapsed < DEADLINE + 0.1
        controlled.default = Reply()
        _, result = await timed(backend)
        assert not isinstance(result, Exception)


async def test_a_transient_500_is_hidden_by_a_retry(controlled: ControlledServer) -> None:
    controlled.script = [Reply(status=503, body=b"<html>bad gateway</html>"), Reply(drop=True)]
    async with client(controlled) as backend:
        balance = await backend.get_balance("u", "p")
    assert balance.available_balance == Decimal("95.5")
    assert len(controlled.seen) == 3


async def test_slow_answer_within_deadline_is_accepted(controlled: ControlledServer) -> None:
    controlled.script = [Reply(delay=0.2)]
    async with client(controlled) as backend:
        elapsed, result = await timed(backend)
    assert not isinstance(result, Exception), result
    assert 0.2 <= elapsed < DEADLINE


async def test_slow_answer_beyond_deadline_is_a_timeout(controlled: ControlledServer) -> None:
    controlled.script = [Reply(delay=DEADLINE + 0.5)]
    async with client(controlled) as backend:
        elapsed, result = await timed(backend)
        assert isinstance(result, BackendTimeoutError)
        assert elapsed < DEADLINE + 0.2
        # Once the service answers promptly again, so does the client.
        elapsed, result = await timed(backend)
        assert not isinstance(result, Exception), result
        assert elapsed < DEADLINE


async def test_attempt_timeout_lets_a_second_attempt_succeed(controlled: ControlledServer) -> None:
    controlled.script = [Reply(hang=True)]
    async with client(controlled, deadline=1.0, attempt_timeout=0.2) as backend:
        elapsed, result = await timed(backend)
    assert not isinstance(result, Exception), result
    assert elapsed < 0.6
    assert len(controlled.seen) == 2


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b'{"error": "NotFoundError", "detail": "no such account"}', NotFoundError),
        (401, b'{"error": "UnauthorizedError", "detail": "missing or invalid"}', UnauthorizedError),
        (402, b'{"error": "BudgetExceededError", "detail": "short"}', BudgetExceededError),
        (400, b'{"error": "SomethingNew", "detail": "bad"}', InvalidInputError),
        (404, b"not json", NotFoundError),
    ],
)
async def test_client_errors_are_typed_and_not_retried(
    controlled: ControlledServer, status: int, body: bytes, expected: type[Exception]
) -> None:
    controlled.default = Reply(status=status, body=body)
    async with client(controlled) as backend:
        with pytest.raises(expected):
            await backend.get_balance("u", "p")
    assert len(controlled.seen) == 1


async def test_rate_limit_carries_retry_after(controlled: ControlledServer) -> None:
    controlled.default = Reply(
        status=429,
        body=b'{"error": "RateLimitedError", "detail": "slow down"}',
        headers={"Retry-After": "7"},
    )
    async with client(controlled) as backend:
        with pytest.raises(RateLimitedError) as caught:
            await backend.get_balance("u", "p")
    assert caught.value.retry_after == 7


async def test_write_is_retried_with_the_same_idempotency_key(
    controlled: ControlledServer,
) -> None:
    controlled.script = [Reply(status=502, body=b""), Reply(drop=True), Reply(body=ENTRY)]
    usage = UsageEvent(provider="openai", model="gpt-4", actual_cost=Decimal("0.000000001"))
    async with client(controlled) as backend:
        entry = await backend.record_usage("u", "p", usage, idempotency_key="req-42")
    assert entry.amount == Decimal("-0.000000001")
    assert [s.headers["idempotency-key"] for s in controlled.seen] == ["req-42"] * 3
    assert len({s.body for s in controlled.seen}) == 1
    assert loads(controlled.seen[0].body)["actual_cost"] == Decimal("0.000000001")


async def test_ids_are_path_encoded(controlled: ControlledServer) -> None:
    async with client(controlled) as backend:
        await backend.get_balance("org/team a", "p%1")
    assert controlled.seen[0].path == "/api/v1/budgets/user/org%2Fteam%20a/project/p%251/balance"


async def test_a_write_forgets_cached_reads_of_its_account(controlled: ControlledServer) -> None:
    controlled.default = Reply()
    async with client(controlled, status_ttl=30) as backend:
        await backend.get_balance("u", "p")
        await backend.get_balance("u", "p")
        await backend.get_balance("other", "p")
        assert len(controlled.seen) == 2
        controlled.script = [Reply(body=ENTRY)]
        await backend.deposit("u", "p", Decimal(1), idempotency_key="d1")
        await backend.get_balance("u", "p")
        await backend.get_balance("other", "p")
    assert [s.path.split("/")[5] for s in controlled.seen] == ["u", "other", "u", "u"]


async def test_an_answer_of_the_wrong_shape_is_a_backend_error(
    controlled: ControlledServer,
) -> None:
    async with client(controlled) as backend:
        with pytest.raises(BackendUnavailableError, match="unexpected answer"):
            await backend.get_budget_status("u", "p")  # the server answers with a Balance


def test_repr_never_shows_the_key() -> None:
    backend = HttpBackend("http://127.0.0.1:1", "ssb_topsecret")
    assert "topsecret" not in repr(backend)
