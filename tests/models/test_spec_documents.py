"""The spec's three example JSON documents parse exactly and serialize back unchanged."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.models import (
    BudgetPolicy,
    BudgetStatus,
    CostEstimate,
    PricingData,
    PricingModel,
    SpecModel,
    SpendingAnalytics,
    SpendingTrend,
    dumps,
    loads,
)

# Verbatim from spec/budget-cost-system.md, "Expected Response Formats".
SPEC_STATUS = """{
  "total_balance": 100.00,
  "available_balance": 75.50,
  "reserved_amount": 5.00,
  "spent_today": 19.50,
  "spent_this_month": 250.00,
  "spent_total": 1500.00,
  "daily_limit": 50.00,
  "monthly_limit": 1000.00,
  "per_request_limit": 5.00
}"""

SPEC_PRICING = """{
  "provider": "openai",
  "model_name": "gpt-4",
  "pricing_model": "token_based",
  "input_price_per_1k": 0.03,
  "output_price_per_1k": 0.06,
  "max_input_tokens": 8192,
  "max_output_tokens": 4096,
  "effective_date": "2026-01-01T00:00:00Z",
  "last_updated": "2026-01-13T12:00:00Z"
}"""

SPEC_ANALYTICS = """{
  "total_spent": 250.00,
  "request_count": 1250,
  "average_per_request": 0.20,
  "spending_by_provider": {
    "openai": 150.00,
    "anthropic": 75.00,
    "google": 25.00
  },
  "requests_by_provider": {
    "openai": 750,
    "anthropic": 375,
    "google": 125
  },
  "spending_by_model": {
    "gpt-4": 120.00,
    "gpt-3.5-turbo": 30.00,
    "claude-3-opus": 75.00,
    "gemini-pro": 25.00
  },
  "spending_trend": "stable",
  "anomaly_detected": false
}"""


def _compact(text: str) -> str:
    """The document's tokens without layout, keeping number spellings (``100.00``)."""
    return dumps(loads(text))


@pytest.mark.parametrize(
    ("model", "document"),
    [(BudgetStatus, SPEC_STATUS), (PricingData, SPEC_PRICING), (SpendingAnalytics, SPEC_ANALYTICS)],
)
def test_spec_document_round_trips_exactly(model: type[SpecModel], document: str) -> None:
    parsed = model.from_json(document)
    assert parsed.to_json() == _compact(document)
    assert list(json.loads(parsed.to_json())) == list(json.loads(document))


def test_status_amounts_are_exact_decimals() -> None:
    status = BudgetStatus.from_json(SPEC_STATUS)
    assert status.total_balance == Decimal("100.00")
    assert str(status.available_balance) == "75.50"
    assert status.daily_limit == Decimal("50.00")
    assert not status.daily_limit_reached
    assert not status.monthly_limit_reached
    assert status.daily_remaining == Decimal("30.50")


def test_status_flags_follow_the_amounts() -> None:
    status = BudgetStatus.from_json(SPEC_STATUS)
    reached = status.model_copy(update={"spent_today": Decimal("50.00")})
    assert reached.daily_limit_reached
    low = status.model_copy(update={"low_balance_threshold": Decimal("80")})
    assert low.low_balance_warning
    overdrawn = status.model_copy(update={"available_balance": Decimal("-0.01")})
    assert overdrawn.low_balance_warning


def test_pricing_and_analytics_fields() -> None:
    pricing = PricingData.from_json(SPEC_PRICING)
    assert pricing.pricing_model is PricingModel.TOKEN_BASED
    assert pricing.input_price_per_1k == Decimal("0.03")
    assert pricing.price_currency == "USDC"
    assert pricing.effective_date.isoformat() == "2026-01-01T00:00:00+00:00"
    analytics = SpendingAnalytics.from_json(SPEC_ANALYTICS)
    assert analytics.spending_trend is SpendingTrend.STABLE
    assert sum(analytics.spending_by_provider.values()) == analytics.total_spent
    assert analytics.requests_by_provider["anthropic"] == 375


def test_long_amounts_keep_every_digit() -> None:
    document = SPEC_STATUS.replace("1500.00", "12345678901.123456789")
    status = BudgetStatus.from_json(document)
    assert status.spent_total == Decimal("12345678901.123456789")
    assert '"spent_total": 12345678901.123456789' in status.to_json()


def test_amounts_may_be_strings() -> None:
    status = BudgetStatus.from_json(SPEC_STATUS.replace("75.50", '"75.50"'))
    assert status.available_balance == Decimal("75.50")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (SPEC_STATUS.replace('"daily_limit": 50.00', '"daily_limit": -1'), "daily_limit"),
        (SPEC_STATUS.replace("75.50", '"NaN"'), "not a plain decimal"),
        (SPEC_STATUS.replace("75.50", '"Infinity"'), "not a plain decimal"),
        (SPEC_STATUS.replace("75.50", '"abc"'), "not a plain decimal"),
        (SPEC_STATUS.replace('"spent_total": 1500.00,', ""), "spent_total"),
        (SPEC_PRICING.replace("token_based", "per_token_magic"), "pricing_model"),
        (SPEC_PRICING.replace('"input_price_per_1k": 0.03,', ""), "input_price_per_1k"),
        (SPEC_ANALYTICS.replace('"stable"', '"sideways"'), "spending_trend"),
        (SPEC_ANALYTICS.replace('"openai": 750', '"openai": -750'), "negative"),
        (SPEC_STATUS.replace("{", '{"surprise": 1,', 1), "surprise"),
    ],
)
def test_invalid_documents_fail_with_a_clear_message(document: str, message: str) -> None:
    model = (
        PricingData
        if "model_name" in document
        else SpendingAnalytics
        if "spending_trend" in document
        else BudgetStatus
    )
    with pytest.raises(InvalidInputError, match=message):
        model.from_json(document)


def test_bare_nan_number_is_refused() -> None:
    with pytest.raises(InvalidAmountError, match="NaN"):
        BudgetStatus.from_json(SPEC_STATUS.replace("75.50", "NaN"))


def test_float_is_refused_when_building_in_python() -> None:
    with pytest.raises(ValueError, match="float"):
        BudgetPolicy(daily_limit=0.1)


def test_policy_zero_blocks_none_unlimited_negative_refused() -> None:
    assert BudgetPolicy(daily_limit=Decimal(0)).daily_limit == 0
    assert BudgetPolicy().monthly_limit is None
    with pytest.raises(InvalidInputError, match="negative"):
        BudgetPolicy.from_data({"per_request_limit": "-0.000000001"})


def test_cost_estimate_total_must_equal_base_plus_fee() -> None:
    fields = {
        "provider": "openai",
        "model": "gpt-4",
        "input_tokens": 5,
        "output_tokens": 500,
        "input_cost": "0.00015",
        "output_cost": "0.03",
        "base_cost": "0.03015",
        "platform_fee_percent": "5",
        "platform_fee": "0.0015075",
    }
    ok = CostEstimate.from_data({**fields, "total_cost": "0.0316575"})
    assert ok.total_cost == Decimal("0.0316575")
    with pytest.raises(InvalidInputError, match="total_cost"):
        CostEstimate.from_data({**fields, "total_cost": "0.0316576"})


def test_unset_extension_keys_are_not_written() -> None:
    status = BudgetStatus.from_json(SPEC_STATUS)
    assert "low_balance_threshold" not in json.loads(status.to_json())
    with_threshold = status.model_copy(update={"low_balance_threshold": Decimal("10")})
    assert json.loads(with_threshold.to_json())["low_balance_threshold"] == 10


def test_unlimited_spec_keys_are_written_as_null() -> None:
    status = BudgetStatus.from_json(
        SPEC_STATUS.replace('"daily_limit": 50.00', '"daily_limit": null')
    )
    assert json.loads(status.to_json())["daily_limit"] is None


def test_tiny_amounts_are_written_positionally() -> None:
    assert (
        dumps({"fee": Decimal("1E-9"), "big": Decimal("1E+3")})
        == '{"fee": 0.000000001, "big": 1000}'
    )


def test_non_utf8_json_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="UTF-8"):
        loads(b'{"a": "\xff"}')
