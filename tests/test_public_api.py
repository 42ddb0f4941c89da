"""The public API is exactly ``__all__``, and every name in it resolves."""

from __future__ import annotations

import pytest

import smartspace_budget

EXPECTED = {
    "AlertLevel", "AlertType", "AnomalySeverity", "BackendError", "BackendTimeoutError",
    "BackendUnavailableError", "Balance", "BudgetCheck", "BudgetError", "BudgetExceededError",
    "BudgetPolicy", "BudgetReservation", "BudgetStatus", "ConflictError",
    "ContextLimitExceededError", "CostAnomaly", "CostEstimate", "ExchangeRates", "ForbiddenError",
    "IdempotencyConflictError", "InconsistentInputError", "InvalidAmountError", "InvalidInputError",
    "MissingPricingError",
    "NotFoundError", "PolicyViolationError", "PricingData", "PricingError",
    "PricingModel", "RateLimitedError", "ReservationResolvedError", "SmartspaceBudgetError",
    "SpendingAlert", "SpendingAnalytics", "SpendingPeriod",
    "SpendingThreshold", "SpendingTrend", "ThresholdType", "TokenEstimate",
    "TokenEstimationMethod", "UnauthorizedError", "UnknownCurrencyError", "UnknownModelError",
    "UnknownProviderError", "UsageEvent", "__version__", "BudgetTracker", "SpendingMonitor",
    "PricingEngine", "Guard", "LocalBackend", "HttpBackend", "default_backend",
}  # fmt: skip


def test_all_is_the_agreed_public_api() -> None:
    assert set(smartspace_budget.__all__) == EXPECTED
    assert len(smartspace_budget.__all__) == len(EXPECTED), "duplicates in __all__"


def test_every_public_name_resolves() -> None:
    for name in smartspace_budget.__all__:
        assert getattr(smartspace_budget, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = smartspace_budget.NoSuchThing
