"""check_against_policy at every limit's boundary, with zero, missing and refunded amounts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from smartspace_budget.budgets import BackendPolicy, BudgetPolicy, BudgetTracker, ViolationKind
from smartspace_budget.budgets import policy as policy_module
from smartspace_budget.errors import InvalidInputError

if TYPE_CHECKING:
    from tests.budgets.conftest import FakeBackend, FakeClock

D = Decimal
U, P = "user_001", "proj_001"
NANO = D("0.000000001")


@pytest.fixture
def tracker(backend: FakeBackend, clock: FakeClock) -> BudgetTracker:
    backend.deposit("100")
    return BudgetTracker(backend, clock=clock, status_ttl=0)


@pytest.mark.parametrize(
    ("limits", "spent_today", "kind", "room"),
    [
        ({"per_request_limit": "5"}, "0", ViolationKind.PER_REQUEST_LIMIT, D(5)),
        ({"daily_limit": "20"}, "12", ViolationKind.DAILY_LIMIT, D(8)),
        ({"monthly_limit": "30"}, "12", ViolationKind.MONTHLY_LIMIT, D(8)),  # +10 earlier
    ],
)
async def test_each_limit_passes_exactly_at_and_fails_one_nano_over(
    tracker: BudgetTracker,
    backend: FakeBackend,
    clock: FakeClock,
    limits: dict[str, str],
    spent_today: str,
    kind: ViolationKind,
    room: Decimal,
) -> None:
    backend.set_policy(**limits)
    backend.spend("10", clock.now - timedelta(days=1))  # this month, not today
    backend.spend(spent_today)
    at_limit = await tracker.check_against_policy(U, P, room)
    assert at_limit.available, at_limit.violations
    assert at_limit.violations == []
    over = await tracker.check_against_policy(U, P, room + NANO)
    assert not over.available
    assert [v.kind for v in over.violation_details] == [kind]
    detail = over.violation_details[0]
    assert detail.requested == room + NANO
    assert detail.limit == D(next(iter(limits.values())))
    assert not detail.critical
    assert "over by $0.000000001" in over.violations[0]


async def test_balance_boundary_is_critical(tracker: BudgetTracker, backend: FakeBackend) -> None:
    backend.account().reserved = D(40)
    assert (await tracker.check_against_policy(U, P, "60")).available
    short = await tracker.check_against_policy(U, P, D(60) + NANO)
    assert not short.available
    assert short.available_balance == D(60)
    (detail,) = short.violation_details
    assert detail.kind is ViolationKind.INSUFFICIENT_BALANCE
    assert detail.critical
    assert short.violations == [
        "Insufficient balance: requested $60.000000001 exceeds available $60.00 by $0.000000001"
    ]


async def test_zero_balance(tracker: BudgetTracker, backend: FakeBackend) -> None:
    backend.spend("100")
    assert (await tracker.check_against_policy(U, P, "0")).available
    check = await tracker.check_against_policy(U, P, NANO)
    assert not check.available
    assert check.violation_details[0].kind is ViolationKind.INSUFFICIENT_BALANCE


async def test_insufficient_balance_exits_before_the_limits(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.set_policy(per_request_limit="1", daily_limit="1", monthly_limit="1")
    check = await tracker.check_against_policy(U, P, "500")
    assert [v.kind for v in check.violation_details] == [ViolationKind.INSUFFICIENT_BALANCE]


async def test_all_non_critical_violations_are_listed(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.set_policy(per_request_limit="2", daily_limit="5", monthly_limit="6")
    backend.spend("4")
    check = await tracker.check_against_policy(U, P, "3")
    assert [v.kind for v in check.violation_details] == [
        ViolationKind.PER_REQUEST_LIMIT,
        ViolationKind.DAILY_LIMIT,
        ViolationKind.MONTHLY_LIMIT,
    ]
    assert check.violations == [
        "Per-request limit exceeded: requested $3.00 > limit $2.00 (over by $1.00)",
        "Daily limit exceeded: spent $4.00 + requested $3.00 = $7.00 > limit $5.00 (over by $2.00)",
        "Monthly limit exceeded: spent $4.00 + requested $3.00 = $7.00 > limit $6.00 "
        "(over by $1.00)",
    ]
    daily = check.violation_details[1]
    assert (daily.limit, daily.current, daily.requested) == (D(5), D(4), D(3))


@pytest.mark.parametrize("zero", ["per_request_limit", "daily_limit", "monthly_limit"])
async def test_a_zero_limit_blocks_spending_and_exits_early(
    tracker: BudgetTracker, backend: FakeBackend, zero: str
) -> None:
    limits = {"per_request_limit": "1", "daily_limit": "1", "monthly_limit": "1", zero: "0"}
    backend.set_policy(**limits)
    assert (await tracker.check_against_policy(U, P, "0")).available  # costs nothing
    check = await tracker.check_against_policy(U, P, "2")
    assert not check.available
    last = check.violation_details[-1]
    assert last.critical
    assert last.kind.value == zero
    assert "spending is blocked" in last.message
    order = ["per_request_limit", "daily_limit", "monthly_limit"]
    assert [v.kind.value for v in check.violation_details] == order[: order.index(zero) + 1]


async def test_no_limits_means_only_the_balance_counts(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.spend("50")
    check = await tracker.check_against_policy(U, P, "50")
    assert check.available
    assert check.policy == BudgetPolicy()


async def test_refunds_count_net_but_never_below_zero(
    tracker: BudgetTracker, backend: FakeBackend, clock: FakeClock
) -> None:
    backend.set_policy(daily_limit="10", monthly_limit="100")
    backend.spend("8")
    backend.refund("3")  # today's net spend: 5
    assert (await tracker.check_against_policy(U, P, "5")).available
    assert not (await tracker.check_against_policy(U, P, D(5) + NANO)).available

    backend.refund("20", clock.now + timedelta(hours=1))  # a refund of older usage
    clock.advance(hours=2)
    status = await tracker.get_budget_status(U, P)
    assert status.spent_today == D(-15)
    # A negative day does not make room above the limit: at most 10 today.
    assert (await tracker.check_against_policy(U, P, "10")).available
    over = await tracker.check_against_policy(U, P, D(10) + NANO)
    assert [v.kind for v in over.violation_details] == [ViolationKind.DAILY_LIMIT]
    assert over.violation_details[0].current == 0


async def test_caller_policy_overrides_the_accounts(
    tracker: BudgetTracker, backend: FakeBackend
) -> None:
    backend.set_policy(per_request_limit="1")
    mine = BudgetPolicy(per_request_limit=D(50))
    check = await tracker.check_against_policy(U, P, "20", mine)
    assert check.available
    assert check.policy == mine
    assert not (await tracker.check_against_policy(U, P, "20")).available


async def test_policy_from_backend_marker(
    tracker: BudgetTracker, backend: FakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.set_policy(per_request_limit="1")
    backend.set_policy("team", "shared", per_request_limit="30")
    marker = BudgetPolicy.fetch_from_backend(U, P)
    assert isinstance(marker, BackendPolicy)
    own = await tracker.check_against_policy(U, P, "20", marker)
    assert not own.available
    assert own.policy == BudgetPolicy(per_request_limit=D(1))
    assert "get_policy" not in backend.calls  # the account's limits came with its status

    shared = await tracker.check_against_policy(
        U, P, "20", BudgetPolicy.fetch_from_backend("team", "shared")
    )
    assert shared.available
    assert shared.policy == BudgetPolicy(per_request_limit=D(30))
    assert backend.calls["get_policy"] == 1

    with pytest.raises(InvalidInputError):
        BudgetPolicy.fetch_from_backend("", P)

    monkeypatch.setattr(policy_module, "default_backend", lambda: backend)
    resolved = await BudgetPolicy.fetch_from_backend("team", "shared")
    assert type(resolved) is BudgetPolicy
    assert resolved.per_request_limit == D(30)
