"""serve(): authentication can be switched off only on a loopback address."""

from __future__ import annotations

import pytest

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.server.run import is_loopback, serve


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_no_auth_is_refused_off_loopback() -> None:
    with pytest.raises(InvalidInputError, match="without authentication"):
        serve(host="0.0.0.0", port=1, auth=False)


def test_worker_count_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="workers"):
        serve(workers=0)
