"""Which rollup buckets an instant falls in, and which buckets make up a period window.

Two rollups are kept, both in the account's timezone:

- an **hourly** bucket is one *local* hour at the UTC offset in force (the repeated hour of
  a DST change is two buckets; an offset change inside an hour splits it);
- a **daily** bucket is one local day (23, 24 or 25 hours long around DST changes).

Every calendar window of :mod:`smartspace_budget.periods` starts and ends on local hour
boundaries, and every window of a day or longer on local day boundaries, so a window is
exactly the set of buckets whose start lies in ``[window.start, window.end)``. That holds
for half-hour and quarter-hour offsets too (India, Nepal, Chatham), where UTC-aligned hours
would cut a local day in the middle of a bucket. Reads of a day, week, month or year sum
daily buckets (at most 366 per provider and model), the hourly period sums hourly ones. The
price: an account's timezone is fixed once it has entries.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from smartspace_budget.periods import SpendingPeriod, Window, window_containing

__all__ = [
    "day_bucket",
    "hour_bucket",
    "uses_daily",
    "utc_window",
    "utc_window_of",
    "window_of",
]

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})


def hour_bucket(instant: datetime, zone_name: str, zone: ZoneInfo) -> datetime:
    """The UTC start of the local hour of ``zone`` containing ``instant`` (aware)."""
    if zone_name in _UTC_NAMES:
        return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = window_containing(SpendingPeriod.HOURLY, instant, zone).start
    return start.astimezone(UTC)


def day_bucket(hour: datetime, zone_name: str, zone: ZoneInfo) -> datetime:
    """The UTC start of the local day containing the hourly bucket starting at ``hour``."""
    if zone_name in _UTC_NAMES:
        return hour.replace(hour=0)
    return _local_day(hour, zone)


@functools.lru_cache(maxsize=4096)
def _local_day(hour: datetime, zone: ZoneInfo) -> datetime:
    return window_containing(SpendingPeriod.DAILY, hour, zone).start.astimezone(UTC)


def uses_daily(period: SpendingPeriod) -> bool:
    """Whether windows of ``period`` are whole local days (so daily rollups cover them)."""
    return period is not SpendingPeriod.HOURLY


# The last window computed per (period, zone), with its bounds in UTC. Nearly every read
# and write asks for the window of "now", which changes once a day (or hour, or month):
# finding it again cost a status read a fifth of its time (a dozen timezone conversions).
_RECENT: dict[tuple[SpendingPeriod | str, ZoneInfo], tuple[datetime, datetime, Window]] = {}


def _remembered(
    period: SpendingPeriod | str, instant: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime, Window]:
    """The window of ``period`` containing ``instant`` with its UTC bounds, remembered."""
    key = (period, zone)
    recent = _RECENT.get(key)
    if recent is None or instant.tzinfo is None or not recent[0] <= instant < recent[1]:
        window = window_containing(period, instant, zone)  # a naive instant raises here
        start, end = utc_window(window)
        recent = _RECENT[key] = (start, end, window)
    return recent


def window_of(period: SpendingPeriod | str, instant: datetime, zone: ZoneInfo) -> Window:
    """The calendar window of ``period`` containing ``instant``, in ``zone``."""
    return _remembered(period, instant, zone)[2]


def utc_window_of(
    period: SpendingPeriod | str, instant: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """``utc_window(window_of(...))``, without converting the remembered window again."""
    start, end, _ = _remembered(period, instant, zone)
    return start, end


def utc_window(window: Window) -> tuple[datetime, datetime]:
    """The window's bounds in UTC, as bucket starts are compared."""
    return window.start.astimezone(UTC), window.end.astimezone(UTC)
