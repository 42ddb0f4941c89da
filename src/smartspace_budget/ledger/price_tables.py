"""The price book's table: operator price versions, append-only, next to the ledger's tables.

Only overrides are stored: genai-prices' catalog ships with the package and is rebuilt in
memory. A row is one immutable :class:`~smartspace_budget.models.PricingData` version:

- ``version``: its id (usage entries refer to it), unique;
- ``provider`` / ``model_name``: the canonical names it is looked up by (lower case);
- ``effective_date``: from when it applies (UTC); ``recorded_at``: when it was added;
- ``document``: the whole version as exact JSON (prices are rates, often finer than a
  nano-unit, so they are kept as exact decimal text rather than ledger integers);
- ``forced``: whether the 100x change guard was overridden.

``id`` orders rows added with the same effective date (the later one wins).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, text

from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.ledger.tables import UTCDateTime
from smartspace_budget.models.usage import MAX_ID_LENGTH

__all__ = ["price_versions"]

# SQLite only makes an INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing).
_RowId = BigInteger().with_variant(Integer(), "sqlite")

price_versions = Table(
    "price_versions",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("version", String(MAX_ID_LENGTH), nullable=False, unique=True),
    Column("provider", String(MAX_ID_LENGTH), nullable=False),
    Column("model_name", String(MAX_ID_LENGTH), nullable=False),
    Column("pricing_model", String(20), nullable=False),
    Column("effective_date", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("source", String(20), nullable=False),
    Column("forced", Boolean, nullable=False, server_default=text("false")),
    Column("document", Text, nullable=False),
    Index("ix_price_versions_lookup", "provider", "model_name", "effective_date"),
)
