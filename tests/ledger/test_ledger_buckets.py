"""The remembered window of ``window_of`` is always the window ``periods`` computes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from smartspace_budget.ledger.buckets import utc_window, utc_window_of, window_of
from smartspace_budget.periods import SpendingPeriod, window_containing

ZONES = [ZoneInfo(name) for name in ("UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns")]
# Around a spring-forward and a fall-back change in Berlin, and a month and year end.
ANCHOR = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
instants = st.integers(min_value=-400 * 24 * 60, max_value=400 * 24 * 60).map(
    lambda minutes: ANCHOR + timedelta(minutes=minutes)
)


@given(
    period=st.sampled_from(list(SpendingPeriod)),
    zone=st.sampled_from(ZONES),
    moments=st.lists(instants, min_size=1, max_size=30),
)
def test_window_of_matches_periods_in_any_order(
    period: SpendingPeriod, zone: ZoneInfo, moments: list[datetime]
) -> None:
    for moment in moments:
        expected = window_containing(period, moment, zone)
        got = window_of(period, moment, zone)
        assert (got.start, got.end) == (expected.start, expected.end)
        assert got.start.tzinfo == expected.start.tzinfo
        assert utc_window_of(period, moment, zone) == utc_window(expected)


def test_the_last_instant_of_a_window_and_the_first_of_the_next() -> None:
    zone = ZoneInfo("Europe/Berlin")
    day = window_of(SpendingPeriod.DAILY, datetime(2026, 10, 25, 12, tzinfo=UTC), zone)
    assert day.duration == timedelta(hours=25)  # the fall-back day
    last = day.end - timedelta(microseconds=1)
    assert window_of(SpendingPeriod.DAILY, last, zone) == day
    following = window_of(SpendingPeriod.DAILY, day.end, zone)
    assert following.start == day.end
    assert utc_window_of(SpendingPeriod.DAILY, last, zone) == utc_window(day)
