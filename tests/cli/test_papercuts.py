"""What a new user met on the command line (issue 18), each pinned so it stays fixed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.cli.cli_harness import Cli
from typer.testing import CliRunner

from smartspace_budget.cli import app
from smartspace_budget.config import Settings
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.ledger.price_store import PriceStore

COMMANDS = [
    [],
    ["estimate"],
    ["check"],
    ["compare"],
    ["prices"],
    ["prices", "list"],
    ["prices", "show"],
    ["prices", "history"],
    ["prices", "set"],
    ["prices", "sync"],
    ["status"],
    ["spending"],
    ["analytics"],
    ["alerts"],
    ["deposit"],
    ["record"],
    ["refund"],
    ["entries"],
    ["policy", "show"],
    ["policy", "set"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "revoke"],
    ["serve"],
    ["monitor"],
    ["demo"],
]


def test_prices_list_reads_once_and_never_cuts_a_name(
    fresh: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def per_model(*args: object) -> None:
        raise AssertionError("prices list looked one model up at a time")

    monkeypatch.setattr(PriceStore, "versions", per_model)
    result = fresh("prices", "list")
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout
    lines = result.stdout.splitlines()
    count = int(lines[0].removeprefix("Models (").removesuffix(")"))
    assert count > 1000
    names = {line.split()[1] for line in lines[3:]}
    longest = max(names, key=len)
    assert len(longest) > 40  # the catalog's long names are printed whole
    listed: Any = fresh("prices", "list", "--provider", "openai", "--json").json()
    gpt4o = next(row for row in listed if row["model"] == "gpt-4o")
    assert gpt4o["pricing"]["input_price_per_1k"] == Decimal("0.0025")


def test_a_negative_deposit_is_explained(fresh: Cli) -> None:
    result = fresh("deposit", "-5", "-u", "u", "-p", "p")
    assert result.exit_code == 2
    assert "No such option" not in result.stderr
    assert "a deposit must be more than 0, got -5" in result.stderr


def test_currency_needs_a_rate_and_the_cli_takes_one(fresh: Cli) -> None:
    args = ["estimate", "openai", "gpt-4o", "--input-tokens", "1000", "-o", "0"]
    missing = fresh(*args, "--currency", "EUR")
    assert missing.exit_code == 2
    assert "--rate EUR=" in missing.stderr
    data: Any = fresh(*args, "--currency", "EUR", "--rate", "EUR=0.5", "--json").json()
    assert data["currency"] == "EUR"
    assert data["total_cost"] == Decimal("0.0013125")
    shown = fresh(*args, "--currency", "EUR", "--rate", "EUR=0.5")
    assert "0.0013125 EUR" in shown.stdout
    assert "$0.0013125" not in shown.stdout


def test_prices_set_speaks_of_the_real_rule_and_the_cli_flag(fresh: Cli) -> None:
    helped = fresh("prices", "set", "--help")
    assert "100x" in helped.stdout
    assert "10x" not in helped.stdout.replace("100x", "")
    refused = fresh("prices", "set", "openai", "gpt-4o", "--input", "5", "--output", "5")
    assert refused.exit_code == 2
    assert "--force" in refused.stderr
    assert "force=True" not in refused.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_help_reads_as_plain_text(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "spec's Example" not in text
    assert "``" not in text
    assert "list[" not in text


def test_shell_completion_is_offered() -> None:
    result = CliRunner().invoke(app, ["--show-completion", "bash"])
    assert result.exit_code == 0
    assert "_smartspace_budget_completion" in result.output


def test_a_port_in_use_exits_2_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(Path(sys.executable).parent / "smartspace-budget"), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SMARTSPACE_BUDGET_DATA_DIR": str(tmp_path)},
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert f"127.0.0.1:{port}: already in use" in result.stderr


def test_a_bad_environment_variable_is_named(fresh: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_STATUS_TTL", "soon")
    with pytest.raises(InvalidInputError) as caught:
        Settings()
    assert "SMARTSPACE_BUDGET_STATUS_TTL='soon'" in caught.value.detail
    assert "pydantic" not in caught.value.detail
    result = CliRunner().invoke(
        app,
        ["status", "-u", "u", "-p", "p"],
        env={"SMARTSPACE_BUDGET_STATUS_TTL": "soon", "SMARTSPACE_BUDGET_DATA_DIR": "/nonexistent"},
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid configuration: SMARTSPACE_BUDGET_STATUS_TTL")
    assert "errors.pydantic.dev" not in result.stderr
