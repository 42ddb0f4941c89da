"""Formatting helpers of the CLI: amounts for people, durations, exact JSON."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from smartspace_budget.cli.budget_cmds import parse_account, parse_every
from smartspace_budget.cli.output import money, plain
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import dumps, loads


@pytest.mark.parametrize(
    ("amount", "places", "shown"),
    [
        (Decimal("-0.004956"), None, "-$0.004956"),
        (Decimal("0E-9"), None, "$0"),
        (Decimal("100.000000000"), None, "$100"),
        (Decimal("1.50"), None, "$1.5"),
        (Decimal("-3"), 2, "-$3.00"),
        (Decimal("1234.5"), 2, "$1,234.50"),
        (None, None, "—"),
    ],
)
def test_money(amount: Decimal | None, places: int | None, shown: str) -> None:
    assert money(amount, places) == shown


def test_json_amounts_are_exact_and_without_exponent() -> None:
    text = dumps(plain({"a": Decimal("0E-9"), "b": [Decimal("1E-7")], "c": Decimal("12.30")}))
    assert text == '{"a": 0.000000000, "b": [0.0000001], "c": 12.30}'
    assert loads(text) == {"a": Decimal(0), "b": [Decimal("1E-7")], "c": Decimal("12.30")}


@pytest.mark.parametrize(
    ("text", "every"),
    [("30s", timedelta(seconds=30)), ("5m", timedelta(minutes=5)), ("2h", timedelta(hours=2)),
     ("1d", timedelta(days=1)), ("90", timedelta(seconds=90))],
)  # fmt: skip
def test_parse_every(text: str, every: timedelta) -> None:
    assert parse_every(text) == every


@pytest.mark.parametrize("text", ["0s", "-5m", "5 minutes", "", "1.5h"])
def test_parse_every_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_every(text)


def test_parse_account() -> None:
    assert parse_account("user_001/proj_001") == ("user_001", "proj_001")
    with pytest.raises(InvalidInputError):
        parse_account("user_001")
