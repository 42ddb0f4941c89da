"""The Typer application: one place where commands are registered.

Exit codes scripts can rely on: 0 ok, 1 denied or threshold crossed (where that is the
question), 2 bad input. Errors print as one line, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from smartspace_budget import __version__
from smartspace_budget.cli.output import EXIT_ERROR, exit_code_for
from smartspace_budget.cli.runtime import CliOptions
from smartspace_budget.errors import SmartspaceBudgetError

__all__ = ["app", "main"]


class OneLineErrors(TyperGroup):
    """Reports usage errors and the package's errors as ``error: ...`` on one line."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        except typer.TyperException as exc:
            # Typer's (vendored) click errors: usage errors carry exit code 2.
            if type(exc).__name__ == "NoArgsIsHelpError":
                context = getattr(exc, "ctx", None)
                typer.echo(context.get_help() if context is not None else "")
                sys.exit(0)
            formatter = getattr(exc, "format_message", None)
            message = formatter() if callable(formatter) else str(exc)
            typer.echo(f"error: {' '.join(str(message).split())}", err=True)
            code = getattr(exc, "exit_code", EXIT_ERROR)
            sys.exit(code if isinstance(code, int) and code else EXIT_ERROR)
        except SmartspaceBudgetError as exc:
            typer.echo(f"error: {' '.join(exc.detail.split())}", err=True)
            sys.exit(exit_code_for(exc))
        except KeyboardInterrupt:
            typer.echo("error: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            # Anything else (a database that cannot be reached, a data directory that cannot
            # be created) is still one line, and exit 2: never 1, which scripts read as
            # "denied".
            detail = " ".join(str(exc).split()) or "no detail"
            typer.echo(f"error: {type(exc).__name__}: {detail}", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="smartspace-budget",
    cls=OneLineErrors,
    help="Keep LLM spending under control: prices, budgets, a durable ledger and alerts.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"smartspace-budget {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Show the version and exit.",
        callback=_show_version,
        is_eager=True,
    ),
    url: str | None = typer.Option(
        None, "--url", envvar="SMARTSPACE_BUDGET_URL", help="Base URL of a running service."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="SMARTSPACE_BUDGET_API_KEY", help="API key for --url."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="SMARTSPACE_BUDGET_DATABASE_URL",
        help="Ledger database (sqlite+aiosqlite:///path or postgresql+asyncpg://...).",
    ),
) -> None:
    """Keep LLM spending under control: prices, budgets, a durable ledger and alerts."""
    ctx.obj = CliOptions(url=url, api_key=api_key, database_url=database_url)


@app.command("version")
def version_command() -> None:
    """Show the version."""
    typer.echo(f"smartspace-budget {__version__}")


def _register() -> None:
    from smartspace_budget.cli import (
        budget_cmds,
        demo,
        keys_cmds,
        ledger_cmds,
        outbox_cmds,
        prices_cmds,
        pricing_cmds,
        replay_cmds,
        serve_cmds,
    )

    modules = (
        pricing_cmds,
        prices_cmds,
        budget_cmds,
        ledger_cmds,
        outbox_cmds,
        keys_cmds,
        serve_cmds,
        demo,
        replay_cmds,
    )
    for module in modules:
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
