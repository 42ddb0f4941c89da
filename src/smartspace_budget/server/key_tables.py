"""API keys: the ``api_keys`` table and the functions that create, check and revoke keys.

A raw key is shown once, when it is created, and never stored: the table keeps the SHA-256
of it. Keys are 256 random bits, so a fast hash is enough (nothing to brute-force), and a
lookup by hash needs no per-key salt. ``key_id`` is a separate public handle for listing
and revoking.

Scopes:

- ``admin``: everything, including deposits, refunds, adjustments, policies and metrics;
- ``account``: read and spend (usage, reserve, settle, release) for one user/project;
- ``account_read``: read one user/project;
- ``pricing_read``: read prices only;
- ``metrics``: read ``/metrics`` and nothing else (what a Prometheus scraper holds).

Every key but a ``metrics`` key may read prices: estimating a request's cost is part of
deciding to make it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from smartspace_budget.errors import InvalidInputError, NotFoundError
from smartspace_budget.ledger.metadata import metadata
from smartspace_budget.ledger.tables import UTCDateTime
from smartspace_budget.models.ids import MAX_ID_LENGTH, check_id

__all__ = [
    "KEY_PREFIX",
    "ApiKeyInfo",
    "Scope",
    "api_keys",
    "create_api_key",
    "ensure_key_table",
    "find_api_key",
    "hash_key",
    "list_api_keys",
    "revoke_api_key",
]

KEY_PREFIX = "ssb_"


class Scope(StrEnum):
    """What a key may do (see the module docstring)."""

    ADMIN = "admin"
    ACCOUNT = "account"
    ACCOUNT_READ = "account_read"
    PRICING_READ = "pricing_read"
    METRICS = "metrics"


api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(20), nullable=False),
    sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("project_id", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key after its creation: everything but the key."""

    key_id: str
    scope: Scope
    user_id: str | None
    project_id: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


def hash_key(raw_key: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: sa.Row[tuple[object, ...]]) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        scope=Scope(row.scope),
        user_id=row.user_id,
        project_id=row.project_id,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _check_scope(scope: Scope, user_id: str | None, project_id: str | None) -> None:
    needs_account = scope in (Scope.ACCOUNT, Scope.ACCOUNT_READ)
    has_account = user_id is not None or project_id is not None
    if needs_account:
        for name, value in (("user_id", user_id), ("project_id", project_id)):
            if not value:
                raise InvalidInputError(
                    f"a {scope.value} key needs a {name} of 1-{MAX_ID_LENGTH} characters"
                )
            check_id(value, name)  # the one id grammar (models/ids.py)
    elif has_account:
        raise InvalidInputError(f"a {scope.value} key is not tied to an account")


async def ensure_key_table(engine: AsyncEngine) -> None:
    """Create the ``api_keys`` table if it is missing (migrations normally have made it)."""
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: api_keys.create(sync, checkfirst=True))


async def create_api_key(
    engine: AsyncEngine,
    *,
    scope: Scope | str = Scope.ACCOUNT,
    user_id: str | None = None,
    project_id: str | None = None,
    admin: bool = False,
    name: str | None = None,
) -> tuple[str, str]:
    """Create a key and return ``(key_id, raw_key)``; the raw key cannot be recovered later.

    ``admin=True`` is short for ``scope="admin"``. Account scopes need ``user_id`` and
    ``project_id``; the others refuse them (:class:`InvalidInputError`).
    """
    try:
        chosen = Scope.ADMIN if admin else Scope(scope)
    except ValueError:
        allowed = ", ".join(s.value for s in Scope)
        raise InvalidInputError(f"unknown scope {scope!r}; expected one of {allowed}") from None
    _check_scope(chosen, user_id, project_id)
    if name is not None and len(name) > 200:
        raise InvalidInputError("a key's name is at most 200 characters")
    key_id = "key_" + secrets.token_hex(8)
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(
            api_keys.insert().values(
                key_id=key_id,
                key_hash=hash_key(raw_key),
                scope=chosen.value,
                user_id=user_id,
                project_id=project_id,
                name=name,
                created_at=datetime.now(UTC),
            )
        )
    return key_id, raw_key


async def find_api_key(engine: AsyncEngine, raw_key: str) -> ApiKeyInfo | None:
    """The active key whose hash matches ``raw_key``, or ``None``."""
    query = sa.select(api_keys).where(
        api_keys.c.key_hash == hash_key(raw_key), api_keys.c.revoked_at.is_(None)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else _info(row)


async def list_api_keys(engine: AsyncEngine, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
    """Every key (without its secret), oldest first."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_info(row) for row in rows]


async def revoke_api_key(engine: AsyncEngine, key_id: str) -> ApiKeyInfo:
    """Revoke a key (idempotent); :class:`NotFoundError` if there is no such key.

    Services that cache verified keys stop accepting it within their ``key_cache_ttl``.
    """
    async with engine.begin() as conn:
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        row = (await conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id))).first()
    if row is None:
        raise NotFoundError(f"no API key {key_id!r}", key_id=key_id)
    return _info(row)
