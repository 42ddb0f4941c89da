"""Operator price versions in the ledger's database (the ``price_versions`` table).

:class:`PriceStore` is the persistent :class:`~smartspace_budget.prices.catalog.OverrideStore`
of a :class:`~smartspace_budget.prices.catalog.PriceBook`: every replica reading the same
database sees the same overrides. Rows are only ever inserted. Re-adding a version id with
the same content returns the stored version (a retried request); with other content it is an
:class:`~smartspace_budget.errors.IdempotencyConflictError`. A database that cannot be
reached raises :class:`~smartspace_budget.errors.BackendUnavailableError`, never an empty
answer that would read as "no override".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from smartspace_budget.errors import BackendUnavailableError
from smartspace_budget.ledger.engine import read_options
from smartspace_budget.ledger.price_tables import price_versions
from smartspace_budget.models import PricingData, dumps
from smartspace_budget.models.pricing import same_version_or_conflict

__all__ = ["PriceStore"]

_T = price_versions.c


class PriceStore:
    """Price overrides stored through ``engine`` (SQLite or PostgreSQL); see the module doc."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield await conn.execution_options(**read_options(self.engine))
        except DBAPIError as exc:
            raise _unavailable(exc) from exc
        except OSError as exc:
            raise _unavailable(exc) from exc

    async def versions(self, provider: str, model: str) -> list[PricingData]:
        """Versions of one (provider, model), by effective date, ties in the order added."""
        query = (
            select(_T.document)
            .where(_T.provider == provider, _T.model_name == model)
            .order_by(_T.effective_date, _T.id)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [PricingData.from_json(document) for document in rows]

    async def all_versions(self, provider: str | None = None) -> list[PricingData]:
        """Every stored version (of one provider, or all) in one query, each model's by
        effective date, ties in the order added (for listings of every price)."""
        query = select(_T.document).order_by(_T.effective_date, _T.id)
        if provider is not None:
            query = query.where(_T.provider == provider)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).scalars().all()
        return [PricingData.from_json(document) for document in rows]

    async def get_version(self, version: str) -> PricingData | None:
        """One version by id, or ``None``."""
        async with self._reading() as conn:
            document = await conn.scalar(select(_T.document).where(_T.version == version))
        return None if document is None else PricingData.from_json(document)

    async def models(self, provider: str | None = None) -> list[tuple[str, str]]:
        """(provider, model) pairs with at least one stored version, sorted."""
        query = select(_T.provider, _T.model_name).distinct()
        if provider is not None:
            query = query.where(_T.provider == provider)
        async with self._reading() as conn:
            rows = (await conn.execute(query)).all()
        return sorted((str(p), str(m)) for p, m in rows)

    async def has_provider(self, provider: str) -> bool:
        """Whether any version was stored for ``provider``."""
        async with self._reading() as conn:
            found = await conn.scalar(select(exists().where(_T.provider == provider)))
        return bool(found)

    async def add(self, pricing: PricingData, *, forced: bool) -> PricingData:
        """Insert one version (which must carry its ``version`` id); see the module docstring."""
        if pricing.version is None:
            raise ValueError("a stored price version needs its version id")
        row: dict[str, Any] = {
            "version": pricing.version,
            "provider": pricing.provider,
            "model_name": pricing.model_name,
            "pricing_model": pricing.pricing_model.value,
            "effective_date": pricing.effective_date,
            "recorded_at": datetime.now(UTC),
            "source": pricing.source or "override",
            "forced": forced,
            "document": dumps(pricing),
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(price_versions).values(**row))
        except IntegrityError:
            existing = await self.get_version(pricing.version)
            if existing is None:
                raise
            return same_version_or_conflict(existing, pricing)
        except DBAPIError as exc:
            raise _unavailable(exc) from exc
        except OSError as exc:
            raise _unavailable(exc) from exc
        return pricing


def _unavailable(exc: BaseException) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"the price store cannot be reached: {type(exc).__name__}: {str(exc)[:200]}"
    )
