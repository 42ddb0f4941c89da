"""The fast series walk and the remembered day boundaries of ``periods`` (issue 20) against
the straightforward computation they replace, over random instants and time zones.

The reference below is the earlier code: every window found by ``window_containing``'s
search from scratch, every local midnight converted anew, nothing remembered. The zones are
chosen for their oddities: DST at midnight (Havana, Santiago), half-hour DST (Lord Howe),
negative DST (Dublin), skipped days (Apia, Kiritimati), quarter-hour offsets (Kathmandu,
Chatham), a two-hour DST (Troll), Ramadan suspensions of DST (Casablanca).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.periods import (
    SpendingPeriod,
    next_window,
    previous_windows,
    window_containing,
    windows_between,
)

ZONES = [
    "UTC",
    "Etc/GMT+5",
    "Europe/Paris",
    "Europe/Dublin",
    "America/New_York",
    "America/Havana",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Africa/Casablanca",
    "Antarctica/Troll",
]
_TICK = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)


# -- the straightforward reference -------------------------------------------------------


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta | None:
    return moment.astimezone(zone).utcoffset()


def _first_change(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    initial = _offset(before, zone)
    low, high = before, after
    while high - low > _TICK:
        middle = low + (high - low) // 2
        if _offset(middle, zone) == initial:
            low = middle
        else:
            high = middle
    return high


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    wall = datetime.combine(day, time())
    earlier = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earlier.astimezone(zone).replace(tzinfo=None) == wall:
        return earlier
    before_jump = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _first_change(before_jump, earlier, zone)


def _floor(kind: SpendingPeriod, day: date) -> date:
    if kind is SpendingPeriod.WEEKLY:
        return day - timedelta(days=day.weekday())
    if kind is SpendingPeriod.MONTHLY:
        return day.replace(day=1)
    if kind is SpendingPeriod.YEARLY:
        return date(day.year, 1, 1)
    return day


def _step(kind: SpendingPeriod, label: date, direction: int) -> date:
    if kind is SpendingPeriod.DAILY:
        return label + timedelta(days=direction)
    if kind is SpendingPeriod.WEEKLY:
        return label + timedelta(weeks=direction)
    if kind is SpendingPeriod.MONTHLY:
        months = label.year * 12 + label.month - 1 + direction
        return date(months // 12, months % 12 + 1, 1)
    return date(label.year + direction, 1, 1)


def _hour_window(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    local = moment.astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    wall_hour = local.replace(minute=0, second=0, microsecond=0, tzinfo=None, fold=0)
    start = (wall_hour - offset).replace(tzinfo=UTC)
    end = start + _HOUR
    if _offset(start, zone) != offset:
        start = _first_change(start, moment, zone)
    if _offset(end, zone) != offset:
        end = _first_change(moment, end, zone)
    return start, end


def reference_window(
    kind: SpendingPeriod, instant: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """The UTC bounds of the window holding ``instant``, computed from scratch."""
    moment = instant.astimezone(UTC)
    if kind is SpendingPeriod.HOURLY:
        return _hour_window(moment, zone)
    label = _floor(kind, moment.astimezone(zone).date())
    start = _midnight(label, zone)
    while start > moment:
        label = _step(kind, label, -1)
        start = _midnight(label, zone)
    end = _midnight(_step(kind, label, 1), zone)
    while end <= moment:
        label = _step(kind, label, 1)
        start, end = end, _midnight(_step(kind, label, 1), zone)
    return start, end


def reference_between(
    kind: SpendingPeriod, start: datetime, end: datetime, zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    windows: list[tuple[datetime, datetime]] = []
    if start == end:
        return windows
    window = reference_window(kind, start, zone)
    while window[0] < end:
        windows.append(window)
        window = reference_window(kind, window[1], zone)
    return windows


# -- the comparisons ---------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(2045, 12, 31), timezones=st.just(UTC)
)
zones = st.sampled_from(ZONES).map(ZoneInfo)
calendar = st.sampled_from(
    [SpendingPeriod.DAILY, SpendingPeriod.WEEKLY, SpendingPeriod.MONTHLY, SpendingPeriod.YEARLY]
)


def _exact(window_start: datetime, window_end: datetime, zone: ZoneInfo) -> None:
    """Returned in the zone, as instants and as the zone's own wall times."""
    assert window_start.tzinfo is zone
    assert window_end.tzinfo is zone


@settings(max_examples=300, deadline=None)
@given(instant=instants, zone=zones, kind=st.sampled_from(list(SpendingPeriod)))
def test_window_containing_equals_the_search_from_scratch(
    instant: datetime, zone: ZoneInfo, kind: SpendingPeriod
) -> None:
    window = window_containing(kind, instant, zone)
    _exact(window.start, window.end, zone)
    assert (window.start.astimezone(UTC), window.end.astimezone(UTC)) == reference_window(
        kind, instant, zone
    )
    # The same wall times, fold included, as converting the reference's instants.
    expected = reference_window(kind, instant, zone)
    assert window.start.replace(tzinfo=None) == expected[0].astimezone(zone).replace(tzinfo=None)
    assert window.start.fold == expected[0].astimezone(zone).fold
    assert window.end.fold == expected[1].astimezone(zone).fold


@settings(max_examples=150, deadline=None)
@given(
    instant=instants,
    zone=zones,
    kind=calendar,
    span=st.integers(min_value=0, max_value=24 * 75),
)
def test_the_calendar_walk_equals_window_after_window(
    instant: datetime, zone: ZoneInfo, kind: SpendingPeriod, span: int
) -> None:
    end = instant + timedelta(hours=span)
    walked = windows_between(kind, instant, end, zone)
    expected = reference_between(kind, instant, end, zone)
    assert [(w.start.astimezone(UTC), w.end.astimezone(UTC)) for w in walked] == expected
    for window, (start, stop) in zip(walked, expected, strict=True):
        _exact(window.start, window.end, zone)
        assert window.start.fold == start.astimezone(zone).fold
        assert window.end.fold == stop.astimezone(zone).fold
        assert window == window_containing(kind, start, zone)


@settings(max_examples=80, deadline=None)
@given(instant=instants, zone=zones, span=st.integers(min_value=0, max_value=24 * 5))
def test_hourly_series_equal_window_after_window(
    instant: datetime, zone: ZoneInfo, span: int
) -> None:
    end = instant + timedelta(hours=span)
    walked = windows_between(SpendingPeriod.HOURLY, instant, end, zone)
    expected = reference_between(SpendingPeriod.HOURLY, instant, end, zone)
    assert [(w.start.astimezone(UTC), w.end.astimezone(UTC)) for w in walked] == expected


@settings(max_examples=100, deadline=None)
@given(
    instant=instants,
    zone=zones,
    kind=st.sampled_from(list(SpendingPeriod)),
    count=st.integers(min_value=0, max_value=30),
)
def test_previous_windows_equal_steps_back_from_scratch(
    instant: datetime, zone: ZoneInfo, kind: SpendingPeriod, count: int
) -> None:
    expected: list[tuple[datetime, datetime]] = []
    window = reference_window(kind, instant, zone)
    for _ in range(count):
        window = reference_window(kind, window[0] - _TICK, zone)
        expected.append(window)
    expected.reverse()
    got = previous_windows(kind, instant, count, zone)
    assert [(w.start.astimezone(UTC), w.end.astimezone(UTC)) for w in got] == expected
    nxt = next_window(kind, instant, zone)
    assert (nxt.start.astimezone(UTC), nxt.end.astimezone(UTC)) == reference_window(
        kind, reference_window(kind, instant, zone)[1], zone
    )


def test_the_days_apia_and_kiritimati_skipped_are_walked_like_the_search() -> None:
    """Whole local days that never happened (the walk's fallback to the general search)."""
    for name, day in (("Pacific/Apia", datetime(2011, 12, 28)), ("Pacific/Kiritimati", None)):
        zone = ZoneInfo(name)
        start = (
            datetime(1994, 12, 29, tzinfo=UTC)
            if day is None
            else day.replace(tzinfo=zone).astimezone(UTC)
        )
        for kind in (SpendingPeriod.DAILY, SpendingPeriod.WEEKLY, SpendingPeriod.MONTHLY):
            end = start + timedelta(days=5)
            walked = windows_between(kind, start, end, zone)
            assert [
                (w.start.astimezone(UTC), w.end.astimezone(UTC)) for w in walked
            ] == reference_between(kind, start, end, zone)


@pytest.mark.parametrize(
    "kind",
    [SpendingPeriod.HOURLY, SpendingPeriod.DAILY, SpendingPeriod.WEEKLY, SpendingPeriod.MONTHLY],
)
def test_a_walk_past_the_supported_years_is_refused_like_the_search(kind: SpendingPeriod) -> None:
    start = datetime(9998, 12, 30, tzinfo=UTC)
    end = datetime(9999, 1, 5, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="supported years"):
        windows_between(kind, start, end, "Europe/Paris")
    with pytest.raises(InvalidInputError, match="supported years"):
        window_containing(kind, datetime(9999, 1, 1, tzinfo=UTC), "Europe/Paris")
