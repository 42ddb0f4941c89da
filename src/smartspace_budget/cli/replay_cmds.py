"""``smartspace-budget replay``: a period's real usage re-priced on other models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import typer

from smartspace_budget.cli.output import console, key_values, money, print_json, run, table
from smartspace_budget.cli.runtime import JSON, PROJECT, USER, open_backend, options
from smartspace_budget.cli.usage_options import parse_at
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models.replay import ReplayReport
from smartspace_budget.periods import SpendingPeriod

__all__ = ["register", "replay_command"]


def replay_command(
    ctx: typer.Context,
    user: str = USER,
    project: str = PROJECT,
    targets: list[str] = typer.Option(  # noqa: B008
        [],
        "--target",
        "-t",
        metavar="PROVIDER/MODEL",
        help="A model to re-price the usage on; repeatable. Default: the models it used.",
    ),
    period: SpendingPeriod = typer.Option(  # noqa: B008
        SpendingPeriod.MONTHLY, "--period", help="The account's calendar window to replay."
    ),
    previous: bool = typer.Option(
        False, "--previous", help="The window before the current one (last month)."
    ),
    at: str | None = typer.Option(
        None, "--at", metavar="ISO-TIME", help="Replay the window containing this instant."
    ),
    start: str | None = typer.Option(
        None, "--start", metavar="ISO-TIME", help="From (with --end)."
    ),
    end: str | None = typer.Option(None, "--end", metavar="ISO-TIME", help="Until (exclusive)."),
    as_json: bool = JSON,
) -> None:
    """What the account's real usage in a period would have cost on other models.

    Every recorded dimension of every call is re-priced on each target at the prices in
    force at the call's minute; calls a target cannot serve (context too small, modality
    not supported, something it has no price for) are counted, not priced.
    """
    if (start is None) != (end is None):
        raise InvalidInputError("--start and --end go together")
    window: SpendingPeriod | tuple[datetime, datetime]
    if start is not None and end is not None:
        first, last = parse_at(start), parse_at(end)
        if first is None or last is None:  # unreachable: both were given
            raise InvalidInputError("--start and --end go together")
        window = (first, last)
    else:
        window = period

    async def go() -> ReplayReport:
        from smartspace_budget.pricing import PricingEngine

        async with open_backend(options(ctx)) as backend:
            engine = PricingEngine(backend)
            instant = parse_at(at)
            if previous and not isinstance(window, tuple):
                summary = await backend.get_spending(user, project, window, at=instant)
                instant = summary.period_start - timedelta(microseconds=1)
            return await engine.replay(user, project, window, targets or None, at=instant)

    report = run(go())
    if as_json:
        print_json(report)
        return
    print_replay(report)


def print_replay(report: ReplayReport) -> None:
    """The report as people read it: the period, then one row per target."""
    recorded = report.as_recorded
    console.print(
        key_values(
            f"Replay of {report.user_id}/{report.project_id}",
            {
                "Period": f"{report.period_start.isoformat()} – {report.period_end.isoformat()}",
                "Calls": f"{report.calls:,}"
                + (f" ({report.groups:,} usage groups priced one by one)" if report.groups else ""),
                "Charged": money(report.charged),
                "Re-priced as recorded": "—"
                if recorded is None
                else f"{money(recorded.total_cost)} (difference {money(recorded.difference)})",
                "Cheapest serving every call": report.cheapest or "none",
            },
        )
    )
    rows: list[tuple[Any, ...]] = []
    for target in sorted(report.targets, key=lambda t: (t.error is not None, t.total_cost)):
        unserved = ", ".join(f"{reason} {n:,}" for reason, n in target.unserved.items())
        rows.append(
            (
                target.name,
                money(target.total_cost) if target.error is None else "—",
                money(target.difference) if target.error is None else "—",
                f"{target.calls_served:,}",
                unserved or target.error or "",
            )
        )
    console.print(
        table(
            "Targets",
            ["Target", "Total", "vs charged", "Calls served", "Cannot serve"],
            rows,
            right=["Total", "vs charged", "Calls served"],
        )
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("replay")(replay_command)
