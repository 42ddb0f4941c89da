"""Exact money: nano-unit round trips, one rounding rule, splits that never lose a unit."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import InvalidAmountError, InvalidInputError, UnknownCurrencyError
from smartspace_budget.money import (
    MAX_NANO,
    ExchangeRate,
    ExchangeRates,
    from_nano,
    parse_amount,
    quantize,
    ratio_split,
    to_nano,
)

NANO = Decimal("0.000000001")
MAX_AMOUNT = Decimal("9223372036.854775807")

amounts = st.decimals(
    min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, places=9, allow_nan=False, allow_infinity=False
)
rates = st.decimals(
    min_value=Decimal("0.0001"),
    max_value=Decimal(100000),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)
ratios = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=200)
@given(st.integers(min_value=-MAX_NANO, max_value=MAX_NANO))
def test_nano_round_trip(nano: int) -> None:
    amount = from_nano(nano)
    assert amount.as_tuple().exponent == -9
    assert to_nano(amount) == nano


@settings(max_examples=200)
@given(amounts)
def test_decimal_round_trip(amount: Decimal) -> None:
    assert from_nano(to_nano(amount)) == amount


def test_range_is_symmetric_and_ends_at_max_nano() -> None:
    # -2**63 fits a BIGINT but is refused, so negating any stored amount never overflows.
    assert to_nano(from_nano(MAX_NANO)) == MAX_NANO
    assert to_nano(from_nano(-MAX_NANO)) == -MAX_NANO
    assert to_nano(Decimal("9223372036.8547758074")) == MAX_NANO  # rounds down into range
    for beyond in (
        Decimal("9223372036.854775808"),
        Decimal("-9223372036.854775808"),  # -2**63 nano
        Decimal("9223372036.8547758075"),  # rounds half-even up to ...808
        Decimal("1E+15"),
        Decimal("1e100"),
        Decimal("-1e999999"),
        MAX_NANO,
    ):
        with pytest.raises(InvalidAmountError, match="beyond the ledger's range"):
            to_nano(beyond)


@pytest.mark.parametrize(
    ("amount", "nano"),
    [
        (Decimal("0.0000000005"), 0),
        (Decimal("0.0000000015"), 2),
        (Decimal("0.0000000025"), 2),
        (Decimal("0.0000000035"), 4),
        (Decimal("-0.0000000015"), -2),
        (Decimal("-0.0000000005"), 0),
        (Decimal("0.00000000050000001"), 1),
        (Decimal("0.00000000049999999"), 0),
        (Decimal("1.0000000005"), 1_000_000_000),
        (Decimal("1.0000000015"), 1_000_000_002),
        (Decimal("0.000000001"), 1),
        ("12.5", 12_500_000_000),
        (7, 7_000_000_000),
        (Decimal("-3.25"), -3_250_000_000),
    ],
)
def test_rounding_is_half_even(amount: str | int | Decimal, nano: int) -> None:
    assert to_nano(amount) == nano


def test_quantize_rounds_half_even_at_any_precision() -> None:
    assert quantize(Decimal("2.5"), 0) == Decimal(2)
    assert quantize(Decimal("3.5"), 0) == Decimal(4)
    assert str(quantize(Decimal("0.125"), 2)) == "0.12"
    with pytest.raises(InvalidAmountError, match="too large"):
        quantize(Decimal("1e70"))


@pytest.mark.parametrize(
    "bad",
    [
        0.1,
        1.0,
        float("nan"),
        float("inf"),
        float("-inf"),
        True,
        False,
        None,
        "NaN",
        "sNaN",
        "Infinity",
        "-inf",
        Decimal("NaN"),
        Decimal("-Infinity"),
        "twelve",
        "",
        [1],
    ],
)
def test_non_amounts_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidAmountError):
        to_nano(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmountError):
        parse_amount(bad)


@given(st.floats())
def test_every_float_is_rejected(value: float) -> None:
    with pytest.raises(InvalidAmountError, match="float"):
        to_nano(value)  # type: ignore[arg-type]


def test_negative_amounts_can_be_refused() -> None:
    with pytest.raises(InvalidAmountError, match="must not be negative"):
        to_nano("-0.01", name="deposit", allow_negative=False)
    assert to_nano("0", allow_negative=False) == 0


@pytest.mark.parametrize("bad", [True, 1.0, "1", Decimal(1)])
def test_from_nano_takes_only_ints(bad: object) -> None:
    with pytest.raises(InvalidAmountError):
        from_nano(bad)  # type: ignore[arg-type]


def test_from_nano_ignores_the_callers_decimal_context() -> None:
    with decimal.localcontext() as context:
        context.prec = 5
        assert from_nano(MAX_NANO) == MAX_AMOUNT
    assert f"{from_nano(1):f}" == "0.000000001"
    assert f"{from_nano(-1_500_000_000):f}" == "-1.500000000"


@settings(max_examples=200)
@given(
    total=st.integers(min_value=-MAX_NANO, max_value=MAX_NANO),
    weights=st.lists(ratios, min_size=1, max_size=8),
)
def test_ratio_split_parts_sum_to_the_whole(total: int, weights: list[int | Decimal]) -> None:
    assume(any(weight > 0 for weight in weights))
    parts = ratio_split(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    weight_sum = sum(Fraction(weight) for weight in weights)
    for part, weight in zip(parts[:-1], weights[:-1], strict=True):
        assert part == int(Fraction(total) * Fraction(weight) / weight_sum)  # toward zero
    if total >= 0:
        assert all(part >= 0 for part in parts)
    else:
        assert all(part <= 0 for part in parts)


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [33, 33, 34]),
        (-100, [1, 1, 1], [-33, -33, -34]),
        (0, [1, 2], [0, 0]),
        (10, [0, 1], [0, 10]),
        (10, [1, 0], [10, 0]),
        (7, [Decimal("0.5"), Decimal("0.25"), Decimal("0.25")], [3, 1, 3]),
    ],
)
def test_ratio_split_examples(total: int, weights: list[int | Decimal], parts: list[int]) -> None:
    assert ratio_split(total, weights) == parts


@pytest.mark.parametrize(
    ("weights", "error"),
    [([], InvalidInputError), ([0, 0], InvalidInputError), ([1, -1], InvalidAmountError)],
)
def test_ratio_split_rejects_bad_ratios(weights: list[int], error: type[Exception]) -> None:
    with pytest.raises(error):
        ratio_split(100, weights)


@settings(max_examples=200)
@given(amount=amounts, rate=rates)
def test_conversion_round_trip_within_one_nano(amount: Decimal, rate: Decimal) -> None:
    table = ExchangeRates.from_mapping({"EUR": rate})
    there = table.convert(amount, "USDC", "EUR")
    back = table.convert(there, "EUR", "USDC")
    assert abs(back - amount) <= NANO


@settings(max_examples=200)
@given(amount=amounts, first=rates, second=rates)
def test_cross_conversion_round_trip_within_one_nano(
    amount: Decimal, first: Decimal, second: Decimal
) -> None:
    table = ExchangeRates.from_mapping({"EUR": first, "GBP": second})
    back = table.convert(table.convert(amount, "EUR", "GBP"), "GBP", "EUR")
    assert abs(back - amount) <= NANO


def test_conversion_examples() -> None:
    table = ExchangeRates.from_mapping({"eur": "0.92", "JPY": "150"})
    assert table.convert("10", "USDC", "EUR") == Decimal("9.2")
    assert table.convert("1", "USD", "usdc") == Decimal(1)
    assert table.convert("300", "JPY", "USDC") == Decimal(2)
    assert table.convert("0.000000001", "USDC", "EUR") == Decimal("0.0000000009")
    with pytest.raises(InvalidAmountError, match="too large"):
        table.convert(Decimal("1e70"), "USDC", "EUR")


def test_unknown_currency() -> None:
    table = ExchangeRates()
    with pytest.raises(UnknownCurrencyError, match="XYZ") as raised:
        table.convert("1", "USDC", "XYZ")
    assert raised.value.context == {"currency": "XYZ"}
    with pytest.raises(UnknownCurrencyError):
        table.rate("eur")
    with pytest.raises(InvalidInputError, match="not a currency code"):
        table.rate("€!")


@pytest.mark.parametrize("rate", ["0", "-1", 0.5, "NaN"])
def test_exchange_rates_must_be_positive_decimals(rate: object) -> None:
    with pytest.raises(InvalidAmountError):
        ExchangeRate("EUR", rate, datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
