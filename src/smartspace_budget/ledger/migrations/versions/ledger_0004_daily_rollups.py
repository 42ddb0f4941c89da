"""Daily rollups (local days of the account's timezone) beside the hourly ones.

Month and year reads summed up to 744 hourly rows per provider and model; daily rows make
that at most 31. Existing usage and refund entries get their local day and are summed into
the new table, so a database migrated with history reads the same as a new one.

Revision ID: ledger_0004
Revises: 0003_api_keys
Create Date: 2026-01-22
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from smartspace_budget.ledger.buckets import day_bucket

revision: str = "ledger_0004"
down_revision: str | Sequence[str] | None = "0003_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUMS = (
    "request_count",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_TIME = sa.DateTime(timezone=True)


def _aware(value: Any) -> datetime:
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(instant, datetime)
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _stored(value: datetime, dialect: str) -> Any:
    """As the ledger stores instants: fixed-width naive UTC text on SQLite (what SQLAlchemy's
    ``DateTime`` writes, and what range scans compare), ``timestamptz`` on PostgreSQL."""
    if dialect == "sqlite":
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("day_start", _TIME, nullable=True))
    op.create_table(
        "ledger_daily_rollups",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("day_start", _TIME, nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("spent_nano", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        *[
            sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
            for name in _SUMS
        ],
        sa.PrimaryKeyConstraint(
            "account_id", "day_start", "provider", "model", name="pk_ledger_daily_rollups"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_daily_rollups_account_id_ledger_accounts",
            ondelete="RESTRICT",
        ),
        sqlite_with_rowid=False,
    )
    _backfill()


def _backfill() -> None:
    """File existing entries under their local day and sum them into the daily rollups."""
    bind = op.get_bind()
    dialect = bind.dialect.name
    zones = {
        row.id: row.timezone
        for row in bind.execute(sa.text("SELECT id, timezone FROM ledger_accounts"))
    }
    hours = bind.execute(
        sa.text(
            "SELECT DISTINCT account_id, bucket_start FROM ledger_entries "
            "WHERE bucket_start IS NOT NULL"
        )
    ).all()
    for account_id, bucket in hours:
        zone_name = zones[account_id]
        day = day_bucket(_aware(bucket), zone_name, ZoneInfo(zone_name))
        bind.execute(
            sa.text(
                "UPDATE ledger_entries SET day_start = :day "
                "WHERE account_id = :account AND bucket_start = :bucket"
            ),
            {"day": _stored(day, dialect), "account": account_id, "bucket": bucket},
        )
    token_sums = ", ".join(f"SUM(COALESCE({name}, 0))" for name in _SUMS[1:])
    bind.execute(
        sa.text(
            "INSERT INTO ledger_daily_rollups (account_id, day_start, provider, model, "
            f"spent_nano, {', '.join(_SUMS)}) "
            "SELECT account_id, day_start, provider, model, SUM(-amount_nano), "
            f"SUM(CASE WHEN kind = 'usage' THEN 1 ELSE 0 END), {token_sums} "
            "FROM ledger_entries WHERE day_start IS NOT NULL "
            "GROUP BY account_id, day_start, provider, model"
        )
    )


def downgrade() -> None:
    op.drop_table("ledger_daily_rollups")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("day_start")
