"""The wire format of the shared alert state (``/api/v1/alerts/...``).

A monitor reading through the service (``HttpBackend``) keeps its memory of raised alerts in
the service's ledger database, as one reading the ledger directly does: it claims each alert
for (account, rule, period, rank) and the service answers whether this caller won
(:class:`AlertClaim`, :class:`AlertClaimResult`); acknowledgements and alerts raised elsewhere
(the guard's cost anomalies) are stored the same way.

The alert a request carries is an :class:`AlertDocument`: a :class:`SpendingAlert` read at the
service's doors, strictly (ids in the one id grammar, instants as RFC 3339 text with an
offset, booleans as JSON booleans, amounts as exact numbers, bounded text).
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
)

from smartspace_budget.errors import InvalidAmountError
from smartspace_budget.models._base import (
    IsoDatetime,
    RawNumber,
    SpecModel,
    Text,
    _text,
    from_wire,
)
from smartspace_budget.models.alerts import SpendingAlert
from smartspace_budget.models.ids import MAX_ID_LENGTH, Identifier
from smartspace_budget.money import (
    MAX_AMOUNT,
    MAX_AMOUNT_DIGITS,
    NANO_DIGITS,
    parse_amount,
    parse_amount_text,
)

__all__ = [
    "MAX_ALERT_RULE_LENGTH",
    "MAX_RANK",
    "RANK_DIGITS",
    "AlertAcknowledgement",
    "AlertClaim",
    "AlertClaimResult",
    "AlertDocument",
    "AlertReport",
]

MAX_ALERT_RULE_LENGTH = MAX_ID_LENGTH + 40
"""A rule names a threshold by its id (``threshold:<id>``): an id and a prefix (the
``ledger_alert_state.rule`` column's length)."""

RANK_DIGITS = 6
"""Decimals a rank may have: the ledger keeps ranks as exact millionths."""

MAX_RANK = 10**9
"""Largest rank (a percentage of a limit, or a level's rank); the ledger's column holds it."""

_RANK_STEP = Decimal(1).scaleb(-RANK_DIGITS)


def _rank(value: object, info: ValidationInfo) -> Decimal:
    if isinstance(value, RawNumber):
        raise ValueError(f"{value.text[:40]} is not a plain decimal with at most 9 decimals")
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError("a rank is a JSON number")
    if isinstance(value, str):
        if from_wire(info):
            raise ValueError("a rank is a JSON number, not a string")
        try:
            rank = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"not a number: {value[:40]!r}") from None
    else:
        rank = Decimal(value)
    if not rank.is_finite() or rank < 0 or rank > MAX_RANK:
        raise ValueError(f"a rank is a number from 0 to {MAX_RANK}, got {rank}")
    if _decimals(rank) > RANK_DIGITS:
        raise ValueError(f"a rank has at most {RANK_DIGITS} decimals, got {rank}")
    return rank


Rank = Annotated[
    Decimal,
    BeforeValidator(_rank),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_RANK,
            "multipleOf": float(_RANK_STEP),
            "description": f"A percentage or a level's rank, at most {RANK_DIGITS} decimals.",
        }
    ),
]


MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_LENGTH = 64
MAX_METADATA_TEXT = 200
_METADATA_LIMIT = 10**18
_NANO_STEP = Decimal(1).scaleb(-NANO_DIGITS)


def _decimals(number: Decimal) -> int:
    """How many decimals ``number`` needs (trailing zeros aside), with no rounding."""
    _, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    places = -exponent
    for digit in reversed(digits):
        if digit != 0 or places == 0:
            break
        places -= 1
    return places


def _metadata_value(key: str, value: Any, info: ValidationInfo) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        if not number.is_finite() or number.copy_abs() >= _METADATA_LIMIT:
            raise ValueError(f"metadata.{key}: a number smaller than 10^18 in size")
        if _decimals(number) > NANO_DIGITS:
            raise ValueError(f"metadata.{key}: a number of at most {NANO_DIGITS} decimals")
        return value
    if isinstance(value, RawNumber):
        raise ValueError(f"metadata.{key}: {value.text[:40]} is not a plain decimal")
    if isinstance(value, str):
        if len(value) > MAX_METADATA_TEXT:
            raise ValueError(f"metadata.{key}: at most {MAX_METADATA_TEXT} characters")
        return _text(value)
    if not from_wire(info):  # the library's own values, written as the wire writes them
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, float) and math.isfinite(value):
            return Decimal(repr(value))
        if isinstance(value, Enum):
            return _metadata_value(key, value.value, info)
    raise ValueError(f"metadata.{key}: a string, number, boolean or null")


def _metadata(value: Any, info: ValidationInfo) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("metadata is an object")
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata holds at most {MAX_METADATA_KEYS} keys")
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise ValueError(f"metadata keys are 1-{MAX_METADATA_KEY_LENGTH} characters")
        kept[_text(key)] = _metadata_value(key, item, info)
    return kept


Metadata = Annotated[
    dict[str, Any],
    BeforeValidator(_metadata),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_METADATA_KEYS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": MAX_METADATA_KEY_LENGTH,
                "pattern": "^[^\\u0000]*$",
            },
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "maxLength": MAX_METADATA_TEXT, "pattern": "^[^\\u0000]*$"},
                    {
                        "type": "number",
                        "multipleOf": float(_NANO_STEP),
                        "exclusiveMinimum": -_METADATA_LIMIT,
                        "exclusiveMaximum": _METADATA_LIMIT,
                    },
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        }
    ),
]
"""An alert's metadata at the doors: a flat object of at most 16 short values."""


def _alert_amount(value: object, info: ValidationInfo) -> Decimal:
    """An alert's amount at the doors: the amount grammar, either sign, at most
    :data:`MAX_AMOUNT` in size."""
    if isinstance(value, RawNumber):
        value = value.text
    elif isinstance(value, str) and from_wire(info):
        raise ValueError("an amount is a JSON number, not a string")
    try:
        amount = parse_amount_text(value) if isinstance(value, str) else parse_amount(value)
    except InvalidAmountError as exc:
        raise ValueError(exc.detail) from None
    if amount.copy_abs() > MAX_AMOUNT:
        raise ValueError(f"{amount} is larger than the most an amount may be ({MAX_AMOUNT})")
    return amount


_AMOUNT_LIMIT = 10**MAX_AMOUNT_DIGITS

AlertAmount = Annotated[
    Decimal,
    BeforeValidator(_alert_amount),
    WithJsonSchema(
        {
            "type": "number",
            "multipleOf": float(Decimal(1).scaleb(-NANO_DIGITS)),
            "exclusiveMinimum": -_AMOUNT_LIMIT,
            "exclusiveMaximum": _AMOUNT_LIMIT,
            "description": "USDC, as a JSON number in plain decimal notation: at most "
            f"{NANO_DIGITS} decimals and {MAX_AMOUNT_DIGITS} digits before the point.",
        }
    ),
]


class AlertDocument(SpendingAlert):
    """A :class:`SpendingAlert` as a request carries it, read strictly (module docstring)."""

    alert_id: Identifier
    user_id: Identifier
    project_id: Identifier
    title: Annotated[Text, Field(max_length=500)]
    message: Annotated[Text, Field(max_length=2_000)]
    current_value: AlertAmount
    threshold_value: AlertAmount | None = None
    created_at: IsoDatetime
    acknowledged: StrictBool = False
    acknowledged_at: IsoDatetime | None = None
    threshold_id: Identifier | None = None
    period_start: IsoDatetime | None = None

    metadata: Metadata = Field(default_factory=dict)

    def alert(self) -> SpendingAlert:
        """The alert itself."""
        return SpendingAlert.model_validate(self.model_dump(mode="python"))


class AlertClaim(SpecModel):
    """Claim ``alert`` for (its account, ``rule``, the period) at ``rank``: the service
    records it unless the rule already fired in that period at this rank or a higher one."""

    alert: AlertDocument
    rule: Annotated[Text, Field(min_length=1, max_length=MAX_ALERT_RULE_LENGTH)]
    period_start: IsoDatetime
    period_end: IsoDatetime
    rank: Rank


class AlertClaimResult(SpecModel):
    """``claimed``: this caller won the claim and delivers ``alert``; otherwise ``alert`` is
    the one already standing for the period (delivered by whoever claimed it)."""

    claimed: bool
    alert: SpendingAlert


class AlertReport(SpecModel):
    """Keep an alert raised elsewhere (the guard's cost anomalies), under ``rule``."""

    alert: AlertDocument
    rule: Annotated[Text, Field(min_length=1, max_length=MAX_ALERT_RULE_LENGTH)]


class AlertAcknowledgement(SpecModel):
    """Mark an alert handled: ``by`` whom (kept with it), ``at`` when (default: now)."""

    by: Identifier | None = None
    at: IsoDatetime | None = None
