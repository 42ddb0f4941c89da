"""Runs ``smartspace-budget`` in process against one data directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from smartspace_budget.cli import app
from smartspace_budget.models import loads

_CLEAN = ("SMARTSPACE_BUDGET_URL", "SMARTSPACE_BUDGET_DATABASE_URL", "SMARTSPACE_BUDGET_API_KEY")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return loads(self.stdout)


@dataclass
class Cli:
    """Runs ``smartspace-budget`` in process against one data directory."""

    data_dir: Path

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'ledger.sqlite3'}"

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        env = dict.fromkeys(_CLEAN)
        env["SMARTSPACE_BUDGET_DATA_DIR"] = str(self.data_dir)
        result = runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)
