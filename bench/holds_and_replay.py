"""Issue 17's two measurements: holds with and without output prediction, and replay speed.

    python bench/holds_and_replay.py [--entries 1000000] [--databases sqlite,postgres]
                                     [--skip-holds] [--skip-replay]

**Holds.** A typical chat history: 1,000 gpt-4o calls of one account whose output follows
a log-normal distribution (median 250 tokens, a long tail, as chat answers do). For 200
new short prompts (10-400 words) the guard's hold without ``max_tokens`` is computed twice:
without prediction (the worst case: gpt-4o's context window minus the input) and with it
(the account's p95 output). The table gives the median hold in USDC, how many such calls
a $5 balance admits at once, and, for the prediction, the share of 1,000 further calls
from the same distribution that would have produced more than their hold (the miss rate).

**Replay.** ``--entries`` usage entries (default 1M; use a smaller number on a shared
machine) over one month for one account, on four real models with varied usage (cached
input, cache writes, reasoning), inserted in bulk with the ledger's own write statements
(as ``bench/ledger.py`` does). Then ``PricingEngine.replay`` re-prices the month on three
target models (and each call on its own model); the table gives its seconds, and, for
scale, how many distinct (model, minute, usage) groups the month has and how long reading
them all as groups takes (what a replay over HTTP, which prices every group in the client,
starts with). The recorded charges are synthetic (the
replay's speed does not depend on them). PostgreSQL runs on a throwaway database on the
server at ``SMARTSPACE_BUDGET_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg

from smartspace_budget.backend.local import LocalBackend
from smartspace_budget.guard import Guard
from smartspace_budget.ledger.sql import Changes, SqlDialect
from smartspace_budget.ledger.sql_postgres import PostgresSql
from smartspace_budget.ledger.sql_sqlite import SqliteSql
from smartspace_budget.models import UsageEvent
from smartspace_budget.models.output_sketch import bucket_of
from smartspace_budget.pricing import PricingEngine


def _ledger_bench() -> ModuleType:
    path = Path(__file__).resolve().parent / "ledger.py"
    spec = importlib.util.spec_from_file_location("bench_ledger", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LEDGER = _ledger_bench()
WORDS = ("the", "budget", "guard", "holds", "a", "small", "amount", "before", "each", "call")


def chat_output(rng: random.Random) -> int:
    return min(16_000, max(1, int(rng.lognormvariate(math.log(250), 0.9))))


# -- holds -----------------------------------------------------------------------------------


async def holds() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ssb-holds-") as directory:
        backend = await LocalBackend.open(f"sqlite+aiosqlite:///{Path(directory) / 'l.db'}")
        try:
            return await _holds(backend)
        finally:
            await backend.aclose()


async def _holds(backend: LocalBackend) -> list[str]:
    rng = random.Random(17)
    user, project = "chat-user", "chat-app"
    await backend.deposit(user, project, Decimal(1000), idempotency_key="d")
    for number in range(1000):
        await backend.record_usage(
            user,
            project,
            UsageEvent(
                provider="openai",
                model="gpt-4o",
                input_tokens=rng.randint(20, 600),
                output_tokens=chat_output(rng),
                actual_cost=Decimal("0.003"),
            ),
            idempotency_key=f"h{number}",
        )
    engine = PricingEngine(backend)
    rows = []
    held: dict[bool, list[Decimal]] = {False: [], True: []}
    predicted_tokens = 0
    for predict in (False, True):
        guard = Guard(backend, engine, user_id=user, project_id=project, predict_output=predict)
        prompts = random.Random(5)
        for _ in range(200):
            words = " ".join(prompts.choice(WORDS) for _ in range(prompts.randint(10, 400)))
            call = await guard.open_call(
                "openai", "gpt-4o", messages=[{"role": "user", "content": words}]
            )
            held[predict].append(call.reserved_amount)
            if call.predicted_output is not None:
                predicted_tokens = call.predicted_output
            await guard.release_call(call)
    future = random.Random(99)
    misses = sum(1 for _ in range(1000) if chat_output(future) > predicted_tokens)
    for predict, name in ((False, "worst case (no prediction)"), (True, "predicted p95")):
        median = statistics.median(held[predict])
        admits = int(Decimal(5) // median)
        miss = f"{misses / 1000:.1%}" if predict else "0% (cannot be exceeded)"
        rows.append(f"| {name} | ${median:.4f} | {admits:,} | {miss} |")
    return [
        "| hold for a short gpt-4o chat call | median hold (USDC) | concurrent calls on $5 "
        "| calls over their hold |",
        "|---|---|---|---|",
        *rows,
        f"\n(p95 of the account's 1,000 recorded outputs: {predicted_tokens:,} tokens held)",
    ]


# -- replay ----------------------------------------------------------------------------------

REPLAY_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("google", "gemini-2.5-flash"),
]
TARGETS = ["openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5", "deepseek/deepseek-chat"]
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)


def month_chunk(
    account_id: int, balance: int, count: int, rng: random.Random
) -> tuple[Changes, int, int]:
    changes = Changes()
    rollups: dict[tuple[datetime, str, str], list[int]] = {}
    daily: dict[tuple[datetime, str, str], list[int]] = {}
    sketches: dict[tuple[str, str, int], int] = {}
    spent = 0
    seconds = int((END - START).total_seconds())
    for _ in range(count):
        provider, model = rng.choice(REPLAY_MODELS)
        inp = int(rng.lognormvariate(math.log(1500), 1.0)) + 1
        out = chat_output(rng)
        cached = rng.choice((0, 0, inp // 2))
        written = 0 if provider != "anthropic" else rng.choice((0, min(1024, inp - cached)))
        reasoning = 0 if model != "gemini-2.5-flash" else out // 3
        tokens = (inp, out, cached, written, reasoning)
        cost = (inp * 2500 + out * 10_000) // 1000  # synthetic: the replay re-prices anyway
        occurred = START + timedelta(seconds=rng.randrange(seconds))
        bucket, day = LEDGER.utc_buckets(occurred)
        balance -= cost
        spent += cost
        changes.entries.append(
            LEDGER.usage_entry(
                account_id, cost, balance, occurred, (bucket, day), provider, model, tokens, None
            )
        )
        for table, start in ((rollups, bucket), (daily, day)):
            sums = table.setdefault((start, provider, model), [0] * 9)
            sums[0] += cost
            sums[1] += 1
            for index, value in enumerate(tokens, start=2):
                sums[index] += value
        key = (provider, model, bucket_of(out))
        sketches[key] = sketches.get(key, 0) + 1
    changes.rollups = [(account_id, *key, *sums) for key, sums in rollups.items()]
    changes.daily_rollups = [(account_id, *key, *sums) for key, sums in daily.items()]
    changes.sketches = [(account_id, *key, calls) for key, calls in sketches.items()]
    return changes, balance, spent


async def replay_on(kind: str, url: str, entries: int) -> dict[str, Any]:
    backend = await LocalBackend.open(url)
    try:
        ledger = backend.ledger
        user = "replay"
        await ledger.deposit(user, "bench", Decimal(10**9), idempotency_key="f")
        account_id, balance, spent = await LEDGER.account_row(ledger, user)
        sql: SqlDialect = SqliteSql() if kind == "sqlite" else PostgresSql()
        rng = random.Random(entries)
        left = entries
        started = time.perf_counter()
        while left > 0:
            size = min(LEDGER.CHUNK, left)
            changes, balance, added = month_chunk(account_id, balance, size, rng)
            spent += added
            now = datetime.now(UTC)
            changes.accounts = [(account_id, balance, 0, spent, None, None, None, None, now)]
            await LEDGER.run_calls(kind, url, sql.write(changes))
            left -= size
        loading = time.perf_counter() - started
        engine = PricingEngine(backend)
        started = time.perf_counter()
        report = await engine.replay(user, "bench", (START, END), TARGETS)
        total = time.perf_counter() - started
        assert report.calls == entries
        started = time.perf_counter()
        shapes = await backend.get_usage_shapes(user, "bench", START, END)
        grouped = time.perf_counter() - started
        return {
            "load": loading,
            "replay": total,
            "groups": len(shapes),
            "grouped": grouped,
            "cheapest": report.cheapest,
        }
    finally:
        await backend.aclose()


async def replay_database(kind: str, entries: int) -> dict[str, Any]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ssb-replay-") as directory:
            return await replay_on(kind, f"sqlite+aiosqlite:///{Path(directory) / 'l.db'}", entries)
    name = f"ssb_replay_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(LEDGER.plain_dsn(LEDGER.POSTGRES_ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = LEDGER.POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        return await replay_on(kind, url, entries)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main_async(args: argparse.Namespace) -> None:
    if not args.skip_holds:
        print("\n".join(await holds()))
        print()
    if args.skip_replay:
        return
    print(
        f"| {args.entries:,} entries, 3 targets | replay (s) | distinct (model, minute, usage) "
        "groups | reading them all as groups (s) |"
    )
    print("|---|---|---|---|")
    for kind in args.databases.split(","):
        result = await replay_database(kind.strip(), args.entries)
        print(
            f"| {kind} | {result['replay']:.1f} | {result['groups']:,} | {result['grouped']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="usage entries to replay")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--skip-holds", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
