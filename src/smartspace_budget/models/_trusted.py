"""Build result models from values this package just computed, without re-validating them.

``CostEstimate`` and ``TokenEstimate`` are validated field by field on construction, which
re-parses every Decimal through the money validators: on the estimate hot path that is a
third of our time over a bare token count. The engine builds them from values it computed
itself with their final types (exact Decimals, ints, enums, aware datetimes) and whose
invariants hold by construction (``total_cost = base_cost + platform_fee``), so it skips
that step the way pydantic's ``model_construct`` does, minus its slow handling of defaults:
every field must be given. The ledger builds the ``LedgerEntry`` of every write from its
own rows the same way. Tests check that each such model equals its validated twin.
Models with post-init hooks or private attributes are always validated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["builder", "trusted"]

M = TypeVar("M", bound=BaseModel)

# Per class: its field names when it can be built directly, None when it must be validated.
_FIELDS: dict[type[BaseModel], frozenset[str] | None] = {}


def _setter(name: str) -> Callable[[Any, Any], None]:
    """The slot's own setter (what ``object.__setattr__`` ends up calling, minus its lookup)."""
    descriptor = BaseModel.__dict__.get(name)
    setter = getattr(descriptor, "__set__", None)
    if callable(setter):
        return setter  # type: ignore[no-any-return]
    return lambda model, value: object.__setattr__(model, name, value)


_set_dict = _setter("__dict__")
_set_fields_set = _setter("__pydantic_fields_set__")
_set_extra = _setter("__pydantic_extra__")
_set_private = _setter("__pydantic_private__")


def _fields(cls: type[BaseModel]) -> frozenset[str] | None:
    if cls not in _FIELDS:
        plain = not cls.__pydantic_post_init__ and not cls.__private_attributes__
        _FIELDS[cls] = frozenset(cls.model_fields) if plain else None
    return _FIELDS[cls]


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of ``cls`` holding ``values`` (every field, final types), unvalidated."""
    fields = _fields(cls)
    if fields is None or values.keys() != fields:
        return cls.model_validate(values)
    model = cls.__new__(cls)
    _set_dict(model, values)
    _set_fields_set(model, set(values))
    _set_extra(model, None)
    _set_private(model, None)
    return model


def builder(cls: type[M]) -> Callable[[dict[str, Any]], M]:
    """:func:`trusted` for one class, minus its per-call key check, for the hot paths.

    Only for callers that pass a dict literal naming every field: comparing the keys costs
    as much as building the model, and the literal cannot change at run time (the tests
    compare what it builds with the validated model). A class that must be validated is
    refused here, once, instead of per call.
    """
    fields = _fields(cls)
    if fields is None:
        raise TypeError(f"{cls.__name__} has post-init hooks or private attributes")
    every_field = set(fields)
    new = cls.__new__

    def build(values: dict[str, Any]) -> M:
        model = new(cls)
        _set_dict(model, values)
        _set_fields_set(model, every_field.copy())
        _set_extra(model, None)
        _set_private(model, None)
        return model

    return build
