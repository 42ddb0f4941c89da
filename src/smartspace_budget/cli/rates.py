"""``--rate CUR=RATE``: exchange rates for ``--currency``, given where the estimate is asked.

The package converts only at rates it is given (``ExchangeRates``; USDC and USD are 1:1), so
the CLI takes them as options, repeatable, or from ``SMARTSPACE_BUDGET_EXCHANGE_RATES``
(``EUR=0.92,GBP=0.79``): units of the currency per USDC.
"""

from __future__ import annotations

import typer

from smartspace_budget.errors import InvalidInputError, UnknownCurrencyError
from smartspace_budget.money import ExchangeRates

__all__ = ["RATES", "exchange_rates", "explain_missing_rate"]

RATES = typer.Option(
    [],
    "--rate",
    metavar="CUR=RATE",
    envvar="SMARTSPACE_BUDGET_EXCHANGE_RATES",
    help="Exchange rate for --currency as CUR=UNITS_PER_USDC, e.g. EUR=0.92 (repeatable; "
    "the variable takes EUR=0.92,GBP=0.79).",
)


def exchange_rates(given: list[str]) -> ExchangeRates:
    """The rates table from ``--rate`` values (each may hold several, comma-separated)."""
    rates = ExchangeRates()
    for item in (part.strip() for value in given for part in value.split(",")):
        if not item:
            continue
        code, sep, rate = item.partition("=")
        if not sep or not code.strip() or not rate.strip():
            raise InvalidInputError(f"--rate takes CUR=RATE (e.g. EUR=0.92), got {item!r}")
        rates.set_rate(code.strip(), rate.strip())
    return rates


def explain_missing_rate(exc: UnknownCurrencyError) -> InvalidInputError:
    """The error for a ``--currency`` without a rate, saying how to give one."""
    code = exc.context.get("currency", "CUR")
    return InvalidInputError(
        f"{exc.detail}; give one with --rate {code}=RATE (units of {code} per USDC) or "
        "SMARTSPACE_BUDGET_EXCHANGE_RATES"
    )
