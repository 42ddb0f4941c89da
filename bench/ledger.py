"""Write throughput and read latency of the ledger, beside the database's own commit rate.

    python bench/ledger.py [--databases sqlite,postgres] [--sizes 10000,100000,1000000]
                           [--writes 2000] [--reads 300]

For each database (SQLite in a temporary file; PostgreSQL in a throwaway database on the
server at ``SMARTSPACE_BUDGET_TEST_POSTGRES_URL``):

- **raw commits/s**: the smallest durable transaction the database can do (update one row,
  commit), straight on the driver with no framework in between: ``sqlite3`` with WAL and
  ``synchronous=FULL``, ``asyncpg`` with the default ``synchronous_commit``. This is the
  limit a sequential writer cannot beat.
- **usage writes/s**: ``Ledger.record_usage`` with a fresh idempotency key each, by one
  sequential writer, then 8 and then 64 concurrent writers (tasks) over 16 accounts. Each
  call returns only after its transaction is durable. The disk's speed drifts by a factor
  of several on a shared machine, so the sequential writer and the raw rate are measured in
  ``--rounds`` alternating pairs (raw, then writes, on the same database); the table shows
  the median of each and the median of the per-round ratios, with their range.
- **its statements alone** (SQLite): the statements one usage write runs (read the account
  and idempotency key, update the account, insert the entry, add to the hourly and daily
  rollups, store the idempotency row), with the same SQL, row sizes and connection settings,
  prepared in advance and replayed with no ledger code at all: ``BEGIN IMMEDIATE``, the
  statements, ``COMMIT``. This is the most a sequential writer could reach with this storage
  if the ledger's own Python cost nothing. It is measured in the same alternating rounds. On
  PostgreSQL a lone write is one read and one self-committing statement whose cost is two
  round trips, so a replay would measure the network, not the code: the row is SQLite's.
- **read latency** (p50/p99 in ms) of ``get_budget_status``, ``get_spending`` (monthly) and
  ``get_analytics`` (monthly) on one account holding 10k, 100k and 1M usage entries. Status
  is read at an explicit instant, which runs the statement every time; "status, remembered"
  is the same read as of now, answered from the ledger's memo while nothing commits. The
  entries are spread over the last 90 days across 4 providers and 12 models, and are
  inserted in bulk with the ledger's own write statements (entries, rollups, account
  totals, as the writer would store them), not through the API, which would take hours.

``--sizes 2000 --writes 300 --reads 50`` is a quick run for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.budgets import BudgetTracker
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.driver import connect_sqlite
from smartspace_budget.ledger.ids import new_id
from smartspace_budget.ledger.sql import Call, Changes, SqlDialect
from smartspace_budget.ledger.sql_postgres import PostgresSql
from smartspace_budget.ledger.sql_sqlite import SqliteSql
from smartspace_budget.models import SpendingPeriod, UsageEvent
from smartspace_budget.models.output_sketch import bucket_of
from smartspace_budget.money import to_nano
from smartspace_budget.periods import window_containing
from smartspace_budget.prices.catalog import PriceBook

POSTGRES_ADMIN_URL = os.environ.get(
    "SMARTSPACE_BUDGET_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MODELS = [
    (provider, f"{provider}-model-{n}")
    for provider in ("openai", "anthropic", "google", "mistral")
    for n in range(3)
]
CHUNK = 20_000


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# -- raw durable commit rate ----------------------------------------------------------------


def raw_sqlite_commits(path: str, seconds: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, v INTEGER)")
    conn.execute("INSERT OR IGNORE INTO bench_raw VALUES (1, 0)")
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE bench_raw SET v = v + 1 WHERE id = 1")
        conn.execute("COMMIT")
        count += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


async def raw_postgres_commits(url: str, seconds: float) -> float:
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_raw (id int PRIMARY KEY, v int)")
        await conn.execute("INSERT INTO bench_raw VALUES (1, 0) ON CONFLICT DO NOTHING")
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            async with conn.transaction():
                await conn.execute("UPDATE bench_raw SET v = v + 1 WHERE id = 1")
            count += 1
        return count / (time.perf_counter() - start)
    finally:
        await conn.close()


async def raw_commits(kind: str, url: str, seconds: float) -> float:
    if kind == "sqlite":
        path = url.split("///", 1)[1]
        return await asyncio.to_thread(raw_sqlite_commits, path, seconds)
    return await raw_postgres_commits(url, seconds)


# -- writes ----------------------------------------------------------------------------------


BENCH_EVENT = UsageEvent(
    provider="openai",
    model="gpt-4o",
    input_tokens=1200,
    output_tokens=300,
    actual_cost=Decimal("0.0042"),
)


async def usage_writes(ledger: Ledger, total: int, concurrency: int, tag: str) -> float:
    per_writer = max(1, total // concurrency)

    async def writer(number: int) -> None:
        user = f"writer-{number % 16}"
        for step in range(per_writer):
            await ledger.record_usage(
                user, "bench", BENCH_EVENT, idempotency_key=f"{tag}-{number}-{step}"
            )

    start = time.perf_counter()
    await asyncio.gather(*(writer(number) for number in range(concurrency)))
    return per_writer * concurrency / (time.perf_counter() - start)


def utc_buckets(occurred: datetime) -> tuple[datetime, datetime]:
    """The hour and day ``occurred`` falls in, for the bench's accounts (all in UTC)."""
    hour = occurred.replace(minute=0, second=0, microsecond=0)
    return hour, hour.replace(hour=0)


def usage_entry(
    account_id: int,
    cost: int,
    balance: int,
    occurred: datetime,
    buckets: tuple[datetime, datetime],
    provider: str,
    model: str,
    tokens: tuple[int, int, int, int, int],
    price_version: str | None,
    idempotency_key: str | None = None,
) -> tuple[Any, ...]:
    """A usage entry as the writer stores it (``ENTRY_COLUMNS``); ``buckets`` are
    ``utc_buckets(occurred)``, which the caller's rollups need too."""
    return (
        account_id,
        new_id(),
        "usage",
        -cost,
        0,
        balance,
        occurred,
        occurred,
        *buckets,
        provider,
        model,
        *tokens,
        None,
        False,
        price_version,
        None,
        None,
        None,
        None,
        None,
        idempotency_key,
        None,
        None,
    )


# -- the statements alone ------------------------------------------------------------------

FLOOR_USER = "floor"
"""The account whose usage writes are replayed with no ledger code."""
FLOOR_DEPOSIT = Decimal(10**6)
FLOOR_MODEL_KEY = "floor-model"
"""The key of the floor account's one real usage write, whose stored row the replay copies."""


async def prepare_floor(ledger: Ledger) -> None:
    """Fund the floor account and make one usage write of its own, whose stored idempotency
    row gives the replayed rows their size."""
    await ledger.deposit(FLOOR_USER, "bench", FLOOR_DEPOSIT, idempotency_key="f")
    await ledger.record_usage(FLOOR_USER, "bench", BENCH_EVENT, idempotency_key=FLOOR_MODEL_KEY)


async def stored_idempotency(ledger: Ledger, key: str) -> tuple[str, str]:
    """The fingerprint and stored result of an earlier usage write: the replayed rows carry
    values of the same size."""
    async with ledger.engine.connect() as conn:
        row: Sequence[Any] = (
            await conn.exec_driver_sql(
                f"SELECT fingerprint, result FROM ledger_idempotency WHERE key = '{key}'"
            )
        ).one()
    return row[0], row[1]


def usage_statements(
    account: tuple[int, int, int], stored: tuple[str, str], count: int, tag: str
) -> list[tuple[Call, list[Call]]]:
    """The statements of ``count`` sequential ``BENCH_EVENT`` usage writes on the floor
    account, ready to run: the account read, then the rows the ledger's writer would store,
    encoded by its own ``SqliteSql.write``."""
    sql = SqliteSql()
    account_id, balance, spent = account
    fingerprint, result = stored
    cost = to_nano(BENCH_EVENT.actual_cost)
    tokens = (BENCH_EVENT.input_tokens, BENCH_EVENT.output_tokens, 0, 0, 0)
    writes = []
    for number in range(count):
        now = datetime.now(UTC)
        bucket, day = utc_buckets(now)
        key = f"{tag}-{number}"
        balance -= cost
        spent += cost
        changes = Changes()
        changes.accounts = [(account_id, balance, 0, spent, None, None, None, None, now)]
        changes.entries = [
            usage_entry(
                account_id, cost, balance, now, (bucket, day), "openai", "gpt-4o", tokens, None, key
            )
        ]
        changes.rollups = [(account_id, bucket, "openai", "gpt-4o", cost, 1, *tokens, 0, 0)]
        changes.daily_rollups = [(account_id, day, "openai", "gpt-4o", cost, 1, *tokens, 0, 0)]
        changes.idempotency = [(account_id, key, "record_usage", fingerprint, result, now)]
        changes.sketches = [(account_id, "openai", "gpt-4o", bucket_of(tokens[1]), 1)]
        read = sql.lock_accounts([(FLOOR_USER, "bench")], [], [], [key])
        writes.append((read, sql.write(changes)))
    return writes


def replay_sqlite(path: str, writes: list[tuple[Call, list[Call]]]) -> float:
    """Run prepared usage writes one after another, each in its own durable transaction, on
    a connection set up as the ledger's writer is; writes per second."""
    conn = connect_sqlite(path, reader=False)
    try:
        start = time.perf_counter()
        for read, calls in writes:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(read.sql, read.params).fetchall()
            for call in calls:
                conn.executemany(call.sql, call.params)
            conn.execute("COMMIT")
        return len(writes) / (time.perf_counter() - start)
    finally:
        conn.close()


async def statements_alone(ledger: Ledger, url: str, count: int, tag: str) -> float:
    account = await account_row(ledger, FLOOR_USER)
    stored = await stored_idempotency(ledger, FLOOR_MODEL_KEY)
    writes = usage_statements(account, stored, count, tag)
    return await asyncio.to_thread(replay_sqlite, url.split("///", 1)[1], writes)


# -- bulk history ----------------------------------------------------------------------------


async def account_row(ledger: Ledger, user: str) -> tuple[int, int, int]:
    async with ledger.engine.connect() as conn:
        row: Sequence[Any] = (
            await conn.exec_driver_sql(
                "SELECT id, balance_nano, spent_nano FROM ledger_accounts "
                f"WHERE user_id = '{user}' AND project_id = 'bench'"
            )
        ).one()
    return row[0], row[1], row[2]


def history_chunk(
    account_id: int, balance: int, count: int, now: datetime, rng: random.Random
) -> tuple[Changes, int, int]:
    """``count`` usage entries over the last 90 days, with the rollups they add."""
    changes = Changes()
    rollups: dict[tuple[datetime, str, str], list[int]] = {}
    daily: dict[tuple[datetime, str, str], list[int]] = {}
    sketches: dict[tuple[str, str, int], int] = {}
    spent = 0
    for _ in range(count):
        provider, model = rng.choice(MODELS)
        cost = rng.randint(10_000, 20_000_000)
        tokens = (rng.randint(10, 4000), rng.randint(10, 1000), 0, 0, 0)
        occurred = now - timedelta(seconds=rng.randint(0, 90 * 86_400))
        bucket, day = utc_buckets(occurred)
        balance -= cost
        spent += cost
        changes.entries.append(
            usage_entry(
                account_id, cost, balance, occurred, (bucket, day), provider, model, tokens, "bench"
            )
        )
        for table, start in ((rollups, bucket), (daily, day)):
            sums = table.setdefault((start, provider, model), [0] * 9)
            sums[0] += cost
            sums[1] += 1
            sums[2] += tokens[0]
            sums[3] += tokens[1]
        sketch = (provider, model, bucket_of(tokens[1]))
        sketches[sketch] = sketches.get(sketch, 0) + 1
    changes.sketches = [(account_id, *key, calls) for key, calls in sketches.items()]
    changes.rollups = [(account_id, *key, *sums) for key, sums in rollups.items()]
    changes.daily_rollups = [(account_id, *key, *sums) for key, sums in daily.items()]
    return changes, balance, spent


async def run_calls(kind: str, url: str, calls: list[Any]) -> None:
    if kind == "sqlite":

        def run() -> None:
            conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            for call in calls:
                if call.mode == "many":
                    conn.executemany(call.sql, call.params)
                else:
                    conn.execute(call.sql, call.params)
            conn.execute("COMMIT")
            conn.close()

        await asyncio.to_thread(run)
        return
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        async with conn.transaction():
            for call in calls:
                await conn.execute(call.sql, *call.params)
    finally:
        await conn.close()


async def add_history(kind: str, url: str, ledger: Ledger, user: str, count: int) -> None:
    sql: SqlDialect = SqliteSql() if kind == "sqlite" else PostgresSql()
    rng = random.Random(count)
    account_id, balance, spent = await account_row(ledger, user)
    now = datetime.now(UTC)
    while count > 0:
        size = min(CHUNK, count)
        changes, balance, added = history_chunk(account_id, balance, size, now, rng)
        spent += added
        changes.accounts = [(account_id, balance, 0, spent, None, None, None, None, now)]
        await run_calls(kind, url, sql.write(changes))
        count -= size


async def latency(call: Callable[[], Awaitable[object]], samples: int) -> tuple[float, float]:
    for _ in range(min(20, samples)):
        await call()
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(timings, n=100)
    return statistics.median(timings), cuts[98]


# -- one database ------------------------------------------------------------------------------


async def sequential_rounds(
    kind: str, url: str, ledger: Ledger, args: argparse.Namespace
) -> dict[str, Any]:
    """Raw commits and one sequential writer (and, on SQLite, its statements alone),
    measured in alternating rounds."""
    raws, writes, ratios, alone, alone_ratios, floors = [], [], [], [], [], []
    for number in range(args.rounds):
        raw = await raw_commits(kind, url, args.seconds / args.rounds)
        # At least 300 writes a round: fewer made single rounds swing from 16% to 49%.
        count = max(300, args.writes // 4 // args.rounds)
        rate = await usage_writes(ledger, count, 1, f"s{number}")
        raws.append(raw)
        writes.append(rate)
        ratios.append(rate / raw)
        if kind == "sqlite":
            floor = await statements_alone(ledger, url, count, f"floor-{number}")
            alone.append(floor)
            alone_ratios.append(floor / raw)
            floors.append(rate / floor)
    results: dict[str, Any] = {
        "raw": statistics.median(raws),
        "sequential": statistics.median(writes),
        "ratio": statistics.median(ratios),
        "ratio_range": (min(ratios), max(ratios)),
    }
    if alone:
        results["alone"] = statistics.median(alone)
        results["alone_ratio"] = statistics.median(alone_ratios)
        results["alone_range"] = (min(alone_ratios), max(alone_ratios))
        results["floor"] = statistics.median(floors)
        results["floor_range"] = (min(floors), max(floors))
    return results


def recent_days() -> tuple[datetime, datetime]:
    """The span of the tracker's daily series: the 29 days up to the end of today (UTC)."""
    today = window_containing(SpendingPeriod.DAILY, datetime.now(UTC))
    return today.start - timedelta(days=29), today.end


async def bench(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"reads": {}}
    ledger = await Ledger.connect(url)
    tracker = BudgetTracker(
        LocalBackend(ledger, PriceBook.in_memory(genai_prices=False), status_ttl=0)
    )
    try:
        for number in range(16):
            await ledger.deposit(f"writer-{number}", "bench", Decimal(10**6), idempotency_key="f")
        await usage_writes(ledger, 50, 1, "warm")
        await prepare_floor(ledger)
        await raw_commits(kind, url, 0.2)
        results.update(await sequential_rounds(kind, url, ledger, args))
        results["c8"] = await usage_writes(ledger, args.writes, 8, "c8")
        results["c64"] = await usage_writes(ledger, args.writes, 64, "c64")

        await ledger.deposit("heavy", "bench", Decimal(10**9), idempotency_key="f")
        stored = 0
        for size in args.sizes:
            await add_history(kind, url, ledger, "heavy", size - stored)
            stored = size
            reads = {
                # At an explicit instant: the rollup read itself, not the remembered answer
                # (``ledger/read_memo.py``), which the next row measures.
                "status": lambda: ledger.get_budget_status("heavy", "bench", at=datetime.now(UTC)),
                "status, remembered": lambda: ledger.get_budget_status("heavy", "bench"),
                "spending": lambda: ledger.get_spending("heavy", "bench", SpendingPeriod.MONTHLY),
                "analytics": lambda: ledger.get_analytics("heavy", "bench", SpendingPeriod.MONTHLY),
                # The tracker's analytics: the query above, plus the 29 days of spend its
                # trend and anomaly flag are computed from (no cache: status_ttl=0).
                "tracker analytics": lambda: tracker.get_spending_analytics(
                    "heavy", "bench", SpendingPeriod.MONTHLY
                ),
                # Its two reads alone, as the tracker makes them (together), no analysis.
                "its reads alone": lambda: asyncio.gather(
                    ledger.get_analytics(
                        "heavy", "bench", SpendingPeriod.MONTHLY, at=datetime.now(UTC)
                    ),
                    ledger.get_spending_series(
                        "heavy", "bench", SpendingPeriod.DAILY, *recent_days()
                    ),
                ),
            }
            results["reads"][size] = {
                name: await latency(read, args.reads) for name, read in reads.items()
            }
        if args.check:
            report = await ledger.check_integrity()
            results["integrity"] = "clean" if report.ok else str(report)[:300]
    finally:
        await ledger.close()
    return results


async def with_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ssb-bench-") as directory:
            return await bench(kind, f"sqlite+aiosqlite:///{Path(directory) / 'ledger.db'}", args)
    name = f"ssb_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(plain_dsn(POSTGRES_ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        return await bench(kind, url, args)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def label(size: int) -> str:
    return (
        f"{size // 1_000_000}M"
        if size >= 1_000_000 and size % 1_000_000 == 0
        else (f"{size // 1000}k" if size % 1000 == 0 else str(size))
    )


def _tracker_cell(r: dict[str, Any], size: int) -> str:
    """The tracker's analytics, and its ratio to the analytics query and to its two reads."""
    reads = r["reads"][size]
    p50, p99 = reads["tracker analytics"]
    return (
        f"{p50:.2f} / {p99:.2f} (**{p50 / reads['analytics'][0]:.1f}x**; "
        f"{p50 / reads['its reads alone'][0]:.1f}x)"
    )


def _reads_cell(r: dict[str, Any], size: int) -> str:
    p50, p99 = r["reads"][size]["its reads alone"]
    return f"{p50:.2f} / {p99:.2f}"


def report(all_results: dict[str, dict[str, Any]], sizes: list[int]) -> str:
    lines = [
        "| | " + " | ".join(all_results) + " |",
        "|---|" + "---|" * len(all_results),
    ]

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in all_results.values()) + " |")

    row("raw durable commits/s (the limit)", lambda r: f"{r['raw']:,.0f}")
    row(
        "usage writes/s, 1 sequential writer",
        lambda r: (
            f"{r['sequential']:,.0f} ({r['ratio']:.0%} of raw, rounds "
            f"{r['ratio_range'][0]:.0%}-{r['ratio_range'][1]:.0%})"
        ),
    )
    row(
        "its statements alone, no ledger code (1 sequential writer)",
        lambda r: (
            f"{r['alone']:,.0f} ({r['alone_ratio']:.0%} of raw, rounds "
            f"{r['alone_range'][0]:.0%}-{r['alone_range'][1]:.0%})"
            if "alone" in r
            else "n/a (two round trips)"
        ),
    )
    row(
        "1 sequential writer / its statements alone (floor: >= 50%)",
        lambda r: (
            f"**{r['floor']:.0%}** (rounds {r['floor_range'][0]:.0%}-{r['floor_range'][1]:.0%})"
            if "floor" in r
            else "n/a"
        ),
    )
    row("usage writes/s, 8 concurrent writers", lambda r: f"{r['c8']:,.0f}")
    row("usage writes/s, 64 concurrent writers", lambda r: f"{r['c64']:,.0f}")
    for size in sizes:
        for name in ("status", "status, remembered", "spending", "analytics"):

            def p50_p99(r: dict[str, Any], size: int = size, name: str = name) -> str:
                return "{:.2f} / {:.2f}".format(*r["reads"][size][name])

            row(f"{name} p50 / p99 ms, {label(size)} entries", p50_p99)
        row(
            f"tracker analytics p50 / p99 ms, {label(size)} entries (x analytics; x its reads)",
            functools.partial(_tracker_cell, size=size),
        )
        row(
            f"its reads alone (analytics + 29 days of spend) p50 / p99 ms, {label(size)} entries",
            functools.partial(_reads_cell, size=size),
        )
    if any("integrity" in r for r in all_results.values()):
        row("integrity check", lambda r: str(r.get("integrity", "")))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--writes", type=int, default=4000, help="writes per concurrent test")
    parser.add_argument("--reads", type=int, default=300, help="samples per read latency")
    parser.add_argument("--seconds", type=float, default=4.0, help="raw commits, all rounds")
    parser.add_argument("--rounds", type=int, default=8, help="raw/sequential pairs")
    parser.add_argument("--check", action="store_true", help="run the integrity check at the end")
    args = parser.parse_args()
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    results = {}
    for kind in args.databases.split(","):
        name = "sqlite" if kind.startswith("sqlite") else "postgresql"
        started = time.perf_counter()
        results[name] = asyncio.run(with_database(name, args))
        print(f"{name}: done in {time.perf_counter() - started:.0f} s", flush=True)
    print(report(results, args.sizes))


if __name__ == "__main__":
    main()
