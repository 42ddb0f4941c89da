"""Output sketches (how many output tokens each account's calls to each model produce), and
the predicted and missed holds counted in the rollups.

``ledger_output_sketches`` counts calls per log bucket of output tokens
(``models/output_sketch.py``); it is filled from the usage entries already recorded (those
whose usage was reported, not charged at the hold), so a migrated ledger predicts from its
history at once. Settlements of a hold sized by a prediction keep the output held
(``predicted_output_tokens``); the rollups count them and those whose cost exceeded the hold.

Revision ID: ledger_0009
Revises: ledger_0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from smartspace_budget.models.output_sketch import bucket_of

revision: str = "ledger_0009"
down_revision: str | Sequence[str] | None = "ledger_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLLUPS = ("ledger_rollups", "ledger_daily_rollups")
_COUNTS = ("predicted_calls", "missed_calls")


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("predicted_output_tokens", sa.BigInteger(), nullable=True))
    for table in _ROLLUPS:
        with op.batch_alter_table(table) as batch:
            for name in _COUNTS:
                batch.add_column(
                    sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
                )
    op.create_table(
        "ledger_output_sketches",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint(
            "account_id", "provider", "model", "bucket", name="pk_ledger_output_sketches"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_output_sketches_account_id_ledger_accounts",
            ondelete="RESTRICT",
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_ledger_output_sketches_model", "ledger_output_sketches", ["provider", "model"]
    )
    _fill()


def _fill() -> None:
    """Count the recorded usage entries into the sketches (grouped by output size first)."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT account_id, provider, model, COALESCE(output_tokens, 0), COUNT(*) "
            "FROM ledger_entries WHERE kind = 'usage' AND NOT cost_is_estimate "
            "GROUP BY account_id, provider, model, COALESCE(output_tokens, 0)"
        )
    )
    counts: dict[tuple[int, str, str, int], int] = {}
    for account_id, provider, model, tokens, calls in rows:
        key = (int(account_id), provider or "", model or "", bucket_of(int(tokens)))
        counts[key] = counts.get(key, 0) + int(calls)
    if counts:
        table = sa.table(
            "ledger_output_sketches",
            sa.column("account_id"),
            sa.column("provider"),
            sa.column("model"),
            sa.column("bucket"),
            sa.column("calls"),
        )
        op.bulk_insert(
            table,
            [
                {"account_id": a, "provider": p, "model": m, "bucket": b, "calls": n}
                for (a, p, m, b), n in counts.items()
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_ledger_output_sketches_model", table_name="ledger_output_sketches")
    op.drop_table("ledger_output_sketches")
    for table in _ROLLUPS:
        with op.batch_alter_table(table) as batch:
            for name in _COUNTS:
                batch.drop_column(name)
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("predicted_output_tokens")
