"""``LocalBackend``: the Backend and LedgerClient protocols in process, over the Ledger.

Reads go to the ledger (account data) and the price book (prices) and are cached like every
backend's (see ``_cached``: status 30 s, pricing 5 minutes by default); every write made
through this object forgets the cached reads of its account at once, so a deposit is seen by
the next status read in this process. Writes made elsewhere (another process, the service)
are seen when the cached value expires.

:meth:`LocalBackend.default` is the embedded default of ``BudgetTracker()`` and friends: it
opens nothing until first used, then opens the ledger in the running event loop (SQLite in
the user's data directory, or ``SMARTSPACE_BUDGET_DATABASE_URL``). If a later call runs in
another event loop (a script calling ``asyncio.run`` twice), the ledger is opened again
there: database connections belong to the loop that made them.

Every call answers within ``deadline`` seconds (``SMARTSPACE_BUDGET_DEADLINE``, 2 by default,
as for ``HttpBackend``), opening the ledger included, or raises
:class:`BackendTimeoutError`; the ledger's own waits (SQLite's lock waits, PostgreSQL's
connection attempts, statements and pool waits) are bounded by the same deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from smartspace_budget.backend._cached import CachedReads
from smartspace_budget.config import Settings
from smartspace_budget.errors import BackendTimeoutError, InvalidInputError
from smartspace_budget.models import (
    AccountRef,
    Balance,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    LedgerEntry,
    PricingData,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
    UsageEvent,
)
from smartspace_budget.models.output_sketch import DEFAULT_MIN_SAMPLES, OutputHistory
from smartspace_budget.models.replay import LinearPricing, LinearTotals, UsageShape
from smartspace_budget.periods import SpendingPeriod

if TYPE_CHECKING:
    from smartspace_budget.ledger.ledger import Ledger
    from smartspace_budget.prices.catalog import PriceBook

__all__ = ["LocalBackend", "ledger_target", "open_price_book"]


def ledger_target(url: str) -> str:
    """A ledger database's name in the outbox: ``sqlite:///<absolute path>`` for SQLite, the
    URL without driver and password for PostgreSQL (the same for every way of writing it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///{Path(parsed.database or '').expanduser().resolve()}"
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=True)


T = TypeVar("T")


def open_price_book(ledger: Ledger) -> PriceBook:
    """The price book of a ledger: genai-prices plus the overrides stored in its database."""
    from smartspace_budget.ledger.price_store import PriceStore
    from smartspace_budget.prices.catalog import PriceBook

    return PriceBook.from_genai_prices(store=PriceStore(ledger.engine))


async def _abandon(ledger: Ledger) -> None:
    """Let go of a ledger opened in an event loop that has finished.

    SQLite connections (a thread each) can still be closed from the new loop; connections
    bound to the old loop (asyncpg) cannot, and are dropped without a goodbye.
    """
    engine = ledger.engine
    try:
        async with asyncio.timeout(2.0):
            await engine.dispose()
    except Exception:
        engine.sync_engine.dispose(close=False)


def _check_deadline(deadline: float | None) -> float | None:
    if deadline is not None and not deadline > 0:
        raise InvalidInputError(f"deadline must be positive, got {deadline!r}")
    return deadline


def _succeeded(task: asyncio.Task[Any]) -> bool:
    return not task.cancelled() and task.exception() is None


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark the error of work nobody awaits any more (a failed opening, work past its
    deadline) as seen: its callers got their answer already."""
    if not task.cancelled():
        task.exception()


@dataclass
class _Opened:
    ledger: Ledger
    price_book: PriceBook
    loop: asyncio.AbstractEventLoop | None  # None: given by the caller, valid in any loop


class LocalBackend(CachedReads):
    """Backend + LedgerClient over a :class:`Ledger` and a :class:`PriceBook`.

    ``status_ttl`` / ``pricing_ttl`` are cache lifetimes in seconds (0 disables storing but
    keeps concurrent identical reads joined into one). The caller owns ``ledger``: closing
    this backend closes only what it opened itself (:meth:`default`, :meth:`open`).
    """

    def __init__(
        self,
        ledger: Ledger,
        price_book: PriceBook,
        *,
        status_ttl: float = 30.0,
        pricing_ttl: float = 300.0,
        clock: Callable[[], float] | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__(status_ttl=status_ttl, pricing_ttl=pricing_ttl, clock=clock)
        self._opened: _Opened | None = _Opened(ledger, price_book, None)
        self._url: str | None = None
        self._owns = False
        self._opening: asyncio.Task[_Opened] | None = None
        self._deadline = _check_deadline(deadline)

    @classmethod
    def default(cls, settings: Settings | None = None) -> LocalBackend:
        """The embedded default, opened lazily (see the module docstring)."""
        config = settings if settings is not None else Settings()
        backend = cls.__new__(cls)
        CachedReads.__init__(backend, status_ttl=config.status_ttl, pricing_ttl=config.pricing_ttl)
        backend._opened = None
        backend._url = config.database_url
        backend._owns = True
        backend._opening = None
        backend._deadline = config.deadline
        return backend

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        status_ttl: float = 30.0,
        pricing_ttl: float = 300.0,
        deadline: float = 2.0,
    ) -> LocalBackend:
        """Open the ledger at ``url`` (the embedded SQLite file when ``None``) now."""
        backend = cls.default(
            Settings(
                database_url=url, status_ttl=status_ttl, pricing_ttl=pricing_ttl, deadline=deadline
            )
        )
        await backend._parts()
        return backend

    async def aclose(self) -> None:
        """Close the ledger if this backend opened it; a later call opens it again."""
        opened = self._opened
        if opened is not None and self._owns:
            self._opened = None
            if opened.loop is asyncio.get_running_loop():
                await opened.ledger.close()
            else:
                await _abandon(opened.ledger)
        self.invalidate_all()

    async def __aenter__(self) -> LocalBackend:
        await self._parts()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def outbox_target(self) -> str:
        """The ledger's name in the outbox: its SQLite file, or its database without password."""
        if self._opened is not None and self._opened.loop is None:
            url = self._opened.ledger.engine.url.render_as_string(hide_password=True)
        else:
            from smartspace_budget.ledger.engine import default_database_url

            url = self._url or default_database_url()
        return ledger_target(url)

    @property
    def ledger(self) -> Ledger:
        """The ledger, once opened (:class:`RuntimeError` before the first call)."""
        if self._opened is None:
            raise RuntimeError("the ledger opens on first use; await a call first")
        return self._opened.ledger

    @property
    def price_book(self) -> PriceBook:
        """The price book, once opened."""
        if self._opened is None:
            raise RuntimeError("the ledger opens on first use; await a call first")
        return self._opened.price_book

    async def _parts(self) -> _Opened:
        """The opened ledger, opening it in this event loop if needed.

        The opening runs as a task of its own that callers wait for: a caller whose deadline
        passes gives up waiting, but never interrupts a migration half-way; the next call
        finds the ledger open, or tries again if the opening failed.
        """
        loop = asyncio.get_running_loop()
        opened = self._opened
        if opened is not None and opened.loop in (None, loop):
            return opened
        task = self._opening
        if task is None or task.get_loop() is not loop or (task.done() and not _succeeded(task)):
            task = loop.create_task(self._open(loop), name="ledger-open")
            task.add_done_callback(_retrieve)
            self._opening = task
        return await asyncio.shield(task)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Opened:
        opened = self._opened
        if opened is not None and opened.loop in (None, loop):
            return opened
        if opened is not None:
            await _abandon(opened.ledger)
            self.invalidate_all()
        from smartspace_budget.ledger.ledger import Ledger

        # Embedded: nothing else sweeps expired holds, so reads and opening do.
        ledger = await Ledger.connect(self._url, expire_on_access=True, deadline=self._deadline)
        self._opened = _Opened(ledger, open_price_book(ledger), loop)
        return self._opened

    async def get_ledger(self) -> Ledger:
        """The ledger, opened in this event loop if needed, within the deadline (the
        monitor's alert memory lives in its database)."""
        return await self._within(self._ledger_now)

    async def _ledger_now(self) -> Ledger:
        return (await self._parts()).ledger

    async def _on_ledger(self, call: Callable[[Ledger], Awaitable[T]]) -> T:
        """``call(ledger)``, opening the ledger first, all within the deadline."""

        async def work() -> T:
            return await call((await self._parts()).ledger)

        return await self._within(work)

    async def _on_book(self, call: Callable[[PriceBook], Awaitable[T]]) -> T:
        """``call(price_book)``, opening the ledger first, all within the deadline."""

        async def work() -> T:
            return await call((await self._parts()).price_book)

        return await self._within(work)

    async def _within(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` within the deadline (if any), else :class:`BackendTimeoutError`, the
        error ``HttpBackend`` raises past the same deadline.

        Past the deadline the caller is answered at once and the work is cancelled in the
        background: a driver's own clean-up after a cancel (asyncpg asks the server to
        cancel the statement and resets the connection, each bounded by the same deadline)
        must not hold the caller beyond it.
        """
        deadline = self._deadline
        if deadline is None:
            return await work()
        task = asyncio.ensure_future(work())
        try:
            return await asyncio.wait_for(asyncio.shield(task), deadline)
        except TimeoutError as exc:
            task.cancel()
            task.add_done_callback(_retrieve)
            raise BackendTimeoutError(
                f"the ledger database gave no answer within the {deadline} s deadline",
                deadline=deadline,
            ) from exc
        except asyncio.CancelledError:
            task.cancel()  # the caller gave up: so does the work
            task.add_done_callback(_retrieve)
            raise

    # -- reads ----------------------------------------------------------------------------

    async def _fetch_balance(self, user_id: str, project_id: str) -> Balance:
        return await self._on_ledger(lambda ledger: ledger.get_balance(user_id, project_id))

    async def _fetch_status(self, user_id: str, project_id: str) -> BudgetStatus:
        return await self._on_ledger(lambda ledger: ledger.get_budget_status(user_id, project_id))

    async def _fetch_spending(
        self, user_id: str, project_id: str, period: SpendingPeriod, at: datetime | None
    ) -> SpendingSummary:
        return await self._on_ledger(
            lambda ledger: ledger.get_spending(user_id, project_id, period, at=at)
        )

    async def _fetch_analytics(
        self, user_id: str, project_id: str, period: SpendingPeriod, at: datetime | None
    ) -> SpendingAnalytics:
        return await self._on_ledger(
            lambda ledger: ledger.get_analytics(user_id, project_id, period, at=at)
        )

    async def _fetch_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        return await self._on_ledger(
            lambda ledger: ledger.get_spending_series(user_id, project_id, granularity, start, end)
        )

    async def _fetch_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        return await self._on_ledger(lambda ledger: ledger.get_policy(user_id, project_id))

    async def _fetch_accounts(self) -> list[AccountRef]:
        return await self._on_ledger(lambda ledger: ledger.list_accounts())

    async def _fetch_pricing(self, provider: str, model: str, at: datetime | None) -> PricingData:
        return await self._on_book(lambda book: book.get_pricing(provider, model, at=at))

    async def _fetch_price_history(
        self, provider: str, model: str, days: int | None
    ) -> list[PricingData]:
        return await self._on_book(lambda book: book.get_price_history(provider, model, days=days))

    async def _fetch_models(self, provider: str | None) -> list[tuple[str, str]]:
        return await self._on_book(lambda book: book.list_models(provider))

    async def _fetch_prices(
        self, provider: str | None
    ) -> list[tuple[str, str, PricingData | None]]:
        return await self._on_book(lambda book: book.current_prices(provider))

    async def get_output_history(
        self,
        user_id: str,
        project_id: str,
        provider: str,
        model: str,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> OutputHistory:
        """The recorded output sizes of ``provider/model`` calls (see
        :meth:`Ledger.get_output_history`); read each time, from the sketch table."""
        return await self._on_ledger(
            lambda ledger: ledger.get_output_history(
                user_id, project_id, provider, model, min_samples=min_samples
            )
        )

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
        shape (see :meth:`Ledger.get_usage_shapes`)."""
        return await self._on_ledger(
            lambda ledger: ledger.get_usage_shapes(
                user_id, project_id, start, end, include_plain=include_plain
            )
        )

    async def get_usage_by_model(
        self, user_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, int, int]]:
        """Per recorded model: calls, nano-USDC charged, calls charged at their hold."""
        return await self._on_ledger(
            lambda ledger: ledger.get_usage_by_model(user_id, project_id, start, end)
        )

    async def get_linear_totals(
        self, user_id: str, project_id: str, start: datetime, end: datetime, pricing: LinearPricing
    ) -> LinearTotals:
        """One target's price of the account's plain usage, summed in the database (see
        :meth:`Ledger.get_linear_totals`)."""
        return await self._on_ledger(
            lambda ledger: ledger.get_linear_totals(user_id, project_id, start, end, pricing)
        )

    # -- writes (each forgets the cached reads of its account) -----------------------------

    async def get_reservation(self, reservation_id: str) -> BudgetReservation:
        """One reservation as stored (never cached: the guard and the service check it)."""
        return await self._on_ledger(lambda ledger: ledger.get_reservation(reservation_id))

    async def deposit(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        reference: str | None = None,
    ) -> LedgerEntry:
        """Credit the account."""
        try:
            return await self._on_ledger(
                lambda ledger: ledger.deposit(
                    user_id,
                    project_id,
                    amount,
                    idempotency_key=idempotency_key,
                    reference=reference,
                )
            )
        finally:
            self._written(user_id, project_id)

    async def record_usage(
        self, user_id: str, project_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        """Charge one provider call that had no reservation."""
        try:
            return await self._on_ledger(
                lambda ledger: ledger.record_usage(
                    user_id, project_id, usage, idempotency_key=idempotency_key
                )
            )
        finally:
            self._written(user_id, project_id)

    async def refund(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        usage_entry_id: str | None = None,
        reason: str = "",
    ) -> LedgerEntry:
        """Credit back earlier usage."""
        try:
            return await self._on_ledger(
                lambda ledger: ledger.refund(
                    user_id,
                    project_id,
                    amount,
                    idempotency_key=idempotency_key,
                    usage_entry_id=usage_entry_id,
                    reason=reason,
                )
            )
        finally:
            self._written(user_id, project_id)

    async def adjust(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        reason: str,
        idempotency_key: str,
    ) -> LedgerEntry:
        """A signed correction with a reason."""
        try:
            return await self._on_ledger(
                lambda ledger: ledger.adjust(
                    user_id, project_id, amount, reason=reason, idempotency_key=idempotency_key
                )
            )
        finally:
            self._written(user_id, project_id)

    async def reserve(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        ttl_seconds: int = 300,
        idempotency_key: str,
        request_id: str | None = None,
    ) -> BudgetReservation:
        """Hold funds; :class:`BudgetExceededError`/:class:`PolicyViolationError` if refused."""
        try:
            return await self._on_ledger(
                lambda ledger: ledger.reserve(
                    user_id,
                    project_id,
                    amount,
                    ttl_seconds=ttl_seconds,
                    idempotency_key=idempotency_key,
                    request_id=request_id,
                )
            )
        finally:
            self._written(user_id, project_id)

    async def settle(
        self, reservation_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        """Charge the real usage once and free the hold."""
        entry: LedgerEntry | None = None
        try:
            entry = await self._on_ledger(
                lambda ledger: ledger.settle(reservation_id, usage, idempotency_key=idempotency_key)
            )
            return entry
        finally:
            self._written(entry.user_id if entry else None, entry.project_id if entry else None)

    async def release(self, reservation_id: str, *, idempotency_key: str) -> BudgetReservation:
        """Free the hold without charging."""
        held: BudgetReservation | None = None
        try:
            held = await self._on_ledger(
                lambda ledger: ledger.release(reservation_id, idempotency_key=idempotency_key)
            )
            return held
        finally:
            self._written(held.user_id if held else None, held.project_id if held else None)

    async def set_policy(self, user_id: str, project_id: str, policy: BudgetPolicy) -> BudgetPolicy:
        """Replace the account's policy (creating the account if needed)."""
        try:
            return await self._on_ledger(
                lambda ledger: ledger.set_policy(user_id, project_id, policy)
            )
        finally:
            self._written(user_id, project_id)
