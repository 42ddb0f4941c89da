"""``estimate``, ``check``, ``compare`` and ``prices``: what a request costs, and may it spend."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from smartspace_budget.cli.output import (
    EXIT_DENIED,
    console,
    key_values,
    money,
    print_json,
    progress,
    run,
    table,
)
from smartspace_budget.cli.runtime import open_backend, options
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import CostEstimate, PricingData, PricingModel, loads
from smartspace_budget.money import parse_amount

__all__ = ["SPEC_COMPARISON", "register"]

SPEC_COMPARISON = [
    ("openai", "gpt-4"),
    ("openai", "gpt-3.5-turbo"),
    ("anthropic", "claude-3-opus"),
    ("anthropic", "claude-3-sonnet"),
    ("google", "gemini-pro"),
]
"""The spec's Example 4 pairs: ``compare`` with no arguments compares these."""

prices_app = typer.Typer(help="List, show, override and date model prices.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON (exact amounts) instead of a table.")
USER = typer.Option(..., "--user", "-u", help="User id of the account.")
PROJECT = typer.Option(..., "--project", "-p", help="Project id of the account.")


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
    """The lines of an estimate as people read it."""
    method = estimate.input_token_estimate
    tokens = f"{estimate.input_tokens:,}"
    if method is not None:
        tokens += f" ({method.method.value}, confidence {method.confidence:.2f})"
    return {
        "Provider / model": f"{estimate.provider}/{estimate.model}",
        "Input tokens": tokens,
        "Output tokens": f"{estimate.output_tokens:,}",
        "Input cost": money(estimate.input_cost),
        "Output cost": money(estimate.output_cost),
        "Base cost": money(estimate.base_cost),
        f"Platform fee ({estimate.platform_fee_percent}%)": money(estimate.platform_fee),
        "Total": f"{money(estimate.total_cost)} {estimate.currency}",
        "Price version": estimate.price_version or "—",
    }


async def _estimate(
    opts: Any,
    provider: str,
    model: str,
    text: str | None,
    messages: list[dict[str, Any]] | None,
    input_tokens: int | None,
    output_tokens: int,
    currency: str,
) -> tuple[Any, CostEstimate]:
    from smartspace_budget.pricing import PricingEngine

    async with open_backend(opts) as backend:
        engine = PricingEngine(backend)
        estimate = await engine.estimate_cost(
            provider,
            model,
            text,
            messages=messages,
            input_tokens=input_tokens,
            expected_output_tokens=output_tokens,
            currency=currency,
        )
        return backend, estimate


def estimate_command(
    ctx: typer.Context,
    provider: str = typer.Argument(..., help="Provider, e.g. openai, anthropic, google."),
    model: str = typer.Argument(..., help="Model, e.g. gpt-4o."),
    text: str | None = typer.Argument(None, help="The prompt ('-' reads stdin)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Read the prompt from a file."),  # noqa: B008
    messages: Path | None = typer.Option(None, "--messages", help="JSON file of chat messages."),  # noqa: B008
    input_tokens: int | None = typer.Option(None, "--input-tokens", min=0, help="Known count."),
    output_tokens: int = typer.Option(500, "--output-tokens", "-o", min=0, help="Expected output."),
    currency: str = typer.Option("USDC", "--currency", help="Currency of the result."),
    as_json: bool = JSON,
) -> None:
    """Estimate the cost of one request (tokens, base cost, 5% platform fee, total)."""
    prompt = read_input(text, file)
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
    """The spec's Example 1: estimate one request, then check it against the account's policy.

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
        None, help="provider/model pairs (default: the spec's Example 4 list)."
    ),
    input_tokens: int = typer.Option(1000, "--input-tokens", "-i", min=0),
    output_tokens: int = typer.Option(500, "--output-tokens", "-o", min=0),
    as_json: bool = JSON,
) -> None:
    """The spec's Example 4: the same request priced across providers, cheapest first."""
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


def _per_million(price: Decimal | None) -> str:
    return "—" if price is None else money(price * 1000)


@prices_app.command("list")
def prices_list(
    ctx: typer.Context,
    provider: str | None = typer.Option(None, "--provider", help="Only this provider."),
    as_json: bool = JSON,
) -> None:
    """Known models with their current input/output prices (per 1M tokens)."""

    async def go() -> list[tuple[str, str, PricingData | None]]:
        import asyncio

        async with open_backend(options(ctx)) as backend:
            pairs = await backend.list_models(provider)
            with progress("Reading prices", total=len(pairs)) as bar:

                async def one(p: str, m: str) -> tuple[str, str, PricingData | None]:
                    try:
                        price = await backend.get_pricing(p, m)
                    except Exception:
                        price = None
                    bar.advance()
                    return p, m, price

                return list(await asyncio.gather(*(one(p, m) for p, m in pairs)))

    rows = run(go())
    if as_json:
        print_json([{"provider": p, "model": m, "pricing": price} for p, m, price in rows])
        return
    console.print(
        table(
            f"Models ({len(rows)})",
            ["Provider", "Model", "Input /1M", "Output /1M", "Cached /1M", "Version"],
            [
                (
                    p,
                    m,
                    _per_million(price.input_price_per_1k if price else None),
                    _per_million(price.output_price_per_1k if price else None),
                    _per_million(price.cached_input_price_per_1k if price else None),
                    (price.version or "—") if price else "—",
                )
                for p, m, price in rows
            ],
            right=["Input /1M", "Output /1M", "Cached /1M"],
        )
    )


def pricing_rows(price: PricingData) -> dict[str, Any]:
    """One price version as people read it."""
    rows: dict[str, Any] = {
        "Provider / model": f"{price.provider}/{price.model_name}",
        "Pricing model": price.pricing_model.value,
    }
    for label, value in (
        ("Input per 1K", price.input_price_per_1k),
        ("Output per 1K", price.output_price_per_1k),
        ("Cached input per 1K", price.cached_input_price_per_1k),
        ("Cache write per 1K", price.cache_write_price_per_1k),
        ("Per request", price.request_price),
        ("Per character", price.price_per_character),
        ("Per second", price.price_per_second),
    ):
        if value is not None:
            rows[label] = money(value)
    if price.max_input_tokens is not None:
        rows["Max input tokens"] = f"{price.max_input_tokens:,}"
    if price.max_output_tokens is not None:
        rows["Max output tokens"] = f"{price.max_output_tokens:,}"
    rows["Effective"] = price.effective_date.isoformat()
    rows["Version"] = price.version or "—"
    rows["Source"] = price.source or "—"
    return rows


@prices_app.command("show")
def prices_show(
    ctx: typer.Context,
    provider: str = typer.Argument(...),
    model: str = typer.Argument(...),
    as_json: bool = JSON,
) -> None:
    """The price version in force for a model."""

    async def go() -> PricingData:
        async with open_backend(options(ctx)) as backend:
            return await backend.get_pricing(provider, model)

    price = run(go())
    if as_json:
        print_json(price)
        return
    console.print(key_values("Pricing", pricing_rows(price)))


@prices_app.command("history")
def prices_history(
    ctx: typer.Context,
    provider: str = typer.Argument(...),
    model: str = typer.Argument(...),
    days: int | None = typer.Option(None, "--days", min=1, help="Only the last N days."),
    as_json: bool = JSON,
) -> None:
    """Every price version of a model, oldest first."""

    async def go() -> list[PricingData]:
        async with open_backend(options(ctx)) as backend:
            return await backend.get_price_history(provider, model, days=days)

    history = run(go())
    if as_json:
        print_json(history)
        return
    console.print(
        table(
            f"Price history of {provider}/{model}",
            ["Effective", "Input /1M", "Output /1M", "Cached /1M", "Version", "Source"],
            [
                (
                    p.effective_date.date().isoformat(),
                    _per_million(p.input_price_per_1k),
                    _per_million(p.output_price_per_1k),
                    _per_million(p.cached_input_price_per_1k),
                    p.version or "—",
                    p.source or "—",
                )
                for p in history
            ],
            right=["Input /1M", "Output /1M", "Cached /1M"],
        )
    )


def _optional_amount(value: str | None, name: str) -> Decimal | None:
    return None if value is None else parse_amount(value, name=name, allow_negative=False)


@prices_app.command("set")
def prices_set(
    ctx: typer.Context,
    provider: str = typer.Argument(...),
    model: str = typer.Argument(...),
    input_price: str | None = typer.Option(None, "--input", help="USDC per 1K input tokens."),
    output_price: str | None = typer.Option(None, "--output", help="USDC per 1K output tokens."),
    cached_price: str | None = typer.Option(None, "--cached-input", help="Per 1K cached."),
    write_price: str | None = typer.Option(None, "--cache-write", help="Per 1K cache writes."),
    request_price: str | None = typer.Option(None, "--per-request", help="USDC per request."),
    max_input: int | None = typer.Option(None, "--max-input-tokens", min=0),
    max_output: int | None = typer.Option(None, "--max-output-tokens", min=0),
    effective: datetime | None = typer.Option(  # noqa: B008
        None, "--effective", help="When it takes effect (default: now, UTC)."
    ),
    force: bool = typer.Option(False, "--force", help="Accept a change of more than 10x."),
    as_json: bool = JSON,
) -> None:
    """Add a price version (an override of the catalog) from its effective date on."""
    now = datetime.now(UTC)
    when = (
        now
        if effective is None
        else (effective if effective.tzinfo else effective.replace(tzinfo=UTC))
    )
    token_based = input_price is not None or output_price is not None
    pricing_model = (
        PricingModel.PER_REQUEST
        if request_price is not None and not token_based
        else PricingModel.TOKEN_BASED
    )
    pricing = PricingData.from_data(
        {
            "provider": provider,
            "model_name": model,
            "pricing_model": pricing_model,
            "input_price_per_1k": _optional_amount(input_price, "--input"),
            "output_price_per_1k": _optional_amount(output_price, "--output"),
            "cached_input_price_per_1k": _optional_amount(cached_price, "--cached-input"),
            "cache_write_price_per_1k": _optional_amount(write_price, "--cache-write"),
            "request_price": _optional_amount(request_price, "--per-request"),
            "max_input_tokens": max_input,
            "max_output_tokens": max_output,
            "effective_date": when,
            "last_updated": now,
            "source": "cli",
        }
    )

    async def go() -> PricingData:
        async with open_backend(options(ctx)) as backend:
            return await _add_price(backend, pricing, force)

    stored = run(go())
    if as_json:
        print_json(stored)
        return
    console.print(key_values("Price version added", pricing_rows(stored)))


async def _add_price(backend: Any, pricing: PricingData, force: bool) -> PricingData:
    book = getattr(backend, "price_book", None)
    if book is not None:
        return await book.add_price(pricing, force=force)  # type: ignore[no-any-return]
    add = getattr(backend, "add_price", None)
    if add is not None:
        return await add(pricing, force=force)  # type: ignore[no-any-return]
    raise InvalidInputError("this backend cannot store prices; use --database-url")


@prices_app.command("sync")
def prices_sync(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="JSON list of price versions (the spec's shape)."),  # noqa: B008
    force: bool = typer.Option(False, "--force", help="Accept changes of more than 10x."),
    as_json: bool = JSON,
) -> None:
    """Import a price sheet: every version not stored yet is added; re-running adds nothing."""
    try:
        data = loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {file}: {exc.strerror}") from None
    if not isinstance(data, list):
        raise InvalidInputError(f"{file} must hold a JSON list of price versions")
    now = datetime.now(UTC)
    versions = [
        PricingData.from_data({"last_updated": now, "source": "price sheet", **item})
        if isinstance(item, dict)
        else PricingData.from_data(item)
        for item in data
    ]

    async def go() -> list[PricingData]:
        stored: list[PricingData] = []
        async with open_backend(options(ctx)) as backend:
            with progress(f"Importing {len(versions)} prices", total=len(versions)) as bar:
                for pricing in versions:
                    stored.append(await _add_price(backend, pricing, force))
                    bar.advance()
        return stored

    stored = run(go())
    if as_json:
        print_json(stored)
        return
    console.print(
        table(
            f"Imported {len(stored)} price versions from {file.name}",
            ["Provider/model", "Effective", "Input /1M", "Output /1M", "Version"],
            [
                (
                    f"{p.provider}/{p.model_name}",
                    p.effective_date.date().isoformat(),
                    _per_million(p.input_price_per_1k),
                    _per_million(p.output_price_per_1k),
                    p.version or "—",
                )
                for p in stored
            ],
            right=["Input /1M", "Output /1M"],
        )
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("estimate")(estimate_command)
    app.command("check")(check_command)
    app.command("compare")(compare_command)
    app.add_typer(prices_app, name="prices")
