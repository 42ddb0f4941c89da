"""``BudgetPolicy.fetch_from_backend`` fails closed: the stored limits, or a typed error.

The account's stored limits are 2 (per request) / 20 (daily) / 150 (monthly), on a real
ledger (SQLite and PostgreSQL) chosen by ``SMARTSPACE_BUDGET_DATABASE_URL``. Wherever the
fetched policy is used, it reads as those limits or raises; never "no limits".
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import BackendPolicy, BudgetPolicy, BudgetTracker
from smartspace_budget.budgets.policy import plain_policy
from smartspace_budget.errors import BackendError, NotFoundError, PolicyNotLoadedError
from smartspace_budget.ledger import Ledger

STORED = BudgetPolicy(
    per_request_limit=Decimal(2), daily_limit=Decimal(20), monthly_limit=Decimal(150)
)
LIMITS = (Decimal(2), Decimal(20), Decimal(150))


def _limits(policy: BudgetPolicy) -> tuple[Decimal | None, ...]:
    return policy.per_request_limit, policy.daily_limit, policy.monthly_limit


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    for name in ("URL", "API_KEY"):
        monkeypatch.delenv(f"SMARTSPACE_BUDGET_{name}", raising=False)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", url)
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", str(tmp_path / "data"))

    async def store() -> None:
        async with await Ledger.connect(url) as ledger:
            await ledger.set_policy("ann", "p", STORED)
            await ledger.deposit("ann", "p", Decimal(100), idempotency_key="fund")

    asyncio.run(store())
    return url


def test_outside_an_event_loop_it_is_read_at_once(database_url: str) -> None:
    policy = BudgetPolicy.fetch_from_backend("ann", "p")
    assert policy.loaded
    assert _limits(policy) == LIMITS
    assert policy.low_balance_threshold is None
    assert _limits(plain_policy(policy)) == LIMITS
    dumped = policy.model_dump()
    assert (dumped["per_request_limit"], dumped["daily_limit"], dumped["monthly_limit"]) == LIMITS

    # Copied to another account, it carries the stored limits, not "unlimited".
    async def copy() -> BudgetPolicy:
        async with await Ledger.connect(database_url, migrate=False) as ledger:
            await ledger.set_policy("bob", "p", policy)
            return await ledger.get_policy("bob", "p")

    assert _limits(asyncio.run(copy())) == LIMITS


def test_outside_an_event_loop_failures_are_typed(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError):
        BudgetPolicy.fetch_from_backend("nobody", "p")
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")  # the ledger file cannot be created under it
    url = f"sqlite+aiosqlite:///{not_a_directory}/ledger.sqlite3"
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", url)
    with pytest.raises(BackendError):
        BudgetPolicy.fetch_from_backend("ann", "p")


async def test_in_an_event_loop_limits_raise_until_loaded(database_url: str) -> None:
    policy = BudgetPolicy.fetch_from_backend("ann", "p")
    assert isinstance(policy, BackendPolicy)
    assert not policy.loaded
    for read in (
        lambda: policy.per_request_limit,
        lambda: policy.daily_limit,
        lambda: policy.monthly_limit,
        lambda: policy.low_balance_threshold,
        policy.model_dump,
        policy.model_dump_json,
        policy.to_json,
        lambda: dict(policy),
        lambda: policy == STORED,
        lambda: plain_policy(policy),
    ):
        with pytest.raises(PolicyNotLoadedError):
            read()
    assert "loaded=False" in repr(policy)  # repr never raises

    # A ledger write that takes a policy refuses it and stores nothing.
    ledger = await Ledger.connect(database_url, migrate=False)
    try:
        with pytest.raises(PolicyNotLoadedError):
            await ledger.set_policy("carol", "p", policy)
        with pytest.raises(NotFoundError):
            await ledger.get_policy("carol", "p")
    finally:
        await ledger.close()

    resolved = await policy
    assert type(resolved) is BudgetPolicy
    assert _limits(resolved) == LIMITS
    assert _limits(policy) == LIMITS  # and the object itself now reads them


async def test_check_against_policy_loads_it(database_url: str) -> None:
    tracker = BudgetTracker()
    try:
        policy = BudgetPolicy.fetch_from_backend("ann", "p")
        check = await tracker.check_against_policy("ann", "p", Decimal(3), policy)
        assert not check.available  # 3 > the per-request limit of 2
        assert check.policy is not None
        assert _limits(check.policy) == LIMITS
        assert _limits(policy) == LIMITS

        # The policy of another account, checked against this one's spending.
        backend = tracker.backend
        assert isinstance(backend, LocalBackend)
        await backend.set_policy("dan", "p", BudgetPolicy(per_request_limit=Decimal(5)))
        theirs = BudgetPolicy.fetch_from_backend("dan", "p")
        assert (await tracker.check_against_policy("ann", "p", Decimal(3), theirs)).available
        assert theirs.per_request_limit == Decimal(5)
    finally:
        await tracker.backend.aclose()  # type: ignore[attr-defined]


async def test_in_an_event_loop_failures_are_typed(database_url: str) -> None:
    with pytest.raises(NotFoundError):
        await BudgetPolicy.fetch_from_backend("nobody", "p")
