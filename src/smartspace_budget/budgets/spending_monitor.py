"""SpendingMonitor: the spec's alerts, raised once per threshold per period and escalated.

Each check reads the account (status, hourly and daily series) through a
:class:`~smartspace_budget.budgets.BudgetTracker` and evaluates these rules:

=====================  =============================  ==========================================
rule                   period (dedup key)             level
=====================  =============================  ==========================================
low balance            day (a daily reminder)         warning; critical when nothing is left
policy daily limit     day                            per percentage (50/80/100/120 by default)
policy monthly limit   calendar month                 per percentage
your thresholds        day, month, hour (rate),       per percentage, see below
                       day (balance)
spending anomaly       day                            warning; critical at twice the threshold
cost spike             the hour that spiked           warning; critical at 4x the threshold
forecast overspend     calendar month                 warning
balance exhaustion     day                            warning within 7 days; critical within 1
=====================  =============================  ==========================================

**Once per period, escalating.** The monitor remembers, per account, rule and period, the
highest rank it has announced (a threshold's percentage, another rule's level). A rule
fires again in the same period only at a higher rank; a new period starts from nothing.
When spend jumps past several percentages at once, only the highest is announced. A
threshold's ``level`` applies at 100%; each configured percentage below 100 is one level
lower (never below info) and any percentage above 100 is an emergency.

**Handlers** (sync or async callables taking a :class:`SpendingAlert`, or the notifiers)
receive each new alert once, **in the background** (``budgets/delivery.py``): a check, a
report and the guarded call behind it return without waiting for any handler. Each handler
has a bounded queue (the oldest waiting alert is dropped when it is full, logged and
counted) and one retry policy: exponential backoff with jitter until a deadline, one log line
per failed attempt, no traceback. A failing handler never keeps the others from their alert.
:meth:`SpendingMonitor.wait_for_delivery` waits for the queues to empty (a script's end,
a test).

**Memory.** Which alert fired in which period lives in an :class:`AlertStore`
(``budgets/alert_store.py``): the ledger's database when the monitor reads the ledger
directly, so every monitor process and replica over it, and a restarted one, delivers each
alert once per threshold per period (thresholds you add must then carry the same
``threshold_id`` in each process); else this process's memory. Acknowledgements are kept
there too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Self

from smartspace_budget.backend.base import Backend
from smartspace_budget.budgets import analysis
from smartspace_budget.budgets.alert_store import AlertStore, default_alert_store
from smartspace_budget.budgets.budget_tracker import BudgetTracker
from smartspace_budget.budgets.delivery import AlertDelivery, AlertHandler, RetryPolicy
from smartspace_budget.budgets.findings import (
    AccountView,
    Finding,
    anomaly_finding,
    forecast_findings,
    low_balance_findings,
    mark_triggered,
    parse_percent,
    spike_finding,
    threshold_finding,
)
from smartspace_budget.budgets.thresholds import DEFAULT_LIMIT_PERCENTAGES, policy_thresholds
from smartspace_budget.errors import InvalidInputError, NotFoundError, SmartspaceBudgetError
from smartspace_budget.models import SpendingAlert, SpendingThreshold

__all__ = ["AlertHandler", "SpendingMonitor"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Fired:
    rank: Decimal
    alert: SpendingAlert
    forget_after: datetime


class SpendingMonitor:
    """Watches accounts' spending and raises :class:`SpendingAlert` (see the module docstring).

    ``backend``/``tracker``: where to read. Without a tracker, one is built over ``backend``
    (the default backend when ``None``) that does not cache statuses. ``thresholds`` apply
    to every account; add per-account ones with :meth:`add_threshold`. ``clock`` returns
    aware datetimes (tests move it to simulate a month).

    Delivery: ``retry_policy`` (a :class:`RetryPolicy`), or the shorthand
    ``handler_retry_delay`` (first backoff), ``handler_timeout`` (one attempt),
    ``delivery_deadline`` (give up after) and ``handler_retries`` (a cap on retries; ``None``:
    until the deadline); ``queue_size`` alerts may wait per handler. ``alert_store`` replaces
    the default memory (see the module docstring).
    """

    def __init__(
        self,
        backend: Backend | None = None,
        tracker: BudgetTracker | None = None,
        *,
        thresholds: Iterable[SpendingThreshold] = (),
        clock: Clock | None = None,
        limit_percentages: Sequence[Decimal | int] = DEFAULT_LIMIT_PERCENTAGES,
        anomaly_threshold: float = analysis.ANOMALY_THRESHOLD,
        spike_threshold_percent: Decimal | int = analysis.SPIKE_THRESHOLD_PERCENT,
        exhaustion_horizon: timedelta = timedelta(days=7),
        handler_retries: int | None = None,
        handler_retry_delay: float = 0.5,
        handler_timeout: float = 10.0,
        delivery_deadline: float = 300.0,
        retry_policy: RetryPolicy | None = None,
        queue_size: int = 1000,
        alert_store: AlertStore | None = None,
        history_size: int = 10_000,
    ) -> None:
        if (handler_retries is not None and handler_retries < 0) or handler_retry_delay < 0:
            raise InvalidInputError("handler retries and delay must be >= 0, timeout > 0")
        if handler_timeout <= 0:
            raise InvalidInputError("handler retries and delay must be >= 0, timeout > 0")
        self._clock: Clock = clock or _utc_now
        # A monitor's own tracker reads fresh: an alert must describe the account as it is.
        self.tracker = tracker or BudgetTracker(backend, status_ttl=0, clock=clock)
        self._owns_tracker = tracker is None
        self._global: list[SpendingThreshold] = list(thresholds)
        self._per_account: dict[tuple[str, str], list[SpendingThreshold]] = {}
        self._limit_percentages = [Decimal(p) for p in limit_percentages]
        self._anomaly_threshold = anomaly_threshold
        self._spike_percent = parse_percent(spike_threshold_percent)
        self._exhaustion_horizon = exhaustion_horizon
        policy = retry_policy or RetryPolicy(
            first_delay=handler_retry_delay,
            max_delay=max(30.0, handler_retry_delay),
            deadline=delivery_deadline,
            attempt_timeout=handler_timeout,
            max_attempts=None if handler_retries is None else handler_retries + 1,
        )
        self.delivery = AlertDelivery(policy, queue_size=queue_size)
        """The background delivery: its ``stats`` count delivered, failed and dropped."""
        self.alert_store: AlertStore = alert_store or default_alert_store(
            getattr(self.tracker, "backend", None), history_size=history_size
        )
        self._handlers: list[AlertHandler] = []
        # A cache of the store's claims: a rule already claimed (here or elsewhere) in a
        # period at a rank is not claimed again at that rank until the period is over.
        self._fired: dict[tuple[str, str, str, datetime], _Fired] = {}

    @property
    def delivery_failures(self) -> int:
        """Alerts a handler never accepted: given up on after the retries, or dropped."""
        return self.delivery.stats.gave_up + self.delivery.stats.dropped

    async def wait_for_delivery(self, within: float | None = None) -> bool:
        """Wait until every alert raised so far is delivered, or given up on; ``False`` if
        some are still pending after ``within`` seconds (``None``: as long as it takes)."""
        return await self.delivery.join(within)

    def undelivered(self, handler: AlertHandler) -> int:
        """Alerts ``handler`` has not accepted yet: given up on, dropped, or still pending."""
        return self.delivery.undelivered(handler)

    async def aclose(self, delivery_timeout: float = 2.0) -> None:
        """Give pending alerts up to ``delivery_timeout`` seconds to be delivered, stop the
        delivery (what is left is logged as abandoned), and close what this monitor opened
        (its own tracker's default backend)."""
        if delivery_timeout > 0:
            await self.delivery.join(delivery_timeout)
        await self.delivery.aclose()
        if self._owns_tracker:
            await self.tracker.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- configuration -------------------------------------------------------------------

    def register_alert_handler(self, handler: AlertHandler) -> AlertHandler:
        """Call ``handler(alert)`` for every new alert; returns it (usable as a decorator)."""
        if not callable(handler):
            raise InvalidInputError("an alert handler must be callable")
        self._handlers.append(handler)
        return handler

    def unregister_alert_handler(self, handler: AlertHandler) -> None:
        """Stop calling ``handler``; :class:`NotFoundError` if it was not registered."""
        try:
            self._handlers.remove(handler)
        except ValueError:
            raise NotFoundError("that alert handler is not registered") from None
        if handler not in self._handlers:
            self.delivery.forget(handler)

    def add_threshold(
        self,
        threshold: SpendingThreshold,
        *,
        user_id: str | None = None,
        project_id: str | None = None,
    ) -> SpendingThreshold:
        """Watch ``threshold`` for one account, or for every account when none is given."""
        if (user_id is None) != (project_id is None):
            raise InvalidInputError("give both user_id and project_id, or neither")
        if user_id is None or project_id is None:
            self._global.append(threshold)
        else:
            self._per_account.setdefault((user_id, project_id), []).append(threshold)
        return threshold

    def remove_threshold(self, threshold_id: str) -> None:
        """Stop watching the threshold with this id (wherever it was added)."""
        found = False
        for group in [self._global, *self._per_account.values()]:
            kept = [t for t in group if t.threshold_id != threshold_id]
            found = found or len(kept) != len(group)
            group[:] = kept
        if not found:
            raise NotFoundError(f"no threshold {threshold_id!r}", threshold_id=threshold_id)

    def thresholds_for(self, user_id: str, project_id: str) -> list[SpendingThreshold]:
        """The configured thresholds that apply to the account (policy ones not included)."""
        return [*self._global, *self._per_account.get((user_id, project_id), [])]

    # -- the spec's checks ---------------------------------------------------------------

    async def check_spending_status(self, user_id: str, project_id: str) -> list[SpendingAlert]:
        """Evaluate every rule for the account; returns the alerts that describe it now.

        Newly raised alerts are queued for the handlers (delivered in the background, see
        :meth:`wait_for_delivery`); alerts already raised this period, by this monitor or
        another one sharing its store, are returned again (same ``alert_id``) but not
        re-delivered. Raises the backend's typed error when the account cannot be read.
        """
        view = AccountView(self.tracker, user_id, project_id, self._clock())
        status = await view.load_status()
        await asyncio.gather(view.days(), view.hours())  # independent reads, in parallel
        findings: list[Finding] = []
        findings.extend(low_balance_findings(view, status))
        thresholds = [
            *policy_thresholds(status, self._limit_percentages),
            *self.thresholds_for(user_id, project_id),
        ]
        for threshold in thresholds:
            finding = await threshold_finding(view, threshold)
            if finding is not None:
                findings.append(finding)
        for finding_or_none in (
            await anomaly_finding(view, self._anomaly_threshold),
            await spike_finding(view, self._spike_percent),
        ):
            if finding_or_none is not None:
                findings.append(finding_or_none)
        findings.extend(await forecast_findings(view, self._exhaustion_horizon))
        return await self._settle(view, findings)

    async def check_threshold(
        self, user_id: str, project_id: str, threshold: SpendingThreshold
    ) -> SpendingAlert | None:
        """The alert for ``threshold`` if spending has crossed one of its percentages.

        ``None`` when no percentage is crossed (or the threshold is disabled).
        """
        view = AccountView(self.tracker, user_id, project_id, self._clock())
        await view.load_status()
        finding = await threshold_finding(view, threshold)
        alerts = await self._settle(view, [finding] if finding else [])
        return alerts[0] if alerts else None

    async def detect_spending_anomaly(self, user_id: str, project_id: str) -> SpendingAlert | None:
        """An alert if today's spend is anomalous against the last 28 days, else ``None``."""
        view = AccountView(self.tracker, user_id, project_id, self._clock())
        await view.load_status()
        finding = await anomaly_finding(view, self._anomaly_threshold)
        alerts = await self._settle(view, [finding] if finding else [])
        return alerts[0] if alerts else None

    async def detect_cost_spike(
        self,
        user_id: str,
        project_id: str,
        spike_threshold_percent: float | Decimal | int | None = None,
    ) -> SpendingAlert | None:
        """An alert if the latest hour is ``spike_threshold_percent`` above the hourly mean.

        Without a threshold, the monitor's own (``spike_threshold_percent`` given to the
        constructor, the spec's 50% by default) applies, the same one
        :meth:`check_spending_status` uses.
        """
        threshold = (
            self._spike_percent
            if spike_threshold_percent is None
            else parse_percent(spike_threshold_percent)
        )
        view = AccountView(self.tracker, user_id, project_id, self._clock())
        await view.load_status()
        finding = await spike_finding(view, threshold)
        alerts = await self._settle(view, [finding] if finding else [])
        return alerts[0] if alerts else None

    async def get_active_alerts(
        self,
        user_id: str | None = None,
        project_id: str | None = None,
        minutes: int = 60,
        *,
        include_acknowledged: bool = False,
    ) -> list[SpendingAlert]:
        """Alerts raised in the last ``minutes`` (of one account, or all), newest first,
        from the monitor's store (every monitor sharing it, when it is the ledger's).

        Acknowledged alerts are left out unless ``include_acknowledged``.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise InvalidInputError(f"minutes must be a positive int, got {minutes!r}")
        since = self._clock() - timedelta(minutes=minutes)
        return await self.alert_store.recent(
            since=since,
            user_id=user_id,
            project_id=project_id,
            include_acknowledged=include_acknowledged,
        )

    async def acknowledge(self, alert_id: str, *, by: str | None = None) -> SpendingAlert:
        """Mark an alert handled (``by``: who, kept with it); it stays raised for its period
        (it will not fire again). Stored where the monitor keeps its alerts, so every monitor
        sharing the ledger sees it; :class:`NotFoundError` for an unknown alert."""
        alert = await self.alert_store.acknowledge(alert_id, at=self._clock(), by=by)
        for fired in self._fired.values():
            if fired.alert.alert_id == alert_id:
                fired.alert = alert
        return alert

    async def report_alert(self, alert: SpendingAlert) -> SpendingAlert:
        """Raise an alert found elsewhere (e.g. the guard's cost anomalies) through this monitor.

        It is kept in the monitor's store (``get_active_alerts`` lists it, ``acknowledge``
        takes it) and queued for every handler with the same isolation and retries as the
        monitor's own; this returns without waiting for any handler.
        """
        try:
            await self.alert_store.record(alert, rule=f"report:{alert.alert_id}")
        except SmartspaceBudgetError as exc:
            # Keeping it is bookkeeping: the call that found it (a guarded provider call,
            # already settled) must not fail for it, and the handlers still get the alert.
            logger.warning("alert %s not kept in the alert store: %s", alert.alert_id, exc)
        self._deliver(alert)
        return alert

    # -- memory and delivery -------------------------------------------------------------

    async def _settle(self, view: AccountView, findings: list[Finding]) -> list[SpendingAlert]:
        """Turn findings into alerts: those already raised as they were, new ones claimed in
        the store and queued for the handlers (a claim another monitor won is not sent)."""
        self._forget(view.now)
        current: list[SpendingAlert] = []
        for finding in findings:
            key = (view.user_id, view.project_id, finding.rule, finding.window.start)
            fired = self._fired.get(key)
            if fired is not None and fired.rank >= finding.rank:
                current.append(fired.alert)
                continue
            alert = finding.build()
            alert.created_at = view.now
            claimed, standing = await self.alert_store.claim(
                alert,
                rule=finding.rule,
                period_start=finding.window.start,
                period_end=finding.window.end,
                rank=finding.rank,
            )
            span = finding.window.end - finding.window.start
            self._fired[key] = _Fired(finding.rank, standing, finding.window.end + span)
            current.append(standing)
            if claimed:
                if finding.threshold is not None:
                    mark_triggered(finding.threshold, view.now)
                self._deliver(alert)
        return current

    def _forget(self, now: datetime) -> None:
        for key in [k for k, fired in self._fired.items() if fired.forget_after <= now]:
            del self._fired[key]

    def _deliver(self, alert: SpendingAlert) -> None:
        if self._handlers:
            self.delivery.submit(alert, list(self._handlers))
