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
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

import simplejson
from pydantic import BaseModel, BeforeValidator, ConfigDict, model_serializer
from pydantic import ValidationError as PydanticValidationError
from pydantic_core.core_schema import SerializerFunctionWrapHandler

from smartspace_budget.errors import InvalidAmountError, InvalidInputError
from smartspace_budget.money import parse_amount

__all__ = [
    "Money",
    "NonNegativeMoney",
    "SpecModel",
    "dumps",
    "loads",
]


def _money(value: object) -> Decimal:
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
    def from_data(cls, data: Any) -> Self:
        """Validate already-parsed data; raises :class:`InvalidInputError` with the reasons."""
        try:
            return cls.model_validate(data)
        except PydanticValidationError as exc:
            raise InvalidInputError(f"invalid {cls.__name__}: {_describe(exc)}") from None

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
