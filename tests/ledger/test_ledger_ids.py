"""Entry and reservation ids: canonical UUIDv7 strings, in time order."""

from __future__ import annotations

import time
import uuid

from smartspace_budget.ledger.ids import new_id


def test_ids_are_canonical_uuid7_strings() -> None:
    for _ in range(2000):
        text = new_id()
        value = uuid.UUID(text)
        assert str(value) == text
        assert value.version == 7
        assert value.variant == uuid.RFC_4122


def test_ids_carry_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    text = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(text).int >> 80 <= after


def test_ids_of_later_milliseconds_sort_after() -> None:
    first = new_id()
    time.sleep(0.002)
    assert new_id() > first
