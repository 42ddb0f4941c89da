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

**Handlers** (sync or async callables taking a :class:`SpendingAlert`) receive each new
alert once. A handler that raises or times out is logged and retried with backoff
(``handler_retries`` times); it never keeps the other handlers from their alert.

All state is in memory, per monitor: a restarted monitor announces the current period's
alerts again, which is the safe way to be wrong.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Self

from smartspace_budget.backend.base import Backend
from smartspace_budget.budgets import analysis
from smartspace_budget.budgets.budget_tracker import BudgetTracker
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
from smartspace_budget.errors import InvalidInputError, NotFoundError
from smartspace_budget.models import SpendingAlert, SpendingThreshold

__all__ = ["AlertHandler", "SpendingMonitor"]

logger = logging.getLogger(__name__)

AlertHandler = Callable[[SpendingAlert], Any]
"""A callable taking the alert; it may return an awaitable, which is awaited."""

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
        handler_retries: int = 2,
        handler_retry_delay: float = 0.5,
        handler_timeout: float = 30.0,
        history_size: int = 10_000,
    ) -> None:
        if handler_retries < 0 or handler_retry_delay < 0 or handler_timeout <= 0:
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
        self._retries = handler_retries
        self._retry_delay = handler_retry_delay
        self._timeout = handler_timeout
        self._history_size = history_size
        self._handlers: list[AlertHandler] = []
        self._fired: dict[tuple[str, str, str, datetime], _Fired] = {}
        self._alerts: dict[str, SpendingAlert] = {}
        self.delivery_failures = 0
        """Handler calls that failed after every retry (for metrics and tests)."""

    async def aclose(self) -> None:
        """Close what this monitor opened (its own tracker's default backend)."""
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

        Newly raised alerts are delivered to the handlers before this returns; alerts
        already raised this period are returned again (same ``alert_id``) but not
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
        """Alerts raised in the last ``minutes`` (of one account, or all), newest first.

        Acknowledged alerts are left out unless ``include_acknowledged``.
        """
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise InvalidInputError(f"minutes must be a positive int, got {minutes!r}")
        since = self._clock() - timedelta(minutes=minutes)
        found = [
            alert
            for alert in self._alerts.values()
            if alert.created_at >= since
            and (user_id is None or alert.user_id == user_id)
            and (project_id is None or alert.project_id == project_id)
            and (include_acknowledged or not alert.acknowledged)
        ]
        return sorted(found, key=lambda a: a.created_at, reverse=True)

    def acknowledge(self, alert_id: str) -> SpendingAlert:
        """Mark an alert handled; it stays raised for its period (it will not fire again)."""
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise NotFoundError(f"no alert {alert_id!r}", alert_id=alert_id)
        if not alert.acknowledged:
            alert.acknowledged = True
            alert.acknowledged_at = self._clock()
        return alert

    async def report_alert(self, alert: SpendingAlert) -> SpendingAlert:
        """Raise an alert found elsewhere (e.g. the guard's cost anomalies) through this monitor.

        It is remembered (``get_active_alerts`` lists it, ``acknowledge`` takes it) and
        delivered to every handler with the same isolation and retries as the monitor's own.
        """
        self._remember(alert)
        await self._deliver(alert)
        return alert

    # -- memory and delivery -------------------------------------------------------------

    async def _settle(self, view: AccountView, findings: list[Finding]) -> list[SpendingAlert]:
        """Turn findings into alerts: remembered ones as they were, new ones raised and sent.

        Everything up to the delivery runs without awaiting, so two checks of one account
        running at once cannot both raise the same alert.
        """
        self._forget(view.now)
        current: list[SpendingAlert] = []
        new: list[SpendingAlert] = []
        for finding in findings:
            key = (view.user_id, view.project_id, finding.rule, finding.window.start)
            fired = self._fired.get(key)
            if fired is not None and fired.rank >= finding.rank:
                current.append(fired.alert)
                continue
            alert = finding.build()
            alert.created_at = view.now
            span = finding.window.end - finding.window.start
            self._fired[key] = _Fired(finding.rank, alert, finding.window.end + span)
            self._remember(alert)
            if finding.threshold is not None:
                mark_triggered(finding.threshold, view.now)
            current.append(alert)
            new.append(alert)
        for alert in new:
            await self._deliver(alert)
        return current

    def _remember(self, alert: SpendingAlert) -> None:
        self._alerts[alert.alert_id] = alert
        while len(self._alerts) > self._history_size:
            del self._alerts[next(iter(self._alerts))]

    def _forget(self, now: datetime) -> None:
        for key in [k for k, fired in self._fired.items() if fired.forget_after <= now]:
            del self._fired[key]

    async def _deliver(self, alert: SpendingAlert) -> None:
        if self._handlers:
            await asyncio.gather(*(self._call(handler, alert) for handler in self._handlers))

    async def _call(self, handler: AlertHandler, alert: SpendingAlert) -> None:
        name = getattr(handler, "__qualname__", None) or type(handler).__name__
        for attempt in range(self._retries + 1):
            try:
                result = handler(alert)
                if inspect.isawaitable(result):
                    async with asyncio.timeout(self._timeout):
                        await result
                return
            except Exception:
                last = attempt == self._retries
                logger.log(
                    logging.ERROR if last else logging.WARNING,
                    "alert handler %s failed on alert %s (attempt %d of %d)%s",
                    name,
                    alert.alert_id,
                    attempt + 1,
                    self._retries + 1,
                    "; giving up" if last else "; retrying",
                    exc_info=True,
                )
                if last:
                    self.delivery_failures += 1
                    return
                await asyncio.sleep(self._retry_delay * 2**attempt)
