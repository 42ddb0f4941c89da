"""Which rollup bucket an instant falls in, and which buckets make up a period window.

A bucket is one *local* hour of the account's timezone, at the UTC offset in force (the
repeated hour of a DST change is two buckets; an offset change inside an hour splits it).
Every calendar window of :mod:`smartspace_budget.periods` (day, ISO week, month, year) starts
and ends on local hour boundaries, so it is exactly the set of buckets whose start lies in
``[window.start, window.end)``. That holds for half-hour and quarter-hour offsets too
(India, Nepal, Chatham), where UTC-aligned hours would cut a local day in the middle of a
bucket. The price: an account's timezone is fixed once it has entries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from smartspace_budget.periods import SpendingPeriod, Window, window_containing

__all__ = ["hour_bucket", "utc_window", "window_of"]

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"})


def hour_bucket(instant: datetime, zone_name: str, zone: ZoneInfo) -> datetime:
    """The UTC start of the local hour of ``zone`` containing ``instant`` (aware)."""
    if zone_name in _UTC_NAMES:
        return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = window_containing(SpendingPeriod.HOURLY, instant, zone).start
    return start.astimezone(UTC)


def window_of(period: SpendingPeriod | str, instant: datetime, zone: ZoneInfo) -> Window:
    """The calendar window of ``period`` containing ``instant``, in ``zone``."""
    return window_containing(period, instant, zone)


def utc_window(window: Window) -> tuple[datetime, datetime]:
    """The window's bounds in UTC, as bucket starts are compared."""
    return window.start.astimezone(UTC), window.end.astimezone(UTC)
