"""Whatever happens to the calls, the books balance and no hold is left behind."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.guard.guard_fakes import PRICES, FakeLedger, FakePricing

from smartspace_budget.errors import BudgetExceededError
from smartspace_budget.guard import Guard, ProviderUsage, call_cost

outcome = st.sampled_from(["usage", "no_usage", "raises", "released"])
calls = st.lists(
    st.tuples(
        outcome,
        st.integers(0, 5_000),  # input tokens reported
        st.integers(0, 2_000),  # output tokens reported
        st.integers(1, 2_000),  # max_tokens
    ),
    max_size=12,
)


class Boom(Exception):
    pass


@settings(max_examples=40, deadline=None)
@given(calls=calls, balance=st.decimals("0", "0.5", places=6))
def test_every_hold_is_resolved_and_every_charge_is_accounted(
    calls: list[tuple[str, int, int, int]], balance: Decimal
) -> None:
    async def scenario() -> None:
        ledger = FakeLedger(balance)
        guard = Guard(ledger, FakePricing(), user_id="u", project_id="p")  # type: ignore[arg-type]
        expected_charges: list[Decimal] = []
        for kind, input_tokens, output_tokens, max_tokens in calls:
            try:
                async with guard.request(
                    "openai", "gpt-4o", input_text="one two three", max_tokens=max_tokens
                ) as call:
                    if kind == "usage":
                        call.record_usage(input_tokens=input_tokens, output_tokens=output_tokens)
                    elif kind == "released":
                        await guard.release_call(call)
                    elif kind == "raises":
                        raise Boom
            except BudgetExceededError:
                continue
            except Boom:
                pass
            if kind == "usage":
                usage = ProviderUsage(input_tokens, output_tokens)
                cost = call_cost(PRICES[("openai", "gpt-4o")], usage, Decimal(5))
                expected_charges.append(cost)
                assert call.actual_cost == cost
                assert not call.cost_is_estimate
            elif kind == "released":
                assert call.entry is None
            else:
                expected_charges.append(call.reserved_amount)
                assert call.cost_is_estimate
                assert call.actual_cost == call.reserved_amount > 0
        assert ledger.reserved == 0
        assert [-e.amount for e in ledger.entries] == expected_charges
        assert ledger.balance == balance - sum(expected_charges, Decimal(0))

    asyncio.run(scenario())
