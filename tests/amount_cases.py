"""The amount grammar's table, shared by the tests of every door (HTTP, CLI, library).

Each case is the text a person or a program wrote and the amount it means, or ``None`` when
every door must refuse it (see ``money.AMOUNT_PATTERN`` and README "Amounts and ids").
"""

from __future__ import annotations

from decimal import Decimal

ACCEPTED: list[tuple[str, Decimal]] = [
    ("1", Decimal(1)),
    ("12.5", Decimal("12.5")),
    ("0.000000001", Decimal("0.000000001")),
    ("100.00", Decimal("100.00")),
    ("999999999.999999999", Decimal("999999999.999999999")),
]

REFUSED: list[str] = [
    "１２３",  # fullwidth digits
    "١٢٣",  # Arabic-Indic digits
    "1_000",
    "1e5",
    "1E5",
    "1e29",
    " 1",
    "1 ",
    "+1",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.",
    ".5",
    "01",
    "0x10",
    "1,5",
    "1.1234567891",  # ten decimals: refused, not rounded
    "1000000000",  # above the most an amount may be
    "9" * 5000,  # a 5000-digit integer
    "",
]
"""Texts no door takes as a (positive) amount."""

JSON_NUMBER_SHAPED = {"1e5", "1E5", "1e29", "1.1234567891", "1000000000", "9" * 5000}
"""Refused texts that are valid JSON numbers: the service must judge their raw text."""
