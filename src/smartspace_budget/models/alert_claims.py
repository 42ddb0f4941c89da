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

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from smartspace_budget.models._base import IsoDatetime, RawNumber, SpecModel, Text, from_wire
from smartspace_budget.models.alerts import SpendingAlert
from smartspace_budget.models.ids import MAX_ID_LENGTH, Identifier

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
    if rank != rank.quantize(_RANK_STEP):
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


def _no_raw_numbers(value: Any, where: str = "metadata") -> Any:
    if isinstance(value, RawNumber):
        raise ValueError(f"{where}: {value.text[:40]} is not a plain decimal, 9 decimals at most")
    if isinstance(value, dict):
        return {key: _no_raw_numbers(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_no_raw_numbers(item, f"{where}[]") for item in value]
    return value


class AlertDocument(SpendingAlert):
    """A :class:`SpendingAlert` as a request carries it, read strictly (module docstring)."""

    alert_id: Identifier
    user_id: Identifier
    project_id: Identifier
    title: Annotated[Text, Field(max_length=10_000)]
    message: Annotated[Text, Field(max_length=100_000)]
    created_at: IsoDatetime
    acknowledged: StrictBool = False
    acknowledged_at: IsoDatetime | None = None
    threshold_id: Identifier | None = None
    period_start: IsoDatetime | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any) -> Any:
        return _no_raw_numbers(value)

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
