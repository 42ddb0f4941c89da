"""Alert state shared by every monitor: which alert fired in which period, acknowledgements.

One row per alert raised, unique per (account, rule, period start, rank), so that two
monitors (processes, replicas, or one restarted) claim each alert once per period; see
``smartspace_budget.ledger.alert_state``.

Revision ID: ledger_0008
Revises: ledger_0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0008"
down_revision: str | Sequence[str] | None = "ledger_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_alert_state",
        sa.Column("alert_id", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("project_id", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(240), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rank_units", sa.BigInteger(), nullable=False),
        sa.Column("alert", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_ledger_alert_state")),
        sa.UniqueConstraint(
            "user_id",
            "project_id",
            "rule",
            "period_start",
            "rank_units",
            name="uq_ledger_alert_claim",
        ),
    )
    op.create_index(
        "ix_ledger_alert_state_created_at", "ledger_alert_state", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_alert_state_created_at", table_name="ledger_alert_state")
    op.drop_table("ledger_alert_state")
