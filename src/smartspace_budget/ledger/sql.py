"""The write path's SQL, for SQLite and for PostgreSQL, in one place.

Writes are the ledger's hot path, so the writer talks to the driver directly (``sqlite3`` in
its own thread, ``asyncpg``) with statements prepared once, rather than through SQLAlchemy's
execution layer, which costs more per statement than a whole SQLite write. The tables are
still SQLAlchemy's (``tables.py``, migrated by Alembic); this module only speaks to them.

A batch of any size is loaded with a few statements and written with one statement per
table (SQLite: ``executemany``, no round trips to save) or one statement in all
(PostgreSQL: data-modifying CTEs over ``unnest``-ed arrays, one round trip). Lists travel as
JSON arrays read by ``json_each`` on SQLite and as typed arrays on PostgreSQL.

Instants are aware UTC datetimes in Python; SQLite stores them as naive UTC text in the
fixed-width format SQLAlchemy uses for its ``DateTime`` type, so both layers read each
other's rows.
"""

from __future__ import annotations

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
    "SqliteSql",
    "WriteSql",
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
ROLLUP_KEY = ("account_id", "bucket_start", "provider", "model")
ROLLUP_SUMS = (
    "spent_nano",
    "request_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
ROLLUP_COLUMNS = ROLLUP_KEY + ROLLUP_SUMS
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
    }
)
_BIGINT_COLUMNS = frozenset(
    {
        "id",
        "account_id",
        "balance_nano",
        "reserved_nano",
        "spent_nano",
        "per_request_limit_nano",
        "daily_limit_nano",
        "monthly_limit_nano",
        "low_balance_threshold_nano",
        "amount_nano",
        "hold_nano",
        "balance_after_nano",
        "settled_nano",
        "estimated_cost_nano",
        "request_count",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    }
)
_SELECT_ACCOUNT = ", ".join(f"a.{name}" for name in ACCOUNT_COLUMNS)
_SELECT_HOLD = ", ".join(HOLD_COLUMNS)


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
    idempotency: list[tuple[Any, ...]] = field(default_factory=list)


def _insert_account_sql(placeholders: Sequence[str]) -> str:
    columns = ACCOUNT_COLUMNS[1:]
    return (
        f"INSERT INTO ledger_accounts ({', '.join(columns)}) "
        f"VALUES ({', '.join(placeholders[: len(columns)])}) RETURNING id"
    )


_ROLLUP_CONFLICT = (
    "ON CONFLICT (account_id, bucket_start, provider, model) DO UPDATE SET "
    + ", ".join(f"{name} = ledger_rollups.{name} + excluded.{name}" for name in ROLLUP_SUMS)
)


class WriteSql(ABC):
    """What differs between the databases: placeholders, lists, instants, row locks."""

    name = ""

    @abstractmethod
    def ts(self, value: datetime | None) -> Any:
        """An instant as the driver binds it."""

    @abstractmethod
    def ts_out(self, value: Any) -> datetime | None:
        """An instant as the driver returns it, made an aware UTC datetime."""

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

    # -- loading ---------------------------------------------------------------------------

    def expire_candidates(self, at: datetime, limit: int) -> Call:
        p = self.placeholders(2)
        return Call(
            "rows",
            "SELECT reservation_id, account_id FROM ledger_reservations "
            f"WHERE status = 'pending' AND expires_at <= {p[0]} ORDER BY expires_at LIMIT {p[1]}",
            (self.ts(at), limit),
        )

    def window_spend(self, account_id: int, start: datetime, end: datetime) -> Call:
        p = self.placeholders(3)
        return Call(
            "scalar",
            "SELECT COALESCE(SUM(spent_nano), 0) FROM ledger_rollups "
            f"WHERE account_id = {p[0]} AND bucket_start >= {p[1]} AND bucket_start < {p[2]}",
            (account_id, self.ts(start), self.ts(end)),
        )

    def insert_account(self, values: tuple[Any, ...]) -> Call:
        return Call(
            "scalar",
            _insert_account_sql(self.placeholders(len(values))),
            self._encode(ACCOUNT_COLUMNS[1:], values),
        )

    def placeholders(self, count: int) -> list[str]:
        return [f"${index}" for index in range(1, count + 1)]

    def _encode(self, columns: Sequence[str], row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            self.ts(value) if name in _TIME_COLUMNS else value
            for name, value in zip(columns, row, strict=True)
        )

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


class SqliteSql(WriteSql):
    """SQLite: ``?N`` placeholders, JSON arrays, no row locks (the write lock is held)."""

    name = "sqlite"

    def ts(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def ts_out(self, value: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def placeholders(self, count: int) -> list[str]:
        return [f"?{index}" for index in range(1, count + 1)]

    def lock_accounts(
        self,
        keys: Sequence[tuple[str, str]],
        row_ids: Sequence[int],
        reservation_ids: Sequence[str],
        idempotency_keys: Sequence[str],
    ) -> Call:
        return Call(
            "rows",
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
            "ORDER BY a.id",
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
            f"SELECT {_SELECT_HOLD} FROM ledger_reservations "
            "WHERE reservation_id IN (SELECT value FROM json_each(?1)) "
            "UNION SELECT "
            f"{_SELECT_HOLD} FROM ledger_reservations "
            "WHERE status = 'pending' AND expires_at <= ?3 "
            "AND account_id IN (SELECT value FROM json_each(?2))",
            (
                json.dumps(list(reservation_ids)),
                json.dumps(list(account_ids) if overdue_at is not None else []),
                self.ts(overdue_at) if overdue_at is not None else "",
            ),
        )

    def load_targets(self, entry_ids: Sequence[str]) -> Call:
        return Call(
            "rows",
            _TARGETS.format(ids="SELECT value FROM json_each(?1)"),
            (json.dumps(list(entry_ids)),),
        )

    def write(self, changes: Changes) -> list[Call]:
        calls = []
        for rows, table, columns in (
            (changes.entries, "ledger_entries", ENTRY_COLUMNS),
            (changes.holds_new, "ledger_reservations", HOLD_COLUMNS),
            (changes.idempotency, "ledger_idempotency", IDEMPOTENCY_COLUMNS),
        ):
            if rows:
                calls.append(
                    Call(
                        "many",
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(self.placeholders(len(columns)))})",
                        [self._encode(columns, row) for row in rows],
                    )
                )
        if changes.accounts:
            sets = ", ".join(
                f"{name} = ?{index}"
                for index, name in enumerate(ACCOUNT_UPDATE_COLUMNS[1:], start=2)
            )
            calls.insert(
                0,
                Call(
                    "many",
                    f"UPDATE ledger_accounts SET {sets} WHERE id = ?1",
                    [self._encode(ACCOUNT_UPDATE_COLUMNS, row) for row in changes.accounts],
                ),
            )
        if changes.holds_resolved:
            sets = ", ".join(
                f"{name} = ?{index}" for index, name in enumerate(HOLD_UPDATE_COLUMNS[1:], start=2)
            )
            calls.append(
                Call(
                    "many",
                    f"UPDATE ledger_reservations SET {sets} WHERE reservation_id = ?1",
                    [self._encode(HOLD_UPDATE_COLUMNS, row) for row in changes.holds_resolved],
                )
            )
        if changes.rollups:
            calls.append(
                Call(
                    "many",
                    f"INSERT INTO ledger_rollups ({', '.join(ROLLUP_COLUMNS)}) VALUES "
                    f"({', '.join(self.placeholders(len(ROLLUP_COLUMNS)))}) {_ROLLUP_CONFLICT}",
                    [self._encode(ROLLUP_COLUMNS, row) for row in changes.rollups],
                )
            )
        return calls


_TARGETS = (
    "SELECT e.entry_id, e.account_id, e.amount_nano, e.provider, e.model, "
    "(SELECT COALESCE(SUM(r.amount_nano), 0) FROM ledger_entries AS r "
    "WHERE r.refund_of = e.entry_id) "
    "FROM ledger_entries AS e WHERE e.kind = 'usage' AND e.entry_id IN ({ids})"
)


def _pg_type(name: str) -> str:
    if name in _TIME_COLUMNS:
        return "timestamptz"
    if name in _BIGINT_COLUMNS:
        return "bigint"
    if name == "cost_is_estimate":
        return "boolean"
    return "text"


class PostgresSql(WriteSql):
    """PostgreSQL: ``$N`` placeholders, typed arrays, ``FOR UPDATE`` on account rows."""

    name = "postgresql"

    def ts(self, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def ts_out(self, value: Any) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    def lock_accounts(
        self,
        keys: Sequence[tuple[str, str]],
        row_ids: Sequence[int],
        reservation_ids: Sequence[str],
        idempotency_keys: Sequence[str],
    ) -> Call:
        return Call(
            "rows",
            f"SELECT {_SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
            "FROM ledger_accounts AS a "
            "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = ANY($5::text[]) "
            "WHERE a.id IN ("
            "SELECT id FROM ledger_accounts WHERE (user_id, project_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) "
            "UNION SELECT unnest($3::bigint[]) "
            "UNION SELECT account_id FROM ledger_reservations "
            "WHERE reservation_id = ANY($4::text[])) "
            "ORDER BY a.id FOR UPDATE OF a",
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
            f"SELECT {_SELECT_HOLD} FROM ledger_reservations "
            "WHERE reservation_id = ANY($1::text[]) "
            "OR (status = 'pending' AND expires_at <= $3 AND account_id = ANY($2::bigint[]))",
            (
                list(reservation_ids),
                list(account_ids) if overdue_at is not None else [],
                overdue_at or datetime(1970, 1, 1, tzinfo=UTC),
            ),
        )

    def load_targets(self, entry_ids: Sequence[str]) -> Call:
        return Call("rows", _TARGETS.format(ids="SELECT unnest($1::text[])"), (list(entry_ids),))

    def write(self, changes: Changes) -> list[Call]:
        """Every change in one statement: one round trip however large the batch."""
        parts: list[str] = []
        params: list[Any] = []

        def arrays(columns: Sequence[str], rows: list[tuple[Any, ...]]) -> str:
            casts = []
            for index, name in enumerate(columns):
                column = [row[index] for row in rows]
                if name in _TIME_COLUMNS:
                    column = [self.ts(value) for value in column]
                params.append(column)
                casts.append(f"${len(params)}::{_pg_type(name)}[]")
            return f"unnest({', '.join(casts)})"

        if changes.accounts:
            source = arrays(ACCOUNT_UPDATE_COLUMNS, changes.accounts)
            sets = ", ".join(f"{name} = v.{name}" for name in ACCOUNT_UPDATE_COLUMNS[1:])
            parts.append(
                f"acc AS (UPDATE ledger_accounts AS a SET {sets} FROM {source} "
                f"AS v({', '.join(ACCOUNT_UPDATE_COLUMNS)}) WHERE a.id = v.id)"
            )
        for label, rows, table, columns, suffix in (
            ("ent", changes.entries, "ledger_entries", ENTRY_COLUMNS, ""),
            ("hin", changes.holds_new, "ledger_reservations", HOLD_COLUMNS, ""),
            ("rol", changes.rollups, "ledger_rollups", ROLLUP_COLUMNS, " " + _ROLLUP_CONFLICT),
            ("idm", changes.idempotency, "ledger_idempotency", IDEMPOTENCY_COLUMNS, ""),
        ):
            if rows:
                parts.append(
                    f"{label} AS (INSERT INTO {table} ({', '.join(columns)}) "
                    f"SELECT * FROM {arrays(columns, rows)}{suffix})"
                )
        if changes.holds_resolved:
            source = arrays(HOLD_UPDATE_COLUMNS, changes.holds_resolved)
            sets = ", ".join(f"{name} = v.{name}" for name in HOLD_UPDATE_COLUMNS[1:])
            parts.append(
                f"hup AS (UPDATE ledger_reservations AS r SET {sets} FROM {source} "
                f"AS v({', '.join(HOLD_UPDATE_COLUMNS)}) WHERE r.reservation_id = v.reservation_id)"
            )
        if not parts:
            return []
        return [Call("exec", f"WITH {', '.join(parts)} SELECT 1", params)]


def sql_for(dialect_name: str) -> WriteSql:
    """The statements for ``sqlite`` or ``postgresql``."""
    if dialect_name == "sqlite":
        return SqliteSql()
    if dialect_name == "postgresql":
        return PostgresSql()
    raise ValueError(f"no ledger SQL for {dialect_name!r}")
