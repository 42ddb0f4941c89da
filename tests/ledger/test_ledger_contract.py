"""The Ledger has exactly the backend protocols' account methods, so others can code against it."""

from __future__ import annotations

import inspect

import pytest

from smartspace_budget.backend.base import Backend, LedgerClient
from smartspace_budget.ledger import Ledger

ACCOUNT_READS = (
    "get_balance",
    "get_budget_status",
    "get_spending",
    "get_analytics",
    "get_spending_series",
    "get_policy",
    "list_accounts",
)
WRITES = (
    "deposit",
    "record_usage",
    "refund",
    "adjust",
    "reserve",
    "settle",
    "release",
    "set_policy",
)


@pytest.mark.parametrize(
    ("protocol", "name"),
    [(Backend, name) for name in ACCOUNT_READS] + [(LedgerClient, name) for name in WRITES],
)
def test_method_matches_the_protocol(protocol: type, name: str) -> None:
    """Same parameters, kinds and defaults; the Ledger may only add optional keywords
    (``now``/``at`` for a fake clock)."""
    expected = inspect.signature(getattr(protocol, name)).parameters
    actual = inspect.signature(getattr(Ledger, name)).parameters
    assert inspect.iscoroutinefunction(getattr(Ledger, name))
    for parameter in expected.values():
        assert parameter.name in actual, f"{name} lacks {parameter.name}"
        got = actual[parameter.name]
        assert (got.kind, got.default) == (parameter.kind, parameter.default), parameter.name
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    assert [p.name for p in expected.values() if p.kind in positional] == [
        p.name for p in actual.values() if p.kind in positional
    ]
    extra = [actual[key] for key in actual if key not in expected]
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        for p in extra
    ), extra
