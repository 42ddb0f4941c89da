"""The ledger's hot-path SQL for SQLite: ``?N`` placeholders, JSON arrays, no row locks.

``BEGIN IMMEDIATE`` already holds the database's one write lock, so loading needs no
``FOR UPDATE``; lists travel as JSON arrays read with ``json_each``; a batch is written with
one ``executemany`` per table (in-process, there are no round trips to save).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from smartspace_budget.ledger.sql import (
    ACCOUNT_UPDATE_COLUMNS,
    HOLD_UPDATE_COLUMNS,
    INSERTS,
    SELECT_ACCOUNT,
    SELECT_HOLD,
    TARGETS,
    Call,
    Changes,
    SqlDialect,
    time_positions,
)

__all__ = ["SqliteSql"]


class SqliteSql(SqlDialect):
    """SQLite: ``?N`` placeholders, JSON arrays, no row locks (the write lock is held)."""

    name = "sqlite"

    def ts(self, value: datetime | None) -> str | None:
        return None if value is None else _stored_text(value)

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
        *,
        lock: bool = True,
    ) -> Call:
        # No row locks either way: the writer's transaction holds the database's write lock.
        if not row_ids and not reservation_ids:
            if len(keys) == 1 and len(idempotency_keys) <= 1:
                # The usual batch, one write: plain parameters, no JSON to build or parse.
                key = idempotency_keys[0] if idempotency_keys else None
                return Call("rows", _SQLITE_LOCK_ONE, (*keys[0], key))
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
        return Call("rows", _SQLITETARGETS, (json.dumps(list(entry_ids)),))

    def write(self, changes: Changes) -> list[Call]:
        calls = []
        for attribute, sql, width, times in _SQLITE_WRITES:
            rows = getattr(changes, attribute)
            if rows:
                calls.append(Call("many", sql, [_encode(row, width, times) for row in rows]))
        return calls


def _encode(row: tuple[Any, ...], width: int, times: tuple[int, ...]) -> list[Any]:
    """``SqlDialect.encode`` with the table's width and instant positions worked out once:
    a write encodes every row of every table it touches."""
    if len(row) != width:
        raise ValueError(f"{len(row)} values for {width} columns")
    values = list(row)
    for index in times:
        value = values[index]
        if value is not None:
            values[index] = _stored_text(value)
    return values


def _stored_text(value: datetime) -> str:
    """An aware instant as the ledger stores it in SQLite: UTC, as text."""
    if value.tzinfo is UTC:
        # A write binds the same few instants (now, its hour and day) several times. Only
        # UTC ones are cached: two equal local times differing in ``fold`` hash and compare
        # equal, yet are different instants.
        return _utc_text(value)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@functools.lru_cache(maxsize=64)
def _utc_text(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


@functools.lru_cache(maxsize=256)
def _sqlite_text(sql: str) -> str:
    return sql.replace("$", "?")


def _sets(columns: tuple[str, ...]) -> str:
    return ", ".join(f"{name} = ?{index}" for index, name in enumerate(columns[1:], start=2))


_SQLITE_LOCK = (
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
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
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id "
    "AND i.key IN (SELECT value FROM json_each(?2)) "
    "WHERE (a.user_id, a.project_id) IN "
    "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)) "
    "ORDER BY a.id"
)
_SQLITE_LOCK_ONE = (
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = ?3 "
    "WHERE a.user_id = ?1 AND a.project_id = ?2"
)
_SQLITE_HOLDS = (
    f"SELECT {SELECT_HOLD} FROM ledger_reservations "
    "WHERE reservation_id IN (SELECT value FROM json_each(?1)) "
    f"UNION SELECT {SELECT_HOLD} FROM ledger_reservations "
    "WHERE status = 'pending' AND expires_at <= ?3 "
    "AND account_id IN (SELECT value FROM json_each(?2))"
)
_SQLITETARGETS = TARGETS.format(ids="SELECT value FROM json_each(?1)")
_SQLITE_UPDATE_ACCOUNTS = (
    f"UPDATE ledger_accounts SET {_sets(ACCOUNT_UPDATE_COLUMNS)} WHERE id = ?1"
)
_SQLITE_UPDATE_HOLDS = (
    f"UPDATE ledger_reservations SET {_sets(HOLD_UPDATE_COLUMNS)} WHERE reservation_id = ?1"
)
_SQLITEINSERTS = {
    attribute: f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
    f"({', '.join(f'?{index}' for index in range(1, len(columns) + 1))}) {suffix}".rstrip()
    for attribute, table, columns, suffix in INSERTS
}
# Statements that store a batch's changes, in the order they run: (Changes attribute, SQL,
# columns per row, positions of the instants among them).
_SQLITE_WRITES = tuple(
    (attribute, sql, len(columns), time_positions(columns))
    for attribute, sql, columns in (
        ("accounts", _SQLITE_UPDATE_ACCOUNTS, ACCOUNT_UPDATE_COLUMNS),
        *((attribute, _SQLITEINSERTS[attribute], columns) for attribute, _, columns, _ in INSERTS),
        ("holds_resolved", _SQLITE_UPDATE_HOLDS, HOLD_UPDATE_COLUMNS),
    )
)
