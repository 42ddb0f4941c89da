"""Which alert fired in which period, in the ledger's database: one memory for every monitor.

A monitor announces each rule once per period, escalating (see ``SpendingMonitor``). Kept in
one process, that memory is lost at a restart and not shared by replicas, so each of them
announced the period's alerts again. ``ledger_alert_state`` keeps it where every process
looks: one row per alert raised, under (account, rule, period start, rank).

**Claims.** :meth:`AlertState.claim` records an alert unless the same rule of the account
already fired in that period at the same or a higher rank; it answers whether this caller
won (and so delivers it) and the alert that stands. The decision runs under a lock on the
(account, rule, period): SQLite's write lock (``BEGIN IMMEDIATE``), PostgreSQL's transaction
advisory lock on a hash of the key; and the unique constraint on (account, rule, period,
rank) stops a second row for the same rank whatever happens. Two monitors racing on one
alert: one claims, the other gets the claimed alert back, and only one delivers.

**Acknowledgements** are stored on the row (when, and by whom if said), so an alert
acknowledged anywhere reads as acknowledged everywhere.

Every call answers within the ledger's deadline (``Ledger.deadline``) or raises
:class:`BackendTimeoutError`; a database failure is :class:`BackendUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from smartspace_budget.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SmartspaceBudgetError,
)
from smartspace_budget.ledger.engine import read_options
from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.ledger.tables import ID_LENGTH, UTCDateTime
from smartspace_budget.models import SpendingAlert
from smartspace_budget.models.alerts import newest_first

if TYPE_CHECKING:
    from smartspace_budget.ledger.ledger import Ledger

__all__ = ["RULE_LENGTH", "AlertState", "alert_state", "rank_units"]

RULE_LENGTH = ID_LENGTH + 40
"""A rule names a threshold by its id (``threshold:<id>``): an id and a prefix."""

alert_state = Table(
    "ledger_alert_state",
    metadata,
    Column("alert_id", String(ID_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), nullable=False),
    Column("project_id", String(ID_LENGTH), nullable=False),
    Column("rule", String(RULE_LENGTH), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("period_end", UTCDateTime, nullable=False),
    Column("rank_units", BigInteger, nullable=False),
    Column("alert", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("acknowledged_by", String(ID_LENGTH), nullable=True),
    PrimaryKeyConstraint("alert_id"),
    UniqueConstraint(
        "user_id", "project_id", "rule", "period_start", "rank_units", name="uq_ledger_alert_claim"
    ),
    Index("ix_ledger_alert_state_created_at", "created_at"),
)

_RANK_SCALE = 6


def rank_units(rank: Decimal) -> int:
    """A rank (a percentage, or a level's rank) as an exact integer of millionths."""
    return int(rank.scaleb(_RANK_SCALE).to_integral_value())


def _stored(row: Any) -> SpendingAlert:
    alert = SpendingAlert.from_json(row.alert)
    if row.acknowledged_at is not None:
        alert.acknowledged = True
        alert.acknowledged_at = row.acknowledged_at
        if row.acknowledged_by is not None:
            alert.metadata = {**alert.metadata, "acknowledged_by": row.acknowledged_by}
    return alert


class AlertState:
    """The alert memory of one ledger's database (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
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
        """Record ``alert`` for (its account, ``rule``, the period) at ``rank``, unless one at
        this rank or higher is recorded already.

        Returns ``(True, alert)`` when this caller claimed it (and must deliver it), else
        ``(False, the alert that stands)``.
        """
        if len(rule) > RULE_LENGTH:
            raise InvalidInputError(f"an alert rule is at most {RULE_LENGTH} characters")
        try:
            return await self._claim(alert, rule, period_start, period_end, rank)
        except _ClaimRace:  # the same rank claimed at the same instant: the row is there now
            return await self._claim(alert, rule, period_start, period_end, rank)

    async def _claim(
        self,
        alert: SpendingAlert,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]:
        units = rank_units(rank)
        key = (alert.user_id, alert.project_id, rule, period_start)
        same_period = and_(
            alert_state.c.user_id == alert.user_id,
            alert_state.c.project_id == alert.project_id,
            alert_state.c.rule == rule,
            alert_state.c.period_start == period_start,
        )
        async with self._transaction() as conn:
            if conn.dialect.name == "postgresql":
                lock_key = "\x1f".join((*key[:3], period_start.isoformat()))
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                    {"key": lock_key},
                )
            standing = (
                await conn.execute(
                    select(alert_state)
                    .where(same_period, alert_state.c.rank_units >= units)
                    .order_by(alert_state.c.rank_units.desc())
                    .limit(1)
                )
            ).first()
            if standing is not None:
                if standing.alert_id == alert.alert_id:
                    return True, _stored(standing)  # a retry of this very claim
                return False, _stored(standing)
            await _refuse_reused_id(conn, alert.alert_id)
            await conn.execute(
                alert_state.insert().values(
                    alert_id=alert.alert_id,
                    user_id=alert.user_id,
                    project_id=alert.project_id,
                    rule=rule,
                    period_start=period_start,
                    period_end=period_end,
                    rank_units=units,
                    alert=alert.to_json(),
                    created_at=alert.created_at,
                )
            )
        return True, alert

    async def record(self, alert: SpendingAlert, *, rule: str) -> None:
        """Keep an alert raised elsewhere (the guard's cost anomalies): its own period.

        Keeping the same alert again (a retry) changes nothing; another alert under a kept
        alert's id is a :class:`ConflictError`."""
        async with self._transaction() as conn:
            kept = (
                await conn.execute(
                    select(alert_state.c.user_id, alert_state.c.project_id).where(
                        alert_state.c.alert_id == alert.alert_id
                    )
                )
            ).first()
            if kept is not None:
                if (kept.user_id, kept.project_id) == (alert.user_id, alert.project_id):
                    return
                raise ConflictError(f"alert id {alert.alert_id!r} is already used")
            rule = rule[:RULE_LENGTH]
            same_rule = (
                await conn.execute(
                    select(alert_state.c.alert_id).where(
                        alert_state.c.user_id == alert.user_id,
                        alert_state.c.project_id == alert.project_id,
                        alert_state.c.rule == rule,
                        alert_state.c.period_start == alert.created_at,
                        alert_state.c.rank_units == 0,
                    )
                )
            ).first()
            if same_rule is not None:
                raise ConflictError(
                    f"another alert is kept under the rule {rule[:60]!r} at that instant"
                )
            await conn.execute(
                alert_state.insert().values(
                    alert_id=alert.alert_id,
                    user_id=alert.user_id,
                    project_id=alert.project_id,
                    rule=rule,
                    period_start=alert.created_at,
                    period_end=alert.created_at,
                    rank_units=0,
                    alert=alert.to_json(),
                    created_at=alert.created_at,
                )
            )

    async def acknowledge(
        self, alert_id: str, *, at: datetime, by: str | None = None
    ) -> SpendingAlert:
        """Mark the alert handled (the first acknowledgement stands); :class:`NotFoundError`
        for an alert this database does not hold."""
        if by is not None and not 0 < len(by) <= ID_LENGTH:
            raise InvalidInputError(f"'by' must be 1..{ID_LENGTH} characters")
        async with self._transaction() as conn:
            await conn.execute(
                update(alert_state)
                .where(alert_state.c.alert_id == alert_id, alert_state.c.acknowledged_at.is_(None))
                .values(acknowledged_at=at, acknowledged_by=by)
            )
            row = (
                await conn.execute(select(alert_state).where(alert_state.c.alert_id == alert_id))
            ).first()
        if row is None:
            raise NotFoundError(f"no alert {alert_id!r}", alert_id=alert_id)
        return _stored(row)

    async def find(self, alert_id: str) -> SpendingAlert | None:
        """The kept alert ``alert_id`` (acknowledged or not), or ``None``."""
        async with self._transaction(write=False) as conn:
            row = (
                await conn.execute(select(alert_state).where(alert_state.c.alert_id == alert_id))
            ).first()
        return None if row is None else _stored(row)

    async def recent(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]:
        """Alerts raised at or after ``since``, newest first (those of one instant in the
        order of :func:`~smartspace_budget.models.alerts.newest_first`)."""
        query = select(alert_state).where(alert_state.c.created_at >= since)
        if user_id is not None:
            query = query.where(alert_state.c.user_id == user_id)
        if project_id is not None:
            query = query.where(alert_state.c.project_id == project_id)
        if not include_acknowledged:
            query = query.where(alert_state.c.acknowledged_at.is_(None))
        query = query.order_by(alert_state.c.created_at.desc()).limit(limit)
        async with self._transaction(write=False) as conn:
            rows = (await conn.execute(query)).all()
        return newest_first(_stored(row) for row in rows)

    async def count(self) -> int:
        """How many alerts are kept (for tests and operators)."""
        async with self._transaction(write=False) as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(alert_state))).scalar_one()
            )

    @contextlib.asynccontextmanager
    async def _transaction(self, *, write: bool = True) -> AsyncIterator[Any]:
        """A transaction on the ledger's engine, within its deadline, errors typed."""
        ledger = self._ledger
        deadline = ledger.deadline
        try:
            async with asyncio.timeout(deadline):
                if write:
                    async with ledger.engine.begin() as conn:
                        yield conn
                else:
                    async with ledger.engine.connect() as conn:
                        yield await conn.execution_options(**read_options(ledger.engine))
        except SmartspaceBudgetError:
            raise
        except IntegrityError as exc:
            # The same rank claimed at the same instant elsewhere (the unique constraint):
            # a conflict the caller resolves by claiming again, which then finds the row.
            raise _ClaimRace(str(exc)) from exc
        except TimeoutError as exc:
            raise BackendTimeoutError(
                f"the ledger database gave no answer within the {deadline} s deadline",
                deadline=deadline,
            ) from exc
        except (SQLAlchemyError, OSError) as exc:
            raise BackendUnavailableError(f"the ledger database failed: {exc!r}") from exc


async def _refuse_reused_id(conn: Any, alert_id: str) -> None:
    """:class:`ConflictError` when ``alert_id`` is kept already, for another claim."""
    used = (
        await conn.execute(select(alert_state.c.alert_id).where(alert_state.c.alert_id == alert_id))
    ).first()
    if used is not None:
        raise ConflictError(f"alert id {alert_id!r} is already used for another alert")


class _ClaimRace(BackendUnavailableError):
    """Two claims of one alert crossed: claiming again finds the winner's row."""
