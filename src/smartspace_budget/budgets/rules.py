"""The rules of ``check_against_policy``, as one pure function over a status and a policy.

Kept apart from the tracker so the boundaries (exactly at a limit, one nano over, zero
limits, refunds) can be tested on plain values, without a backend.
"""

from __future__ import annotations

from decimal import Decimal

from smartspace_budget.budgets._format import usd
from smartspace_budget.models import BudgetPolicy, BudgetStatus, PolicyViolation, ViolationKind

__all__ = ["evaluate_policy", "insufficient_balance"]

_ZERO = Decimal(0)


def _limit_violation(
    kind: ViolationKind, label: str, limit: Decimal, spent: Decimal, requested: Decimal
) -> PolicyViolation | None:
    """A period limit (daily, monthly): ``spent + requested`` may reach the limit, not pass it."""
    if limit == 0 and requested > 0:
        return PolicyViolation(
            kind=kind,
            message=f"{label} limit is $0: spending is blocked (requested {usd(requested)})",
            limit=limit,
            current=spent,
            requested=requested,
            critical=True,
        )
    total = spent + requested
    if total <= limit:
        return None
    return PolicyViolation(
        kind=kind,
        message=(
            f"{label} limit exceeded: spent {usd(spent)} + requested {usd(requested)} = "
            f"{usd(total)} > limit {usd(limit)} (over by {usd(total - limit)})"
        ),
        limit=limit,
        current=spent,
        requested=requested,
    )


def insufficient_balance(requested: Decimal, available: Decimal) -> PolicyViolation | None:
    """The critical violation when ``available`` cannot cover ``requested`` (equal is fine)."""
    if requested <= available:
        return None
    return PolicyViolation(
        kind=ViolationKind.INSUFFICIENT_BALANCE,
        message=(
            f"Insufficient balance: requested {usd(requested)} exceeds available "
            f"{usd(available)} by {usd(requested - available)}"
        ),
        limit=available,
        current=available,
        requested=requested,
        critical=True,
    )


def evaluate_policy(
    requested: Decimal, status: BudgetStatus, policy: BudgetPolicy
) -> list[PolicyViolation]:
    """Every rule ``requested`` breaks, stopping at the first critical one.

    Critical: the available balance is below the request, or a limit of zero blocks a
    non-zero request. Spend already made counts net of refunds, floored at zero (a refund of
    last month's usage does not make room under today's limit).
    """
    violations: list[PolicyViolation] = []
    short = insufficient_balance(requested, status.available_balance)
    if short is not None:
        return [short]

    per_request = policy.per_request_limit
    if per_request is not None and requested > per_request:
        zero = per_request == 0
        violations.append(
            PolicyViolation(
                kind=ViolationKind.PER_REQUEST_LIMIT,
                message=(
                    f"Per-request limit is $0: spending is blocked (requested {usd(requested)})"
                    if zero
                    else f"Per-request limit exceeded: requested {usd(requested)} > limit "
                    f"{usd(per_request)} (over by {usd(requested - per_request)})"
                ),
                limit=per_request,
                current=_ZERO,
                requested=requested,
                critical=zero,
            )
        )
        if zero:
            return violations

    for kind, label, limit, spent in (
        (ViolationKind.DAILY_LIMIT, "Daily", policy.daily_limit, status.spent_today),
        (ViolationKind.MONTHLY_LIMIT, "Monthly", policy.monthly_limit, status.spent_this_month),
    ):
        if limit is None:
            continue
        violation = _limit_violation(kind, label, limit, max(spent, _ZERO), requested)
        if violation is not None:
            violations.append(violation)
            if violation.critical:
                return violations
    return violations
