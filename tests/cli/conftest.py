"""A seeded ledger in a temporary data directory, and a runner bound to it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Tests import tests.<dir>.<helper>; the bare helper names still resolve for older tests.
sys.path.insert(0, str(Path(__file__).parent))

from tests.cli.cli_harness import Cli


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """user_001/proj_001 with the demo month (the demo is also what is under test)."""
    cli = Cli(tmp_path_factory.mktemp("ledger"))
    result = cli("demo")
    assert result.exit_code == 0, result.stderr
    return cli


@pytest.fixture
def fresh(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
