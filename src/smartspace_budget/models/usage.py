"""Write requests of the ledger (deposits, usage, refunds, holds) and what they return.

Every write carries an ``idempotency_key`` chosen by the caller: the same key with the same
request returns the first result and writes nothing; the same key with another request is an
:class:`~smartspace_budget.errors.IdempotencyConflictError`.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.models._base import (
    AdjustmentAmount,
    IsoDatetime,
    Money,
    NonNegativeAmount,
    PositiveAmount,
    RawNumber,
    SpecModel,
    Text,
    from_wire,
)
from smartspace_budget.models.dimensions import DIMENSIONS, Usage
from smartspace_budget.models.ids import MAX_ID_LENGTH, Identifier
from smartspace_budget.money import NANO_DIGITS, parse_amount

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_TOKENS",
    "AdjustRequest",
    "Count",
    "DepositRequest",
    "EntryKind",
    "LedgerEntry",
    "RefundRequest",
    "ReserveRequest",
    "Seconds",
    "SettleRequest",
    "UsageEvent",
    "WholeNumber",
]

MAX_TOKENS = 10**12
"""More tokens than any request could use; larger counts are refused as malformed."""


def _whole_number(value: object) -> object:
    """A JSON integer as JSON Schema reads one: ``10`` or ``10.0``, never ``"10"``, ``true``
    or ``10.5`` (pydantic's lax int would take the first two)."""
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a whole JSON number")
    return value


WholeNumber = Annotated[StrictInt, BeforeValidator(_whole_number)]
"""An integer of a request body: a JSON integer (``10.0`` too, as JSON Schema has it)."""

Count = Annotated[
    WholeNumber,
    Field(ge=0, le=MAX_TOKENS),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_TOKENS}),
]
"""A count of a request: a JSON integer 0-10^12 (no string, bool or fraction)."""

_SECONDS_TEXT = re.compile(rf"(0|[1-9][0-9]{{0,11}})(\.[0-9]{{1,{NANO_DIGITS}}})?", re.ASCII)


def _seconds(value: object, info: ValidationInfo) -> Decimal:
    if isinstance(value, RawNumber):
        value = value.text
    elif isinstance(value, str) and from_wire(info):
        raise ValueError("seconds are a JSON number, not a string")
    if isinstance(value, str) and _SECONDS_TEXT.fullmatch(value) is None:
        raise ValueError(
            f"seconds are written as ASCII digits with at most {NANO_DIGITS} decimals, "
            f"below 10^12: {value[:40]!r}"
        )
    try:
        seconds = parse_amount(value, name="seconds", allow_negative=False)
    except InvalidAmountError as exc:
        raise ValueError(exc.detail) from None
    if seconds >= MAX_TOKENS:
        raise ValueError(f"seconds {seconds} is not below 10^12")
    return seconds


Seconds = Annotated[
    Decimal,
    BeforeValidator(_seconds),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": MAX_TOKENS,
            "multipleOf": 1e-9,
            "description": "Plain decimal notation, at most 9 decimals.",
        }
    ),
]
"""Billed seconds: like an amount (plain decimal, at most nine decimals), below 10^12."""

_TagKey = Annotated[Text, StringConstraints(min_length=1, max_length=100)]
_NO_NUL = "^[^\\u0000]*$"


def _dictionary(values: dict[str, object]) -> dict[str, object]:
    """The schema of ``tags`` and ``unpriced``: at most 50 keys of 1-100 characters."""
    return {
        "type": "object",
        "maxProperties": 50,
        "propertyNames": {"minLength": 1, "maxLength": 100, "pattern": _NO_NUL},
        "additionalProperties": values,
    }


_TagValue = Annotated[Text, StringConstraints(max_length=500)]


class EntryKind(StrEnum):
    """Kinds of ledger entries; the ledger is append-only, corrections are new entries."""

    DEPOSIT = "deposit"
    USAGE = "usage"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    RESERVATION = "reservation"
    RELEASE = "release"


_EXTRA_DIMENSIONS = tuple(
    d.field
    for d in DIMENSIONS
    if d.field
    not in (
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "request_count",
        "characters",
        "seconds",
    )
)
"""Dimensions of the usage model that a usage event writes only when used."""


class UsageEvent(SpecModel):
    """One provider call as billed: every dimension used, actual cost, how it was priced.

    ``actual_cost`` is in USDC. ``cost_is_estimate`` marks a charge made at the reservation
    because the real usage was unknown (cancelled stream, missing usage). The counts are the
    usage model's (:mod:`smartspace_budget.models.dimensions`) and nest the same way:
    ``input_tokens`` counts every input token (cached, written to the cache, audio, image),
    ``output_tokens`` every output token (reasoning, audio, image). ``unpriced`` names what
    the provider reported that no price covers (the charge is then at least the hold).
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "estimated_cost",
            "price_version",
            "request_id",
            "occurred_at",
            "characters",
            "seconds",
            "unpriced",
            "predicted_output_tokens",
            *_EXTRA_DIMENSIONS,
        }
    )

    provider: Identifier
    model: Identifier
    input_tokens: Count = 0
    output_tokens: Count = 0
    cached_input_tokens: Count = 0
    cache_write_tokens: Count = 0
    reasoning_tokens: Count = 0
    cache_write_1h_tokens: Count = 0
    input_audio_tokens: Count = 0
    cached_input_audio_tokens: Count = 0
    input_image_tokens: Count = 0
    cached_input_image_tokens: Count = 0
    input_video_tokens: Count = 0
    citation_tokens: Count = 0
    output_audio_tokens: Count = 0
    output_image_tokens: Count = 0
    output_video_tokens: Count = 0
    request_count: Count = 1
    web_searches: Count = 0
    file_searches: Count = 0
    messages: Count = 0
    pages: Count = 0
    annotated_pages: Count = 0
    characters: Count | None = None
    seconds: Seconds | None = None
    unpriced: Annotated[
        dict[_TagKey, Count],
        WithJsonSchema(_dictionary({"type": "integer", "minimum": 0, "maximum": MAX_TOKENS})),
    ] = Field(default_factory=dict, max_length=50)
    actual_cost: NonNegativeAmount
    estimated_cost: NonNegativeAmount | None = None
    price_version: Identifier | None = None
    request_id: Identifier | None = None
    occurred_at: IsoDatetime | None = None
    cost_is_estimate: StrictBool = False
    tags: Annotated[
        dict[_TagKey, _TagValue],
        WithJsonSchema(_dictionary({"type": "string", "maxLength": 500, "pattern": _NO_NUL})),
    ] = Field(default_factory=dict, max_length=50)
    predicted_output_tokens: Count | None = None
    """The output tokens the call's hold covered, when an output prediction sized the hold
    (the guard sets it): the settlement counts toward the prediction's miss rate."""

    @field_validator("tags")
    @classmethod
    def _small_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > 50:
            raise ValueError("at most 50 tags")
        for key, value in tags.items():
            if not key or len(key) > 100 or len(value) > 500:
                raise ValueError("tag keys are 1-100 characters, values at most 500")
        return tags

    @field_validator("unpriced")
    @classmethod
    def _small_unpriced(cls, unpriced: dict[str, int]) -> dict[str, int]:
        if len(unpriced) > 50:
            raise ValueError("at most 50 unpriced dimensions")
        for key, value in unpriced.items():
            if not key or len(key) > 100 or not 0 <= value <= MAX_TOKENS:
                raise ValueError("unpriced names are 1-100 characters with counts 0-10^12")
        return unpriced

    @model_validator(mode="after")
    def _counts_nest(self) -> UsageEvent:
        try:
            self.usage()
        except InvalidInputError as exc:
            # "inconsistent": each count is valid, together they are not (422, see from_data).
            raise PydanticCustomError("inconsistent", exc.detail) from None
        return self

    def usage(self) -> Usage:
        """The usage model's view of this event (validated: nested counts fit their parent)."""
        counts = {d.field: getattr(self, d.field) for d in DIMENSIONS}
        return Usage.of(**counts)

    def detail(self) -> dict[str, int | str]:
        """What the ledger stores beside its token columns: the other dimensions used, and
        what was unpriced, so the entry can be priced again later."""
        data: dict[str, int | str] = {
            name: value
            for name, value in self.usage().to_dict().items()
            if name in _EXTRA_DIMENSIONS or name in ("characters", "seconds")
        }
        if self.request_count != 1:
            data["request_count"] = self.request_count
        for name, value in self.unpriced.items():
            data[f"unpriced:{name}"] = value
        return data


class DepositRequest(SpecModel):
    """Credit the account with ``amount`` USDC (must be positive)."""

    amount: PositiveAmount
    reference: Annotated[Text, Field(max_length=MAX_ID_LENGTH)] | None = None


class RefundRequest(SpecModel):
    """Credit back ``amount`` of earlier usage (the spec's "negative spending")."""

    amount: PositiveAmount
    usage_entry_id: Identifier | None = None
    request_id: Identifier | None = None
    reason: Annotated[Text, Field(max_length=1000)] = ""


_SPACES = (
    "\\t-\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
"""What ``str.isspace`` counts as white space, as a regex class body."""
_SAID = re.compile(f"[^\\u0000{_SPACES}]")


def _says_something(reason: str) -> str:
    if _SAID.search(reason) is None:
        raise ValueError("must say something: more than white space")
    return reason


Reason = Annotated[
    str,
    Field(min_length=1, max_length=1000),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 1000,
            "pattern": f"^[^\\u0000]*[^\\u0000{_SPACES}][^\\u0000]*$",
        }
    ),
    AfterValidator(_says_something),
]
"""Why an adjustment was made: text without NUL, not only white space."""


class AdjustRequest(SpecModel):
    """A signed correction of the balance, with the reason it was made."""

    amount: AdjustmentAmount
    reason: Reason


class ReserveRequest(SpecModel):
    """Hold ``amount`` for a request in flight for ``ttl_seconds``."""

    amount: NonNegativeAmount
    ttl_seconds: Annotated[
        WholeNumber,
        Field(ge=1, le=86_400),
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 86_400}),
    ] = 300
    request_id: Identifier | None = None


class SettleRequest(SpecModel):
    """Charge the real usage of a reserved request once and free the hold."""

    usage: UsageEvent


class LedgerEntry(SpecModel):
    """One row of the append-only ledger as the API shows it."""

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"provider", "model", "reservation_id", "request_id", "reason"}
    )

    entry_id: str
    user_id: str
    project_id: str
    kind: EntryKind
    amount: Money
    balance_after: Money
    occurred_at: datetime
    provider: str | None = None
    model: str | None = None
    reservation_id: str | None = None
    request_id: str | None = None
    reason: str | None = None
