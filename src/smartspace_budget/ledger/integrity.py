"""Rebuild every total from the append-only entries and report where the stored ones differ.

What is checked, in one consistent snapshot:

- each account's ``balance_nano`` = sum of its entries' ``amount_nano``; ``reserved_nano`` =
  sum of their ``hold_nano`` = sum of its pending reservations; ``spent_nano`` = usage minus
  refunds;
- each entry's ``balance_after_nano`` = the running sum of the account's amounts up to it;
- each reservation's entries hold its amount while it is pending and nothing once resolved;
- every hourly and daily rollup row = the usage and refund entries of its account, bucket,
  provider and model (and no rollup without entries).

The bucket an entry was filed under is trusted: it was derived from the entry's time and the
account's timezone when the entry was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Table, case, cast, except_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from smartspace_budget.ledger.tables import (
    accounts,
    daily_rollups,
    entries,
    output_sketches,
    reservations,
    rollups,
)
from smartspace_budget.models.output_sketch import bucket_of

__all__ = ["IntegrityDifference", "IntegrityReport", "check_integrity"]

_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@dataclass(frozen=True, slots=True)
class IntegrityDifference:
    """One stored value that does not match what the entries say it should be."""

    check: str
    subject: str
    stored: object
    rebuilt: object

    def __str__(self) -> str:
        return f"{self.check} of {self.subject}: stored {self.stored}, rebuilt {self.rebuilt}"


@dataclass(slots=True)
class IntegrityReport:
    """Everything :func:`check_integrity` found; ``ok`` when nothing differs."""

    accounts_checked: int = 0
    entries_checked: int = 0
    reservations_checked: int = 0
    rollups_checked: int = 0
    sketches_checked: int = 0
    """Output-sketch rows (``ledger_output_sketches``) checked."""
    differences: list[IntegrityDifference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        head = (
            f"{self.accounts_checked} accounts, {self.entries_checked} entries, "
            f"{self.reservations_checked} reservations, {self.rollups_checked} rollups: "
        )
        if self.ok:
            return head + "consistent"
        return head + "; ".join(str(d) for d in self.differences)


def _big(expression: Any) -> Any:
    return cast(func.coalesce(func.sum(expression), 0), BigInteger)


async def check_integrity(conn: AsyncConnection) -> IntegrityReport:
    """Run every check on ``conn`` (which should hold one snapshot) and report differences."""
    report = IntegrityReport()
    await _accounts(conn, report)
    await _running_balances(conn, report)
    await _reservations(conn, report)
    await _rollups(conn, report)
    await _sketches(conn, report)
    return report


async def _accounts(conn: AsyncConnection, report: IntegrityReport) -> None:
    spend = case((entries.c.kind.in_(("usage", "refund")), -entries.c.amount_nano), else_=0)
    sums = (
        select(
            entries.c.account_id,
            _big(entries.c.amount_nano).label("balance"),
            _big(entries.c.hold_nano).label("held"),
            _big(spend).label("spent"),
            func.count().label("entries"),
        )
        .group_by(entries.c.account_id)
        .subquery()
    )
    pending = (
        select(reservations.c.account_id, _big(reservations.c.amount_nano).label("pending"))
        .where(reservations.c.status == "pending")
        .group_by(reservations.c.account_id)
        .subquery()
    )
    result = await conn.execute(
        select(
            accounts.c.user_id,
            accounts.c.project_id,
            accounts.c.balance_nano,
            accounts.c.reserved_nano,
            accounts.c.spent_nano,
            func.coalesce(sums.c.balance, 0),
            func.coalesce(sums.c.held, 0),
            func.coalesce(sums.c.spent, 0),
            func.coalesce(sums.c.entries, 0),
            func.coalesce(pending.c.pending, 0),
        )
        .select_from(
            accounts.outerjoin(sums, sums.c.account_id == accounts.c.id).outerjoin(
                pending, pending.c.account_id == accounts.c.id
            )
        )
        .order_by(accounts.c.id)
    )
    for (
        user,
        project,
        balance,
        reserved,
        spent,
        r_balance,
        r_held,
        r_spent,
        count,
        r_pending,
    ) in result:
        subject = f"account {user}/{project}"
        report.accounts_checked += 1
        report.entries_checked += int(count)
        for check, stored, rebuilt in (
            ("balance", balance, r_balance),
            ("reserved amount", reserved, r_held),
            ("reserved amount (pending reservations)", reserved, r_pending),
            ("total spending", spent, r_spent),
        ):
            if int(stored) != int(rebuilt):
                report.differences.append(
                    IntegrityDifference(check, subject, int(stored), int(rebuilt))
                )


async def _running_balances(conn: AsyncConnection, report: IntegrityReport) -> None:
    running = select(
        entries.c.entry_id,
        entries.c.balance_after_nano,
        func.sum(entries.c.amount_nano)
        .over(partition_by=entries.c.account_id, order_by=entries.c.id, rows=(None, 0))
        .label("running"),
    ).subquery()
    result = await conn.execute(
        select(running.c.entry_id, running.c.balance_after_nano, running.c.running)
        .where(running.c.balance_after_nano != running.c.running)
        .limit(1000)
    )
    for entry_id, stored, rebuilt in result:
        report.differences.append(
            IntegrityDifference("balance after", f"entry {entry_id}", int(stored), int(rebuilt))
        )


async def _reservations(conn: AsyncConnection, report: IntegrityReport) -> None:
    held = (
        select(entries.c.reservation_id, _big(entries.c.hold_nano).label("held"))
        .where(entries.c.reservation_id.is_not(None))
        .group_by(entries.c.reservation_id)
        .subquery()
    )
    expected = case((reservations.c.status == "pending", reservations.c.amount_nano), else_=0)
    total = await conn.scalar(select(func.count()).select_from(reservations))
    report.reservations_checked = int(total or 0)
    result = await conn.execute(
        select(reservations.c.reservation_id, expected, func.coalesce(held.c.held, 0))
        .select_from(
            reservations.outerjoin(held, held.c.reservation_id == reservations.c.reservation_id)
        )
        .where(expected != func.coalesce(held.c.held, 0))
        .limit(1000)
    )
    for reservation_id, stored, rebuilt in result:
        report.differences.append(
            IntegrityDifference(
                "held amount", f"reservation {reservation_id}", int(stored), int(rebuilt)
            )
        )


async def _rollups(conn: AsyncConnection, report: IntegrityReport) -> None:
    for table, column, name in (
        (rollups, "bucket_start", "hourly rollup"),
        (daily_rollups, "day_start", "daily rollup"),
    ):
        await _rollup(conn, report, table, column, name)


async def _rollup(
    conn: AsyncConnection, report: IntegrityReport, table: Table, column: str, name: str
) -> None:
    is_usage = entries.c.kind == "usage"
    predicted = is_usage & entries.c.predicted_output_tokens.is_not(None)
    key = (entries.c.account_id, entries.c[column], entries.c.provider, entries.c.model)
    rebuilt = (
        select(
            *key,
            _big(-entries.c.amount_nano).label("spent_nano"),
            _big(case((is_usage, 1), else_=0)).label("request_count"),
            *[_big(func.coalesce(entries.c[token], 0)).label(token) for token in _TOKENS],
            _big(case((predicted, 1), else_=0)).label("predicted_calls"),
            _big(
                case((predicted & (entries.c.amount_nano < entries.c.hold_nano), 1), else_=0)
            ).label("missed_calls"),
        )
        .where(entries.c.kind.in_(("usage", "refund")))
        .group_by(*key)
    )
    stored = select(
        table.c.account_id,
        table.c[column],
        table.c.provider,
        table.c.model,
        cast(table.c.spent_nano, BigInteger),
        cast(table.c.request_count, BigInteger),
        *[cast(table.c[token], BigInteger) for token in _TOKENS],
        cast(table.c.predicted_calls, BigInteger),
        cast(table.c.missed_calls, BigInteger),
    )
    total = await conn.scalar(select(func.count()).select_from(table))
    report.rollups_checked += int(total or 0)
    for label, first, second in (
        ("missing or wrong", rebuilt, stored),
        ("unexplained", stored, rebuilt),
    ):
        result = await conn.execute(except_(first, second).limit(1000))
        for row in result:
            report.differences.append(
                IntegrityDifference(
                    f"{name} ({label})",
                    f"account #{row[0]} bucket {row[1]} {row[2]}/{row[3]}",
                    "stored" if label == "unexplained" else "absent or different",
                    tuple(int(value) for value in row[4:]),
                )
            )


async def _sketches(conn: AsyncConnection, report: IntegrityReport) -> None:
    """Every output sketch = the usage entries with reported usage, bucketed by output."""
    output = func.coalesce(entries.c.output_tokens, 0)
    grouped = await conn.execute(
        select(entries.c.account_id, entries.c.provider, entries.c.model, output, func.count())
        .where(entries.c.kind == "usage", entries.c.cost_is_estimate.is_(False))
        .group_by(entries.c.account_id, entries.c.provider, entries.c.model, output)
    )
    rebuilt: dict[tuple[int, str, str, int], int] = {}
    for account_id, provider, model, tokens, calls in grouped:
        key = (int(account_id), provider or "", model or "", bucket_of(int(tokens)))
        rebuilt[key] = rebuilt.get(key, 0) + int(calls)
    stored = {
        (int(a), p, m, int(b)): int(n)
        for a, p, m, b, n in await conn.execute(
            select(
                output_sketches.c.account_id,
                output_sketches.c.provider,
                output_sketches.c.model,
                output_sketches.c.bucket,
                output_sketches.c.calls,
            )
        )
    }
    report.sketches_checked += len(stored)
    for key in sorted(rebuilt.keys() | stored.keys()):
        if rebuilt.get(key, 0) != stored.get(key, 0):
            report.differences.append(
                IntegrityDifference(
                    "output sketch",
                    f"account #{key[0]} {key[1]}/{key[2]} bucket {key[3]}",
                    stored.get(key, 0),
                    rebuilt.get(key, 0),
                )
            )
