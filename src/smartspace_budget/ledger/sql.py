"""The ledger's hot-path SQL: what SQLite and PostgreSQL share, and how each is chosen.

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
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ACCOUNT_COLUMNS",
    "ACCOUNT_STATE_COLUMNS",
    "ACCOUNT_UPDATE_COLUMNS",
    "DAILY_ROLLUP_COLUMNS",
    "ENTRY_COLUMNS",
    "HOLD_COLUMNS",
    "HOLD_UPDATE_COLUMNS",
    "IDEMPOTENCY_COLUMNS",
    "INSERTS",
    "ROLLUP_COLUMNS",
    "SELECT_ACCOUNT",
    "SELECT_HOLD",
    "SKETCH_COLUMNS",
    "TARGETS",
    "TEXT_COLUMNS",
    "TIME_COLUMNS",
    "Call",
    "Changes",
    "SqlDialect",
    "sql_for",
    "time_positions",
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
ACCOUNT_STATE_COLUMNS = ACCOUNT_UPDATE_COLUMNS[1:-1]
"""The account's values the rules read and writes change (an optimistic write checks them)."""
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
    "usage_detail",
    "predicted_output_tokens",
)
ROLLUP_SUMS = (
    "spent_nano",
    "request_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "predicted_calls",
    "missed_calls",
)
ROLLUP_COLUMNS = ("account_id", "bucket_start", "provider", "model", *ROLLUP_SUMS)
DAILY_ROLLUP_COLUMNS = ("account_id", "day_start", "provider", "model", *ROLLUP_SUMS)
IDEMPOTENCY_COLUMNS = ("account_id", "key", "operation", "fingerprint", "result", "created_at")
SKETCH_COLUMNS = ("account_id", "provider", "model", "bucket", "calls")

TIME_COLUMNS = frozenset(
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
TEXT_COLUMNS = frozenset(
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
        "usage_detail",
        "key",
        "operation",
        "fingerprint",
        "result",
    }
)
SELECT_ACCOUNT = ", ".join(f"a.{name}" for name in ACCOUNT_COLUMNS)
SELECT_HOLD = ", ".join(HOLD_COLUMNS)
TARGETS = (
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
INSERTS = (
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
    (
        "sketches",
        "ledger_output_sketches",
        SKETCH_COLUMNS,
        "ON CONFLICT (account_id, provider, model, bucket) DO UPDATE SET "
        "calls = ledger_output_sketches.calls + excluded.calls",
    ),
)


@functools.cache
def time_positions(columns: tuple[str, ...]) -> tuple[int, ...]:
    """Indexes of the instants (``TIME_COLUMNS``) among ``columns``."""
    return tuple(index for index, name in enumerate(columns) if name in TIME_COLUMNS)


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
    sketches: list[tuple[Any, ...]] = field(default_factory=list)


class SqlDialect(ABC):
    """What differs between the databases: placeholders, lists, instants, row locks."""

    name = ""
    joined_reads_may_be_stale = False
    """Whether rows joined to the account lock may predate it: PostgreSQL's ``FOR UPDATE``
    returns the newest account row after waiting for its lock, but the rows joined to it
    (stored results) come from the statement's snapshot, taken before the wait. Statements
    after the lock see everything committed before it (READ COMMITTED)."""

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
        *,
        lock: bool = True,
    ) -> Call:
        """Accounts named by key, by id, or by one of their reservations, locked in id order
        (read without a lock when ``lock`` is false), each with its stored results for
        ``idempotency_keys`` (one row per match)."""

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

    def write_checked(self, changes: Changes, expected: Sequence[int | None]) -> Call | None:
        """One statement, committing on its own, that stores ``changes`` (one changed account
        and rows of that account only) if the account still holds ``expected``
        (``ACCOUNT_STATE_COLUMNS``) and stores nothing otherwise; it returns how many accounts
        it changed (1 or 0). ``None``: this database has no such statement (SQLite's one
        writer needs none)."""
        return None

    def load_stored_results(self, pairs: Sequence[tuple[int, str]]) -> Call:
        """Stored results of (account id, idempotency key) ``pairs``: rows of
        ``account_id, key, fingerprint, result``."""
        if not pairs:
            raise ValueError("no stored results to load")
        conditions = " OR ".join(
            f"(account_id = ${2 * index + 1} AND key = ${2 * index + 2})"
            for index in range(len(pairs))
        )
        return Call(
            "rows",
            self.text(
                "SELECT account_id, key, fingerprint, result FROM ledger_idempotency "
                f"WHERE {conditions}"
            ),
            tuple(value for pair in pairs for value in pair),
        )

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
        times = time_positions(columns)
        if not times:
            return tuple(row)
        values = list(row)
        for index in times:
            values[index] = self.ts(values[index])
        return tuple(values)

    def decode_hold(self, row: Sequence[Any]) -> dict[str, Any]:
        values = dict(zip(HOLD_COLUMNS, row, strict=True))
        for name in ("created_at", "expires_at", "resolved_at"):
            values[name] = self.ts_out(values[name])
        return values


def sql_for(dialect_name: str) -> SqlDialect:
    """The statements for ``sqlite`` or ``postgresql``."""
    if dialect_name == "sqlite":
        from smartspace_budget.ledger.sql_sqlite import SqliteSql

        return SqliteSql()
    if dialect_name == "postgresql":
        from smartspace_budget.ledger.sql_postgres import PostgresSql

        return PostgresSql()
    raise ValueError(f"no ledger SQL for {dialect_name!r}")
