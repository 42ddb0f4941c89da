"""The ledger's hot-path SQL for SQLite and PostgreSQL, in one place.

Writes and the frequent reads talk to the driver directly (``sqlite3`` in its own threads,
``asyncpg``) with statements built once, rather than through SQLAlchemy's execution layer,
which costs more per statement than a whole SQLite write. The tables are still SQLAlchemy's
(``tables.py``, migrated by Alembic); this module only speaks to them.

A batch of any size is loaded with a few statements and written with one statement per
table (SQLite: ``executemany``, no round trips to save) or one statement in all
(PostgreSQL: data-modifying CTEs over ``unnest``-ed arrays, one round trip). Lists travel as
JSON arrays read by ``json_each`` on SQLite and as typed arrays on PostgreSQL. Statements
are written with ``$N`` placeholders; SQLite's numbered ``?N`` is the same with another sign.

Instants are aware UTC datetimes in Python; SQLite stores them as naive UTC text in the
fixed-width format SQLAlchemy uses for its ``DateTime`` type, so both layers read each
other's rows.
"""

from __future__ import annotations

import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ACCOUNT_COLUMNS",
    "ENTRY_COLUMNS",
    "HOLD_COLUMNS",
    "IDEMPOTENCY_COLUMNS",
    "ROLLUP_COLUMNS",
    "Call",
    "Changes",
    "PostgresSql",
    "SqlDialect",
    "SqliteSql",
    "sql_for",
]

ACCOUNT_COLUMNS = (
    "id",
    "user_id",
    "project_id",
    "currency",
    "timezone",
    "balance_nano",
    "reserved_nano",
    "spent_nano",
    "per_request_limit_nano",
    "daily_limit_nano",
    "monthly_limit_nano",
    "low_balance_threshold_nano",
    "created_at",
    "updated_at",
)
ACCOUNT_UPDATE_COLUMNS = (
    "id",
    "balance_nano",
    "reserved_nano",
    "spent_nano",
    "per_request_limit_nano",
    "daily_limit_nano",
    "monthly_limit_nano",
    "low_balance_threshold_nano",
    "updated_at",
)
HOLD_COLUMNS = (
    "reservation_id",
    "account_id",
    "amount_nano",
    "status",
    "created_at",
    "expires_at",
    "request_id",
    "settled_nano",
    "resolved_at",
    "usage_entry_id",
)
HOLD_UPDATE_COLUMNS = ("reservation_id", "status", "settled_nano", "resolved_at", "usage_entry_id")
ENTRY_COLUMNS = (
    "account_id",
    "entry_id",
    "kind",
    "amount_nano",
    "hold_nano",
    "balance_after_nano",
    "occurred_at",
    "recorded_at",
    "bucket_start",
    "day_start",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated_cost_nano",
    "cost_is_estimate",
    "price_version",
    "request_id",
    "reservation_id",
    "refund_of",
    "reason",
    "tags",
    "idempotency_key",
)
ROLLUP_SUMS = (
    "spent_nano",
    "request_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
ROLLUP_COLUMNS = ("account_id", "bucket_start", "provider", "model", *ROLLUP_SUMS)
DAILY_ROLLUP_COLUMNS = ("account_id", "day_start", "provider", "model", *ROLLUP_SUMS)
IDEMPOTENCY_COLUMNS = ("account_id", "key", "operation", "fingerprint", "result", "created_at")

_TIME_COLUMNS = frozenset(
    {
        "created_at",
        "updated_at",
        "expires_at",
        "resolved_at",
        "occurred_at",
        "recorded_at",
        "bucket_start",
        "day_start",
    }
)
_TEXT_COLUMNS = frozenset(
    {
        "user_id",
        "project_id",
        "currency",
        "timezone",
        "reservation_id",
        "status",
        "request_id",
        "usage_entry_id",
        "entry_id",
        "kind",
        "provider",
        "model",
        "price_version",
        "refund_of",
        "reason",
        "tags",
        "idempotency_key",
        "key",
        "operation",
        "fingerprint",
        "result",
    }
)
_SELECT_ACCOUNT = ", ".join(f"a.{name}" for name in ACCOUNT_COLUMNS)
_SELECT_HOLD = ", ".join(HOLD_COLUMNS)
_TARGETS = (
    "SELECT e.entry_id, e.account_id, e.amount_nano, e.provider, e.model, "
    "(SELECT COALESCE(SUM(r.amount_nano), 0) FROM ledger_entries AS r "
    "WHERE r.refund_of = e.entry_id) "
    "FROM ledger_entries AS e WHERE e.kind = 'usage' AND e.entry_id IN ({ids})"
)


def _conflict(bucket: str, table: str) -> str:
    return f"ON CONFLICT (account_id, {bucket}, provider, model) DO UPDATE SET " + ", ".join(
        f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS
    )


# Tables a batch writes: (Changes attribute, table, columns, suffix of the INSERT).
_INSERTS = (
    ("entries", "ledger_entries", ENTRY_COLUMNS, ""),
    ("holds_new", "ledger_reservations", HOLD_COLUMNS, ""),
    ("rollups", "ledger_rollups", ROLLUP_COLUMNS, _conflict("bucket_start", "ledger_rollups")),
    (
        "daily_rollups",
        "ledger_daily_rollups",
        DAILY_ROLLUP_COLUMNS,
        _conflict("day_start", "ledger_daily_rollups"),
    ),
    ("idempotency", "ledger_idempotency", IDEMPOTENCY_COLUMNS, ""),
)


@functools.cache
def _time_positions(columns: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(index for index, name in enumerate(columns) if name in _TIME_COLUMNS)


def _pg_type(name: str) -> str:
    if name in _TIME_COLUMNS:
        return "timestamptz"
    if name in _TEXT_COLUMNS:
        return "text"
    if name == "cost_is_estimate":
        return "boolean"
    return "bigint"


@dataclass(frozen=True, slots=True)
class Call:
    """One statement for a driver: ``mode`` is ``rows``, ``scalar``, ``many`` or ``exec``."""

    mode: str
    sql: str
    params: Sequence[Any] = ()


@dataclass(slots=True)
class Changes:
    """Rows a batch writes, each a tuple in the order of its ``*_COLUMNS`` (Python values)."""

    accounts: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    holds_new: list[tuple[Any, ...]] = field(default_factory=list)
    holds_resolved: list[tuple[Any, ...]] = field(default_factory=list)
    rollups: list[tuple[Any, ...]] = field(default_factory=list)
    daily_rollups: list[tuple[Any, ...]] = field(default_factory=list)
    idempotency: list[tuple[Any, ...]] = field(default_factory=list)


class SqlDialect(ABC):
    """What differs between the databases: placeholders, lists, instants, row locks."""

    name = ""

    @abstractmethod
    def ts(self, value: datetime | None) -> Any:
        """An instant as the driver binds it."""

    @abstractmethod
    def ts_out(self, value: Any) -> datetime | None:
        """An instant as the driver returns it, made an aware UTC datetime."""

    @abstractmethod
    def text(self, sql: str) -> str:
        """A statement written with ``$N`` placeholders, in this database's style."""

    @abstractmethod
    def lock_accounts(
        self,
        keys: Sequence[tuple[str, str]],
        row_ids: Sequence[int],
        reservation_ids: Sequence[str],
        idempotency_keys: Sequence[str],
    ) -> Call:
        """Accounts named by key, by id, or by one of their reservations, locked in id order,
        each with its stored results for ``idempotency_keys`` (one row per match)."""

    @abstractmethod
    def load_holds(
        self,
        reservation_ids: Sequence[str],
        account_ids: Sequence[int],
        overdue_at: datetime | None,
    ) -> Call:
        """The named reservations, and the pending ones of ``account_ids`` due by ``overdue_at``."""

    @abstractmethod
    def load_targets(self, entry_ids: Sequence[str]) -> Call:
        """Usage entries with the sum refunded of each so far."""

    @abstractmethod
    def write(self, changes: Changes) -> list[Call]:
        """The statements that store ``changes`` (after new accounts have their ids)."""

    def expire_candidates(self, at: datetime, limit: int) -> Call:
        return Call(
            "rows",
            self.text(
                "SELECT reservation_id, account_id FROM ledger_reservations "
                "WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
            ),
            (self.ts(at), limit),
        )

    def window_spend(self, account_id: int, start: datetime, end: datetime) -> Call:
        """Net spending in ``[start, end)``, a window of whole local days."""
        return Call(
            "scalar",
            self.text(
                "SELECT COALESCE(SUM(spent_nano), 0) FROM ledger_daily_rollups "
                "WHERE account_id = $1 AND day_start >= $2 AND day_start < $3"
            ),
            (account_id, self.ts(start), self.ts(end)),
        )

    def insert_account(self, values: tuple[Any, ...]) -> Call:
        columns = ACCOUNT_COLUMNS[1:]
        placeholders = ", ".join(f"${index}" for index in range(1, len(columns) + 1))
        return Call(
            "scalar",
            self.text(
                f"INSERT INTO ledger_accounts ({', '.join(columns)}) "
                f"VALUES ({placeholders}) RETURNING id"
            ),
            self.encode(columns, values),
        )

    def encode(self, columns: tuple[str, ...], row: Sequence[Any]) -> tuple[Any, ...]:
        """``row`` with its instants converted for the driver."""
        if len(row) != len(columns):
            raise ValueError(f"{len(row)} values for {len(columns)} columns")
        times = _time_positions(columns)
        if not times:
            return tuple(row)
        values = list(row)
        for index in times:
            values[index] = self.ts(values[index])
        return tuple(values)

    def decode_account(self, row: Sequence[Any]) -> dict[str, Any]:
        values = dict(zip(ACCOUNT_COLUMNS, row[: len(ACCOUNT_COLUMNS)], strict=True))
        values["created_at"] = self.ts_out(values["created_at"])
        values["updated_at"] = self.ts_out(values["updated_at"])
        return values

    def decode_hold(self, row: Sequence[Any]) -> dict[str, Any]:
        values = dict(zip(HOLD_COLUMNS, row, strict=True))
        for name in ("created_at", "expires_at", "resolved_at"):
            values[name] = self.ts_out(values[name])
        return values


class SqliteSql(SqlDialect):
    """SQLite: ``?N`` placeholders, JSON arrays, no row locks (the write lock is held)."""

    name = "sqlite"

    def ts(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def ts_out(self, value: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def text(self, sql: str) -> str:
        return _sqlite_text(sql)

    def lock_accounts(
        self,
        keys: Sequence[tuple[str, str]],
        row_ids: Sequence[int],
        reservation_ids: Sequence[str],
        idempotency_keys: Sequence[str],
    ) -> Call:
        if not row_ids and not reservation_ids:
            return Call(
                "rows",
                _SQLITE_LOCK_BY_KEY,
                (json.dumps(list(keys)), json.dumps(list(idempotency_keys))),
            )
        return Call(
            "rows",
            _SQLITE_LOCK,
            (
                json.dumps(list(keys)),
                json.dumps(list(row_ids)),
                json.dumps(list(reservation_ids)),
                json.dumps(list(idempotency_keys)),
            ),
        )

    def load_holds(
        self,
        reservation_ids: Sequence[str],
        account_ids: Sequence[int],
        overdue_at: datetime | None,
    ) -> Call:
        return Call(
            "rows",
            _SQLITE_HOLDS,
            (
                json.dumps(list(reservation_ids)),
                json.dumps(list(account_ids) if overdue_at is not None else []),
                self.ts(overdue_at) if overdue_at is not None else "",
            ),
        )

    def load_targets(self, entry_ids: Sequence[str]) -> Call:
        return Call("rows", _SQLITE_TARGETS, (json.dumps(list(entry_ids)),))

    def write(self, changes: Changes) -> list[Call]:
        calls = []
        if changes.accounts:
            calls.append(
                Call(
                    "many",
                    _SQLITE_UPDATE_ACCOUNTS,
                    [self.encode(ACCOUNT_UPDATE_COLUMNS, row) for row in changes.accounts],
                )
            )
        for attribute, _, columns, _ in _INSERTS:
            rows = getattr(changes, attribute)
            if rows:
                calls.append(
                    Call(
                        "many",
                        _SQLITE_INSERTS[attribute],
                        [self.encode(columns, row) for row in rows],
                    )
                )
        if changes.holds_resolved:
            calls.append(
                Call(
                    "many",
                    _SQLITE_UPDATE_HOLDS,
                    [self.encode(HOLD_UPDATE_COLUMNS, row) for row in changes.holds_resolved],
                )
            )
        return calls


@functools.lru_cache(maxsize=256)
def _sqlite_text(sql: str) -> str:
    return sql.replace("$", "?")


def _sets(columns: tuple[str, ...]) -> str:
    return ", ".join(f"{name} = ?{index}" for index, name in enumerate(columns[1:], start=2))


_SQLITE_LOCK = (
    f"SELECT {_SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id "
    "AND i.key IN (SELECT value FROM json_each(?4)) "
    "WHERE a.id IN ("
    "SELECT id FROM ledger_accounts WHERE (user_id, project_id) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)) "
    "UNION SELECT value FROM json_each(?2) "
    "UNION SELECT account_id FROM ledger_reservations "
    "WHERE reservation_id IN (SELECT value FROM json_each(?3))) "
    "ORDER BY a.id"
)
_SQLITE_LOCK_BY_KEY = (
    f"SELECT {_SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id "
    "AND i.key IN (SELECT value FROM json_each(?2)) "
    "WHERE (a.user_id, a.project_id) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)) "
    "ORDER BY a.id"
)
_SQLITE_HOLDS = (
    f"SELECT {_SELECT_HOLD} FROM ledger_reservations "
    "WHERE reservation_id IN (SELECT value FROM json_each(?1)) "
    f"UNION SELECT {_SELECT_HOLD} FROM ledger_reservations "
    "WHERE status = 'pending' AND expires_at <= ?3 "
    "AND account_id IN (SELECT value FROM json_each(?2))"
)
_SQLITE_TARGETS = _TARGETS.format(ids="SELECT value FROM json_each(?1)")
_SQLITE_UPDATE_ACCOUNTS = (
    f"UPDATE ledger_accounts SET {_sets(ACCOUNT_UPDATE_COLUMNS)} WHERE id = ?1"
)
_SQLITE_UPDATE_HOLDS = (
    f"UPDATE ledger_reservations SET {_sets(HOLD_UPDATE_COLUMNS)} WHERE reservation_id = ?1"
)
_SQLITE_INSERTS = {
    attribute: f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    f"({', '.join(f'?{index}' for index in range(1, len(columns) + 1))}) {suffix}".rstrip()
    for attribute, table, columns, suffix in _INSERTS
}


class PostgresSql(SqlDialect):
    """PostgreSQL: ``$N`` placeholders, typed arrays, ``FOR UPDATE`` on account rows."""

    name = "postgresql"

    def ts(self, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def ts_out(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def text(self, sql: str) -> str:
        return sql

    def lock_accounts(
        self,
        keys: Sequence[tuple[str, str]],
        row_ids: Sequence[int],
        reservation_ids: Sequence[str],
        idempotency_keys: Sequence[str],
    ) -> Call:
        if not row_ids and not reservation_ids:
            return Call(
                "rows",
                _PG_LOCK_BY_KEY,
                (
                    [user for user, _ in keys],
                    [project for _, project in keys],
                    list(idempotency_keys),
                ),
            )
        return Call(
            "rows",
            _PG_LOCK,
            (
                [user for user, _ in keys],
                [project for _, project in keys],
                list(row_ids),
                list(reservation_ids),
                list(idempotency_keys),
            ),
        )

    def load_holds(
        self,
        reservation_ids: Sequence[str],
        account_ids: Sequence[int],
        overdue_at: datetime | None,
    ) -> Call:
        return Call(
            "rows",
            _PG_HOLDS,
            (
                list(reservation_ids),
                list(account_ids) if overdue_at is not None else [],
                overdue_at or datetime(1970, 1, 1, tzinfo=UTC),
            ),
        )

    def load_targets(self, entry_ids: Sequence[str]) -> Call:
        return Call("rows", _PG_TARGETS, (list(entry_ids),))

    def write(self, changes: Changes) -> list[Call]:
        """Every change in one statement: one round trip however large the batch."""
        present = tuple(
            name
            for name in ("accounts", *(item[0] for item in _INSERTS), "holds_resolved")
            if getattr(changes, name)
        )
        if not present:
            return []
        params: list[Any] = []
        for name in present:
            columns = _PG_COLUMNS[name]
            rows = getattr(changes, name)
            for index, column in enumerate(columns):
                values = [row[index] for row in rows]
                if column in _TIME_COLUMNS:
                    values = [self.ts(value) for value in values]
                params.append(values)
        return [Call("exec", _pg_write(present), params)]


_PG_LOCK = (
    f"SELECT {_SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = ANY($5::text[]) "
    "WHERE a.id IN ("
    "SELECT id FROM ledger_accounts WHERE (user_id, project_id) IN "
    "(SELECT * FROM unnest($1::text[], $2::text[])) "
    "UNION SELECT unnest($3::bigint[]) "
    "UNION SELECT account_id FROM ledger_reservations "
    "WHERE reservation_id = ANY($4::text[])) "
    "ORDER BY a.id FOR UPDATE OF a"
)
_PG_LOCK_BY_KEY = (
    f"SELECT {_SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = ANY($3::text[]) "
    "WHERE (a.user_id, a.project_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
    "ORDER BY a.id FOR UPDATE OF a"
)
_PG_HOLDS = (
    f"SELECT {_SELECT_HOLD} FROM ledger_reservations "
    "WHERE reservation_id = ANY($1::text[]) "
    "OR (status = 'pending' AND expires_at <= $3 AND account_id = ANY($2::bigint[]))"
)
_PG_TARGETS = _TARGETS.format(ids="SELECT unnest($1::text[])")
_PG_COLUMNS = {
    "accounts": ACCOUNT_UPDATE_COLUMNS,
    "holds_resolved": HOLD_UPDATE_COLUMNS,
    **{attribute: columns for attribute, _, columns, _ in _INSERTS},
}


@functools.lru_cache(maxsize=128)
def _pg_write(present: tuple[str, ...]) -> str:
    """The one statement writing the tables in ``present`` (their arrays, in that order)."""
    parts = []
    number = 0

    def arrays(columns: tuple[str, ...]) -> str:
        nonlocal number
        casts = []
        for column in columns:
            number += 1
            casts.append(f"${number}::{_pg_type(column)}[]")
        return f"unnest({', '.join(casts)})"

    inserts = {attribute: (table, suffix) for attribute, table, _, suffix in _INSERTS}
    for index, name in enumerate(present):
        columns = _PG_COLUMNS[name]
        if name == "accounts":
            sets = ", ".join(f"{column} = v.{column}" for column in columns[1:])
            parts.append(
                f"w{index} AS (UPDATE ledger_accounts AS a SET {sets} FROM {arrays(columns)} "
                f"AS v({', '.join(columns)}) WHERE a.id = v.id)"
            )
        elif name == "holds_resolved":
            sets = ", ".join(f"{column} = v.{column}" for column in columns[1:])
            parts.append(
                f"w{index} AS (UPDATE ledger_reservations AS r SET {sets} FROM {arrays(columns)} "
                f"AS v({', '.join(columns)}) WHERE r.reservation_id = v.reservation_id)"
            )
        else:
            table, suffix = inserts[name]
            parts.append(
                f"w{index} AS (INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT * FROM {arrays(columns)} {suffix})"
            )
    return f"WITH {', '.join(parts)} SELECT 1"


def sql_for(dialect_name: str) -> SqlDialect:
    """The statements for ``sqlite`` or ``postgresql``."""
    if dialect_name == "sqlite":
        return SqliteSql()
    if dialect_name == "postgresql":
        return PostgresSql()
    raise ValueError(f"no ledger SQL for {dialect_name!r}")
