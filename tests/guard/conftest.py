"""Fixtures: the fake provider server, a ledger, a pricing engine and a guard over them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from smartspace_budget.guard import Guard, Portal

# Tests import tests.<dir>.<helper>; the bare helper names still resolve for older tests.
sys.path.insert(0, str(Path(__file__).parent))

from tests.guard.guard_fakes import FakeLedger, FakePricing
from tests.guard.guard_provider_server import Behaviour, ProviderServer, start


@pytest.fixture(scope="module")
def provider_server() -> Iterator[ProviderServer]:
    yield from start(ProviderServer())


@pytest.fixture
def server(provider_server: ProviderServer) -> ProviderServer:
    provider_server.behaviour = Behaviour()
    provider_server.requests.clear()
    return provider_server


@pytest.fixture
def ledger() -> FakeLedger:
    return FakeLedger(Decimal("10"))


@pytest.fixture
def pricing() -> FakePricing:
    return FakePricing()


@pytest.fixture
def portal() -> Iterator[Portal]:
    portal = Portal()
    yield portal
    portal.close()


@pytest.fixture
def guard(ledger: FakeLedger, pricing: FakePricing, portal: Portal) -> Guard:
    return Guard(ledger, pricing, user_id="u", project_id="p", portal=portal)  # type: ignore[arg-type]
