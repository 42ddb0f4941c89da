"""The exception tree: one root, HTTP statuses, the service's error body, and the drawing."""

from __future__ import annotations

import re

import pytest

from smartspace_budget import errors
from smartspace_budget.errors import InvalidInputError, RateLimitedError, SmartspaceBudgetError

CLASSES = [getattr(errors, name) for name in errors.__all__]

# "    │   ├── InvalidAmountError                 400  NaN, ..." -> indent, name, status
TREE_LINE = re.compile(
    r"^(?P<indent>[\s│├└─]*)(?P<name>[A-Z]\w*Error)\b[^\n]*?\s(?P<status>\d{3})\b"
)


def make(cls: type[SmartspaceBudgetError], detail: str = "it went wrong") -> SmartspaceBudgetError:
    if cls is RateLimitedError:
        return RateLimitedError(detail, retry_after=3)
    return cls(detail)


def drawn_tree() -> list[tuple[int, str, int]]:
    """(depth, class name, status) for each line of the tree in the module docstring."""
    assert errors.__doc__ is not None
    rows = []
    for line in errors.__doc__.splitlines():
        match = TREE_LINE.match(line)
        if match:
            rows.append((len(match["indent"]), match["name"], int(match["status"])))
    return rows


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_is_in_the_tree_with_a_status(cls: type[SmartspaceBudgetError]) -> None:
    assert issubclass(cls, SmartspaceBudgetError)
    assert type(cls.status_code) is int
    assert 400 <= cls.status_code <= 599


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_to_dict_is_the_service_error_body(cls: type[SmartspaceBudgetError]) -> None:
    error = make(cls, "no such thing")
    assert error.to_dict() == {"error": cls.__name__, "detail": "no such thing"}
    assert str(error) == "no such thing"


def test_invalid_input_is_a_value_error() -> None:
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.InvalidAmountError, ValueError)
    assert issubclass(errors.UnknownCurrencyError, ValueError)
    with pytest.raises(ValueError, match="bad"):
        raise InvalidInputError("bad")


def test_context_and_retry_after_are_kept() -> None:
    error = errors.BudgetExceededError("short", needed="5", available="2")
    assert error.context == {"needed": "5", "available": "2"}
    limited = RateLimitedError("slow down", retry_after=30)
    assert limited.retry_after == 30
    assert limited.context == {"retry_after": 30}


def test_all_lists_every_error_class_defined() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, SmartspaceBudgetError)
        and value.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)


def test_docstring_tree_matches_the_classes() -> None:
    rows = drawn_tree()
    assert sorted(name for _, name, _ in rows) == sorted(errors.__all__)
    parents: list[tuple[int, str]] = []
    for depth, name, status in rows:
        cls = getattr(errors, name)
        assert cls.status_code == status, name
        while parents and parents[-1][0] >= depth:
            parents.pop()
        if parents:
            assert getattr(errors, parents[-1][1]) in cls.__bases__, name
        else:
            assert cls is SmartspaceBudgetError
        parents.append((depth, name))
