"""Cost anomalies: the spec's bands at their boundaries, both directions, zero and negatives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget import display
from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.models import AnomalyDirection, AnomalySeverity, CostAnomaly
from smartspace_budget.pricing import PricingEngine
from smartspace_budget.pricing.anomaly import classify, detect_cost_anomaly

S = AnomalySeverity
ESTIMATE = Decimal("0.05")

# (percent difference, severity): 19.99 none, 20 low, 50 medium, 100 high, 200 high, 200.01 critical
BOUNDARIES = [
    ("0", S.NONE),
    ("19.99", S.NONE),
    ("19.9999999", S.NONE),
    ("20", S.LOW),
    ("49.99", S.LOW),
    ("50", S.MEDIUM),
    ("99.99", S.MEDIUM),
    ("100", S.HIGH),
    ("150", S.HIGH),
    ("200", S.HIGH),
    ("200.0000001", S.CRITICAL),
    ("200.01", S.CRITICAL),
    ("1000", S.CRITICAL),
]


@pytest.mark.parametrize(("percent", "severity"), BOUNDARIES)
async def test_over_the_estimate(engine: PricingEngine, percent: str, severity: S) -> None:
    actual = ESTIMATE * (1 + Decimal(percent) / 100)
    anomaly = await engine.detect_cost_anomaly("req-1", "openai", "gpt-4", ESTIMATE, actual)
    assert anomaly.severity is severity
    assert anomaly.direction is (
        AnomalyDirection.OVER if percent != "0" else AnomalyDirection.EQUAL
    )
    assert anomaly.difference == actual - ESTIMATE
    assert anomaly.difference_percent is not None
    assert anomaly.difference_percent == Decimal(percent)
    assert anomaly.is_anomaly is (severity is not S.NONE)


@pytest.mark.parametrize(("percent", "severity"), BOUNDARIES)
def test_under_the_estimate(percent: str, severity: S) -> None:
    actual = ESTIMATE * (1 - Decimal(percent) / 100)
    anomaly = detect_cost_anomaly("req-2", "anthropic", "claude-3-opus", ESTIMATE, actual)
    assert anomaly.severity is severity
    if percent != "0":
        assert anomaly.direction is AnomalyDirection.UNDER
        assert f"is {display.percent(Decimal(percent))} below" in anomaly.message


def test_zero_estimate() -> None:
    nothing = detect_cost_anomaly("r", "p", "m", Decimal(0), Decimal(0))
    assert (nothing.severity, nothing.difference_percent) == (S.NONE, Decimal(0))
    assert nothing.direction is AnomalyDirection.EQUAL
    something = detect_cost_anomaly("r", "p", "m", Decimal(0), Decimal("0.000000001"))
    assert something.severity is S.CRITICAL
    assert something.difference_percent is None
    assert "no finite percentage" in something.message


def test_zero_actual_is_a_full_miss() -> None:
    anomaly = detect_cost_anomaly("r", "p", "m", Decimal("0.02"), Decimal(0))
    assert (anomaly.severity, anomaly.difference_percent) == (S.HIGH, Decimal(100))
    assert anomaly.direction is AnomalyDirection.UNDER


def test_negative_actual_cost_is_compared() -> None:
    anomaly = detect_cost_anomaly("r", "p", "m", Decimal("0.10"), Decimal("-0.15"))
    assert anomaly.severity is S.CRITICAL
    assert anomaly.difference == Decimal("-0.25")
    assert anomaly.difference_percent == Decimal(250)


def test_negative_estimate_is_refused() -> None:
    with pytest.raises(InvalidAmountError, match="estimated_cost must not be negative"):
        detect_cost_anomaly("r", "p", "m", Decimal("-0.01"), Decimal("0.01"))


@pytest.mark.parametrize("bad", [float("nan"), 0.1, "NaN", "Infinity", "abc", None])
def test_non_decimal_amounts_are_refused(bad: object) -> None:
    with pytest.raises(InvalidAmountError, match="actual_cost"):
        detect_cost_anomaly("r", "p", "m", Decimal("0.01"), bad)


def test_ids_must_be_given() -> None:
    with pytest.raises(InvalidInputError, match="request_id"):
        detect_cost_anomaly("", "p", "m", Decimal(1), Decimal(1))


def test_anomaly_is_a_valid_document() -> None:
    anomaly = detect_cost_anomaly("r", "openai", "gpt-4", "0.05", "0.15")
    assert CostAnomaly.from_json(anomaly.to_json()) == anomaly
    assert (
        anomaly.message
        == "actual cost $0.15 is 200% above the estimate $0.05 for openai/gpt-4 (high severity)"
    )


@settings(max_examples=200, deadline=None)
@given(
    estimated=st.decimals("0.000000001", "1000", places=9),
    actual=st.decimals("-1000", "100000", places=9),
)
def test_bands_follow_the_exact_ratio(estimated: Decimal, actual: Decimal) -> None:
    severity, _, percent = classify(estimated, actual)
    ratio = abs(actual - estimated) * 100 / estimated  # 28 digits, enough away from a bound
    expected = (
        S.CRITICAL if ratio > 200 else S.HIGH if ratio >= 100 else S.MEDIUM if ratio >= 50
        else S.LOW if ratio >= 20 else S.NONE
    )  # fmt: skip
    assert severity is expected
    assert percent is not None
    assert abs(percent - ratio) <= Decimal("0.0000000005")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0E-9", "$0.00"),
        ("1.2978085065", "$1.297808506"),
        ("100.000000000", "$100.00"),
        ("0.000000001", "$0.000000001"),
        ("-3", "-$3.00"),
        ("1234.5", "$1,234.50"),
    ],
)
def test_amounts_read_as_the_cli_prints_them(value: str, shown: str) -> None:
    assert display.amount(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [("1391.315136476", "1,391.31%"), ("60.000000000", "60%"), ("19.9999999", "19.99%")],
)
def test_percentages_read_with_two_decimals_at_most(value: str, shown: str) -> None:
    assert display.percent(Decimal(value)) == shown
