"""Every command against a seeded ledger: people's output, --json, exit codes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tests.cli.cli_harness import Cli

ACCOUNT = ("-u", "user_001", "-p", "proj_001")


def test_version_and_help(seeded: Cli) -> None:
    assert seeded("--version").stdout.startswith("smartspace-budget ")
    result = seeded()
    assert result.exit_code == 0
    for command in ("estimate", "check", "compare", "prices", "status", "alerts", "demo"):
        assert command in result.stdout


def test_estimate_table_and_exact_json(seeded: Cli) -> None:
    result = seeded("estimate", "openai", "gpt-4o", "What is machine learning?", "-o", "500")
    assert result.exit_code == 0
    # 5 text tokens + 7 of a one-message chat's formatting, 500 output tokens, plus 5%
    assert "$0.0052815 USDC" in result.stdout
    data: Any = seeded(
        "estimate", "openai", "gpt-4o", "What is machine learning?", "-o", "500", "--json"
    ).json()
    assert data["input_tokens"] == 12
    assert data["total_cost"] == Decimal("0.0052815")
    assert data["base_cost"] + data["platform_fee"] == data["total_cost"]
    bare: Any = seeded(
        "estimate", "openai", "gpt-4o", "What is machine learning?", "-o", "500", "--bare",
        "--json",
    ).json()  # fmt: skip
    assert bare["input_tokens"] == 5
    assert bare["total_cost"] == Decimal("0.005263125")


def test_estimate_reads_stdin_and_message_files(seeded: Cli, tmp_path: Path) -> None:
    piped: Any = seeded(
        "estimate", "openai", "gpt-4o", "-", "--bare", "--json", input="hello world"
    ).json()
    assert piped["input_tokens"] == 2
    messages = tmp_path / "messages.json"
    messages.write_text('[{"role": "user", "content": "hello world"}]')
    data: Any = seeded("estimate", "openai", "gpt-4o", "--messages", str(messages), "--json").json()
    assert data["input_tokens"] > 2  # chat framing tokens are counted
    chat: Any = seeded("estimate", "openai", "gpt-4o", "-", "--json", input="hello world").json()
    assert chat["input_tokens"] == data["input_tokens"]  # a prompt is a one-message chat


def test_check_passes_and_denies_with_exit_code(seeded: Cli) -> None:
    ok = seeded("check", "openai", "gpt-4", "What is machine learning?", *ACCOUNT)
    assert ok.exit_code == 0
    assert "Estimated cost: $0.031878" in ok.stdout
    assert "✓ Budget check passed - proceed with request" in ok.stdout
    denied = seeded("check", "openai", "gpt-4", *ACCOUNT, "--amount", "5")
    assert denied.exit_code == 1
    assert "✗ Budget check failed" in denied.stdout
    assert "Per-request limit exceeded" in denied.stdout
    data: Any = seeded("check", "openai", "gpt-4", "hi", *ACCOUNT, "--amount", "5", "--json")
    assert data.exit_code == 1
    assert data.json()["check"]["available"] is False


def test_compare_defaults_to_the_spec_list_cheapest_first(seeded: Cli) -> None:
    result = seeded("compare")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "/" in line and "$" in line]
    assert [line.split()[1] for line in lines] == [
        "google/gemini-pro",
        "openai/gpt-3.5-turbo",
        "anthropic/claude-3-sonnet",
        "anthropic/claude-3-opus",
        "openai/gpt-4",
    ]
    data: Any = seeded("compare", "openai/gpt-4o", "openai/nope", "-i", "1000", "--json").json()
    assert data["estimates"]["openai/gpt-4o"]["total_cost"] == Decimal("0.007875")
    assert "openai/nope" in data["failures"]


def test_prices_list_show_history(seeded: Cli) -> None:
    listed: Any = seeded("prices", "list", "--provider", "anthropic", "--json").json()
    models = {row["model"] for row in listed}
    assert "claude-3-opus" in models or "claude-3-opus-latest" in models
    table = seeded("prices", "list", "--provider", "google")
    assert table.exit_code == 0
    assert "gemini-1.5-flash" in table.stdout
    shown = seeded("prices", "show", "openai", "gpt-4o")
    assert "$0.0025" in shown.stdout
    data: Any = seeded("prices", "show", "openai", "gpt-4o", "--json").json()
    assert data["input_price_per_1k"] == Decimal("0.0025")
    history: Any = seeded("prices", "history", "openai", "gpt-4o", "--json").json()
    assert history
    assert seeded("prices", "history", "openai", "gpt-4o").exit_code == 0


def test_prices_set_and_sync_add_versions(fresh: Cli, tmp_path: Path) -> None:
    added: Any = fresh(
        "prices", "set", "acme", "rocket-1", "--input", "0.002", "--output", "0.008", "--json"
    ).json()
    assert added["input_price_per_1k"] == Decimal("0.002")
    estimate: Any = fresh(
        "estimate", "acme", "rocket-1", "--input-tokens", "1000", "-o", "1000", "--json"
    ).json()
    assert estimate["total_cost"] == Decimal("0.0105")
    sheet = tmp_path / "sheet.json"
    sheet.write_text(
        '[{"provider": "acme", "model_name": "rocket-2", "input_price_per_1k": 0.001,'
        ' "output_price_per_1k": 0.004, "effective_date": "2026-01-01T00:00:00Z"}]'
    )
    first = fresh("prices", "sync", str(sheet))
    assert first.exit_code == 0
    assert "acme/rocket-2" in first.stdout
    again: Any = fresh("prices", "sync", str(sheet), "--json").json()
    assert len(again) == 1
    history: Any = fresh("prices", "history", "acme", "rocket-2", "--json").json()
    assert len(history) == 1


def test_status_spending_analytics(seeded: Cli) -> None:
    status: Any = seeded("status", *ACCOUNT, "--json").json()
    assert Decimal(0) < status["available_balance"] < Decimal(25)  # running low
    table = seeded("status", *ACCOUNT)
    assert "low balance" in table.stdout
    spending: Any = seeded("spending", *ACCOUNT, "--period", "daily", "--last", "3", "--json")
    windows = spending.json()["windows"]
    assert len(windows) == 3
    assert windows[-1]["spent"] == status["spent_today"]
    assert seeded("spending", *ACCOUNT).exit_code == 0
    analytics: Any = seeded("analytics", *ACCOUNT, "--json").json()
    assert analytics["total_spent"] == status["spent_this_month"]
    assert set(analytics["spending_by_provider"]) <= {"openai", "anthropic", "google"}
    text = seeded("analytics", *ACCOUNT, "--period", "weekly")
    assert "Spending by provider" in text.stdout


def test_alerts_fail_on_a_level(seeded: Cli, fresh: Cli) -> None:
    result = seeded("alerts", *ACCOUNT, "--fail-on", "warning")
    assert result.exit_code == 1
    assert "cost_spike" in result.stdout
    data: Any = seeded("alerts", *ACCOUNT, "--json")
    assert data.exit_code == 0
    kinds = {alert["alert_type"] for alert in data.json()}
    assert {"cost_spike", "low_balance"} <= kinds
    fresh("deposit", "10", *ACCOUNT)
    calm = fresh("alerts", *ACCOUNT, "--fail-on", "info")
    assert calm.exit_code == 0
    assert "No alerts" in calm.stdout


def test_ledger_writes_and_entries(fresh: Cli) -> None:
    deposit: Any = fresh("deposit", "50", *ACCOUNT, "--reference", "inv-1", "--json").json()
    assert deposit["balance_after"] == Decimal(50)
    usage: Any = fresh(
        "record", "openai", "gpt-4o", *ACCOUNT, "-i", "1000", "-o", "500", "--json"
    ).json()
    assert usage["amount"] == Decimal("-0.007875")
    refund: Any = fresh(
        "refund", "0.005", *ACCOUNT, "--entry", usage["entry_id"], "--reason", "bad", "--json"
    ).json()
    assert refund["balance_after"] == Decimal("49.997125")
    retried: Any = fresh("deposit", "50", *ACCOUNT, "--idempotency-key", "k1", "--json").json()
    again: Any = fresh("deposit", "50", *ACCOUNT, "--idempotency-key", "k1", "--json").json()
    assert again["entry_id"] == retried["entry_id"]
    entries: Any = fresh("entries", *ACCOUNT, "--json").json()
    assert [e["kind"] for e in entries] == ["deposit", "refund", "usage", "deposit"]
    assert "deposit" in fresh("entries", *ACCOUNT).stdout
    explicit = fresh("--database-url", fresh.database_url, "status", *ACCOUNT, "--json")
    assert explicit.json()["total_balance"] == Decimal("99.997125")  # type: ignore[index]


def test_policy_show_and_set(fresh: Cli) -> None:
    fresh("deposit", "5", *ACCOUNT)
    shown: Any = fresh("policy", "show", *ACCOUNT, "--json").json()
    assert shown["daily_limit"] is None
    updated: Any = fresh("policy", "set", *ACCOUNT, "--daily", "3", "--json").json()
    assert updated["daily_limit"] == Decimal(3)
    kept: Any = fresh("policy", "set", *ACCOUNT, "--monthly", "30", "--json").json()
    assert (kept["daily_limit"], kept["monthly_limit"]) == (Decimal(3), Decimal(30))
    removed: Any = fresh("policy", "set", *ACCOUNT, "--daily", "none", "--json").json()
    assert removed["daily_limit"] is None
    assert "unlimited" in fresh("policy", "show", *ACCOUNT).stdout


def test_keys_create_list_revoke(fresh: Cli) -> None:
    created: Any = fresh("keys", "create", "--admin", "--name", "ops", "--json").json()
    assert created["api_key"].startswith("ssb_")
    account = fresh("keys", "create", *ACCOUNT)
    assert "cannot be shown again" in account.stdout
    listed: Any = fresh("keys", "list", "--json").json()
    assert {k["scope"] for k in listed} == {"admin", "account"}
    revoked: Any = fresh("keys", "revoke", created["key_id"], "--json").json()
    assert revoked["revoked_at"] is not None
    assert len(fresh("keys", "list", "--json").json()) == 1  # type: ignore[arg-type]
    assert len(fresh("keys", "list", "--revoked", "--json").json()) == 2  # type: ignore[arg-type]
    assert "key_" in fresh("keys", "list").stdout


def test_monitor_once_prints_the_alerts_as_json_lines(seeded: Cli) -> None:
    result = seeded("monitor", "--once", "--account", "user_001/proj_001", "--json")
    assert result.exit_code == 0
    from smartspace_budget.models import loads

    alerts = [loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert any(a["alert_type"] == "cost_spike" for a in alerts)
    assert "Checked 1 account(s)." in seeded("monitor", "--once").stderr


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("deposit", "abc", *ACCOUNT),
        ("deposit", "0", *ACCOUNT),
        ("deposit", "-5", *ACCOUNT),
        ("estimate", "openai", "no-such-model", "hi"),
        ("estimate", "openai"),
        ("compare", "gpt4"),
        ("compare", "--input-tokens", "-1"),
        ("status", "-u", "nobody", "-p", "nothing"),
        ("policy", "set", *ACCOUNT),
        ("monitor", "--every", "0s"),
        ("monitor", "--account", "no-slash", "--once"),
        ("spending", *ACCOUNT, "--period", "fortnightly"),
        ("prices", "sync", "/no/such/file.json"),
        ("serve", "--no-auth", "--host", "0.0.0.0"),
        ("--url", "http://127.0.0.1:9", "keys", "list"),
        ("--url", "http://127.0.0.1:9", "serve"),
        ("status", "--bogus"),
        ("--database-url", "postgresql+asyncpg://postgres@127.0.0.1:1/none", "status", *ACCOUNT),
    ],
)
def test_bad_input_exits_2_with_one_line(seeded: Cli, args: tuple[str, ...]) -> None:
    result = seeded(*args)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stdout + result.stderr


def test_unreachable_service_is_one_line_and_not_approval(seeded: Cli) -> None:
    result = seeded("--url", "http://127.0.0.1:9", "check", "openai", "gpt-4", "hi", *ACCOUNT)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "passed" not in result.stdout


def test_a_data_directory_that_cannot_be_created_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = Cli(blocker / "data")("status", *ACCOUNT)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stdout + result.stderr


def test_prices_set_with_only_a_limit_keeps_the_prices_in_force(fresh: Cli) -> None:
    """An operator overrides a model's output limit; its prices stay the catalog's."""
    before: Any = fresh("prices", "show", "anthropic", "claude-sonnet-4-5", "--json").json()
    added: Any = fresh(
        "prices", "set", "anthropic", "claude-sonnet-4-5", "--max-output-tokens", "64000", "--json"
    ).json()
    assert added["max_output_tokens"] == 64_000
    for kept in ("input_price_per_1k", "output_price_per_1k", "dimension_prices", "tiers"):
        assert added.get(kept) == before.get(kept), kept
    assert added["version"] != before["version"]
    refused = fresh(
        "estimate", "anthropic", "claude-sonnet-4-5", "--input-tokens", "10", "-o", "100000"
    )
    assert refused.exit_code == 2  # bad input
    assert "64,000-token output limit" in refused.stderr
    nothing = fresh("prices", "set", "anthropic", "claude-sonnet-4-5")
    assert nothing.exit_code != 0
    assert "give a price" in nothing.stderr


def test_prices_show_says_when_the_catalog_gives_no_start_date(fresh: Cli) -> None:
    shown = fresh("prices", "show", "openai", "gpt-4")
    assert shown.exit_code == 0
    assert "publishes no start date" in shown.stdout.replace("\n", " ")
    assert "1970" not in shown.stdout
    assert "8,192" in shown.stdout  # the context window
