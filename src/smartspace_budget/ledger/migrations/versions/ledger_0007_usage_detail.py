"""Usage entries keep their whole usage: every dimension beyond the token columns.

A provider bills audio, image and video tokens, one-hour cache writes, web searches, pages,
messages, characters and seconds too. ``usage_detail`` holds those counts (and what the call
reported that no price covered) as JSON, so an entry can be priced again later.

Revision ID: ledger_0007
Revises: ledger_0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0007"
down_revision: str | Sequence[str] | None = "ledger_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("usage_detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("usage_detail")
