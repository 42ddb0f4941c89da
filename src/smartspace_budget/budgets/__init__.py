"""The spec's BudgetTracker and SpendingMonitor, their analysis, alert handlers and loop.

``from smartspace_budget.budgets import BudgetTracker, SpendingPeriod`` is the spec's
``from budgets import BudgetTracker, SpendingPeriod``.
"""

from smartspace_budget.budgets import analysis
from smartspace_budget.budgets.alert_store import (
    AlertStore,
    HttpAlertStore,
    LedgerAlertStore,
    MemoryAlertStore,
)
from smartspace_budget.budgets.alert_urls import notifier_from_url, notifiers_from_urls
from smartspace_budget.budgets.budget_tracker import BudgetTracker
from smartspace_budget.budgets.delivery import AlertDelivery, DeliveryStats, RetryPolicy
from smartspace_budget.budgets.notifiers import (
    AppriseNotifier,
    EmailNotifier,
    NotificationError,
    SlackNotifier,
    WebhookNotifier,
    sign_payload,
    verify_signature,
)
from smartspace_budget.budgets.periodic import run_monitor, stop_on_signals
from smartspace_budget.budgets.policy import BackendPolicy
from smartspace_budget.budgets.spending_monitor import AlertHandler, SpendingMonitor
from smartspace_budget.budgets.thresholds import DEFAULT_LIMIT_PERCENTAGES
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    BudgetCheck,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    PolicyViolation,
    SpendingAlert,
    SpendingAnalytics,
    SpendingThreshold,
    SpendingTrend,
    ThresholdType,
    ViolationKind,
)
from smartspace_budget.periods import SpendingPeriod

__all__ = [
    "DEFAULT_LIMIT_PERCENTAGES",
    "AlertDelivery",
    "AlertHandler",
    "AlertLevel",
    "AlertStore",
    "AlertType",
    "AppriseNotifier",
    "BackendPolicy",
    "BudgetCheck",
    "BudgetPolicy",
    "BudgetReservation",
    "BudgetStatus",
    "BudgetTracker",
    "DeliveryStats",
    "EmailNotifier",
    "HttpAlertStore",
    "LedgerAlertStore",
    "MemoryAlertStore",
    "NotificationError",
    "PolicyViolation",
    "RetryPolicy",
    "SlackNotifier",
    "SpendingAlert",
    "SpendingAnalytics",
    "SpendingMonitor",
    "SpendingPeriod",
    "SpendingThreshold",
    "SpendingTrend",
    "ThresholdType",
    "ViolationKind",
    "WebhookNotifier",
    "analysis",
    "notifier_from_url",
    "notifiers_from_urls",
    "run_monitor",
    "sign_payload",
    "stop_on_signals",
    "verify_signature",
]
