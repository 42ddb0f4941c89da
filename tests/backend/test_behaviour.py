"""One behavioural suite for every backend: LocalBackend and HttpBackend, SQLite and PostgreSQL.

Each test tells a short bookkeeping story through the Backend and LedgerClient protocols
only, so the in-process ledger and the service must give the same answers to the cent (to
the nano-USDC, in fact).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from smartspace_budget.backend import LedgerBackend
from smartspace_budget.errors import (
    BudgetExceededError,
    IdempotencyConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
    ReservationResolvedError,
    UnknownModelError,
    UnknownProviderError,
)
from smartspace_budget.models import BudgetPolicy, EntryKind, ReservationStatus, UsageEvent
from smartspace_budget.periods import SpendingPeriod

Account = tuple[str, str]


def key() -> str:
    return uuid.uuid4().hex


def usage(cost: str, provider: str = "openai", model: str = "gpt-4", **extra: object) -> UsageEvent:
    return UsageEvent(
        provider=provider,
        model=model,
        input_tokens=1000,
        output_tokens=500,
        actual_cost=Decimal(cost),
        **extra,
    )


async def test_deposit_shows_in_balance_and_status_exactly(
    backend: LedgerBackend, account: Account
) -> None:
    user, project = account
    entry = await backend.deposit(user, project, Decimal("100.000000001"), idempotency_key=key())
    assert entry.kind is EntryKind.DEPOSIT
    assert entry.amount == Decimal("100.000000001")
    assert entry.balance_after == Decimal("100.000000001")
    balance = await backend.get_balance(user, project)
    assert balance.total_balance == Decimal("100.000000001")
    assert balance.available_balance == Decimal("100.000000001")
    assert balance.reserved_amount == 0
    status = await backend.get_budget_status(user, project)
    assert status.total_balance == Decimal("100.000000001")
    assert status.spent_today == status.spent_this_month == status.spent_total == 0
    assert status.daily_limit is None


async def test_usage_and_refund_make_spending_and_analytics(
    backend: LedgerBackend, account: Account
) -> None:
    user, project = account
    await backend.deposit(user, project, Decimal(50), idempotency_key=key())
    await backend.record_usage(user, project, usage("1.25"), idempotency_key=key())
    await backend.record_usage(user, project, usage("0.75"), idempotency_key=key())
    charged = await backend.record_usage(
        user, project, usage("0.000000003", "anthropic", "claude-3-opus"), idempotency_key=key()
    )
    assert charged.provider == "anthropic"
    assert charged.model == "claude-3-opus"
    await backend.refund(user, project, Decimal("0.25"), idempotency_key=key(), reason="retry")

    status = await backend.get_budget_status(user, project)
    assert status.spent_today == Decimal("1.750000003")
    assert status.spent_total == Decimal("1.750000003")
    assert status.total_balance == Decimal("48.249999997")

    daily = await backend.get_spending(user, project, SpendingPeriod.DAILY)
    assert daily.total_spent == Decimal("1.750000003")
    assert daily.request_count == 3
    assert daily.period is SpendingPeriod.DAILY
    assert daily.period_start <= datetime.now(UTC) < daily.period_end

    analytics = await backend.get_analytics(user, project, SpendingPeriod.MONTHLY)
    assert analytics.request_count == 3
    assert analytics.total_spent == Decimal("1.750000003")
    assert analytics.spending_by_provider["anthropic"] == Decimal("0.000000003")
    assert analytics.requests_by_provider == {"openai": 2, "anthropic": 1}
    assert set(analytics.spending_by_model) == {"gpt-4", "claude-3-opus"}


async def test_spending_of_an_earlier_window_is_empty(
    backend: LedgerBackend, account: Account
) -> None:
    user, project = account
    await backend.deposit(user, project, Decimal(5), idempotency_key=key())
    await backend.record_usage(user, project, usage("1"), idempotency_key=key())
    last_year = datetime.now(UTC) - timedelta(days=400)
    old = await backend.get_spending(user, project, SpendingPeriod.YEARLY, at=last_year)
    assert old.total_spent == 0
    assert old.request_count == 0
    assert old.period_end <= datetime.now(UTC)


async def test_spending_series_has_every_window(backend: LedgerBackend, account: Account) -> None:
    user, project = account
    await backend.deposit(user, project, Decimal(5), idempotency_key=key())
    await backend.record_usage(user, project, usage("2"), idempotency_key=key())
    now = datetime.now(UTC)
    series = await backend.get_spending_series(
        user, project, SpendingPeriod.DAILY, now - timedelta(days=3), now
    )
    assert len(series) in (3, 4)
    assert sum((b.spent for b in series), Decimal(0)) == Decimal(2)
    assert series[-1].request_count == 1
    assert all(a.end == b.start for a, b in itertools.pairwise(series))


async def test_reserve_settle_and_release(backend: LedgerBackend, account: Account) -> None:
    user, project = account
    await backend.deposit(user, project, Decimal(10), idempotency_key=key())
    held = await backend.reserve(user, project, Decimal(3), idempotency_key=key(), request_id="r1")
    assert held.status is ReservationStatus.PENDING
    assert held.amount == 3
    balance = await backend.get_balance(user, project)
    assert (balance.total_balance, balance.reserved_amount, balance.available_balance) == (
        Decimal(10),
        Decimal(3),
        Decimal(7),
    )
    entry = await backend.settle(held.reservation_id, usage("2.5"), idempotency_key=key())
    assert entry.kind is EntryKind.USAGE
    assert entry.amount == Decimal("-2.5")
    balance = await backend.get_balance(user, project)
    assert balance.total_balance == Decimal("7.5")
    assert balance.reserved_amount == 0

    second = await backend.reserve(user, project, Decimal(1), idempotency_key=key())
    released = await backend.release(second.reservation_id, idempotency_key=key())
    assert released.status is ReservationStatus.RELEASED
    with pytest.raises(ReservationResolvedError):
        await backend.settle(second.reservation_id, usage("1"), idempotency_key=key())
    assert (await backend.get_balance(user, project)).available_balance == Decimal("7.5")


async def test_refusals_are_typed_and_change_nothing(
    backend: LedgerBackend, account: Account
) -> None:
    user, project = account
    await backend.deposit(user, project, Decimal(2), idempotency_key=key())
    with pytest.raises(BudgetExceededError):
        await backend.reserve(user, project, Decimal("2.000000001"), idempotency_key=key())
    await backend.set_policy(user, project, BudgetPolicy(per_request_limit=Decimal("0.5")))
    with pytest.raises(PolicyViolationError):
        await backend.reserve(user, project, Decimal(1), idempotency_key=key())
    with pytest.raises(InvalidInputError):
        await backend.deposit(user, project, Decimal(-1), idempotency_key=key())
    with pytest.raises(NotFoundError):
        await backend.release("res_does_not_exist", idempotency_key=key())
    balance = await backend.get_balance(user, project)
    assert balance.total_balance == Decimal(2)
    assert balance.reserved_amount == 0


async def test_idempotent_writes(backend: LedgerBackend, account: Account) -> None:
    user, project = account
    first = await backend.deposit(user, project, Decimal("1.5"), idempotency_key="dep-1")
    again = await backend.deposit(user, project, Decimal("1.50"), idempotency_key="dep-1")
    assert again.entry_id == first.entry_id
    with pytest.raises(IdempotencyConflictError):
        await backend.deposit(user, project, Decimal(2), idempotency_key="dep-1")
    assert (await backend.get_balance(user, project)).total_balance == Decimal("1.5")


async def test_policy_round_trip_and_status_limits(
    backend: LedgerBackend, account: Account
) -> None:
    user, project = account
    policy = BudgetPolicy(
        per_request_limit=Decimal("5"),
        daily_limit=Decimal("50.000000001"),
        monthly_limit=Decimal("1000"),
        low_balance_threshold=Decimal("1"),
    )
    assert await backend.set_policy(user, project, policy) == policy
    assert await backend.get_policy(user, project) == policy
    status = await backend.get_budget_status(user, project)
    assert status.daily_limit == Decimal("50.000000001")
    assert status.per_request_limit == Decimal(5)
    assert any(a.user_id == user and a.project_id == project for a in await backend.list_accounts())


async def test_extension_fields_reach_every_backend(
    backend: LedgerBackend, account: Account
) -> None:
    # Over HTTP these need ``extended=true``: the service's default answers are only the
    # spec's keys, and the library's warnings and prices depend on the rest.
    user, project = account
    await backend.set_policy(user, project, BudgetPolicy(low_balance_threshold=Decimal(2)))
    await backend.deposit(user, project, Decimal("1.5"), idempotency_key=key())
    await backend.record_usage(user, project, usage("0.5"), idempotency_key=key())
    status = await backend.get_budget_status(user, project)
    assert status.low_balance_threshold == Decimal(2)
    assert status.low_balance_warning  # 1 left <= 2
    assert status.currency == "USDC"
    assert status.timezone == "UTC"
    assert status.as_of is not None
    analytics = await backend.get_analytics(user, project, SpendingPeriod.DAILY)
    assert analytics.requests_by_model == {"gpt-4": 1}
    assert analytics.period is SpendingPeriod.DAILY
    assert analytics.period_start is not None
    assert analytics.currency == "USDC"
    cached = await backend.get_pricing("anthropic", "claude-3-5-sonnet")
    assert cached.cached_input_price_per_1k is not None
    assert cached.cache_write_price_per_1k is not None
    assert cached.version
    assert cached.source
    tiered = await backend.get_pricing("google", "gemini-1.5-pro")
    assert tiered.tiers
    history = await backend.get_price_history("anthropic", "claude-3-5-sonnet")
    assert all(v.version and v.cached_input_price_per_1k is not None for v in history)


async def test_pricing_reads(backend: LedgerBackend) -> None:
    pricing = await backend.get_pricing("openai", "gpt-4")
    assert pricing.provider == "openai"
    assert pricing.input_price_per_1k is not None
    assert pricing.input_price_per_1k > 0
    history = await backend.get_price_history("openai", "gpt-4")
    assert history
    assert history[-1].effective_date <= datetime.now(UTC) + timedelta(days=365)
    assert ("openai", pricing.model_name) in await backend.list_models("openai")
    with pytest.raises(UnknownModelError):
        await backend.get_pricing("openai", "no-such-model-xyz")
    with pytest.raises(UnknownProviderError):
        await backend.get_pricing("no-such-provider-xyz", "gpt-4")


async def test_model_names_with_slashes(backend: LedgerBackend, ledger_url: str) -> None:
    name = f"meta-llama/llama-3-{uuid.uuid4().hex[:6]}/history"
    await add_override(ledger_url, "together", name, "0.0009")
    pricing = await backend.get_pricing("together", name)
    assert pricing.model_name == name
    assert pricing.input_price_per_1k == Decimal("0.0009")
    history = await backend.get_price_history("together", name)
    assert [v.input_price_per_1k for v in history] == [Decimal("0.0009")]


async def add_override(ledger_url: str, provider: str, model: str, price: str) -> None:
    """Add a price the way an operator would: through a PriceBook on the ledger's database."""
    from smartspace_budget.backend.local import LocalBackend
    from smartspace_budget.models import PricingData

    local = await LocalBackend.open(ledger_url)
    try:
        await local.price_book.add_price(
            PricingData(
                provider=provider,
                model_name=model,
                input_price_per_1k=Decimal(price),
                output_price_per_1k=Decimal(price),
                effective_date=datetime(2020, 1, 1, tzinfo=UTC),
                last_updated=datetime(2020, 1, 1, tzinfo=UTC),
            )
        )
    finally:
        await local.aclose()
