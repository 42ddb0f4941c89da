"""Remembered status and balance answers (``ledger/read_memo.py``) are never stale.

The memo answers a SQLite status or balance read without a statement while no connection has
committed since the answer was read and the clock is still in its day. These tests write
through this ledger, through a second ledger on the same file (another process's view), and
move the clock over midnight, and check every answer against a fresh read.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.ledger.ledger_helpers import D, usage

import smartspace_budget.ledger.ledger as ledger_module
import smartspace_budget.ledger.ops as ops_module
from smartspace_budget.errors import BudgetExceededError
from smartspace_budget.ledger import Ledger
from smartspace_budget.ledger.read_memo import (
    MAX_REMEMBERED,
    PAUSE_READS,
    SAMPLE_LOOKS,
    PostgresVersion,
    ReadMemo,
    SqliteVersion,
    forget_iteration_versions,
)
from smartspace_budget.models import Balance, BudgetStatus

USER, PROJECT = "memo-user", "memo-project"


@pytest.fixture
async def pair(database_url: str) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two ledgers on one database: the second stands for another process writing."""
    first = await Ledger.connect(database_url, migrate=False)
    second = await Ledger.connect(database_url, migrate=False)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def count_reads(ledger: Ledger, name: str) -> list[int]:
    """Wrap the ledger's ``name`` read so the test sees how many statements ran."""
    calls = [0]
    reads: Any = ledger._reads
    original: Callable[..., Awaitable[Any]] = getattr(reads, name)

    async def counted(*args: Any) -> Any:
        calls[0] += 1
        return await original(*args)

    setattr(reads, name, counted)
    return calls


def without_as_of(answer: Balance | BudgetStatus) -> dict[str, Any]:
    return answer.model_dump(exclude={"as_of"})


async def test_repeated_status_runs_no_statement_and_is_as_of_now(
    pair: tuple[Ledger, Ledger],
) -> None:
    """A read whose version is the previous read's runs no statement. On PostgreSQL any
    transaction anywhere on the server (another test database, autovacuum) changes the
    version, so the reads go on until two in a row share one."""
    ledger, _ = pair
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    statements = count_reads(ledger, "status")
    memo: Any = ledger._memo
    versions: list[object] = []
    look = memo.version

    async def recorded() -> object:
        versions.append(await look())
        return versions[-1]

    memo.version = recorded
    first = await ledger.get_budget_status(USER, PROJECT)
    for _ in range(50):
        before = statements[0]
        again = await ledger.get_budget_status(USER, PROJECT)
        if versions[-1] == versions[-2]:
            assert statements[0] == before  # the same version: answered from memory
            break
    else:
        pytest.fail(f"the version changed on each of 50 reads: {versions[:5]}...")
    assert without_as_of(again) == without_as_of(first)
    assert first.as_of is not None
    assert again.as_of is not None
    assert again.as_of >= first.as_of


async def test_own_write_is_seen_by_the_next_read(pair: tuple[Ledger, Ledger]) -> None:
    ledger, _ = pair
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    assert (await ledger.get_budget_status(USER, PROJECT)).total_balance == D("10")
    assert (await ledger.get_balance(USER, PROJECT)).total_balance == D("10")
    await ledger.record_usage(USER, PROJECT, usage("2.5"), idempotency_key="u1")
    status = await ledger.get_budget_status(USER, PROJECT)
    balance = await ledger.get_balance(USER, PROJECT)
    assert (status.total_balance, status.spent_today) == (D("7.5"), D("2.5"))
    assert (balance.total_balance, balance.available_balance) == (D("7.5"), D("7.5"))


async def test_another_connections_commit_is_seen_by_the_next_read(
    pair: tuple[Ledger, Ledger],
) -> None:
    ledger, other = pair
    await other.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    assert (await ledger.get_budget_status(USER, PROJECT)).total_balance == D("10")
    assert (await ledger.get_balance(USER, PROJECT)).reserved_amount == D("0")
    await other.reserve(USER, PROJECT, D("4"), idempotency_key="r1")
    status = await ledger.get_budget_status(USER, PROJECT)
    balance = await ledger.get_balance(USER, PROJECT)
    assert (status.available_balance, status.reserved_amount) == (D("6"), D("4"))
    assert (balance.available_balance, balance.reserved_amount) == (D("6"), D("4"))


async def test_a_remembered_status_ends_with_its_local_day(
    pair: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, _ = pair
    before_midnight = datetime(2026, 3, 31, 23, 59, 30, tzinfo=UTC)
    clock = [before_midnight]
    real_now_or = ops_module.now_or
    monkeypatch.setattr(
        ledger_module, "now_or", lambda now: clock[0] if now is None else real_now_or(now)
    )
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1", now=before_midnight)
    event = usage("3", occurred_at=before_midnight - timedelta(seconds=10))
    await ledger.record_usage(USER, PROJECT, event, idempotency_key="u1", now=before_midnight)
    status = await ledger.get_budget_status(USER, PROJECT)
    assert (status.spent_today, status.spent_this_month) == (D("3"), D("3"))
    assert (await ledger.get_budget_status(USER, PROJECT)).as_of == before_midnight

    clock[0] = before_midnight + timedelta(minutes=1)  # April 1st: a new day and month
    status = await ledger.get_budget_status(USER, PROJECT)
    assert (status.spent_today, status.spent_this_month, status.spent_total) == (
        D("0"),
        D("0"),
        D("3"),
    )
    assert status.as_of == clock[0]


async def test_reads_at_a_given_instant_bypass_the_memo(pair: tuple[Ledger, Ledger]) -> None:
    ledger, _ = pair
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    statements = count_reads(ledger, "status")
    at = datetime.now(UTC)
    await ledger.get_budget_status(USER, PROJECT, at=at)
    await ledger.get_budget_status(USER, PROJECT, at=at)
    assert statements == [2]


async def test_an_unreadable_version_is_a_miss_never_a_guess(
    pair: tuple[Ledger, Ledger],
) -> None:
    """When no version can be read, every read runs its statement."""
    ledger, _ = pair
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    await ledger.get_budget_status(USER, PROJECT)
    memo: Any = ledger._memo

    async def no_version() -> None:
        return None

    if memo._rounds is not None:
        memo._rounds._fetch = no_version
    else:
        memo._read_version = lambda: None
    statements = count_reads(ledger, "status")
    for _ in range(3):
        await asyncio.sleep(0)  # a new loop iteration: the version is read again
        assert (await ledger.get_budget_status(USER, PROJECT)).total_balance == D("10")
    assert statements == [3]


async def test_a_failing_postgres_read_gives_no_version() -> None:
    class Down:
        async def fetch(self, sql: str, params: Any) -> list[Any]:
            raise ConnectionRefusedError("server gone")

    assert await PostgresVersion(cast(Any, Down()))() is None


def test_a_file_that_is_not_a_database_gives_no_version(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"not a database, " * 512)
    version = SqliteVersion(str(path))
    assert version() is None
    version.close()


def test_a_missing_database_gives_no_version(tmp_path: Path) -> None:
    version = SqliteVersion(str(tmp_path / "no-such-dir" / "ledger.sqlite3"))
    assert version() is None
    version.close()


STATUS = BudgetStatus(
    total_balance=D("1"),
    available_balance=D("1"),
    reserved_amount=D("0"),
    spent_today=D("0"),
    spent_this_month=D("0"),
    spent_total=D("0"),
)
NOON = datetime(2026, 5, 5, 12, tzinfo=UTC)
DAY = (datetime(2026, 5, 5, tzinfo=UTC), datetime(2026, 5, 6, tzinfo=UTC))


async def test_an_answer_read_across_a_commit_is_not_kept() -> None:
    versions = iter([1, 2, 2])
    memo = ReadMemo(lambda: next(versions), per_iteration=True)
    seen = await memo.version()  # 1, then the answer is read, then someone commits
    await asyncio.sleep(0)  # a later iteration of the loop
    assert await memo.version() == 2  # another request sees the commit
    memo.remember(7, seen, STATUS, valid_from=DAY[0], valid_until=DAY[1])
    await asyncio.sleep(0)
    assert memo.recall(BudgetStatus, 7, await memo.version(), NOON) is None


async def test_recall_holds_only_inside_the_window_and_for_the_kind() -> None:
    memo = ReadMemo(lambda: 5)
    version = await memo.version()
    memo.remember(7, version, STATUS, valid_from=DAY[0], valid_until=DAY[1])
    assert memo.recall(BudgetStatus, 7, version, NOON) == STATUS.model_copy(update={"as_of": NOON})
    assert memo.recall(BudgetStatus, 7, version, DAY[1]) is None
    assert memo.recall(BudgetStatus, 7, version, DAY[0] - timedelta(microseconds=1)) is None
    assert memo.recall(Balance, 7, version, NOON) is None
    assert memo.recall(BudgetStatus, 8, version, NOON) is None
    assert memo.recall(BudgetStatus, 7, None, NOON) is None


async def test_the_memo_stays_bounded() -> None:
    memo = ReadMemo(lambda: 1)
    version = await memo.version()
    for row_id in range(MAX_REMEMBERED + 1):
        memo.remember(row_id, version, STATUS)
    assert memo.recall(BudgetStatus, MAX_REMEMBERED, version, NOON) is not None
    assert memo.recall(BudgetStatus, 0, version, NOON) is None


async def test_the_version_is_read_once_per_loop_iteration() -> None:
    reads: list[int] = []

    def read_version() -> int:
        reads.append(1)
        return len(reads)

    memo = ReadMemo(read_version, per_iteration=True)
    assert [await memo.version() for _ in range(3)] == [1, 1, 1]
    await asyncio.sleep(0)
    assert [await memo.version() for _ in range(2)] == [2, 2]
    forget_iteration_versions()  # what every write through a Ledger does when it returns
    assert await memo.version() == 3


def version_now(memo: ReadMemo) -> object:
    """``memo.version()`` run to its end at once, as a callback would (it must not wait)."""
    step = memo.version()
    try:
        step.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the version of a SQLite memo is read without waiting")


async def test_what_is_queued_while_the_version_is_read_reads_it_again() -> None:
    """A write's answer can be queued by the writer thread while the loop reads the version
    (the read releases the GIL): whatever runs it next must not get the older version."""
    loop = asyncio.get_running_loop()
    reads: list[int] = []
    seen: list[object] = []

    def read_version() -> int:
        reads.append(1)
        if len(reads) == 1:
            loop.call_soon(lambda: seen.append(version_now(memo)))  # queued mid-read
        return len(reads)

    memo = ReadMemo(read_version, per_iteration=True)
    assert await memo.version() == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert seen == [2]


async def test_a_fetched_version_is_shared_and_survives_a_cancel() -> None:
    """PostgreSQL: readers asking together share one round trip, whoever of them gives up."""
    fetches: list[int] = []
    release = asyncio.Event()

    async def fetch_version() -> str:
        fetches.append(1)
        await release.wait()
        return f"snapshot-{len(fetches)}"

    memo = ReadMemo(fetch_version=fetch_version)
    readers = [asyncio.ensure_future(memo.version()) for _ in range(3)]
    await asyncio.sleep(0)
    readers[0].cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*readers[1:]) == ["snapshot-1", "snapshot-1"]
    assert readers[0].cancelled()
    assert fetches == [1]
    assert await memo.version() == "snapshot-2"  # asked later: the server is asked again


async def test_readers_that_come_while_a_query_runs_share_the_next_one() -> None:
    """One snapshot query at a time: everyone who asks while it runs gets the next one, sent
    after they asked (never the running one's answer, which may predate their request)."""
    sent: list[int] = []
    answers: list[asyncio.Future[str]] = []
    in_flight = [0]

    async def fetch_version() -> str:
        in_flight[0] += 1
        assert in_flight[0] == 1
        sent.append(1)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        answers.append(answer)
        try:
            return await answer
        finally:
            in_flight[0] -= 1

    memo = ReadMemo(fetch_version=fetch_version)
    first = asyncio.ensure_future(memo.version())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sent == [1]  # the first query is under way
    later = [asyncio.ensure_future(memo.version())]
    await asyncio.sleep(0)
    later.append(asyncio.ensure_future(memo.version()))  # another iteration, same round
    await asyncio.sleep(0)
    assert sent == [1]  # the next round waits for the running one
    answers[0].set_result("before")
    assert await first == "before"
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sent == [1, 1]
    answers[1].set_result("after")
    assert await asyncio.gather(*later) == ["after", "after"]


async def test_without_serving_each_read_looks_again(database_url: str) -> None:
    """Outside the service a caller may learn of another process's commit without the event
    loop (here: waiting, blocked, for a subprocess that writes) and read again in the same
    step; the read must see it, so every read looks at the version again."""
    async with (
        await Ledger.connect(database_url, migrate=False) as ledger,
        await Ledger.connect(database_url, migrate=False) as other,
    ):
        await other.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
        assert (await ledger.get_balance(USER, PROJECT)).total_balance == D("10")  # remembered
        # Answered from memory, after a look at the version in this very loop iteration:
        assert (await ledger.get_balance(USER, PROJECT)).total_balance == D("10")

        script = (
            "import asyncio, sys\n"
            "from decimal import Decimal\n"
            "from smartspace_budget.ledger import Ledger\n"
            "async def main():\n"
            "    async with await Ledger.connect(sys.argv[1], migrate=False) as ledger:\n"
            "        await ledger.deposit(sys.argv[2], sys.argv[3], Decimal(5),"
            " idempotency_key='d2')\n"
            "asyncio.run(main())\n"
        )
        # Another process writes while this loop is blocked (on purpose: the same step reads
        # next, with no iteration of the loop in between).
        subprocess.run(  # noqa: ASYNC221
            [sys.executable, "-c", script, database_url, USER, PROJECT], check=True, timeout=60
        )
        assert (await ledger.get_balance(USER, PROJECT)).total_balance == D("15")


async def test_the_service_shares_one_look_per_iteration(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    async with await Ledger.connect(url, serving=True) as served:
        memo: Any = served._memo
        assert memo._per_iteration


async def test_every_write_forgets_the_versions_of_the_iteration(
    pair: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write may commit on the loop's own thread and return in the iteration in which
    another task took the version: its caller's next read must not reuse that version."""
    ledger, _ = pair
    forgotten: list[int] = []
    monkeypatch.setattr(ledger_module, "forget_iteration_versions", lambda: forgotten.append(1))
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    await ledger.record_usage(USER, PROJECT, usage("1"), idempotency_key="u1")
    with pytest.raises(BudgetExceededError):
        await ledger.reserve(USER, PROJECT, D("1000"), idempotency_key="r1")
    assert forgotten == [1, 1, 1]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["deposit", "usage", "reserve", "read"]), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
async def test_every_answer_equals_a_fresh_read(
    pair: tuple[Ledger, Ledger], steps: list[Any]
) -> None:
    """Writes from either ledger interleaved with reads: the remembered answer of the first
    ledger always equals a fresh statement's (a read at an explicit instant skips the memo)."""
    ledger, other = pair
    user = f"memo-{uuid.uuid4().hex}"  # a fresh account for each example
    await other.deposit(user, PROJECT, D("100"), idempotency_key=f"{user}-seed")
    for number, (step, by_other) in enumerate(steps):
        writer = other if by_other else ledger
        key = f"{user}-{number}"
        if step == "deposit":
            await writer.deposit(user, PROJECT, D("1.25"), idempotency_key=key)
        elif step == "usage":
            await writer.record_usage(user, PROJECT, usage("0.5"), idempotency_key=key)
        elif step == "reserve":
            await writer.reserve(user, PROJECT, D("0.75"), idempotency_key=key)
        status = await ledger.get_budget_status(user, PROJECT)
        balance = await ledger.get_balance(user, PROJECT)
        assert status.as_of is not None
        assert balance.as_of is not None
        fresh_status = await ledger.get_budget_status(user, PROJECT, at=status.as_of)
        fresh_balance = await ledger.get_balance(user, PROJECT, at=balance.as_of)
        assert without_as_of(status) == without_as_of(fresh_status)
        assert without_as_of(balance) == without_as_of(fresh_balance)


async def test_a_postgres_memo_whose_looks_mostly_miss_stops_looking_for_a_while() -> None:
    """On a busy shared server every look at the snapshot may find a new one: then each
    read would pay two round trips, so the memo reads without looking for a while."""
    snapshots = iter(range(10_000))

    async def always_new() -> int:
        return next(snapshots)

    memo = ReadMemo(fetch_version=always_new)
    for _ in range(SAMPLE_LOOKS):
        assert not memo.paused()
        version = await memo.version()
        assert memo.recall(BudgetStatus, 7, version, NOON) is None
        memo.remember(7, version, STATUS)
    assert [memo.paused() for _ in range(PAUSE_READS)] == [True] * PAUSE_READS
    assert not memo.paused()


async def test_a_memo_that_finds_its_answers_keeps_looking() -> None:
    async def same() -> str:
        return "snapshot"

    memo = ReadMemo(fetch_version=same)
    version = await memo.version()
    memo.remember(7, version, STATUS)
    for _ in range(SAMPLE_LOOKS * 3):
        assert not memo.paused()
        assert memo.recall(BudgetStatus, 7, await memo.version(), NOON) is not None


async def test_while_paused_a_read_runs_its_statement_without_a_look(
    pair: tuple[Ledger, Ledger], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, _ = pair
    await ledger.deposit(USER, PROJECT, D("10"), idempotency_key="d1")
    memo: Any = ledger._memo
    looks: list[int] = []
    look = memo.version

    async def counted() -> object:
        looks.append(1)
        return await look()

    monkeypatch.setattr(memo, "version", counted)
    monkeypatch.setattr(memo, "paused", lambda: True)
    statements = count_reads(ledger, "status")
    for _ in range(3):
        assert (await ledger.get_budget_status(USER, PROJECT)).total_balance == D("10")
    assert (statements, looks) == ([3], [])
