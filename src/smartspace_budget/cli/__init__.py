"""The ``smartspace-budget`` command line (Typer + Rich)."""

from smartspace_budget.cli.app import app, main

__all__ = ["app", "main"]
