"""``--usage NAME=COUNT`` and ``--at``: the usage model and the call's instant on the command line.

One repeatable option covers every dimension of the usage model (one-hour cache writes,
audio and image tokens, web searches, pages...) instead of a flag per dimension, so the CLI
grows with the model without growing its help.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models.dimensions import DIMENSIONS, DIMENSIONS_BY_FIELD
from smartspace_budget.models.pricing import CostEstimate
from smartspace_budget.money import parse_amount

__all__ = ["AT", "USAGE", "parse_at", "parse_usage", "usage_rows"]

_NAMES = ", ".join(d.field for d in DIMENSIONS)

USAGE: list[str] = typer.Option(
    [],
    "--usage",
    metavar="NAME=COUNT",
    help=f"Any other usage dimension, repeatable, e.g. web_searches=2. Names: {_NAMES}.",
)
AT: str | None = typer.Option(
    None,
    "--at",
    metavar="ISO-TIME",
    help="Price the call at this instant (e.g. 2026-12-03T02:00:00Z); now by default.",
)


def parse_usage(items: list[str]) -> dict[str, Any]:
    """``["web_searches=2", "seconds=12.5"]`` -> counts, checked by the usage model."""
    counts: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in DIMENSIONS_BY_FIELD:
            raise InvalidInputError(
                f"--usage takes NAME=COUNT with NAME one of {_NAMES}; got {item!r}",
                field="--usage",
            )
        if name in counts:
            raise InvalidInputError(f"--usage gives {name} twice", field="--usage")
        text = value.strip()
        if name == "seconds":
            counts[name] = parse_amount(text, name="--usage seconds", allow_negative=False)
        elif text.isascii() and text.isdigit():
            counts[name] = int(text)
        else:
            raise InvalidInputError(f"--usage {name} must be a whole number, got {value!r}")
    return counts  # nesting (cached <= input...) is checked with the whole usage


def parse_at(text: str | None) -> datetime | None:
    """An ISO 8601 instant; naive times are UTC."""
    if text is None:
        return None
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"--at must be an ISO 8601 time such as 2026-12-03T02:00:00Z, got {text!r}"
        ) from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant


def usage_rows(estimate: CostEstimate, money: Any) -> dict[str, str]:
    """One row per dimension charged: quantity, unit price and cost."""
    rows: dict[str, str] = {}
    for line in estimate.line_items or ():
        dimension = DIMENSIONS_BY_FIELD[line.dimension]
        per = {1: "", 1000: "/1K", 3600: "/hour"}.get(line.per, f"/{line.per}")
        quantity = (
            f"{line.quantity:,}"
            if line.quantity == line.quantity.to_integral()
            else (f"{line.quantity}")
        )
        rows[f"  {dimension.label}"] = (
            f"{quantity} × {money(line.unit_price)}{per} = {money(line.cost)}"
        )
    for name, count in (estimate.unpriced or {}).items():
        rows[f"  {DIMENSIONS_BY_FIELD[name].label}"] = f"{count:,} (no price: not charged)"
    return rows
