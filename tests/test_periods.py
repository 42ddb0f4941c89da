"""Calendar windows: literal boundary tables, DST and odd zones, and tiling as a property.

Expected windows are written out as ISO strings with their UTC offsets, so a repeated hour
(same wall time, different offset) cannot pass for its twin.
"""

# ruff: noqa: E501  (the boundary table reads best one case per line)
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.periods import (
    SpendingPeriod,
    Window,
    next_window,
    previous_windows,
    window_containing,
    windows_between,
)

H, D, W, M, Y = "hourly", "daily", "weekly", "monthly", "yearly"

# (period, tz, instant, expected start, expected end)
# fmt: off
BOUNDARIES = [
    # Midnight exactly, and one microsecond before it.
    (D, "UTC", "2026-05-10T00:00:00+00:00", "2026-05-10T00:00:00+00:00", "2026-05-11T00:00:00+00:00"),
    (D, "UTC", "2026-05-09T23:59:59.999999+00:00", "2026-05-09T00:00:00+00:00", "2026-05-10T00:00:00+00:00"),
    (H, "UTC", "2026-05-09T23:59:59.999999+00:00", "2026-05-09T23:00:00+00:00", "2026-05-10T00:00:00+00:00"),
    (H, "UTC", "2026-05-10T00:00:00+00:00", "2026-05-10T00:00:00+00:00", "2026-05-10T01:00:00+00:00"),
    # Month ends: calendar months, never 30 days.
    (D, "UTC", "2026-01-31T12:00:00+00:00", "2026-01-31T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
    (M, "UTC", "2026-01-31T23:59:59.999999+00:00", "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
    (M, "UTC", "2026-02-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"),
    (M, "UTC", "2026-04-30T23:59:59.999999+00:00", "2026-04-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"),
    (M, "UTC", "2026-05-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00"),
    # February: 2024 and 2000 are leap years, 2023 and 2100 are not.
    (M, "UTC", "2024-02-29T12:00:00+00:00", "2024-02-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
    (D, "UTC", "2024-02-28T23:59:59.999999+00:00", "2024-02-28T00:00:00+00:00", "2024-02-29T00:00:00+00:00"),
    (D, "UTC", "2024-02-29T23:59:59.999999+00:00", "2024-02-29T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
    (D, "UTC", "2023-02-28T12:00:00+00:00", "2023-02-28T00:00:00+00:00", "2023-03-01T00:00:00+00:00"),
    (D, "UTC", "2100-02-28T12:00:00+00:00", "2100-02-28T00:00:00+00:00", "2100-03-01T00:00:00+00:00"),
    (M, "UTC", "2100-02-15T08:00:00+00:00", "2100-02-01T00:00:00+00:00", "2100-03-01T00:00:00+00:00"),
    (D, "UTC", "2000-02-28T23:00:00+00:00", "2000-02-28T00:00:00+00:00", "2000-02-29T00:00:00+00:00"),
    (D, "UTC", "2000-02-29T00:00:00+00:00", "2000-02-29T00:00:00+00:00", "2000-03-01T00:00:00+00:00"),
    (M, "UTC", "2000-02-29T23:59:59.999999+00:00", "2000-02-01T00:00:00+00:00", "2000-03-01T00:00:00+00:00"),
    # Year end and New Year.
    (Y, "UTC", "2026-12-31T23:59:59.999999+00:00", "2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    (Y, "UTC", "2027-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"),
    (M, "UTC", "2026-12-31T23:59:59.999999+00:00", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    (D, "UTC", "2026-12-31T23:59:59.999999+00:00", "2026-12-31T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    (H, "UTC", "2026-12-31T23:59:59.999999+00:00", "2026-12-31T23:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    (H, "UTC", "2027-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00", "2027-01-01T01:00:00+00:00"),
    (Y, "UTC", "2024-12-31T12:00:00+00:00", "2024-01-01T00:00:00+00:00", "2025-01-01T00:00:00+00:00"),
    # ISO weeks start Monday 00:00; 2026-05-10 is a Sunday.
    (W, "UTC", "2026-05-10T23:59:00+00:00", "2026-05-04T00:00:00+00:00", "2026-05-11T00:00:00+00:00"),
    (W, "UTC", "2026-05-10T23:59:59.999999+00:00", "2026-05-04T00:00:00+00:00", "2026-05-11T00:00:00+00:00"),
    (W, "UTC", "2026-05-11T00:00:00+00:00", "2026-05-11T00:00:00+00:00", "2026-05-18T00:00:00+00:00"),
    (W, "UTC", "2026-03-01T12:00:00+00:00", "2026-02-23T00:00:00+00:00", "2026-03-02T00:00:00+00:00"),
    # Weeks across a year end.
    (W, "UTC", "2026-12-31T12:00:00+00:00", "2026-12-28T00:00:00+00:00", "2027-01-04T00:00:00+00:00"),
    (W, "UTC", "2027-01-03T23:59:59+00:00", "2026-12-28T00:00:00+00:00", "2027-01-04T00:00:00+00:00"),
    (W, "UTC", "2027-01-04T00:00:00+00:00", "2027-01-04T00:00:00+00:00", "2027-01-11T00:00:00+00:00"),
    (W, "UTC", "2024-12-31T09:00:00+00:00", "2024-12-30T00:00:00+00:00", "2025-01-06T00:00:00+00:00"),
    # Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
    (D, "Europe/Berlin", "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    (D, "Europe/Berlin", "2026-03-28T23:59:59.999999+01:00", "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00"),
    (D, "Europe/Berlin", "2026-03-28T23:30:00+00:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    (D, "Europe/Berlin", "2026-10-25T12:00:00+01:00", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
    (H, "Europe/Berlin", "2026-03-29T01:59:59.999999+01:00", "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"),
    (H, "Europe/Berlin", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"),
    (H, "Europe/Berlin", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"),
    (H, "Europe/Berlin", "2026-10-25T02:30:00+01:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"),
    (W, "Europe/Berlin", "2026-03-29T12:00:00+02:00", "2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    (M, "Europe/Berlin", "2026-03-31T23:59:59.999999+02:00", "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00"),
    # America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    (D, "America/New_York", "2026-03-08T12:00:00-04:00", "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"),
    (D, "America/New_York", "2026-11-01T12:00:00-05:00", "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
    (D, "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
    (D, "America/New_York", "2026-05-10T03:59:59.999999+00:00", "2026-05-09T00:00:00-04:00", "2026-05-10T00:00:00-04:00"),
    (H, "America/New_York", "2026-03-08T01:30:00-05:00", "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"),
    (H, "America/New_York", "2026-11-01T00:59:59.999999-04:00", "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00"),
    (H, "America/New_York", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"),
    (H, "America/New_York", "2026-11-01T01:30:00-05:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"),
    (M, "America/New_York", "2026-11-30T23:59:59.999999-05:00", "2026-11-01T00:00:00-04:00", "2026-12-01T00:00:00-05:00"),
    (Y, "America/New_York", "2026-12-31T23:59:59.999999-05:00", "2026-01-01T00:00:00-05:00", "2027-01-01T00:00:00-05:00"),
    # Asia/Kolkata (+05:30) and Asia/Kathmandu (+05:45): local hours start off the UTC hour.
    (H, "Asia/Kolkata", "2026-05-10T12:29:59.999999+00:00", "2026-05-10T17:00:00+05:30", "2026-05-10T18:00:00+05:30"),
    (H, "Asia/Kolkata", "2026-05-10T12:30:00+00:00", "2026-05-10T18:00:00+05:30", "2026-05-10T19:00:00+05:30"),
    (D, "Asia/Kolkata", "2026-05-09T18:30:00+00:00", "2026-05-10T00:00:00+05:30", "2026-05-11T00:00:00+05:30"),
    (D, "Asia/Kolkata", "2026-05-09T18:29:59.999999+00:00", "2026-05-09T00:00:00+05:30", "2026-05-10T00:00:00+05:30"),
    (M, "Asia/Kolkata", "2026-04-30T18:30:00+00:00", "2026-05-01T00:00:00+05:30", "2026-06-01T00:00:00+05:30"),
    (H, "Asia/Kathmandu", "2026-05-10T12:14:59+00:00", "2026-05-10T17:00:00+05:45", "2026-05-10T18:00:00+05:45"),
    # Midnight skipped: the day starts at the first instant that exists (01:00).
    (D, "America/Santiago", "2024-09-08T12:00:00+00:00", "2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00"),
    (D, "America/Santiago", "2024-09-07T12:00:00+00:00", "2024-09-07T00:00:00-04:00", "2024-09-08T01:00:00-03:00"),
    (M, "America/Santiago", "2024-09-08T12:00:00+00:00", "2024-09-01T00:00:00-04:00", "2024-10-01T00:00:00-03:00"),
    (D, "America/Havana", "2026-03-08T12:00:00+00:00", "2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"),
    # Midnight repeated: the day starts at its first occurrence.
    (D, "America/Havana", "2026-11-01T12:00:00+00:00", "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),
    # Clocks set back from midnight to 23:00: the Saturday lasts 25 hours.
    (D, "America/Sao_Paulo", "2018-02-17T23:30:00-03:00", "2018-02-17T00:00:00-02:00", "2018-02-18T00:00:00-03:00"),
    # A day the zone skipped entirely (Samoa, 2011-12-30): the 29th ends where the 31st begins.
    (D, "Pacific/Apia", "2011-12-29T23:00:00-10:00", "2011-12-29T00:00:00-10:00", "2011-12-31T00:00:00+14:00"),
    # Lord Howe shifts by 30 minutes: a half-hour window keeps the hours tiling.
    (H, "Australia/Lord_Howe", "2026-04-05T01:45:00+11:00", "2026-04-05T01:00:00+11:00", "2026-04-05T01:30:00+10:30"),
    (H, "Australia/Lord_Howe", "2026-04-05T01:45:00+10:30", "2026-04-05T01:30:00+10:30", "2026-04-05T02:00:00+10:30"),
    (H, "Australia/Lord_Howe", "2026-10-04T02:45:00+11:00", "2026-10-04T02:30:00+11:00", "2026-10-04T03:00:00+11:00"),
]
# fmt: on


@pytest.mark.parametrize(("period", "tz", "instant", "start", "end"), BOUNDARIES)
def test_boundary_windows(period: str, tz: str, instant: str, start: str, end: str) -> None:
    window = window_containing(period, datetime.fromisoformat(instant), tz)
    assert (window.start.isoformat(), window.end.isoformat()) == (start, end)
    assert window.start.tzinfo is ZoneInfo(tz)
    assert window.end.tzinfo is ZoneInfo(tz)


@pytest.mark.parametrize(
    ("period", "tz", "instant", "hours"),
    [
        (D, "Europe/Berlin", "2026-03-29T12:00:00+02:00", 23),
        (D, "Europe/Berlin", "2026-10-25T12:00:00+01:00", 25),
        (D, "America/New_York", "2026-03-08T12:00:00-04:00", 23),
        (D, "America/New_York", "2026-11-01T12:00:00-05:00", 25),
        (D, "Europe/Berlin", "2026-06-01T12:00:00+02:00", 24),
        (H, "America/New_York", "2026-11-01T01:30:00-04:00", 1),
        (H, "America/New_York", "2026-11-01T01:30:00-05:00", 1),
        (W, "Europe/Berlin", "2026-03-29T12:00:00+02:00", 7 * 24 - 1),
        (M, "America/New_York", "2026-11-15T12:00:00-05:00", 30 * 24 + 1),
        (M, "UTC", "2024-02-10T00:00:00+00:00", 29 * 24),
        (M, "UTC", "2100-02-10T00:00:00+00:00", 28 * 24),
        (Y, "UTC", "2024-07-01T00:00:00+00:00", 366 * 24),
        (Y, "Europe/Berlin", "2026-07-01T00:00:00+02:00", 365 * 24),
    ],
)
def test_duration_is_elapsed_time(period: str, tz: str, instant: str, hours: int) -> None:
    window = window_containing(period, datetime.fromisoformat(instant), tz)
    assert window.duration == timedelta(hours=hours)


def test_repeated_hour_is_two_distinct_windows() -> None:
    first = window_containing(H, datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "America/New_York")
    second = window_containing(H, datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "America/New_York")
    assert first != second
    assert first.end.astimezone(UTC) == second.start.astimezone(UTC)
    assert datetime(2026, 11, 1, 5, 59, tzinfo=UTC) in first
    assert datetime(2026, 11, 1, 5, 59, tzinfo=UTC) not in second
    assert datetime(2026, 11, 1, 6, 0, tzinfo=UTC) in second
    assert len({first, second}) == 2


def test_period_accepts_enum_and_any_case() -> None:
    instant = datetime(2026, 5, 10, 12, tzinfo=UTC)
    assert window_containing(SpendingPeriod.DAILY, instant) == window_containing(" Daily", instant)
    assert [p.value for p in SpendingPeriod] == [H, D, W, M, Y]


def test_window_equality_is_by_instant_across_zones() -> None:
    berlin = window_containing(D, datetime(2026, 5, 10, 12, tzinfo=UTC), "Europe/Berlin")
    as_utc = Window(berlin.start.astimezone(UTC), berlin.end.astimezone(UTC))
    assert berlin == as_utc
    assert hash(berlin) == hash(as_utc)
    assert berlin != "2026-05-10"


def test_window_rejects_naive_and_empty_spans() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="naive"):
        Window(datetime(2026, 1, 1), start)
    with pytest.raises(InvalidInputError, match="not before"):
        Window(start, start)
    window = Window(start, start + timedelta(days=1))
    with pytest.raises(InvalidInputError, match="naive"):
        _ = datetime(2026, 1, 1, 12) in window
    assert "2026-01-01" not in window


def test_previous_windows_are_contiguous_oldest_first() -> None:
    instant = datetime(2026, 3, 15, 12, tzinfo=UTC)
    windows = previous_windows(M, instant, 3)
    assert [(w.start.isoformat(), w.end.isoformat()) for w in windows] == [
        ("2025-12-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"),
        ("2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
        ("2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"),
    ]
    assert previous_windows(M, instant, 0) == []


def test_previous_windows_across_dst() -> None:
    instant = datetime(2026, 3, 30, 12, tzinfo=UTC)
    windows = previous_windows(D, instant, 2, "Europe/Berlin")
    assert [(w.start.isoformat(), w.end.isoformat()) for w in windows] == [
        ("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00"),
        ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
    ]
    hours = previous_windows(H, datetime(2026, 11, 1, 7, 30, tzinfo=UTC), 48, "America/New_York")
    assert len(hours) == 48
    assert all(a.end.astimezone(UTC) == b.start.astimezone(UTC) for a, b in pairwise(hours))
    assert [(w.start.isoformat(), w.end.isoformat()) for w in hours[-3:]] == [
        ("2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00"),
        ("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"),
        ("2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"),
    ]
    assert all(w.duration == timedelta(hours=1) for w in hours)


@pytest.mark.parametrize("count", [-1, True, 1.5])
def test_previous_windows_rejects_bad_count(count: object) -> None:
    with pytest.raises(InvalidInputError, match="count"):
        previous_windows(D, datetime(2026, 1, 1, tzinfo=UTC), count)  # type: ignore[arg-type]


def test_next_window_follows_on() -> None:
    window = next_window(M, datetime(2026, 1, 31, 23, tzinfo=UTC), "America/New_York")
    assert (window.start.isoformat(), window.end.isoformat()) == (
        "2026-02-01T00:00:00-05:00",
        "2026-03-01T00:00:00-05:00",
    )


def test_windows_between_covers_the_repeated_hour() -> None:
    start = datetime.fromisoformat("2026-11-01T00:30:00-04:00")
    end = datetime.fromisoformat("2026-11-01T02:30:00-05:00")
    windows = windows_between(H, start, end, "America/New_York")
    assert [(w.start.isoformat(), w.end.isoformat()) for w in windows] == [
        ("2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00"),
        ("2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"),
        ("2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"),
        ("2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"),
    ]


def test_windows_between_is_half_open() -> None:
    start = datetime(2026, 1, 15, tzinfo=UTC)
    windows = windows_between(M, start, datetime(2026, 3, 1, tzinfo=UTC))
    assert [w.start.isoformat() for w in windows] == [
        "2026-01-01T00:00:00+00:00",
        "2026-02-01T00:00:00+00:00",
    ]
    assert windows_between(M, start, start) == []
    with pytest.raises(InvalidInputError, match="before"):
        windows_between(M, start, start - timedelta(microseconds=1))


@pytest.mark.parametrize(("tz", "long_day", "short_day"), [
    ("Europe/Berlin", "2026-10-25", "2026-03-29"),
    ("America/New_York", "2026-11-01", "2026-03-08"),
])  # fmt: skip
def test_a_year_of_days(tz: str, long_day: str, short_day: str) -> None:
    zone = ZoneInfo(tz)
    days = windows_between(
        D, datetime(2026, 1, 1, tzinfo=zone), datetime(2027, 1, 1, tzinfo=zone), tz
    )
    assert len(days) == 365
    odd = {w.start.date().isoformat(): w.duration for w in days if w.duration != timedelta(1)}
    assert odd == {short_day: timedelta(hours=23), long_day: timedelta(hours=25)}
    hours = windows_between(H, days[0].start, days[-1].end, tz)
    assert len(hours) == 365 * 24


def test_skipped_day_has_no_window() -> None:
    start = datetime(2011, 12, 28, tzinfo=ZoneInfo("Pacific/Apia"))
    end = datetime(2012, 1, 2, tzinfo=ZoneInfo("Pacific/Apia"))
    days = windows_between(D, start, end, "Pacific/Apia")
    assert [w.start.date().isoformat() for w in days] == [
        "2011-12-28",
        "2011-12-29",
        "2011-12-31",
        "2012-01-01",
    ]


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 5, 10, 12)
    aware = naive.replace(tzinfo=UTC)
    for call in (
        lambda: window_containing(D, naive),
        lambda: previous_windows(D, naive, 1),
        lambda: next_window(D, naive),
        lambda: windows_between(D, naive, aware),
        lambda: windows_between(D, aware, naive),
    ):
        with pytest.raises(InvalidInputError, match="naive"):
            call()


def test_non_datetimes_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="must be a datetime"):
        window_containing(D, "2026-05-10T12:00:00+00:00")  # type: ignore[arg-type]


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "America", "../../etc/passwd", 5])
def test_unknown_timezones_are_rejected(tz: object) -> None:
    with pytest.raises(InvalidInputError, match="timezone"):
        window_containing(D, datetime(2026, 5, 10, tzinfo=UTC), tz)  # type: ignore[arg-type]


@pytest.mark.parametrize("period", ["fortnightly", "", "day"])
def test_unknown_periods_are_rejected(period: str) -> None:
    with pytest.raises(InvalidInputError, match="unknown spending period"):
        window_containing(period, datetime(2026, 5, 10, tzinfo=UTC))


def test_instants_at_the_ends_of_time_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="supported years"):
        window_containing(Y, datetime(9999, 12, 31, tzinfo=UTC))
    with pytest.raises(InvalidInputError, match="supported years"):
        window_containing(D, datetime(1, 1, 1, tzinfo=UTC))


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/Santiago",
    "America/Havana",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
    "Pacific/Apia",
]

instants = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2050, 1, 1),
    timezones=st.sampled_from([ZoneInfo(name) for name in ZONES]),
)


@settings(max_examples=150, deadline=None)
@given(period=st.sampled_from(list(SpendingPeriod)), instant=instants, tz=st.sampled_from(ZONES))
def test_windows_contain_and_tile(period: SpendingPeriod, instant: datetime, tz: str) -> None:
    window = window_containing(period, instant, tz)
    assert instant in window
    assert window.start.astimezone(UTC) < window.end.astimezone(UTC)
    assert window_containing(period, window.start, tz) == window
    following = window_containing(period, window.end, tz)
    assert following.start.astimezone(UTC) == window.end.astimezone(UTC)
    just_before = window.start.astimezone(UTC) - timedelta(microseconds=1)
    before = window_containing(period, just_before, tz)
    assert before.end.astimezone(UTC) == window.start.astimezone(UTC)
    if period is SpendingPeriod.HOURLY:
        assert window.duration <= timedelta(hours=1)
