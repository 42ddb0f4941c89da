"""Strict doors of the service (issue 16), on SQLite and PostgreSQL.

The amount grammar at the HTTP and library doors (the CLI's is in tests/cli), strict JSON,
strict types, one id grammar, no 5xx and no driver text for bad input, keys only from the
``Authorization`` header. Every refusal must leave the ledger as it was.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.amount_cases import ACCEPTED, JSON_NUMBER_SHAPED, REFUSED
from tests.backend.live import ADMIN_KEY, ServiceThread, running_service

from smartspace_budget.backend.http import HttpBackend
from smartspace_budget.errors import BackendUnavailableError, InvalidInputError
from smartspace_budget.models import DepositRequest
from smartspace_budget.money import parse_amount
from smartspace_budget.server.responses import error_response

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('doors')) / 'l.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with running_service(url) as service:
        yield service


@pytest.fixture(scope="module")
def client(live: ServiceThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers=AUTH, timeout=30) as http:
        yield http


def _post(client: httpx.Client, path: str, body: str) -> httpx.Response:
    headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    return client.post(path, content=body.encode("utf-8"), headers=headers)


def _account(name: str) -> tuple[str, str]:
    return f"{name}-{uuid.uuid4().hex[:8]}", "p"


def _write(account: tuple[str, str], action: str) -> str:
    return f"/api/v1/ledger/user/{account[0]}/project/{account[1]}/{action}"


def _state(client: httpx.Client, account: tuple[str, str]) -> tuple[Any, ...]:
    """Balance, policy and spending of an account, and whether it exists at all, for
    "nothing changed" (404 before any write)."""
    base = f"/api/v1/budgets/user/{account[0]}/project/{account[1]}"
    balance = client.get(base + "/balance")
    policy = client.get(base + "/policy")
    spent = client.get(base + "/spending/yearly")
    listed = [
        a for a in client.get("/api/v1/budgets/accounts").json() if a["user_id"] == account[0]
    ]
    shown = balance.json() if balance.status_code == 200 else balance.text
    if isinstance(shown, dict):
        shown.pop("as_of", None)  # the instant it was read, not a state
    return (
        (balance.status_code, shown),
        (policy.status_code, policy.text),
        (spent.status_code, spent.text),
        listed,
    )


def _refused(response: httpx.Response, *names: str) -> dict[str, str]:
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    for name in names:
        assert name in body["detail"], body
    for leak in ("SELECT", "INSERT", "asyncpg", "sqlalchemy", "Traceback", "ledger_entries"):
        assert leak not in body["detail"]
    return body  # type: ignore[no-any-return]


# --- the amount grammar -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "amount"), ACCEPTED)
def test_http_deposits_exactly_what_the_grammar_accepts(
    client: httpx.Client, text: str, amount: Decimal
) -> None:
    account = _account("ok")
    answer = _post(client, _write(account, "deposit"), f'{{"amount": {text}}}')
    assert answer.status_code == 200, answer.text
    entry = json.loads(answer.text, parse_float=Decimal)
    assert Decimal(entry["amount"]) == amount
    assert Decimal(entry["balance_after"]) == amount


@pytest.mark.parametrize("text", REFUSED)
def test_http_refuses_what_the_grammar_refuses(client: httpx.Client, text: str) -> None:
    account = _account("bad")
    before = _state(client, account)
    bodies = [json.dumps({"amount": text})]  # as a string: never an amount on the wire
    if text in JSON_NUMBER_SHAPED:
        bodies.append(f'{{"amount": {text}}}')  # as a JSON number: judged from its raw text
    elif text.strip() == text:  # (spaces around a JSON number are JSON's own whitespace)
        bodies.append('{"amount": ' + text + "}")  # not JSON at all
    for body in bodies:
        _refused(_post(client, _write(account, "deposit"), body))
    assert _state(client, account) == before


@pytest.mark.parametrize(("text", "amount"), ACCEPTED)
def test_library_strings_follow_the_grammar(text: str, amount: Decimal) -> None:
    assert parse_amount(text) == amount
    assert DepositRequest.from_data({"amount": text}).amount == amount


@pytest.mark.parametrize("text", REFUSED)
def test_library_strings_refuse_what_the_grammar_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError):
        DepositRequest.from_data({"amount": text})
    if text not in {"1000000000"}:  # in range of the library's Decimal arithmetic only
        with pytest.raises(InvalidInputError):
            parse_amount(text)


async def test_http_backend_rounds_computed_decimals_as_the_ledger_does(
    live: ServiceThread,
) -> None:
    """A Decimal a program computed (more than nine decimals) is not text a person typed:
    ``HttpBackend`` rounds it half-even to nano-USDC, as ``LocalBackend`` does."""
    user, project = _account("computed")
    async with HttpBackend(live.url, ADMIN_KEY) as remote:
        entry = await remote.deposit(
            user, project, Decimal("1.0000000015"), idempotency_key=uuid.uuid4().hex
        )
        assert entry.amount == Decimal("1.000000002")
        with pytest.raises(InvalidInputError):
            await remote.deposit(user, project, "1.0000000015", idempotency_key="typed")  # type: ignore[arg-type]


# --- strict JSON and strict types -----------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body", "names"),
    [
        ("deposit", '{"amount": 1, "amount": 1000000}', ["amount", "more than once"]),
        (
            "usage",
            '{"provider": "openai", "model": "gpt-4o", "actual_cost": 5, "actual_cost": 0}',
            ["actual_cost"],
        ),
        ("usage", '{"provider": "o", "model": "m", "actual_cost": 1, "input_tokens": "10"}', []),
        ("usage", '{"provider": "o", "model": "m", "actual_cost": 1, "input_tokens": true}', []),
        ("usage", '{"provider": "o", "model": "m", "actual_cost": 1, "web_searches": 1.5}', []),
        ("usage", '{"provider": "o", "model": "m", "actual_cost": 1, "cost_is_estimate": 0}', []),
        ("usage", '{"provider": "o", "model": "m", "actual_cost": 1, "occurred_at": 0.5}', []),
        ("usage", '{"provider": "o", "model": "m", "actual_cost": 1e29}', ["actual_cost"]),
        ("usage", '{"provider": "o\\u202e", "model": "m", "actual_cost": 1}', ["provider"]),
        ("usage", '{"provider": "o", "model": "m\\n", "actual_cost": 1}', ["model"]),
        ("reserve", '{"amount": 1, "ttl_seconds": true}', ["ttl_seconds"]),
        ("reserve", '{"amount": 1, "ttl_seconds": "5"}', ["ttl_seconds"]),
        ("adjust", '{"amount": 1, "reason": "a\\u0000b"}', ["reason"]),
        ("deposit", "[" * 30000 + "]" * 30000, ["nests"]),
        ("deposit", '{"amount": ' + "1" * 5000 + "}", ["amount"]),
        ("deposit", '{"amount": NaN}', []),
        ("policy", '{"daily_limit": "10"}', ["daily_limit"]),
    ],
)
def test_bad_bodies_are_refused_by_name_and_change_nothing(
    client: httpx.Client, action: str, body: str, names: list[str]
) -> None:
    account = _account("strict")
    typed = ("input_tokens", "web_searches", "cost_is_estimate", "occurred_at")
    expected = names or [name for name in typed if name in body]
    before = _state(client, account)
    method = "PUT" if action == "policy" else "POST"
    headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    answer = client.request(method, _write(account, action), content=body, headers=headers)
    _refused(answer, *expected)
    assert answer.status_code == 400
    assert _state(client, account) == before


# --- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["%FF", "%FE", "%C3", "%EF%BF%BD", "a%00", "a%0Ab", "%E2%80%AEevil", "a%09b", "x" * 201]
)
def test_bad_ids_are_refused_never_mapped(client: httpx.Client, raw: str) -> None:
    deposit = f"/api/v1/ledger/user/{raw}/project/p/deposit"
    _refused(_post(client, deposit, '{"amount": 1}'), "user_id")
    for path in (
        f"/api/v1/budgets/user/{raw}/project/p/balance",
        f"/api/v1/budgets/user/{raw}/project/p/status",
        f"/api/v1/pricing/provider/{raw}/model/gpt-4o",
        f"/api/v1/pricing/provider/{raw}/model/gpt-4o/history",
        f"/api/v1/pricing/models?provider={raw}",
        f"/api/v1/budgets/user/{raw}/project/p/replay",
        f"/api/v1/budgets/user/u/project/p/output-history?provider={raw}&model=gpt-4o",
        f"/api/v1/budgets/user/u/project/p/output-history?provider=openai&model={raw}",
        f"/api/v1/budgets/user/u/project/p/replay?target={raw}/gpt-4o",
        f"/api/v1/budgets/user/u/project/p/replay?target=openai/{raw}",
    ):
        answer = client.get(path)
        assert answer.status_code == 400, (path, answer.text)
        _refused(answer)
    accounts = client.get("/api/v1/budgets/accounts").json()
    assert not any("\ufffd" in a["user_id"] for a in accounts)


_OWN = "/api/v1/budgets/user/u/project/p"
_T0, _T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/pricing/provider/openai/model/gpt-4o?at=0.5", "at"),
        ("/api/v1/pricing/provider/openai/model/gpt-4o?at=1700000000", "at"),
        ("/api/v1/pricing/provider/openai/model/gpt-4o?at=2025-01-01T00:00:00", "at"),
        ("/api/v1/budgets/user/u/project/p/spending/daily?at=0.5", "at"),
        ("/api/v1/budgets/user/u/project/p/analytics?at=0117-01-01T00:00:00Z", "at"),
        ("/api/v1/budgets/user/u/project/p/series?granularity=daily&start=0&end=1", "start"),
        ("/api/v1/budgets/user/u/project/p/status?extended=true&api_key=x", "api_key"),
        ("/api/v1/budgets/user/u/project/p/balance?extended=true", "extended"),
        ("/api/v1/pricing/models?provider=a%00", "provider"),
        (f"{_OWN}/output-history?provider=a%00&model=gpt-4o", "provider"),
        (f"{_OWN}/output-history?provider=openai&model=%E2%80%AEx", "model"),
        (f"{_OWN}/output-history?provider=openai", "model"),
        (f"{_OWN}/output-history?provider=openai&model=gpt-4o&min_samples=true", "min_samples"),
        (f"{_OWN}/usage-shapes?start=0&end=1", "start"),
        (f"{_OWN}/usage-shapes?start=2026-01-01T00:00:00&end={_T1}", "start"),
        (f"{_OWN}/usage-shapes?start={_T0}", "end"),
        (f"{_OWN}/replay?target=no-slash", "target"),
        (f"{_OWN}/replay?target=/gpt-4o", "target"),
        (f"{_OWN}/replay?target=openai/", "target"),
        (f"{_OWN}/replay?target=openai/a%00", "target"),
        (f"{_OWN}/replay?" + "&".join(["target=openai/gpt-4o"] * 51), "target"),
        (f"{_OWN}/replay?start=1700000000&end={_T1}", "start"),
        (f"{_OWN}/replay?period=fortnightly", "period"),
    ],
)
def test_bad_query_values_are_400_by_name(client: httpx.Client, path: str, name: str) -> None:
    answer = client.get(path)
    body = _refused(answer, name)
    assert answer.status_code == 400, body


@pytest.mark.parametrize(
    ("query", "name"),
    [
        (f"replay?start={_T0}", "end"),
        (f"replay?end={_T1}", "start"),
        (f"replay?period=daily&start={_T0}&end={_T1}", "period"),
        (f"replay?at={_T0}&start={_T0}&end={_T1}", "at"),
        (f"replay?start={_T1}&end={_T0}", "end"),
        (f"usage-shapes?start={_T1}&end={_T0}", "end"),
    ],
)
def test_contradictory_windows_are_422_by_name(client: httpx.Client, query: str, name: str) -> None:
    """Each value well formed, together impossible: 422 naming the field, as for a series."""
    account = _account("window")
    assert _post(client, _write(account, "deposit"), '{"amount": 1}').status_code == 200
    answer = client.get(f"/api/v1/budgets/user/{account[0]}/project/{account[1]}/{query}")
    body = _refused(answer, name)
    assert answer.status_code == 422, body
    assert body["error"] == "InconsistentInputError"
    fine = client.get(f"/api/v1/budgets/user/{account[0]}/project/{account[1]}/replay")
    assert fine.status_code == 200, fine.text


def test_a_server_side_failure_answers_no_internals() -> None:
    leaked = BackendUnavailableError(
        "the ledger database failed: (asyncpg.exceptions.CharacterNotInRepertoireError) "
        "invalid byte sequence [SQL: SELECT prices.version FROM prices WHERE provider = $1]"
    )
    answer = error_response(leaked)
    body = json.loads(bytes(answer.body))
    assert answer.status_code == 503
    assert set(body) == {"error", "detail"}
    assert "SELECT" not in body["detail"]
    assert "asyncpg" not in body["detail"]


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_key_in_the_query_is_neither_taken_nor_logged(live: ServiceThread) -> None:
    recorder = _Recorder()
    names = ["", "smartspace_budget", "smartspace_budget.requests", "uvicorn", "uvicorn.access"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(recorder)
        logger.setLevel(logging.DEBUG)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as anonymous:
            answer = anonymous.get(f"/api/v1/budgets/accounts?api_key={ADMIN_KEY}")
        served: list[logging.LogRecord] = []
        for _ in range(100):  # the request line is written just after the answer is sent
            served = [r for r in recorder.records if r.name.startswith("smartspace_budget")]
            if served:
                break
            time.sleep(0.05)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(recorder)
            logger.setLevel(level)
    assert answer.status_code == 400  # an undeclared query parameter: refused, not read
    assert ADMIN_KEY not in answer.text
    assert served  # the service's own request line was captured
    server_side = [r for r in recorder.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "uvicorn.access" for r in server_side)  # its access line, redacted
    for record in server_side:  # (httpx and httpcore are this test's own client)
        assert ADMIN_KEY not in record.getMessage()
        assert ADMIN_KEY not in repr(getattr(record, "request", ""))


# --- properties: what is accepted round-trips exactly, what is refused changes nothing -------

_AMOUNTS = st.decimals(
    min_value=Decimal("0.000000001"),
    max_value=Decimal("999999999.999999999"),
    places=9,
    allow_nan=False,
    allow_infinity=False,
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_ODD_NUMBERS = st.sampled_from(
    ["1e5", "1E-3", "0.1234567891", "1000000000", "-1", "0", "-0.0", "1" * 40, "2.50"]
)


def _body(value: Any) -> str:
    if isinstance(value, Decimal):
        return '{"amount": ' + format(value, "f") + "}"
    if isinstance(value, str) and value[:1] in "-0123456789":
        return '{"amount": ' + value + "}"
    return json.dumps({"amount": value})


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(value=st.one_of(_AMOUNTS, _ODD_NUMBERS, _JSON))
def test_deposits_round_trip_exactly_or_change_nothing(client: httpx.Client, value: Any) -> None:
    account = _account("prop")
    before = _state(client, account)
    body = _body(value)
    answer = _post(client, _write(account, "deposit"), body)
    if answer.status_code == 200:
        sent = json.loads(body, parse_float=Decimal)["amount"]
        entry = json.loads(answer.text, parse_float=Decimal)
        assert Decimal(entry["amount"]) == Decimal(sent)
        assert Decimal(entry["balance_after"]) == Decimal(sent)
    else:
        _refused(answer)
        assert _state(client, account) == before


_LIMIT = st.one_of(st.none(), _AMOUNTS, _ODD_NUMBERS, st.booleans(), st.text(max_size=4))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    limits=st.dictionaries(
        st.sampled_from(
            ["daily_limit", "monthly_limit", "per_request_limit", "low_balance_threshold", "other"]
        ),
        _LIMIT,
        max_size=4,
    )
)
def test_policies_round_trip_exactly_or_change_nothing(
    client: httpx.Client, limits: dict[str, Any]
) -> None:
    account = _account("policy")
    base = f"/api/v1/budgets/user/{account[0]}/project/{account[1]}"
    before = _state(client, account)
    body = "{" + ", ".join(f"{json.dumps(k)}: {_body(v)[11:-1]}" for k, v in limits.items()) + "}"
    headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    answer = client.put(_write(account, "policy"), content=body, headers=headers)
    if answer.status_code == 200:
        sent = json.loads(body, parse_float=Decimal)
        for stored in (answer.text, client.get(base + "/policy").text):
            policy = json.loads(stored, parse_float=Decimal)
            for key, value in sent.items():
                assert policy[key] == (None if value is None else Decimal(value)), (key, stored)
    else:
        _refused(answer)
        assert _state(client, account) == before


_COUNT = st.one_of(st.integers(0, 10**6), st.integers(), st.booleans(), st.text(max_size=3))


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    cost=st.one_of(_AMOUNTS, _ODD_NUMBERS),
    counts=st.dictionaries(
        st.sampled_from(["input_tokens", "cached_input_tokens", "web_searches", "nope"]),
        _COUNT,
        max_size=3,
    ),
)
def test_usage_is_charged_exactly_or_changes_nothing(
    client: httpx.Client, cost: Any, counts: dict[str, Any]
) -> None:
    account = _account("usage")
    funded = _post(client, _write(account, "deposit"), '{"amount": 999999999}')
    assert funded.status_code == 200
    before = _state(client, account)
    fields = ['"provider": "openai"', '"model": "gpt-4o"', f'"actual_cost": {_body(cost)[11:-1]}']
    fields += [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in counts.items()]
    body = "{" + ", ".join(fields) + "}"
    answer = _post(client, _write(account, "usage"), body)
    if answer.status_code == 200:
        charged = json.loads(body, parse_float=Decimal)["actual_cost"]
        entry = json.loads(answer.text, parse_float=Decimal)
        assert Decimal(entry["amount"]) == -Decimal(charged)
        assert Decimal(entry["balance_after"]) == Decimal(999999999) - Decimal(charged)
    else:
        _refused(answer)
        assert _state(client, account) == before
