"""The ledger's hot-path SQL for PostgreSQL: ``$N`` placeholders, typed arrays, row locks.

Loading locks the batch's account rows (``FOR UPDATE`` in id order); a batch of any size is
written with one statement, data-modifying CTEs over ``unnest``-ed arrays, so one round trip.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from smartspace_budget.ledger.sql import (
    ACCOUNT_STATE_COLUMNS,
    ACCOUNT_UPDATE_COLUMNS,
    HOLD_UPDATE_COLUMNS,
    INSERTS,
    SELECT_ACCOUNT,
    SELECT_HOLD,
    TARGETS,
    TEXT_COLUMNS,
    TIME_COLUMNS,
    Call,
    Changes,
    SqlDialect,
)

__all__ = ["PostgresSql"]


class PostgresSql(SqlDialect):
    """PostgreSQL: ``$N`` placeholders, typed arrays, ``FOR UPDATE`` on account rows."""

    name = "postgresql"
    joined_reads_may_be_stale = True

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
        *,
        lock: bool = True,
    ) -> Call:
        if not row_ids and not reservation_ids:
            if len(keys) == 1 and len(idempotency_keys) <= 1:
                # The usual batch, one write: equalities the planner serves from the indexes,
                # instead of joining unnest-ed arrays.
                key = idempotency_keys[0] if idempotency_keys else None
                return Call("rows", _PG_LOCK_ONE[lock], (*keys[0], key))
            return Call(
                "rows",
                _PG_LOCK_BY_KEY[lock],
                (
                    [user for user, _ in keys],
                    [project for _, project in keys],
                    list(idempotency_keys),
                ),
            )
        return Call(
            "rows",
            _PG_LOCK[lock],
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
        return Call("rows", _PGTARGETS, (list(entry_ids),))

    def write(self, changes: Changes) -> list[Call]:
        """Every change in one statement: one round trip however large the batch."""
        present = _present(changes)
        if not present:
            return []
        if all(len(getattr(changes, name)) == 1 for name in present):
            # One row per table (a lone write): plain parameters. Unnesting a few dozen
            # one-element arrays costs the server more than the rest of the statement.
            values: list[Any] = []
            for name in present:
                row = getattr(changes, name)[0]
                values.extend(self.encode(_PG_COLUMNS[name], row))
            return [Call("exec", _pg_write_one(present), values)]
        params: list[Any] = []
        for name in present:
            columns = _PG_COLUMNS[name]
            rows = getattr(changes, name)
            for index, column in enumerate(columns):
                values = [row[index] for row in rows]
                if column in TIME_COLUMNS:
                    values = [self.ts(value) for value in values]
                params.append(values)
        return [Call("exec", _pg_write(present), params)]

    def write_checked(self, changes: Changes, expected: Sequence[int | None]) -> Call | None:
        """See :meth:`SqlDialect.write_checked`: the account update compares the values as
        read, and every other row is inserted only from the row that update returns."""
        present = _present(changes)
        if len(changes.accounts) != 1 or changes.holds_resolved:
            raise ValueError("a checked write changes one account and adds its rows only")
        if any(len(getattr(changes, name)) != 1 for name in present):
            raise ValueError("a checked write stores one row per table")
        values: list[Any] = []
        for name in present:
            values.extend(self.encode(_PG_COLUMNS[name], getattr(changes, name)[0]))
        values.extend(expected)
        return Call("scalar", _pg_write_checked(present), values)


def _present(changes: Changes) -> tuple[str, ...]:
    """The tables ``changes`` writes, in the order the statements write them."""
    return tuple(
        name
        for name in ("accounts", *(item[0] for item in INSERTS), "holds_resolved")
        if getattr(changes, name)
    )


def _lockable(sql: str) -> dict[bool, str]:
    """A locking read (``True``) and the same read without the lock (``False``)."""
    unlocked = sql.removesuffix(" FOR UPDATE OF a")
    if unlocked == sql:
        raise ValueError("not a locking read of accounts")
    return {True: sql, False: unlocked}


_PG_LOCK = _lockable(
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
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
_PG_LOCK_BY_KEY = _lockable(
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = ANY($3::text[]) "
    "WHERE (a.user_id, a.project_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
    "ORDER BY a.id FOR UPDATE OF a"
)
_PG_LOCK_ONE = _lockable(
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = $3::text "
    "WHERE a.user_id = $1::text AND a.project_id = $2::text "
    "FOR UPDATE OF a"
)
_PG_HOLDS = (
    f"SELECT {SELECT_HOLD} FROM ledger_reservations "
    "WHERE reservation_id = ANY($1::text[]) "
    "OR (status = 'pending' AND expires_at <= $3 AND account_id = ANY($2::bigint[]))"
)
_PGTARGETS = TARGETS.format(ids="SELECT unnest($1::text[])")
_PG_COLUMNS = {
    "accounts": ACCOUNT_UPDATE_COLUMNS,
    "holds_resolved": HOLD_UPDATE_COLUMNS,
    **{attribute: columns for attribute, _, columns, _ in INSERTS},
}


@functools.lru_cache(maxsize=128)
def _pg_write(present: tuple[str, ...]) -> str:
    """The one statement writing the tables in ``present`` (their arrays, in that order)."""
    parts = []
    placeholders = _Placeholders(array=True)

    def arrays(columns: tuple[str, ...]) -> str:
        return f"unnest({', '.join(placeholders(columns))})"

    inserts = {attribute: (table, suffix) for attribute, table, _, suffix in INSERTS}
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


class _Placeholders:
    """Typed parameters ``$1::type, $2::type, ...`` (or ``type[]`` arrays) numbered in the
    order they are asked for."""

    def __init__(self, *, array: bool = False) -> None:
        self.count = 0
        self._suffix = "[]" if array else ""

    def __call__(self, columns: tuple[str, ...]) -> list[str]:
        first = self.count + 1
        self.count += len(columns)
        return [
            f"${index}::{_pg_type(column)}{self._suffix}"
            for index, column in enumerate(columns, first)
        ]


@functools.lru_cache(maxsize=128)
def _pg_write_one(present: tuple[str, ...]) -> str:
    """Like :func:`_pg_write`, for one row per table: each value its own parameter."""
    parts = []
    placeholders = _Placeholders()

    inserts = {attribute: (table, suffix) for attribute, table, _, suffix in INSERTS}
    for index, name in enumerate(present):
        columns = _PG_COLUMNS[name]
        values = placeholders(columns)
        if name in ("accounts", "holds_resolved"):
            table, key = (
                ("ledger_accounts", "id")
                if name == "accounts"
                else ("ledger_reservations", "reservation_id")
            )
            sets = ", ".join(
                f"{column} = {value}" for column, value in zip(columns[1:], values[1:], strict=True)
            )
            parts.append(f"w{index} AS (UPDATE {table} SET {sets} WHERE {key} = {values[0]})")
        else:
            table, suffix = inserts[name]
            parts.append(
                f"w{index} AS (INSERT INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join(values)}) {suffix})"
            )
    return f"WITH {', '.join(parts)} SELECT 1"


@functools.lru_cache(maxsize=32)
def _pg_write_checked(present: tuple[str, ...]) -> str:
    """Like :func:`_pg_write_one`, but the account update (first in ``present``) matches only
    while the account holds the values after all the rows' own (``ACCOUNT_STATE_COLUMNS``),
    and every insert takes its one row from what that update returns: all rows or none."""
    if present[0] != "accounts" or "holds_resolved" in present:
        raise ValueError(f"no checked write for {present}")
    placeholders = _Placeholders()

    account = placeholders(ACCOUNT_UPDATE_COLUMNS)
    rows = {name: placeholders(_PG_COLUMNS[name]) for name in present[1:]}
    expected = placeholders(ACCOUNT_STATE_COLUMNS)
    sets = ", ".join(
        f"{column} = {value}"
        for column, value in zip(ACCOUNT_UPDATE_COLUMNS[1:], account[1:], strict=True)
    )
    # IS NOT DISTINCT FROM: the limits may be NULL (unlimited), and NULL = NULL is not true.
    unchanged = " AND ".join(
        f"{column} IS NOT DISTINCT FROM {value}"
        for column, value in zip(ACCOUNT_STATE_COLUMNS, expected, strict=True)
    )
    parts = [
        f"w0 AS (UPDATE ledger_accounts SET {sets} WHERE id = {account[0]} AND {unchanged} "
        "RETURNING id)"
    ]
    inserts = {attribute: (table, suffix) for attribute, table, _, suffix in INSERTS}
    for index, (name, values) in enumerate(rows.items(), start=1):
        table, suffix = inserts[name]
        parts.append(
            f"w{index} AS (INSERT INTO {table} ({', '.join(_PG_COLUMNS[name])}) "
            f"SELECT {', '.join(values)} FROM w0 {suffix})"
        )
    return f"WITH {', '.join(parts)} SELECT count(*) FROM w0"


def _pg_type(name: str) -> str:
    if name in TIME_COLUMNS:
        return "timestamptz"
    if name in TEXT_COLUMNS:
        return "text"
    if name == "cost_is_estimate":
        return "boolean"
    return "bigint"
