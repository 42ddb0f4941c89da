"""Where a monitor remembers the alerts it raised: the ledger's database, or its own memory.

A :class:`SpendingMonitor` announces each rule once per period (see its docstring). The
memory deciding "already announced" is an :class:`AlertStore`:

- :class:`LedgerAlertStore` (the default for a monitor reading the ledger directly, the
  embedded SQLite file or ``SMARTSPACE_BUDGET_DATABASE_URL``): the ``ledger_alert_state``
  table, shared by every process and replica over that database and kept across restarts
  (``smartspace_budget.ledger.alert_state``). Acknowledgements are stored there too.
- :class:`HttpAlertStore` (the default for a monitor reading through a service,
  ``HttpBackend``): the same table, through the service's ``/api/v1/alerts`` routes, so
  monitors over the service share one memory with each other and with those reading the
  ledger directly.
- :class:`MemoryAlertStore`: this process only (a monitor given a backend that keeps no
  alert state, such as a test double). A restarted monitor announces the current period's
  alerts again, which is the safe way to be wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from smartspace_budget.errors import NotFoundError
from smartspace_budget.models import SpendingAlert
from smartspace_budget.models.alerts import newest_first

if TYPE_CHECKING:
    from smartspace_budget.backend.base import Backend
    from smartspace_budget.ledger.alert_state import AlertState
    from smartspace_budget.ledger.ledger import Ledger

__all__ = [
    "AlertStateSource",
    "AlertStore",
    "HttpAlertStore",
    "LedgerAlertStore",
    "MemoryAlertStore",
    "default_alert_store",
]


@runtime_checkable
class AlertStore(Protocol):
    """The memory of raised alerts (see the module docstring)."""

    async def claim(
        self,
        alert: SpendingAlert,
        *,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]:
        """Record ``alert`` unless the rule already fired in the period at ``rank`` or higher:
        ``(True, alert)`` if this caller claimed it (and delivers it), else ``(False, the
        alert that stands)``."""
        ...

    async def record(self, alert: SpendingAlert, *, rule: str) -> None:
        """Keep an alert raised elsewhere (no period to deduplicate in)."""
        ...

    async def acknowledge(
        self, alert_id: str, *, at: datetime, by: str | None = None
    ) -> SpendingAlert:
        """Mark the alert handled; :class:`NotFoundError` if unknown."""
        ...

    async def recent(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]:
        """Alerts raised at or after ``since``, newest first."""
        ...


@runtime_checkable
class AlertStateSource(Protocol):
    """A backend that keeps the shared alert state for its callers (``HttpBackend``: the
    service's ``/api/v1/alerts`` routes)."""

    async def claim_alert(
        self,
        alert: SpendingAlert,
        *,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]: ...

    async def record_alert(self, alert: SpendingAlert, *, rule: str) -> SpendingAlert: ...

    async def acknowledge_alert(
        self, alert_id: str, *, at: datetime | None = None, by: str | None = None
    ) -> SpendingAlert: ...

    async def recent_alerts(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]: ...


@dataclass
class _Claim:
    rank: Decimal
    alert: SpendingAlert
    forget_after: datetime


class MemoryAlertStore:
    """Alerts remembered in this process; claims of ended periods are forgotten after as long
    again as the period lasted, and at most ``history_size`` alerts are kept."""

    def __init__(self, history_size: int = 10_000) -> None:
        self._history_size = history_size
        self._claims: dict[tuple[str, str, str, datetime], _Claim] = {}
        self._alerts: dict[str, SpendingAlert] = {}

    async def claim(
        self,
        alert: SpendingAlert,
        *,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]:
        self._forget(alert.created_at)
        key = (alert.user_id, alert.project_id, rule, period_start)
        standing = self._claims.get(key)
        if standing is not None and standing.rank >= rank:
            return False, standing.alert
        span = period_end - period_start
        self._claims[key] = _Claim(rank, alert, period_end + span)
        self._keep(alert)
        return True, alert

    async def record(self, alert: SpendingAlert, *, rule: str) -> None:
        self._keep(alert)

    async def acknowledge(
        self, alert_id: str, *, at: datetime, by: str | None = None
    ) -> SpendingAlert:
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise NotFoundError(f"no alert {alert_id!r}", alert_id=alert_id)
        if not alert.acknowledged:
            alert.acknowledged = True
            alert.acknowledged_at = at
            if by is not None:
                alert.metadata = {**alert.metadata, "acknowledged_by": by}
        return alert

    async def recent(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]:
        found = [
            alert
            for alert in self._alerts.values()
            if alert.created_at >= since
            and (user_id is None or alert.user_id == user_id)
            and (project_id is None or alert.project_id == project_id)
            and (include_acknowledged or not alert.acknowledged)
        ]
        return newest_first(found)[:limit]

    def _keep(self, alert: SpendingAlert) -> None:
        self._alerts[alert.alert_id] = alert
        while len(self._alerts) > self._history_size:
            del self._alerts[next(iter(self._alerts))]

    def _forget(self, now: datetime) -> None:
        for key in [k for k, claim in self._claims.items() if claim.forget_after <= now]:
            del self._claims[key]


class LedgerAlertStore:
    """Alerts remembered in the ledger's database (see the module docstring).

    ``ledger`` is the ledger, or an async callable that opens it on first use (a
    ``LocalBackend``'s ``get_ledger``).
    """

    def __init__(self, ledger: Ledger | Callable[[], Awaitable[Ledger]]) -> None:
        self._ledger = ledger

    async def claim(
        self,
        alert: SpendingAlert,
        *,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]:
        state = await self._alert_state()
        return await state.claim(
            alert, rule=rule, period_start=period_start, period_end=period_end, rank=rank
        )

    async def record(self, alert: SpendingAlert, *, rule: str) -> None:
        await (await self._alert_state()).record(alert, rule=rule)

    async def acknowledge(
        self, alert_id: str, *, at: datetime, by: str | None = None
    ) -> SpendingAlert:
        return await (await self._alert_state()).acknowledge(alert_id, at=at, by=by)

    async def recent(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]:
        return await (await self._alert_state()).recent(
            since=since,
            user_id=user_id,
            project_id=project_id,
            include_acknowledged=include_acknowledged,
            limit=limit,
        )

    async def _alert_state(self) -> AlertState:
        from smartspace_budget.ledger.alert_state import AlertState as State
        from smartspace_budget.ledger.ledger import Ledger

        source = self._ledger
        ledger = source if isinstance(source, Ledger) else await source()
        return State(ledger)


class HttpAlertStore:
    """Alerts remembered in the service's ledger database, through its alert routes (see the
    module docstring). Every call has the backend's deadline and typed errors; a claim
    retried after a lost answer is answered as won (the service knows the alert's id)."""

    def __init__(self, source: AlertStateSource) -> None:
        self._source = source

    async def claim(
        self,
        alert: SpendingAlert,
        *,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]:
        return await self._source.claim_alert(
            alert, rule=rule, period_start=period_start, period_end=period_end, rank=rank
        )

    async def record(self, alert: SpendingAlert, *, rule: str) -> None:
        await self._source.record_alert(alert, rule=rule)

    async def acknowledge(
        self, alert_id: str, *, at: datetime, by: str | None = None
    ) -> SpendingAlert:
        return await self._source.acknowledge_alert(alert_id, at=at, by=by)

    async def recent(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]:
        return await self._source.recent_alerts(
            since=since,
            user_id=user_id,
            project_id=project_id,
            include_acknowledged=include_acknowledged,
            limit=limit,
        )


def default_alert_store(backend: Backend | None, *, history_size: int = 10_000) -> AlertStore:
    """The ledger's table when ``backend`` reads the ledger directly, the same table through
    the service when it is the service's client, else this process's memory (a test
    double)."""
    from smartspace_budget.backend.local import LocalBackend

    if isinstance(backend, LocalBackend):
        return LedgerAlertStore(backend.get_ledger)
    if isinstance(backend, AlertStateSource):
        return HttpAlertStore(backend)
    return MemoryAlertStore(history_size)
