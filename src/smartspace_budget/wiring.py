"""Behaviour a lower layer names and a higher layer supplies: the package's one late binding.

The spec puts ``BudgetPolicy.fetch_from_backend`` on a model, but reading a policy needs a
backend, several layers above the models. The model calls the function bound here; the
package's top (``smartspace_budget/__init__.py``, which imports every layer's public names
and so sits above them all) binds it, importing the budgets layer only when a policy is
fetched. Every import still points down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["policy_fetcher"]

policy_fetcher: Callable[[str, str], Any] | None = None
"""``(user_id, project_id) -> BackendPolicy``: bound by the package on import."""
