"""The ledger: accounts, entries, reservations, hourly rollups, idempotency keys.

Revision ID: ledger_0001
Revises:
Create Date: 2026-01-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "('deposit', 'usage', 'refund', 'adjustment', 'reservation', 'release')"
_STATUSES = "('pending', 'settled', 'released', 'expired')"


def _row_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _nano(name: str, *, nullable: bool = False, default: str | None = "0") -> sa.Column[int]:
    server_default = None if default is None else sa.text(default)
    return sa.Column(name, sa.BigInteger(), nullable=nullable, server_default=server_default)


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", _row_id(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("project_id", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(10), nullable=False, server_default=sa.text("'USDC'")),
        sa.Column("timezone", sa.String(64), nullable=False, server_default=sa.text("'UTC'")),
        _nano("balance_nano"),
        _nano("reserved_nano"),
        _nano("spent_nano"),
        _nano("per_request_limit_nano", nullable=True, default=None),
        _nano("daily_limit_nano", nullable=True, default=None),
        _nano("monthly_limit_nano", nullable=True, default=None),
        _nano("low_balance_threshold_nano", nullable=True, default=None),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_accounts"),
        sa.UniqueConstraint("user_id", "project_id", name="uq_ledger_accounts_user_project"),
        sa.CheckConstraint("reserved_nano >= 0", name="ck_ledger_accounts_reserved_not_negative"),
        sa.CheckConstraint(
            "(per_request_limit_nano IS NULL OR per_request_limit_nano >= 0) AND "
            "(daily_limit_nano IS NULL OR daily_limit_nano >= 0) AND "
            "(monthly_limit_nano IS NULL OR monthly_limit_nano >= 0) AND "
            "(low_balance_threshold_nano IS NULL OR low_balance_threshold_nano >= 0)",
            name="ck_ledger_accounts_limits_not_negative",
        ),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", _row_id(), primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.String(40), nullable=False),
        sa.Column("account_id", _row_id(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _nano("amount_nano"),
        _nano("hold_nano"),
        _nano("balance_after_nano", default=None),
        sa.Column("occurred_at", _when(), nullable=False),
        sa.Column("recorded_at", _when(), nullable=False),
        sa.Column("bucket_start", _when(), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=True),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=True),
        _nano("estimated_cost_nano", nullable=True, default=None),
        sa.Column(
            "cost_is_estimate", sa.Boolean(), nullable=False, server_default=sa.text("false")
        ),
        sa.Column("price_version", sa.String(200), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("reservation_id", sa.String(40), nullable=True),
        sa.Column("refund_of", sa.String(40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("entry_id", name="uq_ledger_entries_entry_id"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_entries_account_id_ledger_accounts",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(f"kind IN {_KINDS}", name="ck_ledger_entries_kind_known"),
    )
    op.create_index("ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"])
    op.create_index(
        "ix_ledger_entries_refund_of",
        "ledger_entries",
        ["refund_of"],
        sqlite_where=sa.text("refund_of IS NOT NULL"),
        postgresql_where=sa.text("refund_of IS NOT NULL"),
    )
    op.create_table(
        "ledger_reservations",
        sa.Column("id", _row_id(), primary_key=True, autoincrement=True),
        sa.Column("reservation_id", sa.String(40), nullable=False),
        sa.Column("account_id", _row_id(), nullable=False),
        _nano("amount_nano", default=None),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("expires_at", _when(), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        _nano("settled_nano", nullable=True, default=None),
        sa.Column("resolved_at", _when(), nullable=True),
        sa.Column("usage_entry_id", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_reservations"),
        sa.UniqueConstraint("reservation_id", name="uq_ledger_reservations_reservation_id"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_reservations_account_id_ledger_accounts",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(f"status IN {_STATUSES}", name="ck_ledger_reservations_status_known"),
        sa.CheckConstraint("amount_nano >= 0", name="ck_ledger_reservations_amount_not_negative"),
    )
    op.create_index(
        "ix_ledger_reservations_pending_expiry",
        "ledger_reservations",
        ["expires_at"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_ledger_reservations_pending_account",
        "ledger_reservations",
        ["account_id", "expires_at"],
        sqlite_where=sa.text("status = 'pending'"),
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "ledger_rollups",
        sa.Column("account_id", _row_id(), nullable=False),
        sa.Column("bucket_start", _when(), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        _nano("spent_nano"),
        *[
            sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
            for name in (
                "request_count",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
            )
        ],
        sa.PrimaryKeyConstraint(
            "account_id", "bucket_start", "provider", "model", name="pk_ledger_rollups"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_rollups_account_id_ledger_accounts",
            ondelete="RESTRICT",
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ledger_idempotency",
        sa.Column("account_id", _row_id(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key", name="pk_ledger_idempotency"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name="fk_ledger_idempotency_account_id_ledger_accounts",
            ondelete="RESTRICT",
        ),
    )


def downgrade() -> None:
    for table in (
        "ledger_idempotency",
        "ledger_rollups",
        "ledger_reservations",
        "ledger_entries",
        "ledger_accounts",
    ):
        op.drop_table(table)
