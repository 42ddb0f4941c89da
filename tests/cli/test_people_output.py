"""What people see: the tables of the write commands, the read commands' tables, and the
progress bar of long operations (shown on a terminal after one second, never in a pipe)."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console
from tests.cli.cli_harness import Cli

from smartspace_budget.cli import output

ACCOUNT = ("-u", "user_001", "-p", "proj_001")


def rows(text: str) -> dict[str, str]:
    """A key/value table as a dict (``│ key │ value │`` lines)."""
    result = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            result[cells[0]] = cells[1]
    return result


def test_write_commands_show_what_was_written(fresh: Cli) -> None:
    deposit = fresh("deposit", "50", *ACCOUNT, "--reference", "inv-1")
    assert deposit.exit_code == 0
    assert deposit.stdout.startswith("Deposit recorded")
    shown = rows(deposit.stdout)
    assert (shown["Kind"], shown["Amount"], shown["Balance after"]) == ("deposit", "$50", "$50")
    assert (shown["Account"], shown["Reason"]) == ("user_001/proj_001", "inv-1")

    record = fresh("record", "openai", "gpt-4o", *ACCOUNT, "-i", "1000", "-o", "500")
    assert record.stdout.startswith("Usage recorded")
    shown = rows(record.stdout)
    assert (shown["Amount"], shown["Balance after"]) == ("-$0.007875", "$49.992125")
    assert shown["Provider / model"] == "openai/gpt-4o"

    entries: Any = fresh("entries", *ACCOUNT, "--json").json()
    usage_id = next(e["entry_id"] for e in entries if e["kind"] == "usage")
    refund = fresh("refund", "0.005", *ACCOUNT, "--entry", usage_id, "--reason", "bad")
    assert refund.stdout.startswith("Refund recorded")
    shown = rows(refund.stdout)
    assert (shown["Amount"], shown["Balance after"], shown["Reason"]) == (
        "$0.005",
        "$49.997125",
        "bad",
    )

    spending = fresh("spending", *ACCOUNT, "--period", "daily", "--last", "2")
    assert "Spending of user_001/proj_001 per daily window" in spending.stdout
    assert spending.stdout.count("$0.0000") == 1  # yesterday
    assert "$0.0029" in spending.stdout  # today: 0.007875 spent, 0.005 refunded

    policy = fresh("policy", "set", *ACCOUNT, "--daily", "3")
    assert "Policy of user_001/proj_001 updated" in policy.stdout
    assert rows(policy.stdout)["Daily limit"] == "$3"
    assert rows(policy.stdout)["Monthly limit"] == "unlimited"


def test_prices_set_history_and_keys_revoke(fresh: Cli) -> None:
    added = fresh("prices", "set", "acme", "rocket-1", "--input", "0.002", "--output", "0.008")
    assert added.stdout.startswith("Price version added")
    shown = rows(added.stdout)
    assert (shown["Input per 1K"], shown["Output per 1K"]) == ("$0.002", "$0.008")
    assert shown["Source"] == "override"
    history = fresh("prices", "history", "acme", "rocket-1")
    assert "Price history of acme/rocket-1" in history.stdout
    assert shown["Version"] in history.stdout
    assert "│        $2 │         $8 │" in history.stdout  # per 1M tokens
    created: Any = fresh("keys", "create", "--name", "ops", "--admin", "--json").json()
    revoked = fresh("keys", "revoke", created["key_id"])
    assert revoked.exit_code == 0
    assert revoked.stdout.strip() == f"Revoked {created['key_id']}."


def test_monitor_once_for_people(seeded: Cli) -> None:
    result = seeded("monitor", "--once", "--account", "user_001/proj_001")
    assert result.exit_code == 0
    assert "Cost spike in the last hour" in result.stdout
    assert "Low balance" in result.stdout


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, list[float]]:
    """stderr as a terminal, and a clock the test moves."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80)
    monkeypatch.setattr(output, "err_console", console)
    monkeypatch.delenv("SMARTSPACE_BUDGET_NO_PROGRESS", raising=False)
    now = [1000.0]
    monkeypatch.setattr(output, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return screen, now


def test_progress_bar_appears_on_a_terminal_after_one_second(
    terminal: tuple[io.StringIO, list[float]],
) -> None:
    screen, now = terminal
    with output.progress("Writing the month to the ledger", total=3) as bar:
        bar.advance()
        now[0] += 2
        bar.advance()
    assert "Writing the month to the ledger" in screen.getvalue()


def test_quick_operations_show_no_progress_bar(
    terminal: tuple[io.StringIO, list[float]],
) -> None:
    screen, now = terminal
    with output.progress("Reading prices", total=3) as bar:
        now[0] += 0.5
        bar.advance(3)
    assert "Reading prices" not in screen.getvalue()


def test_no_progress_bar_in_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(output, "err_console", Console(file=screen, force_terminal=False))
    now = [0.0]
    monkeypatch.setattr(output, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with output.progress("Importing prices", total=2) as bar:
        now[0] += 5
        bar.advance(2)
    assert screen.getvalue() == ""
