"""For any sequence of operations the books balance, checked against a model of the rules.

After every step the stored balance equals the model's, available equals balance minus open
holds; at the end the integrity check (stored totals = sums of the entries) is clean.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.ledger.ledger_helpers import T0, usage

from smartspace_budget.errors import BudgetExceededError, ConflictError, ReservationResolvedError
from smartspace_budget.ledger import Ledger
from smartspace_budget.money import from_nano

nanos = st.integers(min_value=1, max_value=50 * 10**9)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), nanos),
        st.tuples(st.just("usage"), st.integers(min_value=0, max_value=20 * 10**9)),
        st.tuples(st.just("reserve"), st.integers(0, 30 * 10**9), st.integers(1, 120)),
        st.tuples(st.just("settle"), st.integers(0, 9), st.integers(0, 40 * 10**9)),
        st.tuples(st.just("release"), st.integers(0, 9)),
        st.tuples(st.just("refund"), st.integers(0, 9), st.integers(1, 4)),
        st.tuples(st.just("adjust"), st.integers(-10 * 10**9, 10 * 10**9).filter(bool)),
        st.tuples(st.just("tick"), st.integers(1, 90)),
        st.tuples(st.just("expire")),
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Hold:
    reservation_id: str
    amount: int
    expires_at: datetime
    open: bool = True


@dataclass
class Model:
    balance: int = 0
    holds: list[Hold] = field(default_factory=list)
    charges: list[tuple[str, int]] = field(default_factory=list)  # usage entry id, refundable

    @property
    def held(self) -> int:
        return sum(hold.amount for hold in self.holds if hold.open)

    def expire_due(self, now: datetime) -> None:
        for hold in self.holds:
            if hold.open and hold.expires_at <= now:
                hold.open = False


async def _step(
    ledger: Ledger,
    model: Model,
    account: tuple[str, str],
    op: tuple[Any, ...],
    now: datetime,
    key: str,
) -> datetime:
    kind = op[0]
    if kind == "tick":
        return now + timedelta(seconds=op[1])
    if kind == "expire":
        await ledger.expire_reservations(now)
        model.expire_due(now)
    elif kind == "deposit":
        await ledger.deposit(*account, from_nano(op[1]), idempotency_key=key, now=now)
        model.balance += op[1]
    elif kind == "adjust":
        await ledger.adjust(*account, from_nano(op[1]), reason="fix", idempotency_key=key, now=now)
        model.balance += op[1]
    elif kind == "usage":
        entry = await ledger.record_usage(
            *account, usage(str(from_nano(op[1]))), idempotency_key=key, now=now
        )
        model.balance -= op[1]
        model.charges.append((entry.entry_id, op[1]))
    elif kind == "reserve":
        model.expire_due(now)
        if model.balance - model.held >= op[1]:
            hold = await ledger.reserve(
                *account, from_nano(op[1]), ttl_seconds=op[2], idempotency_key=key, now=now
            )
            model.holds.append(Hold(hold.reservation_id, op[1], now + timedelta(seconds=op[2])))
        else:
            try:
                await ledger.reserve(
                    *account, from_nano(op[1]), ttl_seconds=op[2], idempotency_key=key, now=now
                )
            except BudgetExceededError:
                pass
            else:
                raise AssertionError("a hold beyond the available balance was granted")
    elif kind in ("settle", "release") and model.holds:
        hold = model.holds[op[1] % len(model.holds)]
        if hold.open and hold.expires_at <= now:
            hold.open = False  # a hold found past its expiry is expired, and cannot resolve
        if hold.open:
            if kind == "settle":
                entry = await ledger.settle(
                    hold.reservation_id, usage(str(from_nano(op[2]))), idempotency_key=key, now=now
                )
                model.balance -= op[2]
                model.charges.append((entry.entry_id, op[2]))
            else:
                await ledger.release(hold.reservation_id, idempotency_key=key, now=now)
            hold.open = False
        else:
            try:
                if kind == "settle":
                    await ledger.settle(
                        hold.reservation_id, usage("1"), idempotency_key=key, now=now
                    )
                else:
                    await ledger.release(hold.reservation_id, idempotency_key=key, now=now)
            except ReservationResolvedError:
                pass
            else:
                raise AssertionError("a resolved hold was resolved again")
    elif kind == "refund" and model.charges:
        index = op[1] % len(model.charges)
        entry_id, refundable = model.charges[index]
        amount = max(1, refundable * op[2] // 3)  # a third, two thirds, all, or too much
        try:
            await ledger.refund(
                *account, from_nano(amount), usage_entry_id=entry_id, idempotency_key=key, now=now
            )
        except ConflictError:
            assert amount > refundable
        else:
            assert amount <= refundable
            model.balance += amount
            model.charges[index] = (entry_id, refundable - amount)
    return now


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
async def test_books_balance_after_any_sequence(
    ledger: Ledger, steps: list[tuple[Any, ...]]
) -> None:
    account = (f"prop-{uuid.uuid4().hex[:12]}", "p")
    model = Model()
    now = T0
    for number, op in enumerate(steps):
        now = await _step(ledger, model, account, op, now, key=f"k{number}")
        if model.balance or model.holds:
            balance = await ledger.get_balance(*account)
            assert balance.total_balance == from_nano(model.balance)
            assert balance.reserved_amount == from_nano(model.held)
            assert balance.available_balance == balance.total_balance - balance.reserved_amount
    report = await ledger.check_integrity()
    assert report.ok, str(report)
    if model.balance or model.holds:
        assert (await ledger.get_balance(*account)).total_balance == Decimal(
            from_nano(model.balance)
        )
