"""Shared pieces of the wire format: exact money fields and exact JSON in and out.

pydantic's own JSON parser reads numbers through float (``100.00`` becomes ``100`` and long
amounts lose digits), so documents are parsed with :func:`json.loads` using ``Decimal`` for
every non-integer number, and written with simplejson, which prints a Decimal exactly as a
JSON number. ``SpecModel.from_json`` / ``SpecModel.to_json`` are the only doors.

Serialization rule (``to_json``): a key listed in a model's ``_optional_keys`` is written only
when it holds a value, every other key always (``null`` where a limit is unlimited), so a spec
document read and written back keeps its exact shape. ``PricingData`` lists the prices and
context limits the spec shows among its optional keys, because which of them exist depends on
the pricing model; its ``spec_data()`` writes them all, ``null`` where unknown.

The models of the spec's three example documents (status, pricing, analytics) name those
documents' keys in ``SPEC_KEYS``, the one definition of "the spec's shape": ``spec_data()``
is exactly those keys (what the service answers by default) and ``extended_data()`` is those
keys plus whichever of our extensions hold a value (what ``?extended=true`` answers).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

import simplejson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_serializer,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from smartspace_budget.errors import (
    InconsistentInputError,
    InvalidAmountError,
    InvalidInputError,
)
from smartspace_budget.money import (
    MAX_AMOUNT,
    MAX_AMOUNT_DIGITS,
    NANO_DIGITS,
    parse_amount,
    parse_amount_text,
)

__all__ = [
    "MAX_JSON_DEPTH",
    "WIRE",
    "AdjustmentAmount",
    "IsoDatetime",
    "Money",
    "NonNegativeAmount",
    "NonNegativeMoney",
    "PositiveAmount",
    "RawNumber",
    "SpecModel",
    "Text",
    "dumps",
    "from_wire",
    "loads",
    "loads_request",
]


class RawNumber:
    """A JSON number of a request whose raw text is outside the plain-decimal grammar
    (``1e5``, ten decimals, forty digits). It is kept as text, not converted, so the field it
    lands in refuses it by name: no such number ever becomes money or a count."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text[:40]


def _canonical_decimal(text: str) -> Decimal | None:
    """``text`` as a Decimal when it is exactly how Python writes that Decimal (``0E-9``,
    ``1.500000000``): the form pydantic stores results in (``ledger.state.stored_result``)."""
    if len(text) > 60 or not text.isascii():
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        return None
    return value if value.is_finite() and str(value) == text else None


def _money(value: object) -> Decimal:
    if isinstance(value, RawNumber):
        value = value.text
    elif isinstance(value, str):
        # Results this package stored itself; any other text follows the amount grammar.
        stored = _canonical_decimal(value)
        if stored is not None:
            value = stored
    try:
        return parse_amount(value)
    except InvalidAmountError as exc:
        raise ValueError(exc.detail) from None


def _non_negative_money(value: object) -> Decimal:
    amount = _money(value)
    if amount < 0:
        raise ValueError(f"must not be negative, got {amount}")
    return amount


Money = Annotated[Decimal, BeforeValidator(_money)]
"""A finite Decimal amount; floats, NaN and infinities are refused."""

NonNegativeMoney = Annotated[Decimal, BeforeValidator(_non_negative_money)]
"""A finite, non-negative Decimal amount (limits, prices, balances' thresholds)."""


# --- amounts of requests: the doors' grammar, bounded, documented exactly -----------------

_LIMIT = 10**MAX_AMOUNT_DIGITS
_NANO_STEP = Decimal(1).scaleb(-NANO_DIGITS)
_AMOUNT_NOTE = (
    "USDC, as a JSON number in plain decimal notation (no exponent): at most "
    f"{NANO_DIGITS} decimals and {MAX_AMOUNT_DIGITS} digits before the point."
)
WIRE = "wire"
"""Validation context key set by the service for request bodies: amounts must be JSON
numbers there (a string amount is a library's or the command line's convenience)."""


def _amount_schema(bounds: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "number",
        "multipleOf": float(_NANO_STEP),
        **bounds,
        "description": _AMOUNT_NOTE,
    }


def from_wire(info: ValidationInfo) -> bool:
    """Whether the value being validated came in a request body of the service."""
    return isinstance(info.context, dict) and bool(info.context.get(WIRE))


def _request_amount(value: object, info: ValidationInfo, *, floor: str) -> Decimal:
    """An amount of a request: the doors' grammar for text, at most :data:`MAX_AMOUNT`."""
    if isinstance(value, RawNumber):
        value = value.text
    elif isinstance(value, str) and from_wire(info):
        raise ValueError("an amount is a JSON number, not a string")
    signed = floor == "non-zero"
    try:
        if isinstance(value, str):
            amount = parse_amount_text(value, allow_negative=signed)
        else:
            amount = parse_amount(value, allow_negative=signed)
    except InvalidAmountError as exc:
        raise ValueError(exc.detail.removeprefix("amount ")) from None
    if amount.copy_abs() > MAX_AMOUNT:
        raise ValueError(f"{amount} is larger than the most an amount may be ({MAX_AMOUNT})")
    if floor == "positive" and amount <= 0:
        raise ValueError(f"must be more than 0, got {amount}")
    if floor == "non-zero" and amount == 0:
        raise ValueError("must not be zero")
    return amount


PositiveAmount = Annotated[
    Decimal,
    BeforeValidator(lambda v, info: _request_amount(v, info, floor="positive")),
    WithJsonSchema(_amount_schema({"exclusiveMinimum": 0, "exclusiveMaximum": _LIMIT})),
]
"""An amount a request moves into an account (deposit, refund): more than 0."""

NonNegativeAmount = Annotated[
    Decimal,
    BeforeValidator(lambda v, info: _request_amount(v, info, floor="zero")),
    WithJsonSchema(_amount_schema({"minimum": 0, "exclusiveMaximum": _LIMIT})),
]
"""An amount of a request that may be 0 (a hold, a charge, a limit)."""

AdjustmentAmount = Annotated[
    Decimal,
    BeforeValidator(lambda v, info: _request_amount(v, info, floor="non-zero")),
    WithJsonSchema(
        _amount_schema(
            {"exclusiveMinimum": -_LIMIT, "exclusiveMaximum": _LIMIT, "not": {"const": 0}}
        )
    ),
]
"""A signed correction: any amount but 0."""


# --- instants and text of requests --------------------------------------------------------

_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


_YEARS = "(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
"""Years 1970-9998: the calendar code's range (``ledger.ops.check_instant``)."""


def _iso_instant(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        if re.match(_YEARS, value) is None:
            raise ValueError(f"{value[:40]!r} is outside the years 1970-9998")
        text = value.upper().replace("Z", "+00:00")
        whole, dot, rest = text.partition(".")
        if dot:  # fromisoformat reads at most 6 fraction digits: keep microseconds
            digits = re.match(r"[0-9]+", rest)
            assert digits is not None
            text = whole + "." + digits.group()[:6].ljust(6, "0") + rest[digits.end() :]
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a valid instant: {value[:40]!r}") from None
    raise ValueError(
        "must be an RFC 3339 date-time with its offset, e.g. 2025-01-31T12:00:00Z "
        "(not a number of seconds)"
    )


IsoDatetime = Annotated[
    datetime,
    BeforeValidator(_iso_instant),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": f"^{_YEARS}-"}),
]
"""An instant given as RFC 3339 text with an offset (``Z`` or ``±hh:mm``); numbers
(seconds since the epoch), dates alone and times without an offset are refused."""


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not hold a NUL character")
    return value


Text = Annotated[str, Field(json_schema_extra={"pattern": "^[^\\u0000]*$"}), AfterValidator(_text)]
"""Free text of a request (a reason, a reference): anything but NUL, length bounded per field."""


MAX_JSON_DEPTH = 16
"""Deepest nesting of objects and arrays a request body may have (the models need 3)."""

_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_PLAIN_FRACTION = re.compile(rf"-?(0|[1-9][0-9]{{0,29}})\.[0-9]{{1,{NANO_DIGITS}}}", re.ASCII)
_MAX_INT_TEXT = 20


def _depth_within(text: str, limit: int) -> bool:
    """Whether no object or array in ``text`` nests deeper than ``limit`` (strings skipped),
    found without parsing, so a deep body costs one scan, not a deep recursion."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return False
        elif token in "]}":
            depth -= 1
    return True


def _request_float(text: str) -> Decimal | RawNumber:
    return Decimal(text) if _PLAIN_FRACTION.fullmatch(text) else RawNumber(text)


def _request_int(text: str) -> int | RawNumber:
    return int(text) if len(text) <= _MAX_INT_TEXT else RawNumber(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise InvalidInputError(f"{key}: the key appears more than once", field=key)
        document[key] = value
    return document


def _check_strings(node: Any, where: str) -> None:
    if isinstance(node, str):
        if "\x00" in node or any("\ud800" <= ch <= "\udfff" for ch in node):
            raise InvalidInputError(
                f"{where or 'document'}: text must not hold NUL or lone surrogates", field=where
            )
    elif isinstance(node, dict):
        for key, value in node.items():
            _check_strings(key, where)
            _check_strings(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_strings(value, f"{where}.{index}" if where else str(index))


def loads_request(text: str) -> Any:
    """Parse the JSON body of a request, strictly: one door for every write.

    - nesting deeper than :data:`MAX_JSON_DEPTH` is refused before parsing;
    - a key twice in one object is refused (no "last one wins");
    - numbers keep their raw text's meaning: a plain decimal with at most nine decimals
      becomes a Decimal, an integer of up to 20 digits an int; any other number (``1e5``,
      ten decimals, a 5000-digit integer) becomes a :class:`RawNumber` that every field
      refuses by name; NaN and Infinity are refused;
    - text holding NUL or lone surrogates (``\\ud800``) is refused.

    Raises :class:`InvalidInputError` (400) for all of these.
    """
    if not _depth_within(text, MAX_JSON_DEPTH):
        raise InvalidInputError(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")

    def _reject_constant(name: str) -> Any:
        raise InvalidAmountError(f"{name} is not a JSON number this service reads")

    try:
        data = json.loads(
            text,
            parse_float=_request_float,
            parse_int=_request_int,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError("the JSON body nests too deeply") from None
    _check_strings(data, "")
    return data


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number as an exact Decimal; NaN is refused."""

    def _reject_constant(name: str) -> Any:
        raise InvalidAmountError(f"{name} is not a valid amount")

    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidInputError("not valid JSON: the body is not UTF-8 text") from None


class _PlainDecimal(Decimal):
    """A Decimal that prints in positional notation (``0.000000001``, never ``1E-9``)."""

    def __str__(self) -> str:
        return format(self, "f")


def _positional(data: Any) -> Any:
    if isinstance(data, Decimal):
        return _PlainDecimal(data)
    if isinstance(data, dict):
        return {key: _positional(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_positional(value) for value in data]
    return data


def _json_default(value: object) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() == UTC.utcoffset(None):
            return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(data: Any, *, indent: int | None = None) -> str:
    """Write JSON with Decimals as exact JSON numbers (never through float)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="python")
    return str(
        simplejson.dumps(
            _positional(data),
            use_decimal=True,
            default=_json_default,
            indent=indent,
            ensure_ascii=False,
            allow_nan=False,
        )
    )


class SpecModel(BaseModel):
    """Base of the spec's models: strict about unknown keys and exact about amounts.

    Subclasses list their extension fields (not in the spec's JSON) in ``_optional_keys``;
    those are dropped from output while they are ``None``.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=False, validate_assignment=True, defer_build=True
    )

    _optional_keys: ClassVar[frozenset[str]] = frozenset()

    SPEC_KEYS: ClassVar[tuple[str, ...]] = ()
    """Keys of the spec's example document for this model, in the spec's order (empty: none)."""

    @model_serializer(mode="wrap")
    def _drop_unset_extensions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self._optional_keys:
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse a JSON document exactly; raises :class:`InvalidInputError` with the reasons."""
        return cls.from_data(loads(text))

    @classmethod
    def from_data(cls, data: Any, *, wire: bool = False) -> Self:
        """Validate already-parsed data; raises :class:`InvalidInputError` with the reasons
        (:class:`InconsistentInputError` when every value is well formed but they contradict
        each other)."""
        try:
            return cls.model_validate(data, context={WIRE: True} if wire else None)
        except PydanticValidationError as exc:
            errors = exc.errors(include_url=False)
            first = errors[0]["loc"] if errors else ()
            field = ".".join(str(p) for p in first) or None
            detail = f"invalid {cls.__name__}: {_describe(exc)}"
            if errors and all(e["type"] == "inconsistent" for e in errors):
                raise InconsistentInputError(detail, field=field) from None
            raise InvalidInputError(detail, field=field) from None

    def to_json(self, *, indent: int | None = None) -> str:
        """Write the model as JSON, amounts as exact numbers."""
        return dumps(self.model_dump(mode="python"), indent=indent)

    def spec_data(self) -> dict[str, Any]:
        """Exactly the spec document's keys, in its order; ``None`` where we know no value.

        A client written against the spec's examples sees nothing it does not expect.
        """
        keys = self._spec_keys()
        data = self.model_dump(mode="python")
        return {key: data.get(key) for key in keys}

    def extended_data(self) -> dict[str, Any]:
        """The spec document's keys first (as :meth:`spec_data`), then our set extensions.

        Nothing the library computes is lost: read back with :meth:`from_data`, it gives an
        equal model.
        """
        keys = self._spec_keys()
        data = self.model_dump(mode="python")
        ours = {key: value for key, value in data.items() if key not in keys}
        return {**{key: data.get(key) for key in keys}, **ours}

    @classmethod
    def _spec_keys(cls) -> tuple[str, ...]:
        if not cls.SPEC_KEYS:
            raise TypeError(f"the spec shows no {cls.__name__} document")
        return cls.SPEC_KEYS


def _describe(exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "document"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
