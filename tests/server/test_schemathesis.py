"""Schemathesis over the OpenAPI document against the real service: no 5xx, answers as documented.

Runs against uvicorn on a loopback port (SQLite ledger) with an admin key, so generated
requests reach every route's logic; examples per operation are bounded to keep it short.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.backend.live import ADMIN_KEY, ServiceThread, running_service

from smartspace_budget.config import Settings
from smartspace_budget.server.app import create_app

schema = schemathesis.openapi.from_dict(create_app(Settings(database_url="sqlite://")).openapi())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    database = Path(tmp_path_factory.mktemp("fuzz")) / "ledger.sqlite3"
    with running_service(f"sqlite+aiosqlite:///{database}") as service:
        yield service


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_errors_and_answers_match_the_schema(
    case: schemathesis.Case[Any], live: ServiceThread
) -> None:
    case.call_and_validate(
        base_url=live.url,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ],
        timeout=10,
    )
