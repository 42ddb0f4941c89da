"""The amount grammar at the command line: ``deposit`` takes exactly what the table says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from tests.amount_cases import ACCEPTED, REFUSED
from tests.cli.cli_harness import Cli

ACCOUNT = ("-u", "grammar", "-p", "cli")


def _balance(cli: Cli) -> Decimal:
    result = cli("balance", *ACCOUNT, "--json")
    if result.exit_code != 0:
        return Decimal(0)
    data: Any = result.json()
    return Decimal(str(data["total_balance"]))


@pytest.mark.parametrize(("text", "amount"), ACCEPTED)
def test_the_cli_deposits_what_the_grammar_accepts(fresh: Cli, text: str, amount: Decimal) -> None:
    result = fresh("deposit", text, *ACCOUNT, "--json")
    assert result.exit_code == 0, result.stderr
    data: Any = result.json()
    assert Decimal(str(data["amount"])) == amount


@pytest.mark.parametrize("text", REFUSED)
def test_the_cli_refuses_what_the_grammar_refuses(fresh: Cli, text: str) -> None:
    result = fresh("deposit", text, *ACCOUNT)
    assert result.exit_code != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert _balance(fresh) == 0
