"""The ledger's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Money columns hold integer **nano-USDC** (``*_nano``, BIGINT); instants are UTC.

- ``ledger_accounts``: one row per (user_id, project_id) with its timezone, policy limits and
  three running totals kept in the same transaction as every entry: ``balance_nano`` (sum of
  the entries' ``amount_nano``), ``reserved_nano`` (sum of their ``hold_nano``: the open
  holds) and ``spent_nano`` (usage minus refunds, all time).
- ``ledger_entries``: append-only. ``amount_nano`` is the change to the balance (deposits and
  refunds positive, usage negative, adjustments signed), ``hold_nano`` the change to the held
  amount (a reservation adds, its settlement, release or expiry removes).
- ``ledger_reservations``: holds and how each was resolved (at most once).
- ``ledger_rollups``: usage minus refunds and request/token counts per account, provider,
  model and *local hour* of the account's timezone (``bucket_start`` is the UTC instant the
  local hour starts, so a day or month of any zone, half-hour offsets included, is a whole
  number of buckets); ``ledger_daily_rollups``: the same per *local day* (``day_start``),
  which is what day, week, month and year reads sum (see ``buckets.py``).
- ``ledger_idempotency``: (account, key) -> fingerprint of the request and its stored result.
- ``ledger_output_sketches``: per account, provider and model, how many calls produced an
  output in each log bucket (``models/output_sketch.py``): the history output predictions
  read, kept in the same transaction as every usage entry whose usage was reported.

Rollups also count ``predicted_calls`` (settlements of a hold sized by an output
prediction: entries with ``predicted_output_tokens``) and ``missed_calls`` (those whose cost
exceeded the hold).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.models.usage import MAX_ID_LENGTH

__all__ = [
    "ID_LENGTH",
    "LEDGER_TABLES",
    "UTCDateTime",
    "accounts",
    "daily_rollups",
    "entries",
    "idempotency",
    "output_sketches",
    "reservations",
    "rollups",
]

ID_LENGTH = MAX_ID_LENGTH
_GENERATED_ID_LENGTH = 40
_KINDS = "('deposit', 'usage', 'refund', 'adjustment', 'reservation', 'release')"
_STATUSES = "('pending', 'settled', 'released', 'expired')"

# SQLite only makes an INTEGER PRIMARY KEY an alias of the rowid (and so auto-incrementing).
_RowId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware instant stored in UTC: ``timestamptz`` on PostgreSQL, fixed-width text on SQLite.

    SQLite keeps the naive UTC wall time, whose text sorts in time order, so range scans on
    an index work; values come back aware (UTC) on both databases. Naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value} cannot be stored; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _id(name: str, *, nullable: bool = False) -> Column[str]:
    return Column(name, String(ID_LENGTH), nullable=nullable)


def _nano(name: str, *, nullable: bool = False, default: int | None = 0) -> Column[int]:
    server_default = None if default is None else text(str(default))
    return Column(name, BigInteger, nullable=nullable, server_default=server_default)


accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    _id("user_id"),
    _id("project_id"),
    Column("currency", String(10), nullable=False, server_default=text("'USDC'")),
    Column("timezone", String(64), nullable=False, server_default=text("'UTC'")),
    _nano("balance_nano"),
    _nano("reserved_nano"),
    _nano("spent_nano"),
    _nano("per_request_limit_nano", nullable=True, default=None),
    _nano("daily_limit_nano", nullable=True, default=None),
    _nano("monthly_limit_nano", nullable=True, default=None),
    _nano("low_balance_threshold_nano", nullable=True, default=None),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("user_id", "project_id", name="uq_ledger_accounts_user_project"),
    CheckConstraint("reserved_nano >= 0", name="reserved_not_negative"),
    CheckConstraint(
        "(per_request_limit_nano IS NULL OR per_request_limit_nano >= 0) AND "
        "(daily_limit_nano IS NULL OR daily_limit_nano >= 0) AND "
        "(monthly_limit_nano IS NULL OR monthly_limit_nano >= 0) AND "
        "(low_balance_threshold_nano IS NULL OR low_balance_threshold_nano >= 0)",
        name="limits_not_negative",
    ),
)

entries = Table(
    "ledger_entries",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("entry_id", String(_GENERATED_ID_LENGTH), nullable=False, unique=True),
    Column(
        "account_id",
        _RowId,
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("kind", String(16), nullable=False),
    _nano("amount_nano"),
    _nano("hold_nano"),
    _nano("balance_after_nano", default=None),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("bucket_start", UTCDateTime, nullable=True),
    Column("day_start", UTCDateTime, nullable=True),
    _id("provider", nullable=True),
    _id("model", nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("cached_input_tokens", BigInteger, nullable=True),
    Column("cache_write_tokens", BigInteger, nullable=True),
    Column("reasoning_tokens", BigInteger, nullable=True),
    _nano("estimated_cost_nano", nullable=True, default=None),
    Column("cost_is_estimate", Boolean, nullable=False, server_default=text("false")),
    _id("price_version", nullable=True),
    _id("request_id", nullable=True),
    Column("reservation_id", String(_GENERATED_ID_LENGTH), nullable=True),
    Column("refund_of", String(_GENERATED_ID_LENGTH), nullable=True),
    Column("reason", Text, nullable=True),
    Column("tags", Text, nullable=True),
    _id("idempotency_key", nullable=True),
    # Usage entries: every dimension beyond the token columns, and what was unpriced (JSON).
    Column("usage_detail", Text, nullable=True),
    # A settlement whose hold was sized by an output prediction: the output tokens held.
    Column("predicted_output_tokens", BigInteger, nullable=True),
    CheckConstraint(f"kind IN {_KINDS}", name="kind_known"),
    Index("ix_ledger_entries_account_id_id", "account_id", "id"),
    Index(
        "ix_ledger_entries_refund_of",
        "refund_of",
        sqlite_where=text("refund_of IS NOT NULL"),
        postgresql_where=text("refund_of IS NOT NULL"),
    ),
)

reservations = Table(
    "ledger_reservations",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("reservation_id", String(_GENERATED_ID_LENGTH), nullable=False, unique=True),
    Column(
        "account_id",
        _RowId,
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    _nano("amount_nano", default=None),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    _id("request_id", nullable=True),
    _nano("settled_nano", nullable=True, default=None),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("usage_entry_id", String(_GENERATED_ID_LENGTH), nullable=True),
    CheckConstraint(f"status IN {_STATUSES}", name="status_known"),
    CheckConstraint("amount_nano >= 0", name="amount_not_negative"),
    Index(
        "ix_ledger_reservations_pending_expiry",
        "expires_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index(
        "ix_ledger_reservations_pending_account",
        "account_id",
        "expires_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)


def _rollup_table(name: str, bucket: str) -> Table:
    return Table(
        name,
        metadata,
        Column(
            "account_id",
            _RowId,
            ForeignKey("ledger_accounts.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        Column(bucket, UTCDateTime, nullable=False),
        Column("provider", String(ID_LENGTH), nullable=False),
        Column("model", String(ID_LENGTH), nullable=False),
        _nano("spent_nano"),
        *[
            Column(column, BigInteger, nullable=False, server_default=text("0"))
            for column in (
                "request_count",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
                "predicted_calls",
                "missed_calls",
            )
        ],
        PrimaryKeyConstraint("account_id", bucket, "provider", "model"),
        # The primary key is the only index reads use; without a rowid SQLite stores rows in
        # key order, so a window of an account is one contiguous range.
        sqlite_with_rowid=False,
    )


rollups = _rollup_table("ledger_rollups", "bucket_start")
daily_rollups = _rollup_table("ledger_daily_rollups", "day_start")

idempotency = Table(
    "ledger_idempotency",
    metadata,
    Column(
        "account_id",
        _RowId,
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("key", String(ID_LENGTH), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("result", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("account_id", "key"),
    # A rowid table, though every lookup is by the key: rows (with their stored result) are
    # appended, so a group commit dirties few pages; see migration ledger_0006.
)

output_sketches = Table(
    "ledger_output_sketches",
    metadata,
    Column(
        "account_id",
        _RowId,
        ForeignKey("ledger_accounts.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("provider", String(ID_LENGTH), nullable=False),
    Column("model", String(ID_LENGTH), nullable=False),
    Column("bucket", Integer, nullable=False),
    Column("calls", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("account_id", "provider", "model", "bucket"),
    # The project and all-accounts fallbacks read one model across accounts.
    Index("ix_ledger_output_sketches_model", "provider", "model"),
    sqlite_with_rowid=False,
)

LEDGER_TABLES = (
    accounts,
    entries,
    reservations,
    rollups,
    daily_rollups,
    idempotency,
    output_sketches,
)
"""Every table of the ledger, parents first (the order to create them, reversed to drop)."""
