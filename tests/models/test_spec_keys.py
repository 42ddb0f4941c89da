"""``SPEC_KEYS``, the one definition of the spec's shapes, and the two forms built from it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from tests.models.spec_examples import SPEC_FILE, TITLES, VERBATIM, from_spec_file, spec_documents

from smartspace_budget.models import (
    Balance,
    BudgetStatus,
    PriceTier,
    PricingData,
    SpecModel,
    SpendingAnalytics,
    dumps,
    loads,
)
from smartspace_budget.periods import SpendingPeriod

MODELS: dict[str, type[SpecModel]] = dict(
    zip(TITLES, (BudgetStatus, PricingData, SpendingAnalytics), strict=True)
)


@pytest.mark.parametrize("title", TITLES)
def test_spec_keys_are_the_spec_documents_keys_in_order(title: str) -> None:
    document = loads(spec_documents()[title])
    assert tuple(document) == MODELS[title].SPEC_KEYS


@pytest.mark.skipif(not SPEC_FILE.is_file(), reason=f"{SPEC_FILE} is not in this checkout")
@pytest.mark.parametrize("title", TITLES)
def test_verbatim_copies_match_the_spec_file(title: str) -> None:
    # The stand-ins used where the spec file is absent must not drift from it.
    assert loads(VERBATIM[title]) == loads(from_spec_file()[title])


@pytest.mark.parametrize("model", [BudgetStatus, SpendingAnalytics])
def test_spec_keys_are_the_fields_that_are_not_extensions(model: type[SpecModel]) -> None:
    assert set(model.SPEC_KEYS) == set(model.model_fields) - model._optional_keys


def test_pricing_spec_keys_are_fields() -> None:
    # Pricing's spec keys include prices a per-request model has not, so they cannot be
    # derived from ``_optional_keys``; they must still all be fields.
    assert set(PricingData.SPEC_KEYS) <= set(PricingData.model_fields)


@pytest.mark.parametrize("title", TITLES)
def test_spec_document_in_both_forms_is_itself(title: str) -> None:
    document = loads(spec_documents()[title])
    parsed = MODELS[title].from_data(document)
    assert loads(dumps(parsed.spec_data())) == document
    assert list(parsed.spec_data()) == list(document)
    assert loads(dumps(parsed.extended_data())) == document


def _status_with_extensions() -> BudgetStatus:
    status = BudgetStatus.from_data(loads(VERBATIM["Budget Status"]))
    return status.model_copy(
        update={
            "daily_limit": None,
            "low_balance_threshold": Decimal("80"),
            "currency": "USDC",
            "timezone": "Europe/Paris",
        }
    )


def test_status_spec_form_drops_extensions_and_writes_unlimited_as_null() -> None:
    status = _status_with_extensions()
    data = status.spec_data()
    assert tuple(data) == BudgetStatus.SPEC_KEYS
    assert data["daily_limit"] is None
    extended = status.extended_data()
    assert tuple(extended)[: len(BudgetStatus.SPEC_KEYS)] == BudgetStatus.SPEC_KEYS
    assert extended["low_balance_threshold"] == Decimal("80")
    assert extended["timezone"] == "Europe/Paris"
    assert "as_of" not in extended  # unset extensions stay out
    again = BudgetStatus.from_data(extended)
    assert again == status
    assert again.low_balance_warning


def test_pricing_spec_form_has_every_spec_key_null_when_unknown() -> None:
    pricing = PricingData.from_data(
        {
            "provider": "p",
            "model_name": "m/with/slashes",
            "pricing_model": "token_based",
            "input_price_per_1k": "0.001",
            "output_price_per_1k": "0.002",
            "effective_date": "2026-01-01T00:00:00Z",
            "last_updated": "2026-01-02T00:00:00Z",
            "cached_input_price_per_1k": "0.0001",
            "tiers": [
                PriceTier(
                    min_input_tokens=1000,
                    input_price_per_1k=Decimal("0.002"),
                    output_price_per_1k=Decimal("0.004"),
                )
            ],
            "version": "v1",
        }
    )
    data = pricing.spec_data()
    assert tuple(data) == PricingData.SPEC_KEYS
    assert data["max_input_tokens"] is None
    assert data["max_output_tokens"] is None
    extended = pricing.extended_data()
    assert set(extended) == set(PricingData.SPEC_KEYS) | {
        "cached_input_price_per_1k",
        "tiers",
        "version",
    }
    assert PricingData.from_data(extended) == pricing


def test_per_request_price_has_null_token_prices_in_the_spec_form() -> None:
    pricing = PricingData.from_data(
        {
            "provider": "p",
            "model_name": "m",
            "pricing_model": "per_request",
            "request_price": "0.01",
            "effective_date": "2026-01-01T00:00:00Z",
            "last_updated": "2026-01-01T00:00:00Z",
        }
    )
    data = pricing.spec_data()
    assert data["input_price_per_1k"] is None
    assert data["output_price_per_1k"] is None
    assert pricing.extended_data()["request_price"] == Decimal("0.01")


def test_analytics_spec_form_drops_the_window_and_model_counts() -> None:
    analytics = SpendingAnalytics.from_data(loads(VERBATIM["Spending Analytics"]))
    analytics = analytics.model_copy(
        update={
            "requests_by_model": {"gpt-4": 600},
            "currency": "USDC",
            "period": SpendingPeriod.DAILY,
        }
    )
    assert tuple(analytics.spec_data()) == SpendingAnalytics.SPEC_KEYS
    extended = analytics.extended_data()
    assert extended["requests_by_model"] == {"gpt-4": 600}
    assert SpendingAnalytics.from_data(extended) == analytics


def test_a_model_without_a_spec_document_has_no_spec_form() -> None:
    balance = Balance(
        total_balance=Decimal(1), available_balance=Decimal(1), reserved_amount=Decimal(0)
    )
    with pytest.raises(TypeError, match="Balance"):
        balance.spec_data()
