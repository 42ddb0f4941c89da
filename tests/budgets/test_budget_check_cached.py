"""A cached budget check: one cache layer, the request parsed once, the answer built without
re-validation (issue 20), and still the same answer as the validated model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import BudgetTracker
from smartspace_budget.ledger.ledger import Ledger
from smartspace_budget.models import BudgetCheck, BudgetPolicy
from smartspace_budget.prices.catalog import PriceBook

U, P = "kim", "p"


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    opened = await Ledger.connect(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    await opened.deposit(U, P, Decimal("10"), idempotency_key="d")
    await opened.set_policy(
        U, P, BudgetPolicy(per_request_limit=Decimal("2"), daily_limit=Decimal("3"))
    )
    yield opened
    await opened.close()


def _validated(check: BudgetCheck) -> BudgetCheck:
    """The same check through pydantic's validation, field by field."""
    fields = {name: getattr(check, name) for name in BudgetCheck.model_fields}
    return BudgetCheck.model_validate(fields)


async def test_a_cached_check_reads_one_cache_and_fetches_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(ledger, PriceBook.in_memory(genai_prices=False))
    tracker = BudgetTracker(backend)
    fetched: list[str] = []
    real_fetch = backend._fetch_status

    async def fetch(user_id: str, project_id: str) -> object:
        fetched.append(user_id)
        return await real_fetch(user_id, project_id)

    monkeypatch.setattr(backend, "_fetch_status", fetch)
    first = await tracker.check_against_policy(U, P, "1")
    second = await tracker.check_against_policy(U, P, Decimal("1"))
    assert fetched == [U]  # the backend's 30 s cache answered the second check
    assert tracker._status_cache is None  # and there is no second layer over it
    assert first.model_dump(exclude={"checked_at"}) == second.model_dump(exclude={"checked_at"})
    # A tracker without a cache of its own forgets the backend's when asked to.
    tracker.invalidate(U, P)
    await tracker.check_against_policy(U, P, "1")
    assert fetched == [U, U]


async def test_a_tracker_with_its_own_ttl_keeps_its_own_cache(ledger: Ledger) -> None:
    backend = LocalBackend(ledger, PriceBook.in_memory(genai_prices=False), status_ttl=0)
    tracker = BudgetTracker(backend, status_ttl=30)
    assert tracker._status_cache is not None
    check = await tracker.check_against_policy(U, P, "1")
    await ledger.deposit(U, P, Decimal("5"), idempotency_key="more")
    again = await tracker.check_against_policy(U, P, "1")
    assert again.available_balance == check.available_balance == Decimal("10")
    tracker.invalidate(U, P)
    assert (await tracker.check_against_policy(U, P, "1")).available_balance == Decimal("15")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amount=st.decimals(min_value=0, max_value=20, places=9, allow_nan=False),
    form=st.sampled_from(["decimal", "string"]),
    own_policy=st.booleans(),
)
async def test_checks_built_without_validation_equal_the_validated_model(
    ledger: Ledger, amount: Decimal, form: str, own_policy: bool
) -> None:
    tracker = BudgetTracker(LocalBackend(ledger, PriceBook.in_memory(genai_prices=False)))
    # A string in plain notation (the amount grammar refuses str()'s "0E-9").
    requested = amount if form == "decimal" else f"{amount:f}"
    policy = BudgetPolicy(monthly_limit=Decimal("4")) if own_policy else None
    check = await tracker.check_against_policy(U, P, requested, policy)
    assert check == _validated(check)
    assert check.model_fields_set == _validated(check).model_fields_set
    assert check.to_json() == _validated(check).to_json()
    sufficient = await tracker.check_sufficient_budget(U, P, requested)
    assert sufficient == _validated(sufficient)
    assert sufficient.available == (amount <= Decimal("10"))
