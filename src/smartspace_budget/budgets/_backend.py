"""How the budget components reach their backend, and how its failures surface.

The default backend is imported here, lazily, so that importing :mod:`budgets` costs nothing
and builds no database connection until a component is first used without an explicit one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from smartspace_budget.backend.base import Backend
from smartspace_budget.errors import BackendTimeoutError, BackendUnavailableError

__all__ = ["backend_call", "default_backend"]

T = TypeVar("T")


def default_backend() -> Backend:
    """The configured backend (``SMARTSPACE_BUDGET_*`` settings; embedded ledger by default)."""
    from smartspace_budget.backend import default_backend as configured

    return configured()


async def backend_call(call: Awaitable[T], what: str) -> T:
    """Await a backend read, turning transport failures into the typed backend errors.

    Backends are meant to raise :class:`~smartspace_budget.errors.BackendError` themselves;
    this catches the ones that leak a bare ``OSError`` or ``TimeoutError`` (a test double, a
    third-party backend), so that no caller can mistake a failed read for an answer.
    """
    try:
        return await call
    except TimeoutError as exc:
        raise BackendTimeoutError(f"backend timed out reading {what}", what=what) from exc
    except OSError as exc:
        raise BackendUnavailableError(
            f"backend unavailable reading {what}: {exc}", what=what
        ) from exc
