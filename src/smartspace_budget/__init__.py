"""smartspace-budget: keep the LLM spending of agentic platforms under control.

The public API is :data:`__all__` (a test guards it). Only the errors, ``ExchangeRates`` and
``SpendingPeriod`` are imported with the package; the spec's models (pydantic, most of an
import's time), components and backends are imported on first use of their name (PEP 562),
so ``import smartspace_budget`` stays cheap and each call pays only for what it needs.
``from smartspace_budget import PricingEngine`` works as ever, and type checkers see every
name through the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from smartspace_budget import wiring as _wiring
from smartspace_budget.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    BudgetError,
    BudgetExceededError,
    ConflictError,
    ContextLimitExceededError,
    ForbiddenError,
    IdempotencyConflictError,
    InconsistentInputError,
    InvalidAmountError,
    InvalidInputError,
    MissingPricingError,
    NotFoundError,
    PolicyViolationError,
    PricingError,
    RateLimitedError,
    ReservationResolvedError,
    SmartspaceBudgetError,
    UnauthorizedError,
    UnknownCurrencyError,
    UnknownModelError,
    UnknownProviderError,
)
from smartspace_budget.money import ExchangeRates
from smartspace_budget.periods import SpendingPeriod

if TYPE_CHECKING:
    from smartspace_budget.backend import default_backend
    from smartspace_budget.backend.http import HttpBackend
    from smartspace_budget.backend.local import LocalBackend
    from smartspace_budget.budgets import BudgetTracker, SpendingMonitor
    from smartspace_budget.guard import Guard
    from smartspace_budget.models import (
        AlertLevel,
        AlertType,
        AnomalySeverity,
        Balance,
        BudgetCheck,
        BudgetPolicy,
        BudgetReservation,
        BudgetStatus,
        CostAnomaly,
        CostEstimate,
        PricingData,
        PricingModel,
        SpendingAlert,
        SpendingAnalytics,
        SpendingThreshold,
        SpendingTrend,
        ThresholdType,
        TokenEstimate,
        TokenEstimationMethod,
        UsageEvent,
    )
    from smartspace_budget.pricing import PricingEngine

__version__ = "0.1.0"


def _fetch_policy(user_id: str, project_id: str) -> Any:
    """``BudgetPolicy.fetch_from_backend``'s work, in the budgets layer (see ``wiring``)."""
    from smartspace_budget.budgets.policy import fetch_policy

    return fetch_policy(user_id, project_id)


_wiring.policy_fetcher = _fetch_policy

# Loaded on first attribute access (PEP 562): the models (pydantic) and the components.
_LAZY = {
    "AlertLevel": "smartspace_budget.models",
    "AlertType": "smartspace_budget.models",
    "AnomalySeverity": "smartspace_budget.models",
    "Balance": "smartspace_budget.models",
    "BudgetCheck": "smartspace_budget.models",
    "BudgetPolicy": "smartspace_budget.models",
    "BudgetReservation": "smartspace_budget.models",
    "BudgetStatus": "smartspace_budget.models",
    "CostAnomaly": "smartspace_budget.models",
    "CostEstimate": "smartspace_budget.models",
    "PricingData": "smartspace_budget.models",
    "PricingModel": "smartspace_budget.models",
    "SpendingAlert": "smartspace_budget.models",
    "SpendingAnalytics": "smartspace_budget.models",
    "SpendingThreshold": "smartspace_budget.models",
    "SpendingTrend": "smartspace_budget.models",
    "ThresholdType": "smartspace_budget.models",
    "TokenEstimate": "smartspace_budget.models",
    "TokenEstimationMethod": "smartspace_budget.models",
    "UsageEvent": "smartspace_budget.models",
    "BudgetTracker": "smartspace_budget.budgets",
    "SpendingMonitor": "smartspace_budget.budgets",
    "PricingEngine": "smartspace_budget.pricing",
    "Guard": "smartspace_budget.guard",
    "LocalBackend": "smartspace_budget.backend.local",
    "HttpBackend": "smartspace_budget.backend.http",
    "default_backend": "smartspace_budget.backend",
}

__all__ = [
    "AlertLevel",
    "AlertType",
    "AnomalySeverity",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "Balance",
    "BudgetCheck",
    "BudgetError",
    "BudgetExceededError",
    "BudgetPolicy",
    "BudgetReservation",
    "BudgetStatus",
    "BudgetTracker",
    "ConflictError",
    "ContextLimitExceededError",
    "CostAnomaly",
    "CostEstimate",
    "ExchangeRates",
    "ForbiddenError",
    "Guard",
    "HttpBackend",
    "IdempotencyConflictError",
    "InconsistentInputError",
    "InvalidAmountError",
    "InvalidInputError",
    "LocalBackend",
    "MissingPricingError",
    "NotFoundError",
    "PolicyViolationError",
    "PricingData",
    "PricingEngine",
    "PricingError",
    "PricingModel",
    "RateLimitedError",
    "ReservationResolvedError",
    "SmartspaceBudgetError",
    "SpendingAlert",
    "SpendingAnalytics",
    "SpendingMonitor",
    "SpendingPeriod",
    "SpendingThreshold",
    "SpendingTrend",
    "ThresholdType",
    "TokenEstimate",
    "TokenEstimationMethod",
    "UnauthorizedError",
    "UnknownCurrencyError",
    "UnknownModelError",
    "UnknownProviderError",
    "UsageEvent",
    "__version__",
    "default_backend",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smartspace_budget' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
