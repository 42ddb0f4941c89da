"""``status``, ``spending``, ``analytics``, ``alerts``, ``policy`` and ``monitor``."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import typer

from smartspace_budget.cli.output import (
    EXIT_DENIED,
    EXIT_ERROR,
    console,
    err_console,
    fail,
    key_values,
    money,
    print_json,
    run,
    table,
)
from smartspace_budget.cli.runtime import JSON, PROJECT, USER, open_backend, options
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import AlertLevel, BudgetPolicy, BudgetStatus, SpendingAlert
from smartspace_budget.money import parse_amount
from smartspace_budget.periods import SpendingPeriod, previous_windows, window_containing

__all__ = ["parse_every", "register"]

policy_app = typer.Typer(help="Show or set an account's budget policy.", no_args_is_help=True)

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_every(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d`` (plain numbers are seconds)."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise InvalidInputError(f"expected a positive duration like 30s, 5m or 1h, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_account(text: str) -> tuple[str, str]:
    """``user/project``."""
    user, sep, project = text.partition("/")
    if not sep or not user or not project:
        raise InvalidInputError(f"expected user/project, got {text!r}")
    return user, project


def status_rows(status: BudgetStatus) -> dict[str, Any]:
    """A budget status as people read it, limits with what remains."""
    currency = status.currency or "USDC"
    rows: dict[str, Any] = {
        "Total balance": f"{money(status.total_balance, 2)} {currency}",
        "Available": money(status.available_balance, 2),
        "Reserved": money(status.reserved_amount, 2),
        "Spent today": money(status.spent_today, 2),
        "Spent this month": money(status.spent_this_month, 2),
        "Spent in total": money(status.spent_total, 2),
        "Daily limit": _limit(status.daily_limit, status.daily_remaining),
        "Monthly limit": _limit(status.monthly_limit, status.monthly_remaining),
        "Per-request limit": money(status.per_request_limit, 2)
        if status.per_request_limit is not None
        else "unlimited",
    }
    flags = []
    if status.daily_limit_reached:
        flags.append("[red]daily limit reached[/red]")
    if status.monthly_limit_reached:
        flags.append("[red]monthly limit reached[/red]")
    if status.low_balance_warning:
        flags.append("[yellow]low balance[/yellow]")
    rows["Warnings"] = ", ".join(flags) or "none"
    return rows


def _limit(limit: Decimal | None, remaining: Decimal | None) -> str:
    if limit is None:
        return "unlimited"
    return f"{money(limit, 2)} ({money(remaining, 2)} left)"


def status_command(
    ctx: typer.Context, user: str = USER, project: str = PROJECT, as_json: bool = JSON
) -> None:
    """Balance, reservations, spending today/this month/in total, and the limits."""

    async def go() -> BudgetStatus:
        from smartspace_budget.budgets import BudgetTracker

        async with open_backend(options(ctx)) as backend:
            return await BudgetTracker(backend).get_budget_status(user, project)

    status = run(go())
    if as_json:
        print_json(status)
        return
    console.print(key_values(f"Budget status of {user}/{project}", status_rows(status)))


def spending_command(
    ctx: typer.Context,
    user: str = USER,
    project: str = PROJECT,
    period: SpendingPeriod = typer.Option(SpendingPeriod.DAILY, "--period", help="Window size."),  # noqa: B008
    last: int = typer.Option(7, "--last", min=1, max=366, help="How many windows to show."),
    as_json: bool = JSON,
) -> None:
    """Spending per calendar window (the current one last), in the account's timezone."""

    async def go() -> list[Any]:
        from smartspace_budget.budgets import BudgetTracker

        async with open_backend(options(ctx)) as backend:
            tracker = BudgetTracker(backend)
            status = await tracker.get_budget_status(user, project)
            tz = status.timezone or "UTC"
            now = tracker.now()
            current = window_containing(period, now, tz)
            earlier = previous_windows(period, now, last - 1, tz) if last > 1 else []
            start = earlier[0].start if earlier else current.start
            return list(await tracker.spending_series(user, project, period, start, current.end))

    series = run(go())
    if as_json:
        print_json({"period": period.value, "windows": series})
        return
    console.print(
        table(
            f"Spending of {user}/{project} per {period.value} window",
            ["Window start", "Spent", "Requests"],
            [(b.start.isoformat(), money(b.spent, 4), f"{b.request_count:,}") for b in series],
            right=["Spent", "Requests"],
        )
    )


def analytics_command(
    ctx: typer.Context,
    user: str = USER,
    project: str = PROJECT,
    period: SpendingPeriod = typer.Option(SpendingPeriod.MONTHLY, "--period"),  # noqa: B008
    as_json: bool = JSON,
) -> None:
    """Spending analytics: totals, per provider and model, trend and anomaly."""

    async def go() -> Any:
        from smartspace_budget.budgets import BudgetTracker

        async with open_backend(options(ctx)) as backend:
            return await BudgetTracker(backend).get_spending_analytics(user, project, period)

    analytics = run(go())
    if as_json:
        print_json(analytics)
        return
    print_analytics(analytics, f"{period.value.capitalize()} analytics of {user}/{project}")


def prediction_rows(analytics: Any) -> dict[str, str]:
    """How holds sized by an output prediction fared, when there were any."""
    stats = getattr(analytics, "predictions", None)
    if stats is None or not stats.predicted_calls:
        return {}
    rate = f"{stats.miss_rate * 100:.1f}%" if stats.miss_rate is not None else "—"
    return {
        "Predicted holds": f"{stats.predicted_calls:,}",
        "Over their hold (missed)": f"{stats.missed_calls:,} ({rate})",
    }


def print_analytics(analytics: Any, title: str) -> None:
    """Example 2's printout as tables."""
    console.print(
        key_values(
            title,
            {
                "Total spent": money(analytics.total_spent, 2),
                "Requests": f"{analytics.request_count:,}",
                "Average per request": money(analytics.average_per_request, 4),
                "Trend": analytics.spending_trend.value,
                "Anomaly detected": "yes" if analytics.anomaly_detected else "no",
                **prediction_rows(analytics),
            },
        )
    )
    console.print(
        table(
            "Spending by provider",
            ["Provider", "Spent", "Requests"],
            [
                (p, money(a, 2), f"{analytics.requests_by_provider.get(p, 0):,}")
                for p, a in sorted(analytics.spending_by_provider.items(), key=lambda i: -i[1])
            ],
            right=["Spent", "Requests"],
        )
    )
    by_model = analytics.requests_by_model or {}
    console.print(
        table(
            "Spending by model",
            ["Model", "Spent", "Requests"],
            [
                (m, money(a, 2), f"{by_model[m]:,}" if m in by_model else "—")
                for m, a in sorted(analytics.spending_by_model.items(), key=lambda i: -i[1])
            ],
            right=["Spent", "Requests"],
        )
    )


_LEVEL_STYLE = {
    AlertLevel.INFO: "cyan",
    AlertLevel.WARNING: "yellow",
    AlertLevel.CRITICAL: "red",
    AlertLevel.EMERGENCY: "bold red",
}


def alerts_table(alerts: list[SpendingAlert], title: str) -> Any:
    """Alerts, most severe first."""
    ordered = sorted(alerts, key=lambda a: -a.level.rank)
    return table(
        title,
        ["Level", "Type", "Title", "Message"],
        [
            (
                f"[{_LEVEL_STYLE[a.level]}]{a.level.value}[/{_LEVEL_STYLE[a.level]}]",
                a.alert_type.value,
                a.title,
                a.message,
            )
            for a in ordered
        ],
    )


async def collect_alerts(monitor: Any, user: str, project: str) -> list[SpendingAlert]:
    """Example 3: status checks, then the spending anomaly and the cost spike detectors."""
    alerts: list[SpendingAlert] = list(await monitor.check_spending_status(user, project))
    seen = {a.alert_id for a in alerts}
    for detector in (monitor.detect_spending_anomaly, monitor.detect_cost_spike):
        found = await detector(user, project)
        if found is not None and found.alert_id not in seen:
            alerts.append(found)
            seen.add(found.alert_id)
    return alerts


def alerts_command(
    ctx: typer.Context,
    user: str = USER,
    project: str = PROJECT,
    fail_on: AlertLevel | None = typer.Option(  # noqa: B008
        None, "--fail-on", help="Exit 1 if any alert is at or above this level."
    ),
    as_json: bool = JSON,
) -> None:
    """Check thresholds, anomalies and spikes now; list the alerts they raise."""

    async def go() -> list[SpendingAlert]:
        from smartspace_budget.budgets import MemoryAlertStore, SpendingMonitor

        async with open_backend(options(ctx)) as backend:
            # A look, not a monitor: its own memory, so it claims nothing in the ledger
            # (the monitor delivering them must still find them new).
            monitor = SpendingMonitor(backend, alert_store=MemoryAlertStore())
            try:
                return await collect_alerts(monitor, user, project)
            finally:
                await monitor.aclose(delivery_timeout=0)

    alerts = run(go())
    if as_json:
        print_json(alerts)
    elif alerts:
        console.print(alerts_table(alerts, f"Alerts for {user}/{project}"))
    else:
        console.print(f"No alerts for {user}/{project}.")
    if fail_on is not None and any(a.level >= fail_on for a in alerts):
        raise typer.Exit(EXIT_DENIED)


def policy_rows(policy: BudgetPolicy) -> dict[str, str]:
    """A policy's limits (``unlimited`` when not set)."""
    return {
        "Per-request limit": money(policy.per_request_limit)
        if policy.per_request_limit is not None
        else "unlimited",
        "Daily limit": money(policy.daily_limit) if policy.daily_limit is not None else "unlimited",
        "Monthly limit": money(policy.monthly_limit)
        if policy.monthly_limit is not None
        else "unlimited",
        "Low-balance threshold": (
            money(policy.low_balance_threshold)
            if policy.low_balance_threshold is not None
            else "none"
        ),
    }


@policy_app.command("show")
def policy_show(
    ctx: typer.Context, user: str = USER, project: str = PROJECT, as_json: bool = JSON
) -> None:
    """The account's limits."""

    async def go() -> BudgetPolicy:
        async with open_backend(options(ctx)) as backend:
            return await backend.get_policy(user, project)

    policy = run(go())
    if as_json:
        print_json(policy)
        return
    console.print(key_values(f"Policy of {user}/{project}", policy_rows(policy)))


def _limit_option(value: str | None, name: str) -> tuple[bool, Decimal | None]:
    """(given, amount); ``none`` removes the limit."""
    if value is None:
        return False, None
    if value.strip().lower() in ("none", "unlimited"):
        return True, None
    return True, parse_amount(value, name=name, allow_negative=False)


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    user: str = USER,
    project: str = PROJECT,
    per_request: str | None = typer.Option(None, "--per-request", help="Amount or 'none'."),
    daily: str | None = typer.Option(None, "--daily", help="Amount or 'none'."),
    monthly: str | None = typer.Option(None, "--monthly", help="Amount or 'none'."),
    low_balance: str | None = typer.Option(None, "--low-balance", help="Amount or 'none'."),
    as_json: bool = JSON,
) -> None:
    """Change some limits; the others keep their value ('none' removes one)."""
    changes = {
        name: _limit_option(value, f"--{flag}")
        for name, flag, value in (
            ("per_request_limit", "per-request", per_request),
            ("daily_limit", "daily", daily),
            ("monthly_limit", "monthly", monthly),
            ("low_balance_threshold", "low-balance", low_balance),
        )
    }
    if not any(given for given, _ in changes.values()):
        raise InvalidInputError(
            "give at least one of --per-request, --daily, --monthly, --low-balance"
        )

    async def go() -> BudgetPolicy:
        async with open_backend(options(ctx)) as backend:
            current = await backend.get_policy(user, project)
            data = current.model_dump()
            data.update({k: v for k, (given, v) in changes.items() if given})
            return await backend.set_policy(user, project, BudgetPolicy.from_data(data))

    policy = run(go())
    if as_json:
        print_json(policy)
        return
    console.print(key_values(f"Policy of {user}/{project} updated", policy_rows(policy)))


def monitor_command(
    ctx: typer.Context,
    every: str = typer.Option("5m", "--every", help="Interval: 30s, 5m, 1h..."),
    account: list[str] = typer.Option(  # noqa: B008
        None,
        "--account",
        metavar="USER/PROJECT",
        help="user/project to watch (repeatable; default: all).",
    ),
    once: bool = typer.Option(False, "--once", help="Run one round and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print each alert as a JSON line."),
    notify: list[str] = typer.Option(  # noqa: B008
        None,
        "--notify",
        metavar="URL",
        envvar="SMARTSPACE_BUDGET_NOTIFY",
        help="Also deliver alerts to URL (repeatable): an http(s) webhook, a Slack incoming "
        "webhook, smtp://user:pass@host:port?from=A&to=B, or any Apprise URL.",
    ),
    webhook_secret: str | None = typer.Option(
        None,
        "--webhook-secret",
        envvar="SMARTSPACE_BUDGET_WEBHOOK_SECRET",
        help="Sign webhook bodies with HMAC-SHA256 under this secret.",
    ),
    delivery_deadline: float = typer.Option(
        30.0,
        "--delivery-deadline",
        min=0.0,
        metavar="SECONDS",
        help="How long an alert is retried (backoff with jitter) before giving up, and how "
        "long the command waits at exit for alerts still being delivered. Exit 2 if a "
        "--notify target never accepted its alerts.",
    ),
) -> None:
    """Watch accounts and deliver alerts as they are raised (Ctrl-C or SIGTERM stops cleanly).

    Alerts are delivered in the background, retried until --delivery-deadline; each failed
    attempt is one line on stderr. The command exits 2 if a --notify target did not accept
    every alert by then.
    """
    interval = parse_every(every)
    accounts = [parse_account(a) for a in account] if account else None

    def show(alert: SpendingAlert) -> None:
        if as_json:
            from smartspace_budget.models import dumps

            typer.echo(dumps(alert))
        else:
            console.print(
                alerts_table(
                    [alert],
                    f"{alert.created_at:%Y-%m-%d %H:%M:%S} {alert.user_id}/{alert.project_id}",
                )
            )

    async def go() -> tuple[int, list[str]]:
        from smartspace_budget.budgets import SpendingMonitor, notifiers_from_urls, run_monitor
        from smartspace_budget.budgets.delivery import handler_name

        handlers = notifiers_from_urls(notify or [], webhook_secret=webhook_secret)
        async with open_backend(options(ctx)) as backend:
            monitor = SpendingMonitor(backend, delivery_deadline=delivery_deadline)
            for handler in [show, *handlers]:
                monitor.register_alert_handler(handler)
            try:
                checked = 0
                if once:
                    targets = accounts or [
                        (a.user_id, a.project_id) for a in await backend.list_accounts()
                    ]
                    for user, project in targets:
                        await monitor.check_spending_status(user, project)
                    checked = len(targets)
                else:
                    stop = asyncio.Event()
                    err_console.print(f"Monitoring every {every}; Ctrl-C to stop.")
                    await run_monitor(monitor, every=interval, accounts=accounts, stop=stop)
                # Retries end by the deadline; a little more lets the last attempt finish.
                await monitor.wait_for_delivery(delivery_deadline + 1.0)
                refused = [handler_name(h) for h in handlers if monitor.undelivered(h)]
            finally:
                await monitor.aclose(delivery_timeout=0)
            return checked, refused

    checked, refused = run(go())
    if once and not as_json:
        err_console.print(f"Checked {checked} account(s).")
    if refused:
        fail(f"alerts not accepted by: {', '.join(refused)}", EXIT_ERROR)


def ack_command(
    ctx: typer.Context,
    alert_id: str = typer.Argument(..., help="The alert's id (as listed, or in its webhook)."),
    by: str | None = typer.Option(None, "--by", help="Who handled it (kept with the alert)."),
    as_json: bool = JSON,
) -> None:
    """Acknowledge an alert: stored in the ledger, so every monitor sees it handled."""

    async def go() -> SpendingAlert:
        from smartspace_budget.budgets import SpendingMonitor

        async with open_backend(options(ctx)) as backend:
            monitor = SpendingMonitor(backend)
            try:
                return await monitor.acknowledge(alert_id, by=by)
            finally:
                await monitor.aclose(delivery_timeout=0)

    alert = run(go())
    if as_json:
        print_json(alert)
        return
    when = f"{alert.acknowledged_at:%Y-%m-%d %H:%M:%S %Z}" if alert.acknowledged_at else ""
    console.print(f"Acknowledged {alert.alert_id} ({alert.level.value}: {alert.title}) {when}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("status")(status_command)
    app.command("spending")(spending_command)
    app.command("analytics")(analytics_command)
    app.command("alerts")(alerts_command)
    app.add_typer(policy_app, name="policy")
    app.command("monitor")(monitor_command)
    app.command("ack")(ack_command)
