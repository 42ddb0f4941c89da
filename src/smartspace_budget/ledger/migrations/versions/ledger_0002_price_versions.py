"""The price book's operator price versions (``price_versions``).

Revision ID: 0002_price_versions
Revises: ledger_0001
Create Date: 2026-01-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_price_versions"
down_revision: str | Sequence[str] | None = "ledger_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "price_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("pricing_model", sa.String(20), nullable=False),
        sa.Column("effective_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_price_versions"),
        sa.UniqueConstraint("version", name="uq_price_versions_version"),
    )
    op.create_index(
        "ix_price_versions_lookup",
        "price_versions",
        ["provider", "model_name", "effective_date"],
    )


def downgrade() -> None:
    op.drop_index("ix_price_versions_lookup", table_name="price_versions")
    op.drop_table("price_versions")
