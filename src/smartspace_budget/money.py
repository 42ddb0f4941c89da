"""Exact money: Decimal in the API, integer nano-units in storage, one rounding rule.

The ledger stores amounts as integers of **nano-USDC** (10^-9 USDC): SQLite has no exact
decimal type and per-token prices are far below a micro-dollar. :func:`to_nano` is the one
place a Decimal becomes ledger units; it rounds half-even (banker's rounding), so rounding
errors do not drift in one direction over millions of entries.

Floats are refused everywhere: ``0.1`` as a float is not one tenth, and a budget system
that silently accepts it cannot make its totals match to the last unit.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from smartspace_budget.errors import InvalidAmountError, InvalidInputError, UnknownCurrencyError

__all__ = [
    "AMOUNT_PATTERN",
    "DEFAULT_CURRENCY",
    "MAX_AMOUNT",
    "MAX_AMOUNT_DIGITS",
    "MAX_NANO",
    "NANO_DIGITS",
    "NANO_PER_UNIT",
    "Amount",
    "ExchangeRate",
    "ExchangeRates",
    "from_nano",
    "parse_amount",
    "quantize",
    "ratio_split",
    "to_nano",
]

DEFAULT_CURRENCY = "USDC"
NANO_DIGITS = 9
NANO_PER_UNIT = 10**NANO_DIGITS
_NANO_QUANTUM = Decimal(1).scaleb(-NANO_DIGITS)
# Signed 64-bit column range: the most a BIGINT can hold (~9.2 billion USDC in nano-units).
MAX_NANO = 2**63 - 1
_OUT_OF_REACH = Decimal(10**10)

MAX_AMOUNT_DIGITS = 9
"""Most digits before the decimal point of an amount written as text (at most 999,999,999)."""
MAX_AMOUNT = Decimal(10**MAX_AMOUNT_DIGITS) - _NANO_QUANTUM
"""Largest amount written as text: 999,999,999.999999999 USDC, a ninth of the BIGINT range
(so sums of several such amounts still fit the ledger's columns)."""

_WHOLE = rf"(0|[1-9][0-9]{{0,{MAX_AMOUNT_DIGITS - 1}}})"
_FRACTION = rf"(\.[0-9]{{1,{NANO_DIGITS}}})?"
AMOUNT_PATTERN = rf"^-?{_WHOLE}{_FRACTION}$"
"""The one grammar of an amount written as text (a string, a CLI argument, a JSON number's
raw text): an optional ``-``, a whole part of 1-9 ASCII digits without leading zeros (as in
JSON), then optionally ``.`` and 1-9 ASCII digits. No exponent, underscore, space, ``+``,
non-ASCII digit, NaN or Infinity."""

_AMOUNT_TEXT = re.compile(AMOUNT_PATTERN, re.ASCII)
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)

# Enough digits for any product or quotient of in-range amounts and rates to be exact
# before the single rounding step.
_CONTEXT = decimal.Context(prec=60, rounding=ROUND_HALF_EVEN, Emax=999_999, Emin=-999_999)

Amount = Decimal | int | str
"""What the API accepts as an amount: a Decimal, an int, or a decimal string. Never a float."""


def parse_amount(value: object, *, name: str = "amount", allow_negative: bool = True) -> Decimal:
    """Turn ``value`` into a finite Decimal, refusing floats, bools, NaN and infinities.

    A string must be written in :data:`AMOUNT_PATTERN` (see :func:`parse_amount_text`): text
    is what a person typed, so it is held to the one grammar of every door. A Decimal or int
    (a value a program computed) may have more digits; the ledger rounds it half-even.

    Raises :class:`InvalidAmountError` with a message naming ``name``.
    """
    if isinstance(value, (bool, float)):
        raise InvalidAmountError(
            f"{name} must be a Decimal, int or decimal string, not {type(value).__name__} "
            f"({value!r}); floats cannot represent money exactly",
            field=name,
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        result = parse_amount_text(value, name=name, allow_negative=allow_negative)
    else:
        raise InvalidAmountError(
            f"{name} must be a Decimal, int or decimal string, not {type(value).__name__}",
            field=name,
        )
    if not result.is_finite():
        raise InvalidAmountError(f"{name} must be finite, got {result}", field=name)
    if not allow_negative and result < 0:
        raise InvalidAmountError(f"{name} must not be negative, got {result}", field=name)
    return result


def parse_amount_text(text: str, *, name: str = "amount", allow_negative: bool = True) -> Decimal:
    """An amount written as text, in exactly :data:`AMOUNT_PATTERN`; else
    :class:`InvalidAmountError` naming ``name`` and saying what is wrong.

    More than nine decimals are refused, not rounded: a person who typed them meant
    something the ledger cannot hold.
    """
    if _AMOUNT_TEXT.fullmatch(text) is None:
        raise InvalidAmountError(_what_is_wrong(text, name), field=name)
    result = Decimal(text)
    if not allow_negative and text.startswith("-"):
        raise InvalidAmountError(f"{name} must not be negative, got {text}", field=name)
    return result


def _what_is_wrong(text: str, name: str) -> str:
    shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
    rule = (
        f"an amount is written as ASCII digits with an optional '-' and at most "
        f"{NANO_DIGITS} decimals, e.g. 12.5"
    )
    if _PLAIN_NUMBER.fullmatch(text) is not None:
        whole, _, fraction = text.lstrip("-").partition(".")
        if len(fraction) > NANO_DIGITS:
            return f"{name} has more than {NANO_DIGITS} decimals: {shown} (not rounded)"
        if len(whole) > 1 and whole.startswith("0"):
            return f"{name} has a leading zero: {shown}"
        if len(whole) > MAX_AMOUNT_DIGITS:
            return f"{name} {shown} is larger than the most an amount may be ({MAX_AMOUNT})"
    return f"{name} is not a plain decimal amount: {shown}; {rule}"


def quantize(amount: Decimal, digits: int = NANO_DIGITS) -> Decimal:
    """Round ``amount`` half-even to ``digits`` decimal places: the package's one rounding rule.

    Raises :class:`InvalidAmountError` if the result would need more than 60 digits.
    """
    quantum = _NANO_QUANTUM if digits == NANO_DIGITS else Decimal(1).scaleb(-digits)
    try:
        return amount.quantize(quantum, rounding=ROUND_HALF_EVEN, context=_CONTEXT)
    except decimal.InvalidOperation:
        raise InvalidAmountError(
            f"{amount} is too large to round to {digits} decimal places"
        ) from None


def to_nano(amount: Amount, *, name: str = "amount", allow_negative: bool = True) -> int:
    """Convert a USDC amount to integer nano-USDC, rounding half-even.

    Raises :class:`InvalidAmountError` for floats, NaN, infinities, negatives (when not
    allowed) and amounts beyond the signed 64-bit range of the ledger's columns.
    """
    value = parse_amount(amount, name=name, allow_negative=allow_negative)
    # Far out of range (|value| >= 10^10 USDC) may be too long to round; it is rejected anyway.
    in_reach = value.copy_abs() < _OUT_OF_REACH
    nano = int(quantize(value).scaleb(NANO_DIGITS, context=_CONTEXT)) if in_reach else MAX_NANO + 1
    if abs(nano) > MAX_NANO:
        raise InvalidAmountError(
            f"{name} {value} is beyond the ledger's range of ±{from_nano(MAX_NANO)}",
            field=name,
        )
    return nano


def from_nano(nano: int) -> Decimal:
    """Convert integer nano-USDC back to a Decimal with exactly nine decimal places."""
    if isinstance(nano, bool) or not isinstance(nano, int):
        raise InvalidAmountError(f"nano amount must be an int, not {type(nano).__name__}")
    return (
        Decimal(nano)
        .scaleb(-NANO_DIGITS, context=_CONTEXT)
        .quantize(_NANO_QUANTUM, context=_CONTEXT)
    )


def ratio_split(total: int, ratios: Sequence[int | Decimal]) -> list[int]:
    """Split an integer amount in proportion to ``ratios``; the parts always sum to ``total``.

    Each part is rounded down toward zero and the remainder goes to the last part, so no
    unit is lost or invented. Ratios must be non-negative and not all zero.
    """
    if not ratios:
        raise InvalidInputError("ratio_split needs at least one ratio")
    weights = [parse_amount(r, name="ratio", allow_negative=False) for r in ratios]
    weight_sum = sum(weights, Decimal(0))
    if weight_sum == 0:
        raise InvalidInputError("ratio_split needs at least one positive ratio")
    parts: list[int] = []
    for weight in weights[:-1]:
        share = _CONTEXT.divide(_CONTEXT.multiply(Decimal(total), weight), weight_sum)
        parts.append(int(share))  # int() truncates toward zero
    parts.append(total - sum(parts))
    return parts


@dataclass(frozen=True)
class ExchangeRate:
    """How many units of ``currency`` one USDC buys, and when that rate was taken."""

    currency: str
    rate: Decimal
    as_of: datetime

    def __post_init__(self) -> None:
        rate = parse_amount(self.rate, name=f"exchange rate for {self.currency}")
        if rate <= 0:
            raise InvalidAmountError(
                f"exchange rate for {self.currency} must be positive, got {rate}"
            )
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "currency", _currency_code(self.currency))


def _currency_code(currency: str) -> str:
    code = currency.strip().upper()
    if not code.isalnum() or not 2 <= len(code) <= 10:
        raise InvalidInputError(f"not a currency code: {currency!r}")
    return code


@dataclass
class ExchangeRates:
    """A table of rates against USDC; USDC and USD are 1:1 unless configured otherwise.

    Conversions are exact up to one final half-even rounding. The result keeps nine decimal
    places plus one more per power of ten the rate shrinks the amount by, so converting there
    and back returns the original amount within one nano-unit.
    """

    rates: dict[str, ExchangeRate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        for code in ("USDC", "USD"):
            self.rates.setdefault(code, ExchangeRate(code, Decimal(1), epoch))

    @classmethod
    def from_mapping(
        cls, rates: Mapping[str, Amount], *, as_of: datetime | None = None
    ) -> ExchangeRates:
        """Build a table from ``{"EUR": "0.92", ...}`` (units per USDC), taken at ``as_of``."""
        taken = as_of or datetime.now(UTC)
        table = cls()
        for code, rate in rates.items():
            table.set_rate(code, rate, as_of=taken)
        return table

    def set_rate(self, currency: str, rate: Amount, *, as_of: datetime | None = None) -> None:
        """Configure ``rate`` units of ``currency`` per USDC."""
        code = _currency_code(currency)
        self.rates[code] = ExchangeRate(
            code, parse_amount(rate, name=f"rate for {code}"), as_of or datetime.now(UTC)
        )

    def rate(self, currency: str) -> ExchangeRate:
        """The rate for ``currency``; :class:`UnknownCurrencyError` if none is configured."""
        code = _currency_code(currency)
        try:
            return self.rates[code]
        except KeyError:
            known = ", ".join(sorted(self.rates))
            raise UnknownCurrencyError(
                f"no exchange rate for {code}; configured: {known}", currency=code
            ) from None

    def convert(self, amount: Amount, from_currency: str, to_currency: str) -> Decimal:
        """Convert ``amount`` between two configured currencies (see the class docstring)."""
        value = parse_amount(amount)
        source, target = self.rate(from_currency), self.rate(to_currency)
        if source.currency == target.currency:
            return value
        factor = _CONTEXT.divide(target.rate, source.rate)
        converted = _CONTEXT.multiply(value, factor)
        extra_digits = max(0, -factor.adjusted())
        return quantize(converted, NANO_DIGITS + extra_digits)
