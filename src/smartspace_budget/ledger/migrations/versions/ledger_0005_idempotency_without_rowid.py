"""SQLite: idempotency keys stored in their primary key's B-tree (``WITHOUT ROWID``).

A rowid table keeps each row in one B-tree and its (account_id, key) primary key in a
second one, so every keyed write changed two pages of this table. Without a rowid the row
lives in the key's B-tree: one page per write fewer to change and log, and one B-tree fewer
to search when a write looks its key up. PostgreSQL has no such choice; nothing changes
there. Undone by ``ledger_0006``: group commits wrote far more pages (see there).

Revision ID: ledger_0005
Revises: ledger_0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "ledger_0005"
down_revision: str | Sequence[str] | None = "ledger_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # Batch mode copies the rows into a table made with the new options, then swaps it in.
    with op.batch_alter_table(
        "ledger_idempotency",
        recreate="always",
        table_kwargs={"sqlite_with_rowid": with_rowid},
    ):
        pass


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
