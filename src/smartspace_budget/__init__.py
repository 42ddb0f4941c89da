"""smartspace-budget: keep the LLM spending of agentic platforms under control.

The public API is :data:`__all__` (a test guards it). The spec's components and the backends
are imported lazily on first use, so ``import smartspace_budget`` stays cheap for callers that
only need the models or the errors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from smartspace_budget.money import ExchangeRates
from smartspace_budget.periods import SpendingPeriod

if TYPE_CHECKING:
    from smartspace_budget.backend import default_backend
    from smartspace_budget.backend.http import HttpBackend
    from smartspace_budget.backend.local import LocalBackend
    from smartspace_budget.budgets import BudgetTracker, SpendingMonitor
    from smartspace_budget.guard import Guard
    from smartspace_budget.pricing import PricingEngine

__version__ = "0.1.0"

# Heavy components, loaded on first attribute access (PEP 562).
_LAZY = {
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
