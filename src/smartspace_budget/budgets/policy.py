"""Budget policies that come from the backend: the spec's ``BudgetPolicy.fetch_from_backend``.

The spec's Example 1 calls ``BudgetPolicy.fetch_from_backend(user_id, project_id)`` without
``await`` and hands the result to ``check_against_policy``. It therefore returns a
:class:`BackendPolicy`: a policy that stands for "the account's policy as the backend has it
at check time". :meth:`BudgetTracker.check_against_policy` reads it in the same request as the
balances, so the limits and the spending they are checked against come from one snapshot.

It is also awaitable: ``await BudgetPolicy.fetch_from_backend(u, p)`` returns the concrete
policy read through the default backend, for callers who want to look at the limits.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pydantic import Field

from smartspace_budget.backend.base import Backend
from smartspace_budget.budgets._backend import backend_call, default_backend
from smartspace_budget.models import BudgetPolicy, BudgetStatus
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.usage import MAX_ID_LENGTH

__all__ = ["BackendPolicy", "plain_policy", "policy_from_status"]

_budget_policy = builder(BudgetPolicy)


class BackendPolicy(BudgetPolicy):
    """A placeholder for the policy of account (``user_id``, ``project_id``) in the backend.

    Its own limit fields stay ``None``; they are never read. Use :meth:`resolve` (or
    ``await`` the object) to get the concrete :class:`BudgetPolicy`.
    """

    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    project_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)

    def refers_to(self, user_id: str, project_id: str) -> bool:
        """Whether this is the policy of the given account."""
        return (self.user_id, self.project_id) == (user_id, project_id)

    async def resolve(self, backend: Backend | None = None) -> BudgetPolicy:
        """Read the account's policy; raises the backend's typed errors if it cannot."""
        source = backend if backend is not None else default_backend()
        policy = await backend_call(
            source.get_policy(self.user_id, self.project_id),
            f"the policy of {self.user_id}/{self.project_id}",
        )
        return plain_policy(policy)

    def __await__(self) -> Generator[Any, None, BudgetPolicy]:
        return self.resolve().__await__()


def plain_policy(policy: BudgetPolicy) -> BudgetPolicy:
    """The limits of ``policy`` as a plain :class:`BudgetPolicy` (no subclass baggage)."""
    if type(policy) is BudgetPolicy:
        return policy
    return BudgetPolicy(**{name: getattr(policy, name) for name in BudgetPolicy.model_fields})


def policy_from_status(status: BudgetStatus) -> BudgetPolicy:
    """The limits a status reports, as a policy (same snapshot as its balances and spend).

    Built without validating again: the status's limits are already validated amounts of
    the same types (``NonNegativeMoney | None``), see models/_trusted.py.
    """
    return _budget_policy(
        {
            "per_request_limit": status.per_request_limit,
            "daily_limit": status.daily_limit,
            "monthly_limit": status.monthly_limit,
            "low_balance_threshold": status.low_balance_threshold,
        }
    )
