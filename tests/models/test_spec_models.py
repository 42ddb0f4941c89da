"""Every model the spec names has every field it lists, and each one survives a JSON round trip.

The field lists below are read off the spec's "Key Classes" sections (and its flow diagrams
for ``BudgetCheck``); a renamed or dropped field fails here before it breaks a caller.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.models import (
    AlertLevel,
    AlertType,
    AnomalyDirection,
    AnomalySeverity,
    BudgetCheck,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    CostAnomaly,
    CostEstimate,
    PolicyViolation,
    PricingData,
    PricingModel,
    ReservationStatus,
    SpecModel,
    SpendingAlert,
    SpendingAnalytics,
    SpendingPeriod,
    SpendingThreshold,
    ThresholdType,
    TokenEstimate,
    TokenEstimationMethod,
    ViolationKind,
)

D = Decimal
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 13, 12, tzinfo=UTC)

SPEC_FIELDS: dict[type[SpecModel], set[str]] = {
    BudgetCheck: {"available", "sufficient", "violations", "requested_amount"},
    BudgetStatus: {
        "total_balance", "available_balance", "reserved_amount",
        "spent_today", "spent_this_month", "spent_total",
        "daily_limit", "monthly_limit", "per_request_limit",
        "daily_limit_reached", "monthly_limit_reached", "low_balance_warning",
    },
    BudgetReservation: {
        "reservation_id", "user_id", "project_id", "amount", "status", "expires_at",
    },
    BudgetPolicy: {"per_request_limit", "daily_limit", "monthly_limit", "low_balance_threshold"},
    SpendingAnalytics: {
        "total_spent", "request_count", "average_per_request",
        "spending_by_provider", "requests_by_provider", "spending_by_model",
        "period", "spending_trend", "anomaly_detected",
    },
    PricingData: {
        "provider", "model_name", "pricing_model",
        "input_price_per_1k", "output_price_per_1k",
        "request_price", "price_per_character", "price_per_second",
        "max_input_tokens", "max_output_tokens", "effective_date", "last_updated", "currency",
    },
    TokenEstimate: {"token_count", "method", "confidence"},
    CostEstimate: {
        "input_tokens", "output_tokens", "base_cost", "platform_fee_percent", "platform_fee",
        "total_cost", "currency", "exchange_rate",
    },
    CostAnomaly: {"estimated_cost", "actual_cost", "difference_percent", "severity", "message"},
    SpendingAlert: {
        "alert_type", "level", "title", "message", "current_value", "threshold_value",
        "metadata", "acknowledged",
    },
    SpendingThreshold: {
        "threshold_type", "limit", "level", "notification_percentages",
        "triggered_count", "last_triggered_at", "trigger_history",
    },
}  # fmt: skip


@pytest.mark.parametrize("model", list(SPEC_FIELDS), ids=lambda m: m.__name__)
def test_every_field_the_spec_lists_exists(model: type[SpecModel]) -> None:
    missing = {
        name
        for name in SPEC_FIELDS[model]
        if name not in model.model_fields and not isinstance(getattr(model, name, None), property)
    }
    assert not missing, f"{model.__name__} lacks {sorted(missing)}"


def test_the_spec_enumerations() -> None:
    assert [level.value for level in AlertLevel] == ["info", "warning", "critical", "emergency"]
    assert {"low_balance", "threshold_reached", "daily_limit"} <= {t.value for t in AlertType}
    assert {t.value for t in ThresholdType} == {"balance", "daily", "monthly", "rate"}
    assert [p.value for p in SpendingPeriod] == ["hourly", "daily", "weekly", "monthly", "yearly"]
    assert {m.value for m in PricingModel} == {
        "token_based",
        "per_request",
        "per_character",
        "per_second",
    }
    assert [s.value for s in AnomalySeverity] == ["none", "low", "medium", "high", "critical"]


def _token_estimate() -> TokenEstimate:
    return TokenEstimate(
        model="gpt-4",
        token_count=5,
        method=TokenEstimationMethod.EXACT,
        confidence=1.0,
        character_count=25,
        encoding="cl100k_base",
    )


PRICES: list[tuple[PricingModel, dict[str, Any]]] = [
    (
        PricingModel.TOKEN_BASED,
        {
            "input_price_per_1k": D("0.0025"),
            "output_price_per_1k": D("0.01"),
            "cached_input_price_per_1k": D("0.00125"),
            "max_input_tokens": 128000,
            "max_output_tokens": 16384,
        },
    ),
    (PricingModel.PER_REQUEST, {"request_price": D("0.004")}),
    (PricingModel.PER_CHARACTER, {"price_per_character": D("0.000016")}),
    (PricingModel.PER_SECOND, {"price_per_second": D("0.0001")}),
]


SAMPLES: list[SpecModel] = [
    BudgetCheck(
        user_id="user_001",
        project_id="proj_001",
        requested_amount=D("0.0316575"),
        available=False,
        available_balance=D("0.01"),
        violations=["Insufficient balance"],
        violation_details=[
            PolicyViolation(
                kind=ViolationKind.INSUFFICIENT_BALANCE,
                message="Insufficient balance",
                limit=D("0.01"),
                current=D("0.01"),
                requested=D("0.0316575"),
                critical=True,
            )
        ],
        policy=BudgetPolicy(per_request_limit=D("0.05"), daily_limit=D(0)),
        checked_at=T1,
    ),
    BudgetStatus(
        total_balance=D("100.00"),
        available_balance=D("-0.000000001"),
        reserved_amount=D("5"),
        spent_today=D("-2.50"),
        spent_this_month=D("250"),
        spent_total=D("1500"),
        daily_limit=None,
        monthly_limit=D("1000"),
        per_request_limit=D(0),
        low_balance_threshold=D("10"),
        currency="USDC",
        timezone="Europe/Berlin",
        as_of=T1,
    ),
    BudgetReservation(
        reservation_id="res_1",
        user_id="user_001",
        project_id="proj_001",
        amount=D("0.05"),
        status=ReservationStatus.SETTLED,
        created_at=T0,
        expires_at=T1,
        request_id="req_1",
        settled_amount=D("0.0612"),
        resolved_at=T1,
    ),
    BudgetPolicy(
        per_request_limit=D("0.000000001"),
        daily_limit=D(0),
        monthly_limit=None,
        low_balance_threshold=D("123456789.123456789"),
    ),
    *[
        PricingData(
            provider="acme",
            model_name="m/1",
            pricing_model=pricing_model,
            effective_date=T0,
            last_updated=T1,
            currency="EUR",
            version="v3",
            **prices,
        )
        for pricing_model, prices in PRICES
    ],
    _token_estimate(),
    CostEstimate(
        provider="openai",
        model="gpt-4",
        input_tokens=5,
        output_tokens=500,
        input_cost=D("0.00015"),
        output_cost=D("0.03"),
        base_cost=D("0.03015"),
        platform_fee_percent=D(5),
        platform_fee=D("0.0015075"),
        total_cost=D("0.0316575"),
        currency="USDC",
        input_token_estimate=_token_estimate(),
        price_version="v1",
        estimated_at=T1,
    ),
    CostAnomaly(
        request_id="req_1",
        provider="openai",
        model="gpt-4",
        estimated_cost=D("0.02"),
        actual_cost=D("0.061"),
        difference=D("0.041"),
        difference_percent=D("205"),
        severity=AnomalySeverity.CRITICAL,
        direction=AnomalyDirection.OVER,
        message="Actual cost 205% above the estimate",
        detected_at=T1,
    ),
    SpendingAlert(
        alert_id="a1",
        user_id="user_001",
        project_id="proj_001",
        alert_type=AlertType.COST_SPIKE,
        level=AlertLevel.EMERGENCY,
        title="Cost spike",
        message="Spent $5.00 in one hour",
        current_value=D("5.00"),
        threshold_value=D("0.5"),
        metadata={"increase_percent": D("900.00"), "hours": 24},
        created_at=T1,
        acknowledged=True,
        acknowledged_at=T1,
        threshold_id="t1",
        period_start=T0,
    ),
    SpendingThreshold(
        threshold_id="t1",
        threshold_type=ThresholdType.RATE,
        limit=D("2.5"),
        level=AlertLevel.WARNING,
        notification_percentages=[D("50"), D("80.5"), D(100)],
        name="hourly cap",
        triggered_count=2,
        last_triggered_at=T1,
        trigger_history=[T0, T1],
    ),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_every_model_round_trips_through_json(sample: SpecModel) -> None:
    text = sample.to_json()
    again = type(sample).from_json(text)
    assert again == sample
    assert again.to_json() == text
    # Amounts are exact JSON numbers, never strings or floats.
    data = json.loads(text, parse_float=Decimal)
    for name, value in sample.model_dump().items():
        if isinstance(value, Decimal):
            assert isinstance(data[name], (Decimal, int)), name
            assert data[name] == value, name


def test_threshold_trigger_history_is_kept() -> None:
    threshold = SpendingThreshold(threshold_type=ThresholdType.DAILY, limit=D(10))
    assert (threshold.triggered_count, threshold.last_triggered_at, threshold.trigger_history) == (
        0,
        None,
        [],
    )
    assert "last_triggered_at" not in json.loads(threshold.to_json())


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (BudgetPolicy, {"monthly_limit": "-1"}, "monthly_limit"),
        (BudgetPolicy, {"daily_limit": "NaN"}, "not a plain decimal"),
        (BudgetPolicy, {"daily_limit": "5", "weekly_limit": "9"}, "weekly_limit"),
        (SpendingThreshold, {"threshold_type": "hourly", "limit": "5"}, "threshold_type"),
        (SpendingThreshold, {"threshold_type": "daily", "limit": "-5"}, "negative"),
        (SpendingThreshold, {"threshold_type": "daily", "limit": "5", "level": "panic"}, "level"),
        (
            BudgetReservation,
            {
                "reservation_id": "r",
                "user_id": "u",
                "project_id": "p",
                "amount": "-1",
                "created_at": "2026-01-01T00:00:00Z",
                "expires_at": "2026-01-01T00:05:00Z",
            },
            "amount",
        ),
        (
            TokenEstimate,
            {"model": "gpt-4", "token_count": 5, "method": "guess", "confidence": 0.5},
            "method",
        ),
        (
            TokenEstimate,
            {"model": "gpt-4", "token_count": -1, "method": "exact", "confidence": 1},
            "token_count",
        ),
        (
            PricingData,
            {
                "provider": "acme",
                "model_name": "m",
                "pricing_model": "per_second",
                "effective_date": "2026-01-01T00:00:00Z",
                "last_updated": "2026-01-01T00:00:00Z",
            },
            "price_per_second",
        ),
        (
            PricingData,
            {
                "provider": "acme",
                "model_name": "m",
                "pricing_model": "per_request",
                "request_price": "-0.01",
                "effective_date": "2026-01-01T00:00:00Z",
                "last_updated": "2026-01-01T00:00:00Z",
            },
            "request_price",
        ),
    ],
)
def test_invalid_documents_name_what_is_wrong(
    model: type[SpecModel], data: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        model.from_data(data)


def test_nan_anywhere_in_a_document_is_refused() -> None:
    alert = SAMPLES[-2]
    assert isinstance(alert, SpendingAlert)
    with pytest.raises(InvalidAmountError, match="NaN"):
        SpendingAlert.from_json(
            alert.to_json().replace('"current_value": 5.00', '"current_value": NaN')
        )
    with pytest.raises(InvalidInputError, match="current_value"):
        SpendingAlert.from_json(
            alert.to_json().replace('"current_value": 5.00', '"current_value": "Infinity"')
        )
