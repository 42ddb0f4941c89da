"""Cost anomalies of guarded calls, turned into the monitor's alerts.

The spec's bands map to alert levels: medium → warning, high → critical, critical →
emergency; low and none raise nothing. Handlers are the monitor's own, so one failing
handler never keeps the alert from the others.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from smartspace_budget import display
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard.call import GuardedCall
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    AnomalySeverity,
    CostAnomaly,
    SpendingAlert,
)

__all__ = ["REPORTED", "anomaly_alert", "can_receive", "deliver_alert", "isolated"]

log = logging.getLogger("smartspace_budget.guard")

REPORTED = {
    AnomalySeverity.MEDIUM: AlertLevel.WARNING,
    AnomalySeverity.HIGH: AlertLevel.CRITICAL,
    AnomalySeverity.CRITICAL: AlertLevel.EMERGENCY,
}
"""Alert level of each reported severity."""


def anomaly_alert(
    user_id: str, project_id: str, call: GuardedCall, anomaly: CostAnomaly, level: AlertLevel
) -> SpendingAlert:
    """The monitor's alert for a call whose cost was far from its estimate."""
    return SpendingAlert(
        user_id=user_id,
        project_id=project_id,
        alert_type=AlertType.COST_ANOMALY,
        level=level,
        title=f"Cost anomaly on {call.provider}/{call.model}",
        message=_message(call, anomaly, level),
        current_value=anomaly.actual_cost,
        threshold_value=anomaly.estimated_cost,
        metadata={
            "request_id": call.request_id,
            "provider": call.provider,
            "model": call.model,
            "severity": anomaly.severity.value,
            "direction": anomaly.direction.value,
            "difference_percent": (
                str(anomaly.difference_percent) if anomaly.difference_percent is not None else None
            ),
        },
    )


def _message(call: GuardedCall, anomaly: CostAnomaly, level: AlertLevel) -> str:
    """The alert's sentence, naming the alert's own level (the anomaly's severity band is in
    ``metadata``: a critical band is an emergency alert, and the text must not say otherwise)."""
    actual, estimated = display.amount(anomaly.actual_cost), display.amount(anomaly.estimated_cost)
    if anomaly.difference_percent is None:
        gap = f"against an estimate of {estimated}"
    else:
        side = "above" if anomaly.actual_cost > anomaly.estimated_cost else "below"
        gap = f"{display.percent(anomaly.difference_percent)} {side} its estimate of {estimated}"
    return f"Request {call.request_id} cost {actual}, {gap} ({level.value})"


async def deliver_alert(monitor: Any, alert: SpendingAlert) -> None:
    """Hand ``alert`` to a monitor's handlers; a failing handler never hides the others.

    Any object with a ``report_alert(alert)`` method (sync or async) receives it; a
    ``SpendingMonitor`` remembers it (``get_active_alerts`` lists it) and delivers it through
    its own retrying, isolated handlers.
    """
    report = getattr(monitor, "report_alert", None)
    if not callable(report):
        raise InvalidInputError(f"{type(monitor).__name__} cannot receive alerts")
    result = report(alert)
    if inspect.isawaitable(result):
        await result


def can_receive(monitor: Any) -> bool:
    return callable(getattr(monitor, "report_alert", None))


def isolated(callback: Callable[[CostAnomaly], None], anomaly: CostAnomaly) -> None:
    try:
        callback(anomaly)
    except Exception:
        log.exception("on_anomaly callback failed")
