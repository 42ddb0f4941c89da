"""Budget policies that come from the backend: the spec's ``BudgetPolicy.fetch_from_backend``.

The spec's Example 1 calls ``BudgetPolicy.fetch_from_backend(user_id, project_id)`` without
``await`` and hands the result to ``check_against_policy``. It therefore returns a
:class:`BackendPolicy`: the policy of the account as the backend has it.

It fails closed: its limits read as the stored limits, or raise. Until it is loaded, reading
a limit (or dumping, comparing, iterating the object) raises :class:`PolicyNotLoadedError`,
never the ``None`` ("unlimited") of an empty policy. It is loaded

- at once when ``fetch_from_backend`` is called outside an event loop (a script, a REPL):
  the read goes through the default backend, and its typed errors are raised there;
- by ``await policy`` (through a default backend opened for the read), or
  ``await policy.resolve(backend)`` through a backend of yours;
- by :meth:`BudgetTracker.check_against_policy`, which reads the limits in the same request
  as the balances, so the limits and the spending they are checked against come from one
  snapshot, and leaves them in the object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import Any

from pydantic import Field, PrivateAttr

from smartspace_budget.backend.base import Backend
from smartspace_budget.budgets._backend import backend_call, default_backend
from smartspace_budget.errors import PolicyNotLoadedError
from smartspace_budget.models import BudgetPolicy, BudgetStatus
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.usage import MAX_ID_LENGTH

__all__ = ["BackendPolicy", "fetch_policy", "plain_policy", "policy_from_status"]

_LIMITS = frozenset(BudgetPolicy.model_fields)

_budget_policy = builder(BudgetPolicy)


class BackendPolicy(BudgetPolicy):
    """The policy of account (``user_id``, ``project_id``) as stored in the backend.

    Its limits read as the stored ones once loaded (see the module docstring); before,
    reading them raises :class:`PolicyNotLoadedError`.
    """

    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    project_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    _loaded: bool = PrivateAttr(default=False)

    @property
    def loaded(self) -> bool:
        """Whether the limits were read from the backend (reading them is then safe)."""
        return bool(object.__getattribute__(self, "__pydantic_private__")["_loaded"])

    def __getattribute__(self, name: str) -> Any:
        if name in _LIMITS and not object.__getattribute__(self, "loaded"):
            object.__getattribute__(self, "_not_loaded")()
        return super().__getattribute__(name)

    def _not_loaded(self) -> None:
        account = f"{self.user_id}/{self.project_id}"
        raise PolicyNotLoadedError(
            f"the policy of {account} is not loaded yet: await it, or pass it to "
            "check_against_policy, before reading its limits",
            user_id=self.user_id,
            project_id=self.project_id,
        )

    def refers_to(self, user_id: str, project_id: str) -> bool:
        """Whether this is the policy of the given account."""
        return (self.user_id, self.project_id) == (user_id, project_id)

    def fill(self, policy: BudgetPolicy) -> BudgetPolicy:
        """Take ``policy``'s limits as the stored ones; returns them as a plain policy."""
        plain = plain_policy(policy)
        for name in _LIMITS:
            setattr(self, name, getattr(plain, name))
        object.__getattribute__(self, "__pydantic_private__")["_loaded"] = True
        return plain

    async def resolve(self, backend: Backend | None = None) -> BudgetPolicy:
        """Read the account's policy (and keep it); raises the backend's typed errors."""
        source = backend if backend is not None else default_backend()
        policy = await backend_call(
            source.get_policy(self.user_id, self.project_id),
            f"the policy of {self.user_id}/{self.project_id}",
        )
        return self.fill(policy)

    def __await__(self) -> Generator[Any, None, BudgetPolicy]:
        return _load_once(self).__await__()

    # Paths that read the fields without ``__getattribute__`` fail closed too.
    def model_dump(self, **kwargs: Any) -> dict[str, Any]:
        if not self.loaded:
            self._not_loaded()
        return super().model_dump(**kwargs)

    def model_dump_json(self, **kwargs: Any) -> str:
        if not self.loaded:
            self._not_loaded()
        return super().model_dump_json(**kwargs)

    def __iter__(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        if not self.loaded:
            self._not_loaded()
        return super().__iter__()

    def __eq__(self, other: object) -> bool:
        if not self.loaded:
            self._not_loaded()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr_args__(self) -> Any:
        if self.loaded:
            return super().__repr_args__()
        return [("user_id", self.user_id), ("project_id", self.project_id), ("loaded", False)]


def fetch_policy(user_id: str, project_id: str) -> BackendPolicy:
    """``BudgetPolicy.fetch_from_backend``: the policy, loaded now if no event loop runs here.

    Inside a running event loop a blocking read would stall every other task of the loop,
    so the policy is loaded by ``await`` or by ``check_against_policy`` instead.
    """
    policy = BackendPolicy.from_data({"user_id": user_id, "project_id": project_id})
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_load_once(policy))
    return policy


async def _load_once(policy: BackendPolicy) -> BudgetPolicy:
    """Load ``policy`` through a default backend opened for this read alone, then closed."""
    backend = default_backend()
    try:
        return await policy.resolve(backend)
    finally:
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()


def plain_policy(policy: BudgetPolicy) -> BudgetPolicy:
    """The limits of ``policy`` as a plain :class:`BudgetPolicy` (no subclass baggage);
    a :class:`BackendPolicy` not loaded yet raises :class:`PolicyNotLoadedError`."""
    if type(policy) is BudgetPolicy:
        return policy
    return BudgetPolicy(**{name: getattr(policy, name) for name in _LIMITS})


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
