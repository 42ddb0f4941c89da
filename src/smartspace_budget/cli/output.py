"""Everything the CLI prints: Rich tables for people, exact JSON for scripts, one-line errors.

Exit codes scripts can rely on: 0 ok; 1 denied, or a threshold crossed where that is the
question asked (``check``, ``alerts --fail-on``); 2 bad input or any other error. An error
is printed as one line on stderr (``error: <message>``), never as a traceback.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich.cells import cell_len
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from smartspace_budget.errors import BudgetError, SmartspaceBudgetError
from smartspace_budget.models import dumps

__all__ = [
    "EXIT_DENIED",
    "EXIT_ERROR",
    "EXIT_OK",
    "console",
    "err_console",
    "exit_code_for",
    "fail",
    "money",
    "print_json",
    "print_listing",
    "progress",
    "run",
    "table",
]

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_ERROR = 2

T = TypeVar("T")


def _width() -> int | None:
    # Wide enough that tables are not squeezed when the output is captured (tests, pipes).
    return None if sys.stdout.isatty() else 120


console = Console(highlight=False, width=_width(), soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def exit_code_for(exc: BaseException) -> int:
    """1 for a refused spending (budget/policy), 2 for everything else."""
    return EXIT_DENIED if isinstance(exc, BudgetError) else EXIT_ERROR


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    line = " ".join(str(message).split())
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; the package's errors become one line and an exit code."""
    try:
        return asyncio.run(coro)
    except SmartspaceBudgetError as exc:
        fail(exc.detail, exit_code_for(exc))


def plain(data: Any) -> Any:
    """Models (also inside dicts and lists) as plain data; amounts stay exact Decimals."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="python")
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [plain(value) for value in data]
    return data


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout, amounts exact (never through float)."""
    typer.echo(dumps(plain(data), indent=2))


def money(amount: Decimal | None, places: int | None = None) -> str:
    """An amount for people: ``—`` when unlimited, else exact (or rounded to ``places``)."""
    if amount is None:
        return "—"
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    if places is not None:
        return f"{sign}${value:,.{places}f}"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{sign}${text}"


def print_listing(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[str] = ()
) -> None:
    """A long listing as plain aligned columns, each cell whole (never cut to "…").

    For thousands of rows (``prices list``): a Rich table measures every cell several times
    (seconds for the whole catalog) and fits itself to the terminal by cutting names; this
    prints at once, at the width the longest cell needs, and reads well through ``grep``.
    """
    widths = [cell_len(name) for name in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            pad = " " * (widths[i] - cell_len(cell))
            parts.append(pad + cell if columns[i] in right else cell + pad)
        return "  ".join(parts).rstrip()

    out = [title, line(columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    sys.stdout.write("\n".join(out) + "\n")


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    right: Sequence[str] = (),
) -> Table:
    """A Rich table; ``right`` names the columns aligned right (amounts, counts)."""
    result = Table(title=title, title_justify="left", show_lines=False, min_width=len(title or ""))
    for name in columns:
        result.add_column(name, justify="right" if name in right else "left")
    for row in rows:
        result.add_row(*(str(cell) for cell in row))
    return result


def key_values(title: str | None, items: Mapping[str, Any]) -> Table:
    """A two-column table of labelled values."""
    result = Table(title=title, title_justify="left", show_header=False, min_width=len(title or ""))
    result.add_column("", style="bold")
    result.add_column("")
    for key, value in items.items():
        result.add_row(key, str(value))
    return result


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Any]:
    """A progress bar (or spinner without ``total``) on stderr, shown only to people.

    It appears after one second, so quick commands print nothing extra; output to a pipe or
    a test runner never shows it.
    """
    show = err_console.is_terminal and not os.environ.get("SMARTSPACE_BUDGET_NO_PROGRESS")
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show,
    )
    started = time.monotonic()
    with bar:
        task = bar.add_task(description, total=total, visible=False)

        class _Handle:
            def advance(self, amount: float = 1) -> None:
                bar.update(task, advance=amount, visible=time.monotonic() - started > 1)

            def update(self, text: str) -> None:
                bar.update(task, description=text, visible=time.monotonic() - started > 1)

        yield _Handle()
