"""``outbox``: what the ledger has not acknowledged yet, and delivering it now.

Guarded calls journal their settlement in the outbox before sending it (see
``backend/outbox.py``); an entry stays there while the ledger cannot be reached (pending) or
after the ledger refused it for good (dead). This command shows both, and ``--flush`` sends
the pending ones of the configured ledger now, exiting 1 if anything remains: a check for a
deploy script or a cron job that no usage is waiting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from smartspace_budget.backend import default_backend
from smartspace_budget.backend.outbox import (
    Outbox,
    OutboxEntry,
    OutboxWriter,
    default_outbox_path,
    outbox_target,
)
from smartspace_budget.cli.output import EXIT_DENIED, console, money, print_json, run, table
from smartspace_budget.cli.runtime import JSON, options, settings

__all__ = ["register"]


def _rows(entries: list[OutboxEntry], target: str | None) -> list[list[str]]:
    rows = []
    for entry in entries:
        usage = entry.usage
        ledger = "" if entry.target == target else f" (ledger {entry.target})"
        rows.append(
            [
                entry.status,
                entry.key,
                f"{entry.user_id}/{entry.project_id}{ledger}",
                f"{usage.provider}/{usage.model}",
                money(usage.actual_cost),
                str(entry.attempts),
                entry.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
                entry.last_error or "",
            ]
        )
    return rows


def outbox_command(
    ctx: typer.Context,
    flush: bool = typer.Option(
        False, "--flush", help="Deliver the pending entries now; exit 1 if any entry remains."
    ),
    requeue_dead: bool = typer.Option(
        False, "--requeue-dead", help="Make dead entries pending again (after fixing the cause)."
    ),
    discard_dead: bool = typer.Option(
        False, "--discard-dead", help="Delete dead entries (charged or dismissed by hand)."
    ),
    path: str | None = typer.Option(
        None, "--path", help="The outbox file (default: the configured ledger's outbox)."
    ),
    as_json: bool = JSON,
) -> None:
    """Show settlements and usage the ledger has not acknowledged yet (pending, dead).

    The outbox is SMARTSPACE_BUDGET_OUTBOX_PATH, else beside the embedded SQLite ledger
    (ledger.outbox.sqlite3), else outbox.sqlite3 in the data directory. Only entries of the
    configured ledger are delivered by --flush; entries of other ledgers are shown.
    """
    config = settings(options(ctx))
    backend = default_backend(config)
    target = outbox_target(backend)
    file = Path(path) if path is not None else default_outbox_path(target, config)
    if not file.exists():
        remaining: list[OutboxEntry] = []
        _report(file, target, remaining, as_json, flushed=None)
        return
    outbox = Outbox(file, max_delay=config.outbox_max_delay)
    try:
        if requeue_dead:
            outbox.requeue_dead(target)
        if discard_dead:
            outbox.discard_dead(target)
        flushed: int | None = None
        if flush and target is not None:
            before = outbox.count(target, "pending")
            run(_flush(backend, outbox, target))
            flushed = before - outbox.count(target, "pending")
        remaining = outbox.entries()
    finally:
        outbox.close()
    _report(file, target, remaining, as_json, flushed=flushed)
    if flush and remaining:
        raise typer.Exit(EXIT_DENIED)


async def _flush(backend: Any, outbox: Outbox, target: str) -> None:
    try:
        await OutboxWriter(backend, outbox, target).flush()
    finally:
        close = getattr(backend, "aclose", None)
        if close is not None:
            await close()


def _report(
    file: Path,
    target: str | None,
    entries: list[OutboxEntry],
    as_json: bool,
    *,
    flushed: int | None,
) -> None:
    pending = [e for e in entries if e.status == "pending"]
    dead = [e for e in entries if e.status == "dead"]
    if as_json:
        data: dict[str, Any] = {
            "path": str(file),
            "ledger": target,
            "pending": [e.to_data() for e in pending],
            "dead": [e.to_data() for e in dead],
        }
        if flushed is not None:
            data["delivered"] = flushed
        print_json(data)
        return
    if flushed is not None:
        console.print(f"Delivered {flushed} entr{'y' if flushed == 1 else 'ies'}.")
    if not entries:
        console.print(f"The outbox {file} is empty: the ledger has every settlement.")
        return
    columns = ["Status", "Key", "Account", "Model", "Amount", "Tries", "Since (UTC)", "Last error"]
    title = f"Outbox {file}: {len(pending)} pending, {len(dead)} dead"
    console.print(table(title, columns, _rows(entries, target), right=["Amount", "Tries"]))
    if dead:
        console.print(
            "Dead entries were refused by the ledger and are not retried: fix the cause and "
            "run `outbox --requeue-dead --flush`, or charge them by hand and `--discard-dead`."
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("outbox")(outbox_command)
