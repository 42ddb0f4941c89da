"""The Typer application: one place where commands are registered.

Exit codes scripts can rely on: 0 ok, 1 denied or threshold crossed (where that is the
question), 2 bad input. Errors print as one line, never a traceback.
"""

from __future__ import annotations

import typer

from smartspace_budget import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="smartspace-budget",
    help="Keep LLM spending under control: prices, budgets, a durable ledger and alerts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"smartspace-budget {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Show the version and exit.",
        callback=_show_version,
        is_eager=True,
    ),
) -> None:
    """Keep LLM spending under control: prices, budgets, a durable ledger and alerts."""


@app.command("version")
def version_command() -> None:
    """Show the version."""
    typer.echo(f"smartspace-budget {__version__}")


def main() -> None:
    """Console-script entry point."""
    app()
