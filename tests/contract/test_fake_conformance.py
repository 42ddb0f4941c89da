"""The tests' in-memory backend answers like the real one: ``FakeBackend`` against the ledger.

The same writes go into a real ledger (``LocalBackend`` over SQLite, and PostgreSQL) and,
as seeding, into ``tests.fakes.FakeBackend``: deposits, usage at instants from an hour to
more than a year ago, a refund tied to a usage entry and one tied to none, an adjustment, a
hold, a policy, an account in New York time with usage on both sides of a local midnight, and
the same price versions (past, in force and future). Then every read method of the
``Backend`` protocol is called on both, and the answers must have the same fields with the
same exact values (amounts compared as written, so nine decimal places on both), or raise the
same error; only the instant an answer was made (``as_of``) may differ. The real one is the
truth: a difference is a bug in the fake.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from tests.fakes import FakeBackend
from tests.server.conftest import database_url

from smartspace_budget.backend.base import Backend
from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.errors import SmartspaceBudgetError
from smartspace_budget.ledger import Ledger
from smartspace_budget.models import BudgetPolicy, PricingData, UsageEvent
from smartspace_budget.periods import SpendingPeriod, window_containing
from smartspace_budget.prices.catalog import PriceBook

__all__ = ["database_url"]  # the fixture: SQLite, and PostgreSQL when it answers

_MOMENTS = {"as_of"}  # the instant an answer was made; nothing else may differ

D = Decimal


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Both:
    """The real backend and the fake, holding the same accounts and prices."""

    real: LocalBackend
    fake: FakeBackend
    at: datetime  # when the writes were made
    utc: tuple[str, str]  # an account in UTC
    york: tuple[str, str]  # an account in America/New_York
    prices: list[PricingData]

    @property
    def backends(self) -> tuple[Backend, Backend]:
        return self.real, self.fake


def _fields(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="python")
    if isinstance(value, dict):
        return {k: _fields(v) for k, v in value.items() if k not in _MOMENTS}
    if isinstance(value, list | tuple):
        return [_fields(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)  # exact, as written: 1.5 and 1.500000000 differ
    return value


async def _outcome(answer: Awaitable[Any]) -> Any:
    try:
        return _fields(await answer)
    except SmartspaceBudgetError as exc:
        return type(exc).__name__


async def agree(both: Both, read: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``read`` on both backends; the answers (or errors) must be the same."""
    real = await _outcome(getattr(both.real, read)(*args, **kwargs))
    fake = await _outcome(getattr(both.fake, read)(*args, **kwargs))
    assert fake == real, f"{read}{args}{kwargs}"
    return real


async def _usage(
    ledger: Ledger,
    fake: FakeBackend,
    account: tuple[str, str],
    cost: str,
    at: datetime,
    provider: str,
    model: str,
) -> str:
    user, project = account
    usage = UsageEvent(
        provider=provider,
        model=model,
        input_tokens=100,
        output_tokens=50,
        actual_cost=D(cost),
        occurred_at=at,
    )
    entry = await ledger.record_usage(user, project, usage, idempotency_key=uuid.uuid4().hex)
    fake.spend(D(cost), at, provider=provider, model=model, user_id=user, project_id=project)
    return entry.entry_id


def _price(provider: str, model: str, effective: datetime, price_in: str) -> PricingData:
    return PricingData(
        provider=provider,
        model_name=model,
        input_price_per_1k=D(price_in),
        output_price_per_1k=D(price_in) * 4,
        max_input_tokens=128_000,
        effective_date=effective,
        last_updated=effective,
    )


@pytest.fixture
async def both(database_url: str) -> AsyncIterator[Both]:
    ledger = await Ledger.connect(database_url)
    book = PriceBook(None, catalog=None, clock=wall_clock)
    real = LocalBackend(ledger, book, status_ttl=0, pricing_ttl=0)
    fake = FakeBackend(wall_clock)
    at = wall_clock()
    tag = uuid.uuid4().hex[:8]
    utc, york = (f"fc-{tag}", "utc"), (f"fc-{tag}", "york")

    # The UTC account: money in and out of every kind, usage over more than a year.
    user, project = utc
    await ledger.deposit(user, project, D("100"), idempotency_key=uuid.uuid4().hex)
    fake.deposit(D("100"), user, project)
    recent = await _usage(ledger, fake, utc, "0.5", at - timedelta(hours=2), "openai", "gpt-4o")
    for cost, ago, provider, model in [
        ("1.25", timedelta(days=1), "anthropic", "claude-3-5-sonnet"),
        ("0.003", timedelta(days=10), "openai", "gpt-4o-mini"),
        ("0.000000001", timedelta(days=10, hours=3), "openai", "gpt-4o-mini"),
        ("2", timedelta(days=40), "google", "gemini-1.5-pro"),
        ("3", timedelta(days=400), "openai", "gpt-4o"),
        ("0.75", timedelta(minutes=5), "openai", "gpt-4o"),
    ]:
        await _usage(ledger, fake, utc, cost, at - ago, provider, model)
    await ledger.refund(
        user, project, D("0.2"), idempotency_key=uuid.uuid4().hex, usage_entry_id=recent, now=at
    )
    fake.refund(D("0.2"), at, provider="openai", model="gpt-4o", user_id=user, project_id=project)
    await ledger.refund(user, project, D("0.1"), idempotency_key=uuid.uuid4().hex, now=at)
    fake.refund(D("0.1"), at, user_id=user, project_id=project)
    await ledger.adjust(user, project, D("-1.5"), reason="fix", idempotency_key=uuid.uuid4().hex)
    fake.deposit(D("-1.5"), user, project)
    await ledger.reserve(user, project, D("7"), idempotency_key=uuid.uuid4().hex, now=at)
    fake.account(user, project).reserved = D("7")
    policy = BudgetPolicy(
        per_request_limit=D("2"),
        daily_limit=D("10"),
        monthly_limit=D("100.5"),
        low_balance_threshold=D("20"),
    )
    await ledger.set_policy(user, project, policy)
    fake.account(user, project).policy = policy

    # The New York account: usage a minute either side of a local midnight three days ago.
    user, project = york
    await ledger.ensure_account(user, project, timezone="America/New_York")
    fake.account(user, project).timezone = "America/New_York"
    midnight = window_containing(SpendingPeriod.DAILY, at - timedelta(days=3), "America/New_York")
    for cost, when in [
        ("0.4", midnight.start - timedelta(minutes=1)),
        ("0.6", midnight.start + timedelta(minutes=1)),
        ("0.01", at - timedelta(minutes=30)),
    ]:
        await _usage(ledger, fake, york, cost, when, "openai", "gpt-4o")
    await ledger.deposit(user, project, D("5"), idempotency_key=uuid.uuid4().hex)
    fake.deposit(D("5"), user, project)
    # Two calls held on an output prediction: one fits its hold, one costs more (a miss).
    for cost in ("0.01", "0.03"):
        hold = await ledger.reserve(
            user, project, D("0.02"), idempotency_key=uuid.uuid4().hex, now=at
        )
        predicted = UsageEvent(
            provider="openai",
            model="gpt-4o",
            input_tokens=10,
            output_tokens=50,
            actual_cost=D(cost),
            predicted_output_tokens=60,
            occurred_at=at,
        )
        await ledger.settle(
            hold.reservation_id, predicted, idempotency_key=uuid.uuid4().hex, now=at
        )
        fake.spend(
            D(cost),
            at,
            provider="openai",
            model="gpt-4o",
            user_id=user,
            project_id=project,
            predicted=True,
            missed=D(cost) > D("0.02"),
        )

    # Prices: the versions the real price book stored (ids and times it gave them).
    prices = [
        _price("openai", "gpt-4o", at - timedelta(days=60), "0.005"),
        _price("openai", "gpt-4o", at - timedelta(days=10), "0.0025"),
        _price("openai", "gpt-4o", at + timedelta(days=30), "0.002"),
        _price("openai", "gpt-4o-mini", at - timedelta(days=90), "0.00015"),
        _price("anthropic", "claude-3-5-sonnet", at - timedelta(days=5), "0.003"),
        _price("acme", "next-model", at + timedelta(days=10), "0.01"),
    ]
    fake.add_prices([await book.add_price(price) for price in prices])
    try:
        yield Both(real, fake, at, utc, york, prices)
    finally:
        await ledger.close()


COMPARED = {
    "get_balance",
    "get_budget_status",
    "get_policy",
    "get_spending",
    "get_analytics",
    "get_spending_series",
    "list_accounts",
    "get_pricing",
    "get_price_history",
    "list_models",
}
"""The reads the tests below compare: every method of the protocol."""


def test_the_fake_is_a_backend() -> None:
    fake = FakeBackend()
    backend: Backend = fake  # mypy checks the signatures; isinstance the method names
    assert isinstance(backend, Backend)
    protocol = {name for name in vars(Backend) if not name.startswith("_")}
    assert protocol == COMPARED  # a new read needs its comparison here


async def agree_now(both: Both, read: str, account: tuple[str, str], zone: str) -> Any:
    """``agree`` for a read as of now: a local day may begin between the two reads."""
    for _ in range(2):
        day = window_containing(SpendingPeriod.DAILY, wall_clock(), zone)
        try:
            return await agree(both, read, *account)
        except AssertionError:
            if window_containing(SpendingPeriod.DAILY, wall_clock(), zone) == day:
                raise
    return await agree(both, read, *account)


async def test_balance_status_and_policy_agree(both: Both) -> None:
    for account, zone in ((both.utc, "UTC"), (both.york, "America/New_York")):
        await agree_now(both, "get_balance", account, zone)
        await agree_now(both, "get_budget_status", account, zone)
        await agree(both, "get_policy", *account)
    york = await agree_now(both, "get_budget_status", both.york, "America/New_York")
    assert (york["total_balance"], york["timezone"]) == ("3.950000000", "America/New_York")
    utc = await agree_now(both, "get_budget_status", both.utc, "UTC")
    assert utc["total_balance"] == "91.296999999"  # 100 - 7.503000001 + 0.3 - 1.5
    assert (utc["reserved_amount"], utc["monthly_limit"]) == ("7.000000000", "100.500000000")


@pytest.mark.parametrize("period", list(SpendingPeriod))
async def test_spending_and_analytics_agree(both: Both, period: SpendingPeriod) -> None:
    for account in (both.utc, both.york):
        for at in (both.at, both.at - timedelta(days=3), both.at - timedelta(days=40)):
            await agree(both, "get_spending", *account, period, at=at)
            await agree(both, "get_analytics", *account, period, at=at)
    # Every window holds its own instant: the Gemini call made 40 days ago is in each.
    then = await agree(both, "get_analytics", *both.utc, period, at=both.at - timedelta(days=40))
    assert then["spending_by_provider"]["google"] == "2.000000000"
    # The two predicted holds settled now, one missed: counted alike by both.
    now = await agree(both, "get_analytics", *both.york, period, at=both.at)
    assert now["predictions"] == {"predicted_calls": 2, "missed_calls": 1, "miss_rate": "0.5000"}


async def test_spending_series_agree(both: Both) -> None:
    spans = {
        SpendingPeriod.HOURLY: timedelta(days=4),
        SpendingPeriod.DAILY: timedelta(days=45),
        SpendingPeriod.WEEKLY: timedelta(weeks=10),
        SpendingPeriod.MONTHLY: timedelta(days=450),
        SpendingPeriod.YEARLY: timedelta(days=800),
    }
    for account in (both.utc, both.york):
        for granularity, span in spans.items():
            series = await agree(
                both, "get_spending_series", *account, granularity, both.at - span, both.at
            )
            assert series, granularity
        too_long = both.at - timedelta(days=800)  # over 10,000 hours: refused by both
        refused = await agree(
            both, "get_spending_series", *account, SpendingPeriod.HOURLY, too_long, both.at
        )
        assert refused == "InvalidInputError"


async def test_accounts_and_unknown_accounts_agree(both: Both) -> None:
    ours = {both.utc, both.york}
    real = [a for a in await both.real.list_accounts() if (a.user_id, a.project_id) in ours]
    assert _fields(await both.fake.list_accounts()) == _fields(real)
    assert [(a.user_id, a.project_id) for a in real] == [both.utc, both.york]
    ghost = ("fc-nobody", "none")
    for read, extra in [
        ("get_balance", ()),
        ("get_budget_status", ()),
        ("get_policy", ()),
        ("get_spending", (SpendingPeriod.DAILY,)),
        ("get_analytics", (SpendingPeriod.DAILY,)),
        ("get_spending_series", (SpendingPeriod.DAILY, both.at - timedelta(days=2), both.at)),
    ]:
        assert await agree(both, read, *ghost, *extra) == "NotFoundError"


async def test_prices_agree(both: Both) -> None:
    pairs = sorted({(p.provider, p.model_name) for p in both.prices})
    for provider, model in [*pairs, ("openai", "no-such-model"), ("nope", "gpt-4o")]:
        for at in (None, both.at - timedelta(days=30), both.at - timedelta(days=365)):
            await agree(both, "get_pricing", provider, model, at=at)
        for days in (None, 0, 1, 30, 365, -1):
            await agree(both, "get_price_history", provider, model, days=days)
    for listed in (None, "openai", "acme", "nope"):
        await agree(both, "list_models", listed)
    assert await agree(both, "get_pricing", "acme", "next-model") == "MissingPricingError"
    history = await agree(both, "get_price_history", "openai", "gpt-4o", days=30)
    assert [h["input_price_per_1k"] for h in history] == ["0.005", "0.0025", "0.002"]
