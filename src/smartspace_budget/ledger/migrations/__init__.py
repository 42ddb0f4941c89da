"""Alembic migrations of the ledger (and every table on its metadata)."""
