"""Alert levels order, thresholds validate their percentages."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import AlertLevel, AlertType, SpendingAlert, SpendingThreshold


def test_levels_are_ordered() -> None:
    assert AlertLevel.INFO < AlertLevel.WARNING < AlertLevel.CRITICAL < AlertLevel.EMERGENCY
    assert max(AlertLevel) is AlertLevel.EMERGENCY
    assert sorted([AlertLevel.CRITICAL, AlertLevel.INFO]) == [AlertLevel.INFO, AlertLevel.CRITICAL]


def test_threshold_percentages_sorted_and_unique() -> None:
    threshold = SpendingThreshold.from_data(
        {"threshold_type": "daily", "limit": "50", "notification_percentages": [100, "80", 50, 80]}
    )
    assert threshold.notification_percentages == [Decimal(50), Decimal(80), Decimal(100)]


@pytest.mark.parametrize("bad", [[], [0], [-5], [50.5], ["NaN"]])
def test_threshold_bad_percentages_refused(bad: list[object]) -> None:
    with pytest.raises(InvalidInputError, match="notification_percentages"):
        SpendingThreshold.from_data(
            {"threshold_type": "daily", "limit": "50", "notification_percentages": bad}
        )


def test_alert_round_trip() -> None:
    alert = SpendingAlert(
        user_id="u",
        project_id="p",
        alert_type=AlertType.DAILY_LIMIT,
        level=AlertLevel.CRITICAL,
        title="Daily limit reached",
        message="Spent 50.00 of 50.00 today",
        current_value=Decimal("50.00"),
        threshold_value=Decimal("50.00"),
    )
    again = SpendingAlert.from_json(alert.to_json())
    assert again == alert
    with pytest.raises(InvalidInputError, match="alert_type"):
        SpendingAlert.from_data({**alert.model_dump(), "alert_type": "meteor"})
