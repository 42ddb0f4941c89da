"""Imports point down the layers (the contract in pyproject.toml's ``[tool.importlinter]``).

import-linter builds the package's import graph, lazy imports inside functions included,
and fails on any import from a lower layer into a higher one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_down_the_layers() -> None:
    linted = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "1 kept, 0 broken" in linted.stdout
