"""The read side: balances, status, spending and analytics as single indexed statements.

Each read is one statement (a consistent snapshot without a transaction) on the ledger's
read connections. Spending comes from the rollups, never from the entries: a day, week,
month or year sums at most one daily row per day and (provider, model) of the account, the
hourly period one hourly row per (provider, model), each a range scan of the rollup's
primary key, so the cost does not depend on how many entries exist.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from smartspace_budget.errors import InvalidInputError, NotFoundError
from smartspace_budget.ledger.buckets import uses_daily, utc_window, utc_window_of, window_of
from smartspace_budget.ledger.driver import ReadDriver
from smartspace_budget.ledger.sql import HOLD_COLUMNS, SqlDialect
from smartspace_budget.ledger.state import entry_model, policy_from_nano
from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    LedgerEntry,
    PredictionStats,
    ReservationStatus,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
)
from smartspace_budget.models._trusted import builder
from smartspace_budget.models.output_sketch import OutputHistory, OutputScope
from smartspace_budget.models.replay import (
    LINEAR_LIMIT,
    LinearCase,
    LinearPricing,
    LinearTotals,
    UsageShape,
)
from smartspace_budget.money import from_nano, quantize
from smartspace_budget.periods import SpendingPeriod, windows_between

__all__ = ["MAX_SERIES_WINDOWS", "AccountInfo", "Reads"]

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
_ENTRY_SELECT = (
    "entry_id, kind, amount_nano, hold_nano, balance_after_nano, occurred_at, provider, model, "
    "reservation_id, request_id, reason"
)
_LIMITS = "per_request_limit_nano, daily_limit_nano, monthly_limit_nano, low_balance_threshold_nano"
_bucket = builder(SpendingBucket)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What never changes about an account: its row id, timezone and currency."""

    row_id: int
    user_id: str
    project_id: str
    timezone: str
    zone: ZoneInfo
    currency: str


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _table(period: SpendingPeriod) -> tuple[str, str]:
    if uses_daily(period):
        return "ledger_daily_rollups", "day_start"
    return "ledger_rollups", "bucket_start"


def _money(nano: int | None) -> Decimal | None:
    return None if nano is None else from_nano(nano)


_PLAIN_TEST = (
    f"usage_detail IS NULL AND COALESCE(input_tokens, 0) <= {LINEAR_LIMIT} "
    f"AND COALESCE(output_tokens, 0) <= {LINEAR_LIMIT}"
)
_PLAIN = (
    "account_id = $1 AND kind = 'usage' AND occurred_at >= $2 AND occurred_at < $3 "
    f"AND {_PLAIN_TEST}"
)


def _half_even_sql(numerator: str, denominator: int) -> str:
    """``numerator / denominator`` rounded half-even, in SQL integer arithmetic (>= 0)."""
    if denominator == 1:
        return numerator
    q, r = f"({numerator} / {denominator})", f"({numerator} % {denominator})"
    return (
        f"({q} + CASE WHEN 2 * {r} > {denominator} OR (2 * {r} = {denominator} "
        f"AND {q} % 2 = 1) THEN 1 ELSE 0 END)"
    )


def _rounded(case: LinearCase) -> str:
    """A call's base in nano-USDC for ``case``: its linear numerator, rounded."""
    terms = [
        f"{int(n)} * {column}"
        for n, column in zip(case.numerators[:5], ("i", "o", "c", "w", "r"), strict=True)
        if n
    ]
    request = int(case.numerators[5])
    if request:
        terms.append(str(request))
    numerator = f"({' + '.join(terms) or '0'})"
    return _half_even_sql(numerator, int(case.denominator))


class Reads:
    """The read statements of one database, run on ``driver``."""

    def __init__(self, driver: ReadDriver, sql: SqlDialect) -> None:
        self._driver = driver
        self._sql = sql

    async def _rows(self, sql: str, *params: Any) -> list[Any]:
        return await self._driver.fetch(self._sql.text(sql), params)

    async def find_account(self, user_id: str, project_id: str) -> AccountInfo:
        rows = await self._rows(
            "SELECT id, timezone, currency FROM ledger_accounts "
            "WHERE user_id = $1 AND project_id = $2",
            user_id,
            project_id,
        )
        if not rows:
            raise NotFoundError(
                f"no account for user {user_id!r}, project {project_id!r}",
                user_id=user_id,
                project_id=project_id,
            )
        row_id, timezone, currency = rows[0]
        return AccountInfo(row_id, user_id, project_id, timezone, ZoneInfo(timezone), currency)

    async def balance(self, account: AccountInfo, at: datetime) -> Balance:
        ((balance, reserved),) = await self._rows(
            "SELECT balance_nano, reserved_nano FROM ledger_accounts WHERE id = $1",
            account.row_id,
        )
        return Balance(
            total_balance=from_nano(balance),
            available_balance=from_nano(balance - reserved),
            reserved_amount=from_nano(reserved),
            currency=account.currency,
            as_of=at,
        )

    async def status(self, account: AccountInfo, at: datetime) -> BudgetStatus:
        day = utc_window_of(SpendingPeriod.DAILY, at, account.zone)
        month = utc_window_of(SpendingPeriod.MONTHLY, at, account.zone)
        window_sum = (
            "(SELECT COALESCE(SUM(spent_nano), 0) FROM ledger_daily_rollups "
            "WHERE account_id = a.id AND day_start >= ${} AND day_start < ${})"
        )
        ts = self._sql.ts
        (
            (balance, reserved, spent, per_request, daily, monthly, low, today, this_month),
        ) = await self._rows(
            f"SELECT balance_nano, reserved_nano, spent_nano, {_LIMITS}, "
            f"{window_sum.format(2, 3)}, {window_sum.format(4, 5)} "
            "FROM ledger_accounts AS a WHERE a.id = $1",
            account.row_id,
            ts(day[0]),
            ts(day[1]),
            ts(month[0]),
            ts(month[1]),
        )
        return BudgetStatus(
            total_balance=from_nano(balance),
            available_balance=from_nano(balance - reserved),
            reserved_amount=from_nano(reserved),
            spent_today=from_nano(_int(today)),
            spent_this_month=from_nano(_int(this_month)),
            spent_total=from_nano(spent),
            daily_limit=_money(daily),
            monthly_limit=_money(monthly),
            per_request_limit=_money(per_request),
            low_balance_threshold=_money(low),
            currency=account.currency,
            timezone=account.timezone,
            as_of=at,
        )

    async def spending(
        self, account: AccountInfo, period: SpendingPeriod, at: datetime
    ) -> SpendingSummary:
        window = window_of(period, at, account.zone)
        start, end = utc_window(window)
        table, column = _table(period)
        ((spent, requests),) = await self._rows(
            f"SELECT SUM(spent_nano), SUM(request_count) FROM {table} "
            f"WHERE account_id = $1 AND {column} >= $2 AND {column} < $3",
            account.row_id,
            self._sql.ts(start),
            self._sql.ts(end),
        )
        return SpendingSummary(
            period=period,
            period_start=window.start,
            period_end=window.end,
            total_spent=from_nano(_int(spent)),
            request_count=_int(requests),
            currency=account.currency,
        )

    async def analytics(
        self, account: AccountInfo, period: SpendingPeriod, at: datetime
    ) -> SpendingAnalytics:
        """Totals and breakdowns; refunds not tied to a usage entry count only in the total."""
        window = window_of(period, at, account.zone)
        start, end = utc_window(window)
        table, column = _table(period)
        rows = await self._rows(
            f"SELECT provider, model, SUM(spent_nano), SUM(request_count), "
            f"SUM(predicted_calls), SUM(missed_calls) FROM {table} "
            f"WHERE account_id = $1 AND {column} >= $2 AND {column} < $3 "
            "GROUP BY provider, model",
            account.row_id,
            self._sql.ts(start),
            self._sql.ts(end),
        )
        total = requests = 0
        by_provider: dict[str, int] = {}
        requests_by_provider: dict[str, int] = {}
        by_model: dict[str, int] = {}
        requests_by_model: dict[str, int] = {}
        predictions: dict[str, PredictionStats] = {}
        predicted_total = missed_total = 0
        for provider, model, spent_value, count_value, predicted_value, missed_value in rows:
            spent, count = _int(spent_value), _int(count_value)
            predicted, missed = _int(predicted_value), _int(missed_value)
            if predicted:
                predicted_total += predicted
                missed_total += missed
                known = predictions.get(f"{provider}/{model}")
                if known is not None:
                    predicted += known.predicted_calls
                    missed += known.missed_calls
                predictions[f"{provider}/{model}"] = PredictionStats.of(predicted, missed)
            total += spent
            requests += count
            if provider:
                by_provider[provider] = by_provider.get(provider, 0) + spent
                requests_by_provider[provider] = requests_by_provider.get(provider, 0) + count
            if model:
                by_model[model] = by_model.get(model, 0) + spent
                requests_by_model[model] = requests_by_model.get(model, 0) + count
        average = quantize(from_nano(total) / requests) if requests else from_nano(0)
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
            predictions=PredictionStats.of(predicted_total, missed_total),
            predictions_by_model=predictions,
        )

    async def output_history(
        self,
        account: AccountInfo | None,
        project_id: str,
        provider: str,
        model: str,
        min_samples: int,
    ) -> OutputHistory:
        """The output sketch of ``provider/model`` for the account (``None``: it has no row
        yet), else its project, else every account: the first with ``min_samples`` calls.

        Each scope is one grouped read of the sketch table (at most a few hundred buckets
        per account), never of the entries.
        """
        reads: list[tuple[OutputScope, str, tuple[Any, ...]]] = []
        if account is not None:
            reads.append(
                (
                    OutputScope.ACCOUNT,
                    "SELECT bucket, calls FROM ledger_output_sketches "
                    "WHERE account_id = $1 AND provider = $2 AND model = $3 ORDER BY bucket",
                    (account.row_id, provider, model),
                )
            )
        reads.append(
            (
                OutputScope.PROJECT,
                "SELECT s.bucket, SUM(s.calls) FROM ledger_output_sketches AS s "
                "JOIN ledger_accounts AS a ON a.id = s.account_id "
                "WHERE a.project_id = $1 AND s.provider = $2 AND s.model = $3 "
                "GROUP BY s.bucket ORDER BY s.bucket",
                (project_id, provider, model),
            )
        )
        reads.append(
            (
                OutputScope.ALL,
                "SELECT bucket, SUM(calls) FROM ledger_output_sketches "
                "WHERE provider = $1 AND model = $2 GROUP BY bucket ORDER BY bucket",
                (provider, model),
            )
        )
        history = OutputHistory(provider=provider, model=model, scope=OutputScope.ALL, samples=0)
        for scope, sql, params in reads:
            rows = await self._rows(sql, *params)
            buckets = [(int(bucket), int(calls)) for bucket, calls in rows if calls]
            samples = sum(calls for _, calls in buckets)
            history = OutputHistory(
                provider=provider, model=model, scope=scope, samples=samples, buckets=buckets
            )
            if samples >= min_samples:
                break
        return history

    async def usage_shapes(
        self, account: AccountInfo, start: datetime, end: datetime, include_plain: bool = True
    ) -> list[UsageShape]:
        """The account's usage entries in ``[start, end)`` grouped by provider, model, UTC
        minute and usage (every token column and ``usage_detail``): one row per group,
        with the calls and what they were charged. A month of a million calls is as many
        rows as it has distinct (model, minute, usage) groups, read in one statement."""
        plain = "" if include_plain else f" AND NOT ({_PLAIN_TEST})"
        minute = (
            "substr(occurred_at, 1, 16)"
            if self._sql.name == "sqlite"
            else "date_trunc('minute', occurred_at)"
        )
        shape = (
            "input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, "
            "reasoning_tokens, usage_detail"
        )
        rows = await self._rows(
            f"SELECT provider, model, {minute} AS minute, {shape}, COUNT(*), "
            "SUM(-amount_nano), SUM(CASE WHEN cost_is_estimate THEN 1 ELSE 0 END) "
            "FROM ledger_entries WHERE account_id = $1 AND kind = 'usage' "
            f"AND occurred_at >= $2 AND occurred_at < $3{plain} "
            f"GROUP BY provider, model, minute, {shape} ORDER BY minute",
            account.row_id,
            self._sql.ts(start),
            self._sql.ts(end),
        )
        shapes = []
        for (
            provider,
            model,
            at,
            input_tokens,
            output_tokens,
            cached,
            written,
            reasoning,
            detail,
            calls,
            charged,
            estimated,
        ) in rows:
            instant = (
                datetime.fromisoformat(at).replace(tzinfo=UTC)
                if isinstance(at, str)
                else at.astimezone(UTC)
            )
            shapes.append(
                # Built from the ledger's own rows without validating them again: a month
                # may have a million groups.
                UsageShape.model_construct(
                    provider=provider or "",
                    model=model or "",
                    minute=instant,
                    input_tokens=_int(input_tokens),
                    output_tokens=_int(output_tokens),
                    cached_input_tokens=_int(cached),
                    cache_write_tokens=_int(written),
                    reasoning_tokens=_int(reasoning),
                    detail=detail,
                    calls=int(calls),
                    charged=from_nano(_int(charged)),
                    estimated_calls=_int(estimated),
                )
            )
        return shapes

    async def usage_by_model(
        self, account: AccountInfo, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, int, int]]:
        """Per recorded model in ``[start, end)``: calls, nano-USDC charged, and calls
        charged at their hold."""
        rows = await self._rows(
            "SELECT provider, model, COUNT(*), SUM(-amount_nano), "
            "SUM(CASE WHEN cost_is_estimate THEN 1 ELSE 0 END) FROM ledger_entries "
            "WHERE account_id = $1 AND kind = 'usage' AND occurred_at >= $2 "
            "AND occurred_at < $3 GROUP BY provider, model ORDER BY provider, model",
            account.row_id,
            self._sql.ts(start),
            self._sql.ts(end),
        )
        return [(p or "", m or "", int(n), _int(c), _int(e)) for p, m, n, c, e in rows]

    async def linear_totals(
        self, account: AccountInfo, start: datetime, end: datetime, pricing: LinearPricing
    ) -> LinearTotals:
        """One target's price of the account's plain usage in ``[start, end)``, summed in
        the database: every call rounded as a charge is (see ``pricing/replay.py``).

        Plain usage is what the linear replay covers: no ``usage_detail`` (token columns
        only, one request) and counts up to :data:`LINEAR_LIMIT`; the rest is read as
        groups (:meth:`usage_shapes` with ``plain=False``).
        """
        params: list[Any] = [account.row_id, self._sql.ts(start), self._sql.ts(end)]

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        where = _PLAIN
        if pricing.provider is not None and pricing.model is not None:
            where += f" AND provider = {param(pricing.provider)} AND model = {param(pricing.model)}"
        tod = (
            "substr(occurred_at, 12)"
            if self._sql.name == "sqlite"
            else ("(occurred_at AT TIME ZONE 'UTC')::time")
        )
        kinds, bases = [], []
        if pricing.max_input is not None:
            kinds.append(f"WHEN i > {int(pricing.max_input)} THEN 2")
        if pricing.max_output is not None:
            kinds.append(f"WHEN o > {int(pricing.max_output)} THEN 3")
        for case in pricing.cases:
            test = []
            if case.start is not None:
                test.append(f"at >= {param(self._sql.ts(case.start))}")
            if case.end is not None:
                test.append(f"at < {param(self._sql.ts(case.end))}")
            if case.time_from is not None and case.time_to is not None:
                low, high = self._time(case.time_from), self._time(case.time_to)
                join = "OR" if case.time_to < case.time_from else "AND"
                test.append(f"(tod >= {low} {join} tod < {high})")
            test.append(f"i >= {int(case.input_from)}")
            if case.input_to is not None:
                test.append(f"i < {int(case.input_to)}")
            condition = " AND ".join(test)
            kinds.append(f"WHEN {condition} THEN 1")
            bases.append(f"WHEN {condition} THEN {_rounded(case)}")
        kind = f"CASE {' '.join(kinds)} ELSE 4 END" if kinds else "4"
        base = f"CASE {' '.join(bases)} ELSE 0 END" if bases else "0"
        fee_den = int(pricing.fee_denominator) * 100
        fee = _half_even_sql(f"(b * {int(pricing.fee_numerator)})", fee_den)
        sql = (
            "SELECT COALESCE(SUM(CASE WHEN k = 1 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k = 1 THEN b ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN k = 1 THEN b + {fee} ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k = 1 THEN charged ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k = 2 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k = 3 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k IN (2, 3) THEN charged ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k = 4 THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN k = 4 THEN charged ELSE 0 END), 0) "
            f"FROM (SELECT charged, k, CASE WHEN k = 1 THEN {base} ELSE 0 END AS b FROM ("
            f"SELECT charged, at, tod, i, o, c, w, r, {kind} AS k FROM ("
            f"SELECT -amount_nano AS charged, occurred_at AS at, {tod} AS tod, "
            "COALESCE(input_tokens, 0) AS i, COALESCE(output_tokens, 0) AS o, "
            "COALESCE(cached_input_tokens, 0) AS c, COALESCE(cache_write_tokens, 0) AS w, "
            "COALESCE(reasoning_tokens, 0) AS r "
            f"FROM ledger_entries WHERE {where}) AS e) AS kinds) AS priced"
        )
        ((row),) = await self._rows(sql, *params)
        return LinearTotals(*(int(value) for value in row))

    def _time(self, value: time) -> str:
        text = value.replace(tzinfo=None).isoformat()
        return f"'{text}'" if self._sql.name == "sqlite" else f"TIME '{text}'"

    async def spending_series(
        self,
        account: AccountInfo,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        # Refuse before building the windows: a decade of hours is 87,600 of them.
        if (end - start) / _NOMINAL[granularity] > MAX_SERIES_WINDOWS:
            raise InvalidInputError(
                f"too many {granularity} windows from {start} to {end}; "
                f"at most {MAX_SERIES_WINDOWS}"
            )
        windows = windows_between(granularity, start, end, account.zone)
        if not windows:
            return []
        starts = [window.start.astimezone(UTC) for window in windows]
        table, column = _table(granularity)
        rows = await self._rows(
            f"SELECT {column}, SUM(spent_nano), SUM(request_count) FROM {table} "
            f"WHERE account_id = $1 AND {column} >= $2 AND {column} < $3 GROUP BY {column}",
            account.row_id,
            self._sql.ts(starts[0]),
            self._sql.ts(utc_window(windows[-1])[1]),
        )
        spent = [0] * len(windows)
        counts = [0] * len(windows)
        for bucket, spent_value, count_value in rows:
            bucket_start = self._sql.ts_out(bucket)
            assert bucket_start is not None  # a primary-key column
            index = bisect_right(starts, bucket_start) - 1
            spent[index] += _int(spent_value)
            counts[index] += _int(count_value)
        # Built from the values computed here (aware datetimes, exact amounts, counts that
        # are sums of non-negative counts), without validating them again: a month of days
        # is 30 buckets on every analytics read (models/_trusted.py).
        zero = from_nano(0)
        return [
            _bucket(
                {
                    "start": window.start,
                    "end": window.end,
                    "spent": from_nano(spent[index]) if spent[index] else zero,
                    "request_count": counts[index],
                }
            )
            for index, window in enumerate(windows)
        ]

    async def policy(self, account: AccountInfo) -> BudgetPolicy:
        ((per_request, daily, monthly, low),) = await self._rows(
            f"SELECT {_LIMITS} FROM ledger_accounts WHERE id = $1", account.row_id
        )
        return policy_from_nano(per_request, daily, monthly, low)

    async def list_accounts(self) -> list[AccountRef]:
        rows = await self._rows(
            "SELECT user_id, project_id, currency, timezone FROM ledger_accounts ORDER BY id"
        )
        return [
            AccountRef(user_id=user, project_id=project, currency=currency, timezone=zone)
            for user, project, currency, zone in rows
        ]

    async def list_entries(
        self, account: AccountInfo, limit: int, before: str | None
    ) -> list[LedgerEntry]:
        """Newest first; ``before`` is an entry id of this account to page back from."""
        if before is None:
            rows = await self._rows(
                f"SELECT {_ENTRY_SELECT} FROM ledger_entries WHERE account_id = $1 "
                "ORDER BY id DESC LIMIT $2",
                account.row_id,
                limit,
            )
        else:
            anchor = await self._rows(
                "SELECT id FROM ledger_entries WHERE entry_id = $1 AND account_id = $2",
                before,
                account.row_id,
            )
            if not anchor:
                raise NotFoundError(f"no entry {before!r} on this account", entry_id=before)
            rows = await self._rows(
                f"SELECT {_ENTRY_SELECT} FROM ledger_entries WHERE account_id = $1 AND id < $2 "
                "ORDER BY id DESC LIMIT $3",
                account.row_id,
                anchor[0][0],
                limit,
            )
        names = [name.strip() for name in _ENTRY_SELECT.split(",")]
        entries = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            values["occurred_at"] = self._sql.ts_out(values["occurred_at"])
            entries.append(entry_model(account.user_id, account.project_id, values))
        return entries

    async def next_hold_expiry(self, account: AccountInfo) -> datetime | None:
        """When the account's first pending hold expires (``None``: it holds nothing)."""
        rows = await self._rows(
            "SELECT expires_at FROM ledger_reservations WHERE account_id = $1 "
            "AND status = 'pending' ORDER BY expires_at LIMIT 1",
            account.row_id,
        )
        return self._sql.ts_out(rows[0][0]) if rows else None

    async def any_overdue(self, at: datetime) -> bool:
        """Whether any pending hold of any account expired at or before ``at``."""
        rows = await self._rows(
            "SELECT 1 FROM ledger_reservations WHERE status = 'pending' AND expires_at <= $1 "
            "LIMIT 1",
            self._sql.ts(at),
        )
        return bool(rows)

    async def reservation(self, reservation_id: str, at: datetime) -> BudgetReservation:
        """A hold as stored; a pending one past its expiry shows as expired (it can no longer
        settle), though its funds stay held until a write or a sweep releases it."""
        rows = await self._rows(
            f"SELECT {', '.join('r.' + name for name in HOLD_COLUMNS)}, a.user_id, a.project_id "
            "FROM ledger_reservations AS r JOIN ledger_accounts AS a ON a.id = r.account_id "
            "WHERE r.reservation_id = $1",
            reservation_id,
        )
        if not rows:
            raise NotFoundError(f"no reservation {reservation_id!r}", reservation_id=reservation_id)
        row = rows[0]
        hold = self._sql.decode_hold(row[: len(HOLD_COLUMNS)])
        user_id, project_id = row[len(HOLD_COLUMNS) :]
        status = ReservationStatus(hold["status"])
        if status is ReservationStatus.PENDING and hold["expires_at"] <= at:
            status = ReservationStatus.EXPIRED
        return BudgetReservation(
            reservation_id=hold["reservation_id"],
            user_id=user_id,
            project_id=project_id,
            amount=from_nano(hold["amount_nano"]),
            status=status,
            created_at=hold["created_at"],
            expires_at=hold["expires_at"],
            request_id=hold["request_id"],
            settled_amount=_money(hold["settled_nano"]),
            resolved_at=hold["resolved_at"],
        )
