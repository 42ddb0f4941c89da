"""``replay`` and the output prediction on the command line (issue 17), on the demo month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.cli.cli_harness import Cli

ACCOUNT = ("-u", "user_001", "-p", "proj_001")


def test_replay_reprices_the_month_on_other_models(seeded: Cli) -> None:
    result = seeded("replay", *ACCOUNT, "-t", "openai/gpt-4o-mini", "-t", "nope/nothing")
    assert result.exit_code == 0, result.stderr
    assert "Replay of user_001/proj_001" in result.stdout
    assert "openai/gpt-4o-mini" in result.stdout
    data: Any = seeded("replay", *ACCOUNT, "-t", "openai/gpt-4o-mini", "--json").json()
    assert data["calls"] > 0
    assert data["as_recorded"]["total_cost"] == data["charged"]  # the demo is priced exactly
    target = data["targets"][0]
    assert target["calls_served"] + target["calls_unserved"] == data["calls"]
    assert target["difference"] == target["total_cost"] - target["charged_for_served"]
    # An explicit window, and a bad target refused with a message.
    end = datetime.now(UTC) + timedelta(days=1)
    window = ("--start", (end - timedelta(days=60)).isoformat(), "--end", end.isoformat())
    again: Any = seeded("replay", *ACCOUNT, *window, "--json").json()
    assert again["calls"] >= data["calls"]
    bad = seeded("replay", *ACCOUNT, "-t", "gpt-4o")
    assert bad.exit_code != 0
    assert "provider/model" in bad.stderr


def test_estimate_predicts_the_output_from_the_accounts_history(seeded: Cli) -> None:
    data: Any = seeded("estimate", "openai", "gpt-4o", "Plan my week", *ACCOUNT, "--json").json()
    output = data["output_estimate"]
    assert output["method"] in ("predicted", "default")
    assert data["output_tokens"] == output["tokens"]
    table = seeded("estimate", "openai", "gpt-4o", "Plan my week", *ACCOUNT)
    assert output["method"] in table.stdout
    given: Any = seeded("estimate", "openai", "gpt-4o", "Plan my week", "-o", "7", "--json").json()
    assert given["output_tokens"] == 7
    assert "output_estimate" not in given or given["output_estimate"] is None
    assert Decimal(str(given["total_cost"])) > 0
