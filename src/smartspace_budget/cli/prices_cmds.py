"""``prices``: list, show, date and override model prices (versions are immutable)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer

from smartspace_budget.backend._cached import current_prices
from smartspace_budget.cli.output import (
    console,
    key_values,
    money,
    print_json,
    print_listing,
    progress,
    run,
    table,
)
from smartspace_budget.cli.runtime import JSON, open_backend, options
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import PricingData, PricingModel, loads
from smartspace_budget.money import parse_amount
from smartspace_budget.prices.catalog import MAX_PRICE_CHANGE
from smartspace_budget.prices.snapshot import CATALOG_EPOCH

__all__ = ["pricing_rows", "register"]

prices_app = typer.Typer(help="List, show, override and date model prices.", no_args_is_help=True)


def _per_million(price: Decimal | None) -> str:
    return "—" if price is None else money(price * 1000)


@prices_app.command("list")
def prices_list(
    ctx: typer.Context,
    provider: str | None = typer.Option(None, "--provider", help="Only this provider."),
    as_json: bool = JSON,
) -> None:
    """Known models with their current input/output prices (per 1M tokens).

    Read in one pass over the price catalog, and printed as plain columns as wide as the
    longest name, so no name is cut short (also when piped).
    """

    async def go() -> list[tuple[str, str, PricingData | None]]:
        async with open_backend(options(ctx)) as backend:
            with progress("Reading prices"):
                return await current_prices(backend, provider)

    rows = run(go())
    if as_json:
        print_json([{"provider": p, "model": m, "pricing": price} for p, m, price in rows])
        return
    print_listing(
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
    if price.context_window is not None:
        rows["Context window"] = f"{price.context_window:,}"
    rows["Effective"] = (
        "since the catalog's first listing (it publishes no start date)"
        if price.effective_date == CATALOG_EPOCH
        else price.effective_date.isoformat()
    )
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
    max_output: int | None = typer.Option(
        None, "--max-output-tokens", min=0, help="The model's output limit per call."
    ),
    context_window: int | None = typer.Option(
        None, "--context-window", min=0, help="Input and output tokens of one call together."
    ),
    effective: datetime | None = typer.Option(  # noqa: B008
        None, "--effective", help="When it takes effect (default: now, UTC)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help=f"Accept a price more than {MAX_PRICE_CHANGE}x above or below the one in force.",
    ),
    as_json: bool = JSON,
) -> None:
    """Add a price version (an override of the catalog) from its effective date on.

    With only limits (--max-output-tokens, --max-input-tokens, --context-window) and no
    price, the version in force is kept with those limits changed.
    """
    now = datetime.now(UTC)
    when = (
        now
        if effective is None
        else (effective if effective.tzinfo else effective.replace(tzinfo=UTC))
    )
    prices = {
        "input_price_per_1k": _optional_amount(input_price, "--input"),
        "output_price_per_1k": _optional_amount(output_price, "--output"),
        "cached_input_price_per_1k": _optional_amount(cached_price, "--cached-input"),
        "cache_write_price_per_1k": _optional_amount(write_price, "--cache-write"),
        "request_price": _optional_amount(request_price, "--per-request"),
    }
    limits = {
        "max_input_tokens": max_input,
        "max_output_tokens": max_output,
        "context_window": context_window,
    }
    given_limits = {name: value for name, value in limits.items() if value is not None}
    only_limits = all(value is None for value in prices.values())
    if only_limits and not given_limits:
        raise InvalidInputError("give a price (--input/--output, --per-request) or a limit")
    dated = {"effective_date": when, "last_updated": now, "source": "cli"}

    async def go() -> PricingData:
        async with open_backend(options(ctx)) as backend:
            if only_limits:
                in_force = await backend.get_pricing(provider, model)
                document = in_force.model_dump()
                document.update(given_limits, **dated, version=None)
                return await _add_price(backend, PricingData.from_data(document), force)
            token_based = input_price is not None or output_price is not None
            pricing_model = (
                PricingModel.PER_REQUEST
                if request_price is not None and not token_based
                else PricingModel.TOKEN_BASED
            )
            fields = {"provider": provider, "model_name": model, "pricing_model": pricing_model}
            document = {**fields, **prices, **limits, **dated}
            return await _add_price(backend, PricingData.from_data(document), force)

    stored = run(go())
    if as_json:
        print_json(stored)
        return
    console.print(key_values("Price version added", pricing_rows(stored)))


async def _add_price(backend: Any, pricing: PricingData, force: bool) -> PricingData:
    book = getattr(backend, "price_book", None)
    add = book.add_price if book is not None else getattr(backend, "add_price", None)
    if add is None:
        raise InvalidInputError("this backend cannot store prices; use --database-url")
    try:
        return await add(pricing, force=force)  # type: ignore[no-any-return]
    except InvalidInputError as exc:
        # The library's refusal names its keyword argument; a CLI user passes --force.
        if "force=True" not in exc.detail:
            raise
        raise InvalidInputError(
            exc.detail.replace("pass force=True", "pass --force").replace("force=True", "--force"),
            **exc.context,
        ) from None


@prices_app.command("sync")
def prices_sync(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="JSON list of price versions (the spec's shape)."),  # noqa: B008
    force: bool = typer.Option(
        False,
        "--force",
        help=f"Accept prices more than {MAX_PRICE_CHANGE}x above or below the ones in force.",
    ),
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
    """Add the ``prices`` group to ``app``."""
    app.add_typer(prices_app, name="prices")
