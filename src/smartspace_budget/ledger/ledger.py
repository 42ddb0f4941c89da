"""``Ledger``: the one object the in-process backend and the service use for money.

Writes go through :class:`~smartspace_budget.ledger.writer.GroupCommitWriter` (validated
first, then applied in a shared durable transaction, see ``apply.py`` for the rules); reads
are single statements over the account row and the rollups (``reads.py``), on read
connections of their own.

Times: every method that depends on the clock takes ``now`` (writes) or ``at`` (reads);
``None`` means the real clock. Amounts are Decimal USDC in and out, stored as nano-USDC
(:func:`smartspace_budget.money.to_nano`, half-even). Accounts are created by the first
write that names them (in UTC); reads of an unknown account raise :class:`NotFoundError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartspace_budget.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidAmountError,
    InvalidInputError,
    NotFoundError,
    SmartspaceBudgetError,
)
from smartspace_budget.ledger.buckets import utc_window_of
from smartspace_budget.ledger.driver import (
    PostgresDriver,
    PostgresReader,
    ReadDriver,
    SqliteReader,
)
from smartspace_budget.ledger.engine import (
    busy_timeout_ms,
    create_engine,
    default_database_url,
    is_sqlite,
    postgres_dsn,
    snapshot_options,
    sqlite_path,
)
from smartspace_budget.ledger.integrity import IntegrityReport, check_integrity
from smartspace_budget.ledger.migrate import upgrade
from smartspace_budget.ledger.ops import (
    Adjust,
    Deposit,
    EnsureAccount,
    Expire,
    RecordUsage,
    Refund,
    Release,
    Reserve,
    SetPolicy,
    Settle,
    UsageRecord,
    check_currency,
    check_id,
    check_instant,
    check_text,
    check_timezone,
    check_ttl,
    now_or,
    policy_to_nano,
    positive_nano,
)
from smartspace_budget.ledger.read_memo import (
    PostgresVersion,
    ReadMemo,
    SqliteVersion,
    forget_iteration_versions,
)
from smartspace_budget.ledger.reads import AccountInfo, Reads
from smartspace_budget.ledger.sql import sql_for
from smartspace_budget.ledger.thread_writer import ThreadWriter
from smartspace_budget.ledger.writer import GroupCommitWriter
from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    LedgerEntry,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
    UsageEvent,
)
from smartspace_budget.models.output_sketch import DEFAULT_MIN_SAMPLES, OutputHistory
from smartspace_budget.models.replay import LinearPricing, LinearTotals, UsageShape
from smartspace_budget.money import to_nano
from smartspace_budget.periods import SpendingPeriod, parse_period

__all__ = ["Ledger"]

T = TypeVar("T")
A = TypeVar("A", Balance, BudgetStatus)
log = logging.getLogger("smartspace_budget.ledger")

_EXPIRE_CHUNK = 1000


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a wait that ran out of time: a connection
    attempt, a statement or a pool wait past the deadline, or SQLite's lock wait."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        if isinstance(seen, sqlite3.OperationalError) and "locked" in str(seen).lower():
            return True
        if type(seen).__name__ == "TimeoutError":  # SQLAlchemy's pool timeout
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


async def _dispose(engine: AsyncEngine) -> None:
    """Release an engine whose database may not answer: never wait on it for long."""
    try:
        async with asyncio.timeout(2.0):
            await engine.dispose()
    except Exception:
        engine.sync_engine.dispose(close=False)


def _account(user_id: object, project_id: object) -> tuple[str, str]:
    return check_id(user_id, "user_id"), check_id(project_id, "project_id")


class Ledger:
    """Exact balances, holds and spending of every account, on SQLite or PostgreSQL.

    ``Ledger(engine)`` uses an engine made by :func:`~smartspace_budget.ledger.engine.create_engine`
    whose schema is current; :meth:`connect` makes the engine and migrates it. ``writers``
    is the number of concurrent write transactions (1 on SQLite, 4 by default on PostgreSQL);
    ``serving`` is explained at :meth:`connect`.

    Every write of an account releases its holds past their expiry first. With
    ``expire_on_access`` (the embedded ledger, which has no service sweeping expired holds)
    a read of an account's balance or status as of now does too, and so does opening the
    ledger: no hold outlives its TTL. Off, reads never write (tests that move a fake clock
    forward with their writes read the holds as those writes left them).

    ``deadline`` (seconds; ``None``: unbounded) bounds every read and write: past it the
    call raises :class:`BackendTimeoutError`, as ``HttpBackend`` does. The database's own
    waits are bounded by it too (SQLite's lock waits, PostgreSQL's connection attempts,
    statements and pool waits), so a server that stops answering fails the work behind the
    call as well instead of holding a connection forever. A write whose deadline passed may
    still commit: retry it with the same idempotency key to learn its result.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        writers: int | None = None,
        owns_engine: bool = False,
        serving: bool = False,
        expire_on_access: bool = False,
        deadline: float | None = None,
    ) -> None:
        if deadline is not None and not deadline > 0:
            raise InvalidInputError(f"deadline must be positive, got {deadline!r}")
        self.deadline = deadline
        self.engine = engine
        self.expire_on_access = expire_on_access
        self._owns_engine = owns_engine
        reader: ReadDriver
        sql = sql_for(engine.dialect.name)
        self._writer: ThreadWriter | GroupCommitWriter
        self._version: SqliteVersion | None = None
        if is_sqlite(engine):
            path = sqlite_path(engine)
            busy_ms = busy_timeout_ms(deadline)
            self._writer = ThreadWriter(path, sql, busy_ms=busy_ms)
            reader = SqliteReader(path, busy_ms=busy_ms)
            self._version = SqliteVersion(path)
        else:
            dsn = postgres_dsn(engine)
            self._writer = GroupCommitWriter(
                lambda: PostgresDriver(dsn, deadline=deadline), sql, writers=writers or 4
            )
            reader = PostgresReader(dsn, deadline=deadline)
        # Status and balance answers kept while no commit happened anywhere (read_memo.py).
        self._memo = (
            ReadMemo(fetch_version=PostgresVersion(reader))
            if self._version is None
            else ReadMemo(self._version, per_iteration=serving)
        )
        self._reader = reader
        self._reads = Reads(reader, sql)
        self._accounts: dict[tuple[str, str], AccountInfo] = {}

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        migrate: bool = True,
        writers: int | None = None,
        serving: bool = False,
        expire_on_access: bool = False,
        deadline: float | None = None,
    ) -> Ledger:
        """Open the ledger at ``url`` (the default SQLite file when ``None``), migrated to head.

        ``expire_on_access``: see the class; the holds already past their expiry (left by a
        process that ended without settling them) are released now.

        ``deadline`` is explained at :class:`Ledger`; here it bounds each connection attempt
        and statement of the migration check, so a server that never answers fails the open
        with :class:`BackendTimeoutError`.

        ``serving``: every read answers a request that reached the event loop over I/O (the
        service), so on SQLite one look at the data version serves all reads of a loop
        iteration (``read_memo.py``). Leave it off where code may learn of another process's
        commit some other way (waiting for a subprocess, say) and then read.
        """
        target = url or default_database_url()
        try:
            engine = create_engine(target, deadline=deadline)
        except OSError as exc:  # e.g. the SQLite file's directory cannot be created
            raise BackendUnavailableError(f"cannot open the ledger database: {exc}") from exc
        try:
            if migrate:
                await upgrade(engine)
        except (SQLAlchemyError, OSError) as exc:
            await _dispose(engine)
            where = engine.url.render_as_string(hide_password=True)
            if _timed_out(exc):
                raise BackendTimeoutError(
                    f"the ledger database at {where} did not answer within the "
                    f"{deadline} s deadline: {exc!r}",
                    deadline=deadline,
                ) from exc
            raise BackendUnavailableError(
                f"cannot open the ledger database at {where}: {exc}"
            ) from exc
        except BaseException:
            await _dispose(engine)
            raise
        ledger = cls(
            engine,
            writers=writers,
            owns_engine=True,
            serving=serving,
            expire_on_access=expire_on_access,
            deadline=deadline,
        )
        if expire_on_access:
            await ledger._expire_overdue_holds()
        return ledger

    async def close(self) -> None:
        """Finish queued writes, then release the connections (if the ledger made the engine)."""
        await self._writer.close()
        await self._reader.close()
        if self._version is not None:
            self._version.close()
        if self._owns_engine:
            await _dispose(self.engine)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def writer_stats(self) -> tuple[int, int]:
        """(transactions committed, operations in them): their ratio is the group-commit gain."""
        return self._writer.batches, self._writer.operations

    # -- account administration --------------------------------------------------------------

    async def ensure_account(
        self,
        user_id: str,
        project_id: str,
        *,
        timezone: str = "UTC",
        currency: str = "USDC",
        now: datetime | None = None,
    ) -> AccountRef:
        """Create the account if it does not exist; an existing one is returned unchanged.

        The timezone and currency are fixed when the account is created (its rollups are
        filed by local hour), so the returned ref shows what the account really uses.
        """
        key = _account(user_id, project_id)
        zone_name, _ = check_timezone(timezone)
        op = EnsureAccount(
            now_or(now), account=key, timezone=zone_name, currency=check_currency(currency)
        )
        result: AccountRef = await self._write(op)
        return result

    async def set_policy(
        self, user_id: str, project_id: str, policy: BudgetPolicy, *, now: datetime | None = None
    ) -> BudgetPolicy:
        """Replace the account's limits (creating the account in UTC if needed)."""
        op = SetPolicy(
            now_or(now), account=_account(user_id, project_id), limits=policy_to_nano(policy)
        )
        result: BudgetPolicy = await self._write(op)
        return result

    async def get_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        return await self._call(self._reads.policy, user_id, project_id)

    async def list_accounts(self) -> list[AccountRef]:
        async with self._guard():
            return await self._reads.list_accounts()

    # -- writes (LedgerClient) -----------------------------------------------------------------

    async def deposit(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        reference: str | None = None,
        now: datetime | None = None,
    ) -> LedgerEntry:
        """Credit ``amount`` (> 0) to the account; ``reference`` is kept as the entry's reason."""
        op = Deposit(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            account=_account(user_id, project_id),
            amount=positive_nano(amount, "amount"),
            reference=None if reference is None else check_text(reference, "reference", 200),
        )
        result: LedgerEntry = await self._write(op)
        return result

    async def record_usage(
        self,
        user_id: str,
        project_id: str,
        usage: UsageEvent,
        *,
        idempotency_key: str,
        now: datetime | None = None,
    ) -> LedgerEntry:
        """Charge a call made without a hold; it is filed under ``usage.occurred_at`` (or now)."""
        op = RecordUsage(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            account=_account(user_id, project_id),
            usage=UsageRecord.from_event(usage),
        )
        result: LedgerEntry = await self._write(op)
        return result

    async def refund(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        usage_entry_id: str | None = None,
        reason: str = "",
        now: datetime | None = None,
    ) -> LedgerEntry:
        """Credit back ``amount`` (> 0): negative spending in the hour it happens.

        Tied to ``usage_entry_id``, it is filed under that entry's provider and model and may
        not exceed its cost minus earlier refunds (:class:`ConflictError`); an unknown entry or
        one of another account is :class:`NotFoundError`.
        """
        op = Refund(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            account=_account(user_id, project_id),
            amount=positive_nano(amount, "amount"),
            usage_entry_id=None
            if usage_entry_id is None
            else check_id(usage_entry_id, "usage_entry_id"),
            reason=check_text(reason, "reason"),
        )
        result: LedgerEntry = await self._write(op)
        return result

    async def adjust(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        reason: str,
        idempotency_key: str,
        now: datetime | None = None,
    ) -> LedgerEntry:
        """A signed, non-zero correction of the balance with a non-empty reason (not spending)."""
        nano = to_nano(amount, name="amount")
        if nano == 0:
            raise InvalidAmountError("an adjustment must not be zero")
        if not check_text(reason, "reason").strip():
            raise InvalidInputError("an adjustment needs a reason")
        op = Adjust(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            account=_account(user_id, project_id),
            amount=nano,
            reason=reason,
        )
        result: LedgerEntry = await self._write(op)
        return result

    async def reserve(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        ttl_seconds: int = 300,
        idempotency_key: str,
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> BudgetReservation:
        """Hold ``amount`` (>= 0) for ``ttl_seconds`` (1..86400); rules in ``ledger/apply.py``."""
        op = Reserve(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            account=_account(user_id, project_id),
            amount=to_nano(amount, name="amount", allow_negative=False),
            ttl_seconds=check_ttl(ttl_seconds),
            request_id=None if request_id is None else check_id(request_id, "request_id"),
        )
        result: BudgetReservation = await self._write(op)
        return result

    async def settle(
        self,
        reservation_id: str,
        usage: UsageEvent,
        *,
        idempotency_key: str,
        now: datetime | None = None,
    ) -> LedgerEntry:
        """Charge the real usage of a pending hold once and free the hold.

        :class:`NotFoundError` for an unknown hold, :class:`ReservationResolvedError` for one
        already settled, released or past its expiry.
        """
        op = Settle(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            reservation_id=check_id(reservation_id, "reservation_id"),
            usage=UsageRecord.from_event(usage),
        )
        result: LedgerEntry = await self._write(op)
        return result

    async def release(
        self, reservation_id: str, *, idempotency_key: str, now: datetime | None = None
    ) -> BudgetReservation:
        """Free a pending hold without charging (errors as :meth:`settle`)."""
        op = Release(
            now_or(now),
            check_id(idempotency_key, "idempotency_key"),
            reservation_id=check_id(reservation_id, "reservation_id"),
        )
        result: BudgetReservation = await self._write(op)
        return result

    async def expire_reservations(self, now: datetime | None = None) -> int:
        """Release every pending hold whose expiry is at or before ``now``; returns how many."""
        instant = now_or(now)
        total = 0
        while True:
            count: int = await self._write(Expire(instant, limit=_EXPIRE_CHUNK))
            total += count
            if count < _EXPIRE_CHUNK:
                return total

    # -- reads (Backend) -------------------------------------------------------------------------

    async def get_balance(
        self, user_id: str, project_id: str, *, at: datetime | None = None
    ) -> Balance:
        if at is None:
            return await self._memo_read(Balance, self._reads.balance, user_id, project_id)
        return await self._call(self._reads.balance, user_id, project_id, now_or(at))

    async def get_budget_status(
        self, user_id: str, project_id: str, *, at: datetime | None = None
    ) -> BudgetStatus:
        if at is None:
            return await self._memo_read(BudgetStatus, self._reads.status, user_id, project_id)
        return await self._call(self._reads.status, user_id, project_id, now_or(at))

    async def get_spending(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod,
        *,
        at: datetime | None = None,
    ) -> SpendingSummary:
        return await self._call(
            self._reads.spending, user_id, project_id, parse_period(period), now_or(at)
        )

    async def get_analytics(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod = SpendingPeriod.MONTHLY,
        *,
        at: datetime | None = None,
    ) -> SpendingAnalytics:
        """Totals and breakdowns; ``spending_trend`` and ``anomaly_detected`` are left at their
        defaults for the budgets layer, which has the history to judge them."""
        return await self._call(
            self._reads.analytics, user_id, project_id, parse_period(period), now_or(at)
        )

    async def get_output_history(
        self,
        user_id: str,
        project_id: str,
        provider: str,
        model: str,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> OutputHistory:
        """The recorded output sizes of ``provider/model`` calls (a log-bucket sketch), from
        the account, else its project, else every account: the first scope with
        ``min_samples`` calls (see ``Reads.output_history``). An account not created yet
        reads its project's and everyone's."""
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise InvalidInputError(f"min_samples must be a positive int, got {min_samples!r}")
        key = _account(user_id, project_id)
        provider, model = check_id(provider, "provider"), check_id(model, "model")
        async with self._guard():
            info = self._accounts.get(key)
            if info is None:
                try:
                    info = await self._reads.find_account(*key)
                except NotFoundError:
                    info = None
                else:
                    self._accounts[key] = info
            return await self._reads.output_history(info, key[1], provider, model, min_samples)

    async def get_usage_shapes(
        self,
        user_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        *,
        include_plain: bool = True,
    ) -> list[UsageShape]:
        """The account's usage in ``[start, end)`` grouped by model, UTC minute and usage
        (see ``Reads.usage_shapes``): what a workload replay re-prices. Without
        ``include_plain``, only what :meth:`get_linear_totals` does not cover."""
        first, last = check_instant(start, "start"), check_instant(end, "end")
        if last < first:
            raise InvalidInputError("end is before start")
        return await self._call(
            self._reads.usage_shapes, user_id, project_id, first, last, include_plain
        )

    async def get_usage_by_model(
        self, user_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, int, int]]:
        """Per recorded model in ``[start, end)``: (provider, model, calls, nano-USDC
        charged, calls charged at their hold)."""
        first, last = check_instant(start, "start"), check_instant(end, "end")
        return await self._call(self._reads.usage_by_model, user_id, project_id, first, last)

    async def get_linear_totals(
        self, user_id: str, project_id: str, start: datetime, end: datetime, pricing: LinearPricing
    ) -> LinearTotals:
        """One target's price of the account's plain usage in ``[start, end)``, summed in
        the database with each call rounded as a charge is (see ``Reads.linear_totals``)."""
        first, last = check_instant(start, "start"), check_instant(end, "end")
        if last < first:
            raise InvalidInputError("end is before start")
        return await self._call(
            self._reads.linear_totals, user_id, project_id, first, last, pricing
        )

    async def get_spending_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        first, last = check_instant(start, "start"), check_instant(end, "end")
        return await self._call(
            self._reads.spending_series, user_id, project_id, parse_period(granularity), first, last
        )

    async def get_reservation(
        self, reservation_id: str, *, at: datetime | None = None
    ) -> BudgetReservation:
        async with self._guard():
            return await self._reads.reservation(
                check_id(reservation_id, "reservation_id"), now_or(at)
            )

    async def list_entries(
        self, user_id: str, project_id: str, *, limit: int = 100, before: str | None = None
    ) -> list[LedgerEntry]:
        """The account's entries, newest first; page with ``before`` = the last entry id seen."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be an int in 1..1000, got {limit!r}")
        anchor = None if before is None else check_id(before, "before")
        return await self._call(self._reads.list_entries, user_id, project_id, limit, anchor)

    async def check_integrity(self) -> IntegrityReport:
        """Rebuild balances, holds and rollups from the entries, in one snapshot."""
        async with self._connection(snapshot_options(self.engine)) as conn, conn.begin():
            return await check_integrity(conn)

    # -- plumbing --------------------------------------------------------------------------------

    async def _write(self, op: Any) -> Any:
        try:
            async with self._deadline():
                return await self._writer.submit(op)
        finally:
            # A read after this write must see it, even in this event-loop iteration.
            forget_iteration_versions()

    async def _call(
        self, read: Callable[..., Awaitable[T]], user_id: str, project_id: str, *args: Any
    ) -> T:
        """Run ``read(account, *args)`` for the account; unknown accounts are NotFoundError."""
        key = _account(user_id, project_id)
        async with self._guard():
            info = self._accounts.get(key)
            if info is None:
                info = await self._reads.find_account(*key)
                self._accounts[key] = info  # row id, timezone and currency never change
            return await read(info, *args)

    async def _memo_read(
        self,
        kind: type[A],
        read: Callable[[AccountInfo, datetime], Awaitable[A]],
        user_id: str,
        project_id: str,
    ) -> A:
        """``read`` as of now, answered from the memo while no commit happened since the
        remembered answer was read (see ``read_memo.py``)."""
        async with self._guard():
            return await self._memo_read_now(kind, read, user_id, project_id)

    async def _memo_read_now(
        self,
        kind: type[A],
        read: Callable[[AccountInfo, datetime], Awaitable[A]],
        user_id: str,
        project_id: str,
    ) -> A:
        now = now_or(None)
        memo = self._memo
        if memo.paused():  # looks have mostly missed lately: read without one
            answer, _ = await self._read_unexpired(read, user_id, project_id, now)
            return answer
        key = _account(user_id, project_id)
        info = self._accounts.get(key)
        version = await memo.version()  # before the read: never older than its answer
        if info is not None:
            remembered = memo.recall(kind, info.row_id, version, now)
            if remembered is not None:
                return remembered
        answer, due = await self._read_unexpired(read, user_id, project_id, now)
        if due is False:
            version = await memo.version()  # holds were expired: a commit happened
            due = None
        info = self._accounts[key]
        # A status holds for the local day it was read in (its month contains that day), and
        # an answer showing holds until the first of them expires.
        start: datetime | None = None
        end: datetime | None = None
        if kind is BudgetStatus:
            start, end = utc_window_of(SpendingPeriod.DAILY, now, info.zone)
        if isinstance(due, datetime):
            end = due if end is None else min(end, due)
        memo.remember(info.row_id, version, answer, valid_from=start, valid_until=end)
        return answer

    async def _read_unexpired(
        self,
        read: Callable[[AccountInfo, datetime], Awaitable[A]],
        user_id: str,
        project_id: str,
        now: datetime,
    ) -> tuple[A, datetime | bool | None]:
        """``read`` as of ``now``, with the account's overdue holds expired first.

        Also returns when its first pending hold expires (``None``: it holds nothing), or
        ``False`` when holds were expired (a write: the read memo's version moved).
        """
        answer = await self._call(read, user_id, project_id, now)
        if not self.expire_on_access or answer.reserved_amount <= 0:
            return answer, None
        info = self._accounts[_account(user_id, project_id)]
        async with self._guard():
            due = await self._reads.next_hold_expiry(info)
        if due is None or due > now:
            return answer, due
        try:
            await self.expire_reservations(now)
        except SmartspaceBudgetError as exc:  # the read still answers, holds shown as held
            log.warning("could not expire overdue holds: %s", exc.detail)
            return answer, due  # past: the answer is not remembered, the next read tries again
        return await self._call(read, user_id, project_id, now), False

    async def _expire_overdue_holds(self) -> None:
        """At open: release the holds past their expiry, if there are any (best effort)."""
        now = now_or(None)
        try:
            async with self._guard():
                overdue = await self._reads.any_overdue(now)
            if overdue:
                count = await self.expire_reservations(now)
                log.info("released %d hold(s) past their expiry", count)
        except SmartspaceBudgetError as exc:
            log.warning("could not expire overdue holds at open: %s", exc.detail)

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Database failures of a read become :class:`BackendUnavailableError`, and waits
        past the deadline :class:`BackendTimeoutError`."""
        try:
            async with self._deadline():
                yield
        except SmartspaceBudgetError:
            raise
        except Exception as exc:
            if _timed_out(exc):
                raise self._timeout_error(exc) from exc
            raise BackendUnavailableError(f"the ledger database failed: {exc!r}") from exc

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """The block within the ledger's deadline, else :class:`BackendTimeoutError`."""
        if self.deadline is None:
            yield
            return
        try:
            async with asyncio.timeout(self.deadline):
                yield
        except TimeoutError as exc:
            raise self._timeout_error(exc) from exc

    def _timeout_error(self, exc: BaseException) -> BackendTimeoutError:
        return BackendTimeoutError(
            f"the ledger database gave no answer within the {self.deadline} s deadline"
            + ("" if isinstance(exc, TimeoutError) and not str(exc) else f" ({exc!r})"),
            deadline=self.deadline,
        )

    @contextlib.asynccontextmanager
    async def _connection(self, options: dict[str, Any]) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield await conn.execution_options(**options)
        except SmartspaceBudgetError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise BackendUnavailableError(f"the ledger database failed: {exc!r}") from exc
