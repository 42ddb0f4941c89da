"""Budget test fixtures: the shared in-memory Backend (``tests.fakes``) and a movable clock.

The fake computes every read (balance, status, spending, analytics, series) from its list of
events with the same calendar windows as the real ledger, so the tracker and the monitor are
tested on figures that are easy to check by hand. ``FakeBackend`` and ``FakeClock`` are
re-exported here for tests that import them from this module.
"""

from __future__ import annotations

import pytest
from tests.fakes import START, Account, Event, FakeBackend, FakeClock

__all__ = ["START", "Account", "Event", "FakeBackend", "FakeClock"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> FakeBackend:
    return FakeBackend(clock)
