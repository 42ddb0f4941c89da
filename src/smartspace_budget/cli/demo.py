"""``smartspace-budget demo``: a sample month, then the spec's four examples on it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer

from smartspace_budget.cli.budget_cmds import collect_alerts, print_analytics
from smartspace_budget.cli.output import console, money, progress, run, table
from smartspace_budget.cli.pricing_cmds import SPEC_COMPARISON
from smartspace_budget.cli.runtime import open_backend, options
from smartspace_budget.models import AlertLevel, SpendingAlert, TokenEstimationMethod

__all__ = ["register"]


def _rule(title: str) -> None:
    console.rule(f"[bold]{title}[/bold]", align="left")


def demo_command(
    ctx: typer.Context,
    user: str = typer.Option("user_001", "--user", "-u", help="Demo account user id."),
    project: str = typer.Option("proj_001", "--project", "-p", help="Demo account project id."),
    seed: int = typer.Option(7, "--seed", help="Same seed, same month."),
) -> None:
    """Seed a month of usage on the ledger, then run the spec's four examples on it."""
    run(_demo(ctx, user, project, seed))


async def _demo(ctx: typer.Context, user: str, project: str, seed: int) -> None:
    from smartspace_budget.budgets import BudgetTracker, MemoryAlertStore, SpendingMonitor
    from smartspace_budget.demo import plan_month, seed_month
    from smartspace_budget.pricing import PricingEngine

    async with open_backend(options(ctx)) as backend:
        engine = PricingEngine(backend)
        _rule("Seeding a month of usage")
        from datetime import UTC, datetime

        planned = len(plan_month(datetime.now(UTC), seed))
        with progress("Writing the month to the ledger", total=planned) as bar:
            seeded = await seed_month(
                backend, engine, user, project, seed=seed, on_progress=bar.advance
            )
        if seeded.already_seeded:
            console.print(
                f"{user}/{project} already has {money(seeded.spent, 2)} of spending: "
                "using it as it is."
            )
        else:
            console.print(
                f"{user}/{project}: deposited {money(seeded.deposited, 2)}, recorded "
                f"{seeded.calls:,} calls costing {money(seeded.spent, 2)} across "
                f"{len(seeded.by_model)} models, including a burst of {seeded.spike_calls} "
                f"long-context calls in the last hour ({money(seeded.spike_cost, 2)})."
            )
        tracker = BudgetTracker(backend, status_ttl=0)

        # Example 1: pre-request budget check.
        _rule("Example 1: pre-request budget check")
        policy = await backend.get_policy(user, project)
        for provider, model, text, output in (
            ("openai", "gpt-4", "What is machine learning?", 500),
            ("anthropic", "claude-3-opus", "Summarise this contract. " * 16000, 4000),
        ):
            estimate = await engine.estimate_cost(
                provider, model, input_text=text, expected_output_tokens=output
            )
            check = await tracker.check_against_policy(
                user_id=user,
                project_id=project,
                requested_amount=estimate.total_cost,
                policy=policy,
            )
            console.print(
                f"{provider}/{model}, {estimate.input_tokens:,} input + {output:,} output tokens"
            )
            console.print(f"  Estimated cost: ${estimate.total_cost:.6f}")
            counted = estimate.input_token_estimate
            if counted is not None and counted.method is not TokenEstimationMethod.EXACT:
                why = counted.note or "no exact tokenizer for this model"
                console.print(
                    f"  Input tokens {counted.method.value} "
                    f"(confidence {counted.confidence:.2f}): {why}",
                    markup=False,
                )
            if check.available:
                console.print("  [green]✓ Budget check passed - proceed with request[/green]")
            else:
                console.print(f"  [red]✗ Budget check failed: {check.violations}[/red]")

        # Example 2: spending analytics dashboard.
        _rule("Example 2: spending analytics")
        status = await tracker.get_budget_status(user, project)
        console.print(f"Available: ${status.available_balance:.2f}")
        console.print(f"Spent today: ${status.spent_today:.2f}")
        console.print(f"Spent this month: ${status.spent_this_month:.2f}")
        from smartspace_budget.periods import SpendingPeriod

        analytics = await tracker.get_spending_analytics(user, project, SpendingPeriod.MONTHLY)
        print_analytics(analytics, "Monthly analytics")

        # Example 3: real-time monitoring with alerts.
        _rule("Example 3: monitoring with alerts")
        # Its own memory: a walk-through must not claim the account's alerts in the ledger
        # (a real monitor would then not deliver them), and runs again print them again.
        monitor = SpendingMonitor(backend, alert_store=MemoryAlertStore())
        delivered: list[SpendingAlert] = []

        def send_alert_notification(alert: SpendingAlert) -> None:
            delivered.append(alert)
            if alert.level in (AlertLevel.CRITICAL, AlertLevel.EMERGENCY):
                console.print(f"🚨 URGENT: {alert.title}")
                console.print(f"   {alert.message}")
            else:
                console.print(f"⚠️  {alert.title}: {alert.message}")

        monitor.register_alert_handler(send_alert_notification)
        alerts = await collect_alerts(monitor, user, project)
        await monitor.wait_for_delivery(10)  # handlers run in the background
        anomaly = next((a for a in alerts if a.alert_type.value == "spending_anomaly"), None)
        spike = next((a for a in alerts if a.alert_type.value == "cost_spike"), None)
        if anomaly is not None:
            console.print(f"Anomaly detected: {anomaly.message}")
        if spike is not None:
            console.print(f"Cost spike detected: {spike.message}")
        levels = [a.level for a in sorted(alerts, key=lambda a: -a.level.rank)]
        counts = ", ".join(
            f"{levels.count(level)} {level.value}" for level in dict.fromkeys(levels)
        )
        console.print(
            f"{len(alerts)} alert(s) raised ({counts or 'none'}); see `alerts` for the table."
        )

        # Example 4: provider cost comparison.
        _rule("Example 4: provider cost comparison")
        comparison = await engine.compare_provider_costs(
            SPEC_COMPARISON, input_tokens=1000, output_tokens=500
        )
        console.print("Cost Comparison (1000 input + 500 output tokens):\n")
        rows: list[tuple[str, Any]] = sorted(
            comparison.items(), key=lambda item: item[1].total_cost
        )
        console.print(
            table(
                None,
                ["Provider/model", "Total"],
                [(key, f"${e.total_cost:.6f}") for key, e in rows],
                right=["Total"],
            )
        )
        cheapest, dearest = rows[0], rows[-1]
        ratio = (dearest[1].total_cost / cheapest[1].total_cost).quantize(Decimal("1"))
        console.print(
            f"{cheapest[0]} is the cheapest; {dearest[0]} costs {ratio}x as much for the "
            "same request."
        )


def register(app: typer.Typer) -> None:
    """Add this module's command to ``app``."""
    app.command("demo")(demo_command)
