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
            if len(keys) == 1 and len(idempotency_keys) <= 1:
                # The usual batch, one write: equalities the planner serves from the indexes,
                # instead of joining unnest-ed arrays.
                key = idempotency_keys[0] if idempotency_keys else None
                return Call("rows", _PG_LOCK_ONE, (*keys[0], key))
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
        return Call("rows", _PGTARGETS, (list(entry_ids),))

    def write(self, changes: Changes) -> list[Call]:
        """Every change in one statement: one round trip however large the batch."""
        present = tuple(
            name
            for name in ("accounts", *(item[0] for item in INSERTS), "holds_resolved")
            if getattr(changes, name)
        )
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


_PG_LOCK = (
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
_PG_LOCK_BY_KEY = (
    f"SELECT {SELECT_ACCOUNT}, i.key, i.fingerprint, i.result "
    "FROM ledger_accounts AS a "
    "LEFT JOIN ledger_idempotency AS i ON i.account_id = a.id AND i.key = ANY($3::text[]) "
    "WHERE (a.user_id, a.project_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
    "ORDER BY a.id FOR UPDATE OF a"
)
_PG_LOCK_ONE = (
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
    number = 0

    def arrays(columns: tuple[str, ...]) -> str:
        nonlocal number
        casts = []
        for column in columns:
            number += 1
            casts.append(f"${number}::{_pg_type(column)}[]")
        return f"unnest({', '.join(casts)})"

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


@functools.lru_cache(maxsize=128)
def _pg_write_one(present: tuple[str, ...]) -> str:
    """Like :func:`_pg_write`, for one row per table: each value its own parameter."""
    parts = []
    number = 0

    def placeholders(columns: tuple[str, ...]) -> list[str]:
        nonlocal number
        first = number + 1
        number += len(columns)
        return [f"${index}::{_pg_type(column)}" for index, column in enumerate(columns, first)]

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


def _pg_type(name: str) -> str:
    if name in TIME_COLUMNS:
        return "timestamptz"
    if name in TEXT_COLUMNS:
        return "text"
    if name == "cost_is_estimate":
        return "boolean"
    return "bigint"
