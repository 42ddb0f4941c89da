"""``estimate``, ``check`` and ``compare``: what a request costs, and may it spend it."""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from smartspace_budget.cli.output import (
    EXIT_DENIED,
    console,
    key_values,
    money,
    print_json,
    run,
    table,
)
from smartspace_budget.cli.output import money as usd_money
from smartspace_budget.cli.rates import RATES, exchange_rates, explain_missing_rate
from smartspace_budget.cli.runtime import JSON, PROJECT, USER, open_backend, options
from smartspace_budget.cli.usage_options import AT, USAGE, parse_at, parse_usage, usage_rows
from smartspace_budget.errors import InvalidInputError, UnknownCurrencyError
from smartspace_budget.models import CostEstimate, loads
from smartspace_budget.money import ExchangeRates, parse_amount

__all__ = ["SPEC_COMPARISON", "register"]

SPEC_COMPARISON = [
    ("openai", "gpt-4"),
    ("openai", "gpt-3.5-turbo"),
    ("anthropic", "claude-3-opus"),
    ("anthropic", "claude-3-sonnet"),
    ("google", "gemini-pro"),
]
"""The spec's Example 4 pairs: ``compare`` with no arguments compares these."""


def read_input(text: str | None, file: Path | None) -> str | None:
    """The prompt: the argument, a file, or stdin for ``-``."""
    if text is not None and file is not None:
        raise InvalidInputError("give the prompt as an argument or with --file, not both")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot read {file}: {exc.strerror}") from None
    if text == "-":
        return sys.stdin.read()
    return text


def read_messages(path: Path | None) -> list[dict[str, Any]] | None:
    """Chat messages from a JSON file (a list of ``{"role", "content"}``)."""
    if path is None:
        return None
    try:
        data = loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise InvalidInputError(f"{path} must hold a JSON list of messages")
    return data


def estimate_rows(estimate: CostEstimate) -> dict[str, Any]:
    """The lines of an estimate as people read it (``$`` only for USDC and USD)."""

    def money(amount: Decimal) -> str:
        shown = usd_money(amount)
        return shown if estimate.currency in ("USDC", "USD") else shown.replace("$", "", 1)

    method = estimate.input_token_estimate
    tokens = f"{estimate.input_tokens:,}"
    if method is not None:
        tokens += f" ({method.method.value}, confidence {method.confidence:.2f})"
    return {
        "Provider / model": f"{estimate.provider}/{estimate.model}",
        "Input tokens": tokens,
        "Output tokens": _output_text(estimate),
        **usage_rows(estimate, money),
        "Input cost": money(estimate.input_cost),
        "Output cost": money(estimate.output_cost),
        "Base cost": money(estimate.base_cost),
        f"Platform fee ({estimate.platform_fee_percent}%)": money(estimate.platform_fee),
        "Total": f"{money(estimate.total_cost)} {estimate.currency}",
        "Price version": estimate.price_version or "—",
    }


def _output_text(estimate: CostEstimate) -> str:
    """The output tokens, and how they were chosen when the engine chose them."""
    text = f"{estimate.output_tokens:,}"
    chosen = estimate.output_estimate
    if chosen is None:
        return text
    if chosen.method.value == "predicted" and chosen.quantile is not None:
        scope = chosen.scope.value if chosen.scope else ""
        return (
            f"{text} (predicted: p{(chosen.quantile * 100).normalize():f} of "
            f"{chosen.samples or 0:,} "
            f"{scope} calls, confidence {chosen.confidence:.2f})"
        )
    return f"{text} ({chosen.method.value}: {chosen.note or ''})"


async def _estimate(
    opts: Any,
    provider: str,
    model: str,
    text: str | None,
    messages: list[dict[str, Any]] | None,
    input_tokens: int | None,
    output_tokens: int | None,
    currency: str,
    rates: ExchangeRates | None = None,
    usage: dict[str, Any] | None = None,
    at: datetime | None = None,
    as_chat: bool = True,
    account: tuple[str | None, str | None] = (None, None),
) -> tuple[Any, CostEstimate]:
    from smartspace_budget.pricing import PricingEngine

    async with open_backend(opts) as backend:
        engine = PricingEngine(backend, exchange_rates=rates)
        try:
            estimate = await engine.estimate_cost(
                provider,
                model,
                text,
                messages=messages,
                input_tokens=input_tokens,
                expected_output_tokens=output_tokens,
                currency=currency,
                usage=usage or None,
                at=at,
                as_chat=as_chat,
                user_id=account[0],
                project_id=account[1],
            )
        except UnknownCurrencyError as exc:
            raise explain_missing_rate(exc) from None
        return backend, estimate


def estimate_command(
    ctx: typer.Context,
    provider: str = typer.Argument(..., help="Provider, e.g. openai, anthropic, google."),
    model: str = typer.Argument(..., help="Model, e.g. gpt-4o."),
    text: str | None = typer.Argument(None, help="The prompt ('-' reads stdin)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the prompt from a file."),  # noqa: B008
    messages: Path | None = typer.Option(None, "--messages", help="JSON file of chat messages."),  # noqa: B008
    input_tokens: int | None = typer.Option(None, "--input-tokens", min=0, help="Known count."),
    output_tokens: int | None = typer.Option(
        None,
        "--output-tokens",
        "-o",
        min=0,
        help="Expected output. Default: with --user and --project, the p95 of the account's "
        "past output on this model (after 30 calls), else 500.",
    ),
    user: str | None = typer.Option(
        None, "--user", "-u", help="Account whose history predicts the output."
    ),
    project: str | None = typer.Option(None, "--project", "-p", help="Project of --user."),
    currency: str = typer.Option(
        "USDC", "--currency", help="Currency of the result (other than USDC/USD: with --rate)."
    ),
    rates: list[str] = RATES,
    usage: list[str] = USAGE,
    at: str | None = AT,
    bare: bool = typer.Option(
        False,
        "--bare",
        help="Count the prompt as plain text (default: as a one-message chat, with the "
        "chat formatting tokens a chat call adds).",
    ),
    as_json: bool = JSON,
) -> None:
    """Estimate the cost of one request, itemized by usage dimension, with the platform fee."""
    counts = parse_usage(usage)
    instant = parse_at(at)
    prompt = read_input(text, file)
    table_of_rates = exchange_rates(rates)
    _, estimate = run(
        _estimate(
            options(ctx),
            provider,
            model,
            prompt,
            read_messages(messages),
            input_tokens,
            output_tokens,
            currency,
            table_of_rates,
            counts,
            instant,
            not bare,
            (user, project),
        )
    )
    if as_json:
        print_json(estimate)
        return
    console.print(key_values("Cost estimate", estimate_rows(estimate)))


def check_command(
    ctx: typer.Context,
    provider: str = typer.Argument(..., help="Provider of the request."),
    model: str = typer.Argument(..., help="Model of the request."),
    text: str | None = typer.Argument(None, help="The prompt ('-' reads stdin)."),
    user: str = USER,
    project: str = PROJECT,
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the prompt from a file."),  # noqa: B008
    output_tokens: int = typer.Option(500, "--output-tokens", "-o", min=0, help="Expected output."),
    amount: str | None = typer.Option(None, "--amount", help="Check this amount instead."),
    as_json: bool = JSON,
) -> None:
    """Estimate one request, then check it against the account's policy (pre-request check).

    Exits 1 when the budget check fails.
    """
    prompt = read_input(text, file)
    requested = None if amount is None else parse_amount(amount, allow_negative=False)

    async def go() -> tuple[CostEstimate | None, Any]:
        from smartspace_budget.budgets import BudgetTracker
        from smartspace_budget.pricing import PricingEngine

        async with open_backend(options(ctx)) as backend:
            estimate = None
            value = requested
            if value is None:
                estimate = await PricingEngine(backend).estimate_cost(
                    provider, model, prompt, expected_output_tokens=output_tokens
                )
                value = estimate.total_cost
            tracker = BudgetTracker(backend)
            policy = await backend.get_policy(user, project)
            check = await tracker.check_against_policy(
                user_id=user, project_id=project, requested_amount=value, policy=policy
            )
            return estimate, check

    estimate, check = run(go())
    if as_json:
        print_json({"estimate": estimate, "check": check} if estimate else {"check": check})
    else:
        if estimate is not None:
            console.print(f"Estimated cost: ${estimate.total_cost:.6f}")
        if check.available:
            console.print("[green]✓ Budget check passed - proceed with request[/green]")
        else:
            console.print(f"[red]✗ Budget check failed: {check.violations}[/red]")
    if not check.available:
        raise typer.Exit(EXIT_DENIED)


def parse_pair(text: str) -> tuple[str, str]:
    """``provider/model`` (the model may itself contain slashes)."""
    provider, sep, model = text.partition("/")
    if not sep or not provider or not model:
        raise InvalidInputError(f"expected provider/model, got {text!r}")
    return provider, model


def compare_command(
    ctx: typer.Context,
    models: list[str] = typer.Argument(  # noqa: B008
        None,
        metavar="PROVIDER/MODEL...",
        help="provider/model pairs (default: gpt-4, gpt-3.5-turbo, claude-3-opus, "
        "claude-3-sonnet, gemini-pro).",
    ),
    input_tokens: int = typer.Option(1000, "--input-tokens", "-i", min=0),
    output_tokens: int = typer.Option(500, "--output-tokens", "-o", min=0),
    as_json: bool = JSON,
) -> None:
    """The same request priced across providers and models, cheapest first."""
    pairs = [parse_pair(m) for m in models] if models else SPEC_COMPARISON

    async def go() -> Any:
        from smartspace_budget.pricing import PricingEngine

        async with open_backend(options(ctx)) as backend:
            return await PricingEngine(backend).compare_provider_costs(
                pairs, input_tokens=input_tokens, output_tokens=output_tokens
            )

    comparison = run(go())
    failures = getattr(comparison, "failures", {})
    ranked = sorted(comparison.items(), key=lambda item: item[1].total_cost)
    if as_json:
        print_json(
            {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "estimates": dict(ranked),
                "failures": {key: str(exc) for key, exc in failures.items()},
            }
        )
        return
    title = f"Cost comparison ({input_tokens:,} input + {output_tokens:,} output tokens)"
    rows = [
        (key, money(e.input_cost), money(e.output_cost), money(e.platform_fee), money(e.total_cost))
        for key, e in ranked
    ]
    console.print(
        table(
            title,
            ["Provider/model", "Input", "Output", "Fee", "Total"],
            rows,
            right=["Input", "Output", "Fee", "Total"],
        )
    )
    for key, exc in failures.items():
        console.print(f"[yellow]{key}: {exc}[/yellow]")
    if not ranked:
        raise InvalidInputError("no pair could be priced")


class PlainHelp(TyperCommand):
    """Help without Typer's Python type of a repeatable argument (``<list[str]>``): its
    metavar already says what to give."""

    def get_help(self, ctx: Any) -> str:
        text: str = super().get_help(ctx)
        return text.replace(" <list[str]>", " " * len(" <list[str]>"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("estimate")(estimate_command)
    app.command("check")(check_command)
    app.command("compare", cls=PlainHelp)(compare_command)
