"""The read side: balances, status, spending and analytics as single indexed statements.

Each read is one statement, so it sees one consistent snapshot without a transaction (no
``BEGIN`` round trip, no lock). Spending comes from the hourly rollups: a day is at most 24
buckets per (provider, model) of the account and a month at most 744, read by a range scan
of the rollups' primary key, so the cost does not depend on how many entries exist.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartspace_budget.backend.base import AccountRef, SpendingBucket
from smartspace_budget.errors import InvalidInputError, NotFoundError
from smartspace_budget.ledger.buckets import utc_window, window_of
from smartspace_budget.ledger.state import entry_model, policy_from_nano
from smartspace_budget.ledger.tables import accounts, entries, reservations, rollups
from smartspace_budget.models import (
    Balance,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    LedgerEntry,
    ReservationStatus,
    SpendingAnalytics,
    SpendingSummary,
)
from smartspace_budget.money import from_nano, quantize
from smartspace_budget.periods import SpendingPeriod, windows_between

__all__ = [
    "MAX_SERIES_WINDOWS",
    "AccountInfo",
    "analytics",
    "balance",
    "find_account",
    "list_accounts",
    "list_entries",
    "policy",
    "reservation",
    "spending",
    "spending_series",
    "status",
]

MAX_SERIES_WINDOWS = 10_000
"""Most windows one spending series may have (10,000 hours is over a year)."""

# Typical window lengths: a cheap estimate of how many windows a span holds.
_NOMINAL = {
    SpendingPeriod.HOURLY: timedelta(hours=1),
    SpendingPeriod.DAILY: timedelta(days=1),
    SpendingPeriod.WEEKLY: timedelta(weeks=1),
    SpendingPeriod.MONTHLY: timedelta(days=28),
    SpendingPeriod.YEARLY: timedelta(days=365),
}


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What never changes about an account: its row id, timezone and currency."""

    row_id: int
    user_id: str
    project_id: str
    timezone: str
    zone: ZoneInfo
    currency: str


async def find_account(conn: AsyncConnection, user_id: str, project_id: str) -> AccountInfo:
    row = (
        await conn.execute(
            select(accounts.c.id, accounts.c.timezone, accounts.c.currency).where(
                accounts.c.user_id == user_id, accounts.c.project_id == project_id
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(
            f"no account for user {user_id!r}, project {project_id!r}",
            user_id=user_id,
            project_id=project_id,
        )
    return AccountInfo(
        row.id, user_id, project_id, row.timezone, ZoneInfo(row.timezone), row.currency
    )


def _sum(value: Any) -> int:
    return 0 if value is None else int(value)


def _window_sum(account: AccountInfo, start: datetime, end: datetime) -> Any:
    return (
        select(func.coalesce(func.sum(rollups.c.spent_nano), 0))
        .where(
            rollups.c.account_id == account.row_id,
            rollups.c.bucket_start >= start,
            rollups.c.bucket_start < end,
        )
        .scalar_subquery()
    )


async def balance(conn: AsyncConnection, account: AccountInfo, at: datetime) -> Balance:
    row = (
        await conn.execute(
            select(accounts.c.balance_nano, accounts.c.reserved_nano).where(
                accounts.c.id == account.row_id
            )
        )
    ).one()
    return Balance(
        total_balance=from_nano(row.balance_nano),
        available_balance=from_nano(row.balance_nano - row.reserved_nano),
        reserved_amount=from_nano(row.reserved_nano),
        currency=account.currency,
        as_of=at,
    )


async def status(conn: AsyncConnection, account: AccountInfo, at: datetime) -> BudgetStatus:
    day = utc_window(window_of(SpendingPeriod.DAILY, at, account.zone))
    month = utc_window(window_of(SpendingPeriod.MONTHLY, at, account.zone))
    row = (
        await conn.execute(
            select(
                accounts,
                _window_sum(account, *day).label("spent_today"),
                _window_sum(account, *month).label("spent_month"),
            ).where(accounts.c.id == account.row_id)
        )
    ).one()

    def money(nano: int | None) -> Decimal | None:
        return None if nano is None else from_nano(nano)

    return BudgetStatus(
        total_balance=from_nano(row.balance_nano),
        available_balance=from_nano(row.balance_nano - row.reserved_nano),
        reserved_amount=from_nano(row.reserved_nano),
        spent_today=from_nano(_sum(row.spent_today)),
        spent_this_month=from_nano(_sum(row.spent_month)),
        spent_total=from_nano(row.spent_nano),
        daily_limit=money(row.daily_limit_nano),
        monthly_limit=money(row.monthly_limit_nano),
        per_request_limit=money(row.per_request_limit_nano),
        low_balance_threshold=money(row.low_balance_threshold_nano),
        currency=account.currency,
        timezone=account.timezone,
        as_of=at,
    )


def _in_window(account: AccountInfo, start: datetime, end: datetime, *columns: Any) -> Select[Any]:
    return select(*columns).where(
        rollups.c.account_id == account.row_id,
        rollups.c.bucket_start >= start,
        rollups.c.bucket_start < end,
    )


async def spending(
    conn: AsyncConnection, account: AccountInfo, period: SpendingPeriod, at: datetime
) -> SpendingSummary:
    window = window_of(period, at, account.zone)
    start, end = utc_window(window)
    row = (
        await conn.execute(
            _in_window(
                account,
                start,
                end,
                func.sum(rollups.c.spent_nano).label("spent"),
                func.sum(rollups.c.request_count).label("requests"),
            )
        )
    ).one()
    return SpendingSummary(
        period=period,
        period_start=window.start,
        period_end=window.end,
        total_spent=from_nano(_sum(row.spent)),
        request_count=_sum(row.requests),
        currency=account.currency,
    )


async def analytics(
    conn: AsyncConnection, account: AccountInfo, period: SpendingPeriod, at: datetime
) -> SpendingAnalytics:
    """Totals and breakdowns; refunds not tied to a usage entry count only in the total."""
    window = window_of(period, at, account.zone)
    start, end = utc_window(window)
    result = await conn.execute(
        _in_window(
            account,
            start,
            end,
            rollups.c.provider,
            rollups.c.model,
            func.sum(rollups.c.spent_nano),
            func.sum(rollups.c.request_count),
        ).group_by(rollups.c.provider, rollups.c.model)
    )
    total = requests = 0
    by_provider: dict[str, int] = {}
    requests_by_provider: dict[str, int] = {}
    by_model: dict[str, int] = {}
    requests_by_model: dict[str, int] = {}
    for provider, model, spent_value, count_value in result:
        spent, count = _sum(spent_value), _sum(count_value)
        total += spent
        requests += count
        if provider:
            by_provider[provider] = by_provider.get(provider, 0) + spent
            requests_by_provider[provider] = requests_by_provider.get(provider, 0) + count
        if model:
            by_model[model] = by_model.get(model, 0) + spent
            requests_by_model[model] = requests_by_model.get(model, 0) + count
    average = quantize(from_nano(total) / requests) if requests else Decimal("0E-9")
    return SpendingAnalytics(
        total_spent=from_nano(total),
        request_count=requests,
        average_per_request=average,
        spending_by_provider={key: from_nano(value) for key, value in by_provider.items()},
        requests_by_provider=requests_by_provider,
        spending_by_model={key: from_nano(value) for key, value in by_model.items()},
        requests_by_model=requests_by_model,
        period=period,
        period_start=window.start,
        period_end=window.end,
        currency=account.currency,
    )


async def spending_series(
    conn: AsyncConnection,
    account: AccountInfo,
    granularity: SpendingPeriod,
    start: datetime,
    end: datetime,
) -> list[SpendingBucket]:
    # Refuse before building the windows: a decade of hours is 87,600 of them.
    if (end - start) / _NOMINAL[granularity] > MAX_SERIES_WINDOWS:
        raise InvalidInputError(
            f"too many {granularity} windows from {start} to {end}; at most {MAX_SERIES_WINDOWS}"
        )
    windows = windows_between(granularity, start, end, account.zone)
    if not windows:
        return []
    first, _ = utc_window(windows[0])
    _, last = utc_window(windows[-1])
    starts = [utc_window(window)[0] for window in windows]
    spent = [0] * len(windows)
    counts = [0] * len(windows)
    result = await conn.execute(
        _in_window(
            account,
            first,
            last,
            rollups.c.bucket_start,
            func.sum(rollups.c.spent_nano),
            func.sum(rollups.c.request_count),
        ).group_by(rollups.c.bucket_start)
    )
    for bucket, spent_value, count_value in result:
        index = bisect_right(starts, bucket) - 1
        spent[index] += _sum(spent_value)
        counts[index] += _sum(count_value)
    return [
        SpendingBucket(
            start=window.start, end=window.end, spent=from_nano(spent[i]), request_count=counts[i]
        )
        for i, window in enumerate(windows)
    ]


async def policy(conn: AsyncConnection, account: AccountInfo) -> BudgetPolicy:
    row = (
        await conn.execute(
            select(
                accounts.c.per_request_limit_nano,
                accounts.c.daily_limit_nano,
                accounts.c.monthly_limit_nano,
                accounts.c.low_balance_threshold_nano,
            ).where(accounts.c.id == account.row_id)
        )
    ).one()
    return policy_from_nano(*row)


async def list_accounts(conn: AsyncConnection) -> list[AccountRef]:
    result = await conn.execute(
        select(
            accounts.c.user_id, accounts.c.project_id, accounts.c.currency, accounts.c.timezone
        ).order_by(accounts.c.id)
    )
    return [AccountRef(user_id=u, project_id=p, currency=c, timezone=tz) for u, p, c, tz in result]


async def list_entries(
    conn: AsyncConnection, account: AccountInfo, limit: int, before: str | None
) -> list[LedgerEntry]:
    """Newest first; ``before`` is an entry id of this account to page back from."""
    query = select(entries).where(entries.c.account_id == account.row_id)
    if before is not None:
        anchor = await conn.scalar(
            select(entries.c.id).where(
                entries.c.entry_id == before, entries.c.account_id == account.row_id
            )
        )
        if anchor is None:
            raise NotFoundError(f"no entry {before!r} on this account", entry_id=before)
        query = query.where(entries.c.id < anchor)
    result = await conn.execute(query.order_by(entries.c.id.desc()).limit(limit))
    return [entry_model(account.user_id, account.project_id, row._mapping) for row in result]


async def reservation(
    conn: AsyncConnection, reservation_id: str, at: datetime
) -> BudgetReservation:
    """A hold as stored; a pending one past its expiry shows as expired (it can no longer
    settle), though its funds stay held until a write or a sweep releases it."""
    row = (
        await conn.execute(
            select(reservations, accounts.c.user_id, accounts.c.project_id)
            .join(accounts, accounts.c.id == reservations.c.account_id)
            .where(reservations.c.reservation_id == reservation_id)
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no reservation {reservation_id!r}", reservation_id=reservation_id)
    state = ReservationStatus(row.status)
    if state is ReservationStatus.PENDING and row.expires_at <= at:
        state = ReservationStatus.EXPIRED
    return BudgetReservation(
        reservation_id=row.reservation_id,
        user_id=row.user_id,
        project_id=row.project_id,
        amount=from_nano(row.amount_nano),
        status=state,
        created_at=row.created_at,
        expires_at=row.expires_at,
        request_id=row.request_id,
        settled_amount=None if row.settled_nano is None else from_nano(row.settled_nano),
        resolved_at=row.resolved_at,
    )
