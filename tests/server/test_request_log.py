"""One JSON line per request and per unexpected error, with ids to search by, never a key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from tests.server.conftest import Service, account_path

from smartspace_budget.server.log_format import (
    DropDuplicateErrors,
    JsonFormatter,
    TextFormatter,
    log_config,
)
from smartspace_budget.server.request_log import REQUEST_LOGGER

STATUS = "/api/v1/budgets/user/{user_id}/project/{project_id}/status"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the request logger writes, as JSON lines (as ``serve --log-format json``)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(REQUEST_LOGGER)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_request_is_one_json_line_without_the_key(
    service: Service, log_lines: io.StringIO
) -> None:
    t = service.tenants
    status = account_path(t.a) + "/status"
    await service.client.get(status, headers=service.auth(t.a_key))  # fast path
    await service.client.get("/api/v1/budgets/accounts", headers=service.auth(t.a_read_key))
    await service.client.get(account_path(t.a) + "/balance", headers=service.auth(t.b_key))
    await service.client.get("/docs")
    await service.client.get(status, headers={"Authorization": "Bearer ssb_wrong_key_456"})
    await service.client.get("/healthz", headers={"X-Request-ID": "trace-7"})
    await service.client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    too_big = await service.client.post(
        "/api/v1/ledger/user/u%2Fx/project/p/deposit",
        content=b"{" + b" " * 70_000 + b"}",
        headers=service.auth(t.admin_key),
    )
    assert too_big.status_code == 413
    records = _records(log_lines)
    assert [(r["route"], r["status"]) for r in records] == [
        (STATUS, 200),
        ("/api/v1/budgets/accounts", 200),
        ("/api/v1/budgets/user/{user_id}/project/{project_id}/balance", 404),
        ("/docs", 200),
        (STATUS, 401),
        ("/healthz", 200),
        ("/healthz", 200),
        ("unmatched", 413),  # refused before any route read it
    ]
    first = records[0]
    assert first["message"] == "request"
    assert first["level"] == "info"
    assert first["method"] == "GET"
    assert (first["user_id"], first["project_id"]) == t.a
    assert first["key_id"].startswith("key_")
    assert records[2]["user_id"] == t.b[0]  # the caller's account, not the one asked for
    assert "key_id" not in records[4]  # a wrong key has no id
    assert records[5]["request_id"] == "trace-7"
    assert records[6]["request_id"] != "bad id\twith spaces"
    assert len({r["request_id"] for r in records}) == len(records)
    assert all(r["duration_ms"] >= 0 for r in records)
    text = log_lines.getvalue()
    for raw in (t.a_key, t.a_read_key, t.b_key, "ssb_wrong_key_456"):
        assert raw not in text
        assert raw.removeprefix("ssb_") not in text


async def test_an_unexpected_error_logs_its_line_and_the_request_line(
    service: Service, log_lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = service.tenants

    async def broken(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service.app.state.context.backend, "get_budget_status", broken)
    monkeypatch.setattr(service.app.state.context.backend, "list_accounts", broken)
    for path in (account_path(t.a) + "/status", "/api/v1/budgets/accounts"):
        with pytest.raises(RuntimeError):  # re-raised to the server, which closes the request
            await service.client.get(path, headers=service.auth(t.a_key))
    records = _records(log_lines)
    errors = [r for r in records if r["message"] == "unexpected error"]
    requests = [r for r in records if r["message"] == "request"]
    assert [r["route"] for r in errors] == [STATUS, "/api/v1/budgets/accounts"]
    assert [r["status"] for r in requests] == [500, 500]
    for error, request in zip(errors, requests, strict=True):
        assert error["request_id"] == request["request_id"]
        assert error["error"] == "RuntimeError"
        assert "disk on fire" in error["exc_info"]
        assert error["level"] == request["level"] == "error"
    assert t.a_key not in log_lines.getvalue()


async def test_ids_with_encoded_slashes_are_logged_by_their_route(
    service: Service, log_lines: io.StringIO
) -> None:
    t = service.tenants
    path = "/api/v1/budgets/user/a%2Fb/project/p%2Fq/spending/daily"
    response = await service.client.get(path, headers=service.auth(t.admin_key))
    [record] = _records(log_lines)
    assert record["status"] == response.status_code
    assert (
        record["route"] == "/api/v1/budgets/user/{user_id}/project/{project_id}/spending/{period}"
    )
    metrics = await service.client.get("/metrics", headers=service.auth(t.admin_key))
    assert 'route="/api/v1/budgets/user/{user_id}/project/{project_id}/spending/{period}"' in (
        metrics.text
    )


def test_text_lines_carry_the_same_fields() -> None:
    record = logging.LogRecord(REQUEST_LOGGER, logging.INFO, __file__, 1, "request", None, None)
    record.request = {"request_id": "r1", "route": "/healthz", "status": 200}
    line = TextFormatter().format(record)
    assert line.endswith("request request_id=r1 route=/healthz status=200")
    assert "\n" not in line


def test_the_log_config_sends_uvicorn_and_the_service_through_one_format() -> None:
    config = log_config("json", "warning")
    assert config["formatters"]["service"]["()"].endswith("JsonFormatter")
    assert config["loggers"]["smartspace_budget"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"]["handlers"] == []  # one line per request, ours
    assert log_config("text")["formatters"]["service"]["()"].endswith("TextFormatter")


def test_uvicorns_own_line_for_an_error_already_logged_is_dropped() -> None:
    def record(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, None)

    only_once = DropDuplicateErrors()
    assert not only_once.filter(record("uvicorn.error", "Exception in ASGI application\n"))
    assert only_once.filter(record("uvicorn.error", "Application startup failed."))
    assert only_once.filter(record(REQUEST_LOGGER, "unexpected error"))
