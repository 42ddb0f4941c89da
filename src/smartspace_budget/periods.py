"""Calendar windows for spending periods, in the account's timezone.

Budgets reset on the calendar of the person who owns them: "daily" is a local day, "monthly"
a calendar month (never 30 days), "weekly" an ISO week starting Monday 00:00. Local days are
not always 24 hours, so windows are built from local wall-clock boundaries and then turned
into instants; all comparisons are made in UTC, because Python compares two datetimes that
share a tzinfo by wall time and ignores ``fold``, which would confuse the repeated hour.

Windows tile time: each one starts exactly where the previous one ends, with no gap and no
overlap, even across DST changes, zones that skip midnight, and days a zone skipped entirely.

Series (a month of days for analytics) are built often and over the same days, so the first
instant of each local day is computed once per (day, zone) and remembered, and a series walks
from one window to the next without validating its own intermediate values again. Tests
compare both with the straightforward computation over random instants and zones.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smartspace_budget.errors import InvalidInputError

__all__ = [
    "SpendingPeriod",
    "Window",
    "next_window",
    "parse_period",
    "previous_windows",
    "window_containing",
    "windows_between",
]

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)


class SpendingPeriod(StrEnum):
    """The spec's periods; a string with the same value is accepted wherever one is."""

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"

    @classmethod
    def _missing_(cls, value: object) -> SpendingPeriod | None:
        # Any case, as parse_period takes it: ``DAILY`` means the same in the library and
        # in a URL (FastAPI validates path and query values through this enum).
        if isinstance(value, str):
            lowered = value.strip().lower()
            for member in cls:
                if member.value == lowered:
                    return member
        return None


@dataclass(frozen=True, slots=True, eq=False)
class Window:
    """The half-open span ``[start, end)`` of one period; both ends are timezone-aware.

    Equality, hashing and ``in`` use instants (UTC), so a window in the repeated hour of a
    DST change is never mistaken for the hour before or after it.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _require_aware(self.start, "window start")
        _require_aware(self.end, "window end")
        if self.start.astimezone(UTC) >= self.end.astimezone(UTC):
            raise InvalidInputError(f"window start {self.start} is not before its end {self.end}")

    def __contains__(self, instant: object) -> bool:
        if not isinstance(instant, datetime):
            return False
        moment = _require_aware(instant, "instant")
        return self.start.astimezone(UTC) <= moment < self.end.astimezone(UTC)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Window):
            return NotImplemented
        return self._instants() == other._instants()

    def __hash__(self) -> int:
        return hash(self._instants())

    def _instants(self) -> tuple[datetime, datetime]:
        return self.start.astimezone(UTC), self.end.astimezone(UTC)

    @property
    def duration(self) -> timedelta:
        """Elapsed time, not wall-clock difference: a spring-forward day lasts 23 hours."""
        start, end = self._instants()
        return end - start


def window_containing(
    period: SpendingPeriod | str, instant: datetime, tz: str | ZoneInfo = "UTC"
) -> Window:
    """The calendar window of ``period`` in timezone ``tz`` that contains ``instant``.

    ``start`` and ``end`` are returned in ``tz``. A boundary whose local time does not exist
    (midnight skipped by a DST change) is the first instant that does. Raises
    :class:`InvalidInputError` for a naive ``instant``, an unknown period or timezone, or an
    instant too close to the ends of the datetime range.
    """
    kind = parse_period(period)
    zone = _zone(tz)
    moment = _require_aware(instant, "instant")
    if not 1 < moment.year < 9999:
        raise InvalidInputError(f"instant {instant} is outside the supported years 2-9998")
    start, end = _bounds(kind, moment, zone)
    return _window(start, end, zone)


def _bounds(kind: SpendingPeriod, moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC bounds of the window of ``kind`` holding ``moment`` (UTC), checked inputs."""
    if not 1 < moment.year < 9999:
        raise InvalidInputError(f"instant {moment} is outside the supported years 2-9998")
    if kind is SpendingPeriod.HOURLY:
        return _hour_window(moment, zone)
    _, start, end = _calendar_window(kind, moment, zone)
    return start, end


def _window(start: datetime, end: datetime, zone: ZoneInfo) -> Window:
    """``Window(start, end)`` in ``zone`` from bounds ``_bounds`` computed (aware, UTC,
    ``start < end``), without checking them again."""
    window = object.__new__(Window)
    object.__setattr__(window, "start", start.astimezone(zone))
    object.__setattr__(window, "end", end.astimezone(zone))
    return window


def next_window(
    period: SpendingPeriod | str, instant: datetime, tz: str | ZoneInfo = "UTC"
) -> Window:
    """The window right after the one containing ``instant`` (when a budget resets)."""
    return window_containing(period, window_containing(period, instant, tz).end, tz)


def previous_windows(
    period: SpendingPeriod | str, instant: datetime, count: int, tz: str | ZoneInfo = "UTC"
) -> list[Window]:
    """The ``count`` windows just before the one containing ``instant``, oldest first.

    Used for baselines and trends; the windows are contiguous and end where the current
    window starts. Raises :class:`InvalidInputError` if ``count`` is negative.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidInputError(f"count must be a non-negative int, got {count!r}")
    kind = parse_period(period)
    zone = _zone(tz)
    start, _ = _bounds(kind, _require_aware(instant, "instant"), zone)
    windows: list[Window] = []
    for _ in range(count):
        # Step back in UTC: arithmetic on a zoned datetime is wall-clock and ignores fold.
        start, end = _bounds(kind, start - _TICK, zone)
        windows.append(_window(start, end, zone))
    windows.reverse()
    return windows


def windows_between(
    period: SpendingPeriod | str, start: datetime, end: datetime, tz: str | ZoneInfo = "UTC"
) -> list[Window]:
    """Every window that overlaps ``[start, end)``, in order; empty when ``start == end``.

    The first and last windows may reach outside ``[start, end)``: they are whole periods,
    so a chart's first and last bars are comparable with the others. Raises
    :class:`InvalidInputError` if ``end`` is before ``start``.
    """
    first, last = _require_aware(start, "start"), _require_aware(end, "end")
    if last < first:
        raise InvalidInputError(f"end {end} is before start {start}")
    windows: list[Window] = []
    if last == first:
        return windows
    kind = parse_period(period)
    zone = _zone(tz)
    if kind is SpendingPeriod.HOURLY:
        lower, upper = _bounds(kind, first, zone)
        while lower < last:
            windows.append(_window(lower, upper, zone))
            lower, upper = _bounds(kind, upper, zone)
        return windows
    # Calendar windows: walk from label to label on the remembered day boundaries. The
    # window after [start(L), start(L+1)) is [start(L+1), start(L+2)) whenever that is not
    # empty (``window_containing`` finds the same: the first instant of day L+1 lies on
    # L+1); an empty one means the zone skipped a whole day, which the general search knows.
    if not 1 < first.year < 9999:
        raise InvalidInputError(f"instant {start} is outside the supported years 2-9998")
    label, lower, upper = _calendar_window(kind, first, zone)
    zoned_lower = lower.astimezone(zone)
    daily = kind is SpendingPeriod.DAILY
    new, set_field, append = object.__new__, object.__setattr__, windows.append
    while lower < last:
        zoned_upper = upper.astimezone(zone)
        window = new(Window)
        set_field(window, "start", zoned_lower)
        set_field(window, "end", zoned_upper)
        append(window)
        if not 1 < upper.year < 9999:  # as window_containing(period, window.end) would
            raise InvalidInputError(f"instant {upper} is outside the supported years 2-9998")
        label = label + _DAY if daily else _step(kind, label, 1)
        following = _midnight(label + _DAY if daily else _step(kind, label, 1), zone)
        if following > upper:
            lower, upper, zoned_lower = upper, following, zoned_upper
        else:
            label, lower, upper = _calendar_window(kind, upper, zone)
            zoned_lower = lower.astimezone(zone)
    return windows


def _require_aware(value: datetime, name: str) -> datetime:
    """Return ``value`` in UTC; a naive datetime has no place on anyone's calendar."""
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{name} {value} is naive; pass a timezone-aware datetime (e.g. tzinfo=UTC)"
        )
    return value.astimezone(UTC)


def parse_period(period: SpendingPeriod | str) -> SpendingPeriod:
    """A period from its enum or its name (any case); :class:`InvalidInputError` otherwise."""
    if isinstance(period, SpendingPeriod):
        return period
    try:
        return SpendingPeriod(str(period).strip().lower())
    except ValueError:
        expected = ", ".join(p.value for p in SpendingPeriod)
        raise InvalidInputError(
            f"unknown spending period {period!r}; expected one of {expected}"
        ) from None


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    if not isinstance(tz, str):
        raise InvalidInputError(f"timezone must be an IANA name or ZoneInfo, not {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInputError(f"unknown timezone {tz!r}; expected an IANA name") from None


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta | None:
    return moment.astimezone(zone).utcoffset()


def _first_change(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in ``(before, after]`` whose UTC offset differs from ``before``'s.

    Zones publish no transition list through zoneinfo, so we bisect; one transition per
    searched span (at most a day) is assumed, which every real zone satisfies.
    """
    initial = _offset(before, zone)
    low, high = before, after
    while high - low > _TICK:
        middle = low + (high - low) // 2
        if _offset(middle, zone) == initial:
            low = middle
        else:
            high = middle
    return high


def _hour_window(moment: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """One local wall-clock hour at one UTC offset: the repeated hour is two windows.

    The hour is taken at the offset in force at ``moment``; if the offset changed within
    it, the change is a boundary, so zones with half-hour shifts still tile.
    """
    local = moment.astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None  # zoneinfo always knows the offset of an aware time
    wall_hour = local.replace(minute=0, second=0, microsecond=0, tzinfo=None, fold=0)
    start = (wall_hour - offset).replace(tzinfo=UTC)
    end = start + _HOUR
    if _offset(start, zone) != offset:
        start = _first_change(start, moment, zone)
    if _offset(end, zone) != offset:
        end = _first_change(moment, end, zone)
    return start, end


def _calendar_window(
    kind: SpendingPeriod, moment: datetime, zone: ZoneInfo
) -> tuple[date, datetime, datetime]:
    """The label (first local day) and UTC bounds of the window of ``kind`` holding
    ``moment``."""
    label = _floor(kind, moment.astimezone(zone).date())
    start = _midnight(label, zone)
    # Zones that set clocks back across midnight make local dates non-monotonic; step until
    # the window really holds the instant (a day the zone skipped has start == end).
    while start > moment:
        label = _step(kind, label, -1)
        start = _midnight(label, zone)
    end = _midnight(_step(kind, label, 1), zone)
    while end <= moment:
        label = _step(kind, label, 1)
        start, end = end, _midnight(_step(kind, label, 1), zone)
    return label, start, end


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


@functools.lru_cache(maxsize=8192)
def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC (remembered: a zone's days never
    move, and a series asks for the same days over and over).

    If local midnight is repeated, the first occurrence; if it was skipped, the instant the
    clock jumped past it, which is the first moment that local day exists.
    """
    wall = datetime.combine(day, time())
    earlier = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earlier.astimezone(zone).replace(tzinfo=None) == wall:
        return earlier
    # In a gap, fold=1 reads the wall time at the later offset, landing before the jump.
    before_jump = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _first_change(before_jump, earlier, zone)
