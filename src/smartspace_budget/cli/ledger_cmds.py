"""``deposit``, ``record``, ``refund`` and ``entries``: writes to the ledger and its history.

Every write carries an idempotency key: ``--idempotency-key`` when a script may retry, a
fresh one otherwise. Retrying with the same key returns the first entry and writes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import typer

from smartspace_budget.cli.output import console, key_values, money, print_json, run, table
from smartspace_budget.cli.runtime import JSON, PROJECT, USER, open_backend, options
from smartspace_budget.cli.usage_options import USAGE, parse_at, parse_usage
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import LedgerEntry, UsageEvent
from smartspace_budget.models.dimensions import Usage
from smartspace_budget.money import parse_amount

__all__ = ["register"]

KEY = typer.Option(None, "--idempotency-key", help="Retry-safe key (default: a new one).")


def _key(given: str | None, kind: str) -> str:
    return given or f"cli:{kind}:{uuid.uuid4().hex}"


def entry_rows(entry: LedgerEntry) -> dict[str, Any]:
    """One ledger entry as people read it."""
    rows: dict[str, Any] = {
        "Entry": entry.entry_id,
        "Account": f"{entry.user_id}/{entry.project_id}",
        "Kind": entry.kind.value,
        "Amount": money(entry.amount),
        "Balance after": money(entry.balance_after),
        "At": entry.occurred_at.isoformat(),
    }
    if entry.provider:
        rows["Provider / model"] = f"{entry.provider}/{entry.model}"
    if entry.request_id:
        rows["Request"] = entry.request_id
    if entry.reason:
        rows["Reason"] = entry.reason
    return rows


def _show(entry: LedgerEntry, title: str, as_json: bool) -> None:
    if as_json:
        print_json(entry)
    else:
        console.print(key_values(title, entry_rows(entry)))


def deposit_command(
    ctx: typer.Context,
    amount: str = typer.Argument(..., help="USDC to credit, e.g. 100 or 25.50."),
    user: str = USER,
    project: str = PROJECT,
    reference: str | None = typer.Option(None, "--reference", help="E.g. a payment id."),
    key: str | None = KEY,
    as_json: bool = JSON,
) -> None:
    """Credit an account (creating it if needed)."""
    value = parse_amount(amount)
    if value <= 0:
        raise InvalidInputError(
            f"a deposit must be more than 0, got {amount}; money is taken out by usage, "
            "reservations or an adjustment, never by a deposit"
        )

    async def go() -> LedgerEntry:
        async with open_backend(options(ctx)) as backend:
            return await backend.deposit(
                user, project, value, idempotency_key=_key(key, "deposit"), reference=reference
            )

    _show(run(go()), "Deposit recorded", as_json)


def record_command(
    ctx: typer.Context,
    provider: str = typer.Argument(...),
    model: str = typer.Argument(...),
    user: str = USER,
    project: str = PROJECT,
    input_tokens: int = typer.Option(..., "--input-tokens", "-i", min=0),
    output_tokens: int = typer.Option(..., "--output-tokens", "-o", min=0),
    cached: int = typer.Option(0, "--cached-tokens", min=0, help="Part of input read from cache."),
    cache_write: int = typer.Option(0, "--cache-write-tokens", min=0, help="Part of input cached."),
    reasoning: int = typer.Option(0, "--reasoning-tokens", min=0, help="Part of the output."),
    usage: list[str] = USAGE,
    at: str | None = typer.Option(
        None, "--at", metavar="ISO-TIME", help="When the call was made (default: now)."
    ),
    cost: str | None = typer.Option(
        None, "--cost", help="Actual cost (default: priced at the call's instant)."
    ),
    request_id: str | None = typer.Option(None, "--request-id"),
    key: str | None = KEY,
    as_json: bool = JSON,
) -> None:
    """Charge one provider call made without a reservation.

    Every dimension of the call can be given (--usage NAME=COUNT, repeatable); it is priced
    at the price in force at --at, time-of-day prices included, and stored with the entry.
    """
    given_cost = None if cost is None else parse_amount(cost, name="--cost", allow_negative=False)
    counts = parse_usage(usage)
    instant = parse_at(at) or datetime.now(UTC)
    counts.update(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )
    call = Usage.of(**counts)  # nested counts checked before any work

    async def go() -> LedgerEntry:
        from smartspace_budget.pricing import PricingEngine

        async with open_backend(options(ctx)) as backend:
            estimate = await PricingEngine(backend).estimate_cost(
                provider, model, usage=call, at=instant
            )
            if estimate.unpriced and given_cost is None:
                names = ", ".join(estimate.unpriced)
                raise InvalidInputError(
                    f"{estimate.provider}/{estimate.model} has no price for {names}: give the "
                    "call's actual cost with --cost",
                    field="--cost",
                )
            actual: Decimal = given_cost if given_cost is not None else estimate.total_cost
            event = UsageEvent.model_validate(
                {
                    **{name: getattr(call, name) for name in Usage.__dataclass_fields__},
                    "provider": estimate.provider,
                    "model": estimate.model,
                    "actual_cost": actual,
                    "estimated_cost": estimate.total_cost,
                    "price_version": estimate.price_version,
                    "request_id": request_id,
                    "occurred_at": instant,
                    "unpriced": {k: int(v) for k, v in (estimate.unpriced or {}).items()},
                }
            )
            return await backend.record_usage(
                user, project, event, idempotency_key=_key(key, "usage")
            )

    _show(run(go()), "Usage recorded", as_json)


def refund_command(
    ctx: typer.Context,
    amount: str = typer.Argument(..., help="USDC to credit back."),
    user: str = USER,
    project: str = PROJECT,
    entry: str | None = typer.Option(None, "--entry", help="The usage entry refunded."),
    reason: str = typer.Option("", "--reason"),
    key: str | None = KEY,
    as_json: bool = JSON,
) -> None:
    """Credit back earlier usage (negative spending in its period)."""
    value = parse_amount(amount, allow_negative=False)

    async def go() -> LedgerEntry:
        async with open_backend(options(ctx)) as backend:
            return await backend.refund(
                user,
                project,
                value,
                idempotency_key=_key(key, "refund"),
                usage_entry_id=entry,
                reason=reason,
            )

    _show(run(go()), "Refund recorded", as_json)


def entries_command(
    ctx: typer.Context,
    user: str = USER,
    project: str = PROJECT,
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=1000),
    as_json: bool = JSON,
) -> None:
    """The account's latest ledger entries, newest first (local ledger only)."""

    async def go() -> list[LedgerEntry]:
        async with open_backend(options(ctx)) as backend:
            lister = getattr(backend, "list_entries", None)
            if lister is None:
                lister = getattr(getattr(backend, "ledger", None), "list_entries", None)
            if lister is None:
                raise InvalidInputError("this backend cannot list entries; use --database-url")
            return list(await lister(user, project, limit=limit))

    entries = run(go())
    if as_json:
        print_json(entries)
        return
    console.print(
        table(
            f"Latest entries of {user}/{project}",
            ["At", "Kind", "Amount", "Balance after", "Provider/model"],
            [
                (
                    e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.kind.value,
                    money(e.amount),
                    money(e.balance_after),
                    f"{e.provider}/{e.model}" if e.provider else "",
                )
                for e in entries
            ],
            right=["Amount", "Balance after"],
        )
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    # A negative amount (``deposit -5``) reaches the command, which explains the refusal,
    # instead of being read as an unknown option ``-5``.
    numbers = {"ignore_unknown_options": True}
    app.command("deposit", context_settings=numbers)(deposit_command)
    app.command("record")(record_command)
    app.command("refund", context_settings=numbers)(refund_command)
    app.command("entries")(entries_command)
