"""The price book: versioned prices from genai-prices, with operator overrides on top.

A price version (:class:`PricingData`) never changes once recorded; a new price is a new
version with its own effective date, and the price in force at an instant is the latest
version effective at or before it. Versions come from two places:

- the **catalog**: genai-prices' data, including its dated price changes (see
  :mod:`.snapshot`);
- **overrides**: prices an operator adds with :meth:`PriceBook.add_price`, kept in a
  :class:`PriceStore` (the ledger's database) or in memory.

Overrides layer on top: from an override's effective date on, it (or a later override)
wins over every catalog price of that model. An override applies to the name it was added
under; adding one under a catalog model's id (``gpt-4o``) covers every name that resolves
to it (``gpt-4o-2024-08-06``, ``openai/gpt-4o``); adding one under another name creates that
model (a fine-tune, a self-hosted model, a new provider).

A change of more than 100x against the version in force is refused unless forced: a
misplaced decimal point in a price would otherwise silently approve or block spending.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol
from uuid import uuid4

from smartspace_budget.errors import (
    InvalidInputError,
    MissingPricingError,
    UnknownModelError,
    UnknownProviderError,
)
from smartspace_budget.models import PricingData
from smartspace_budget.models.pricing import same_version_or_conflict
from smartspace_budget.prices import names
from smartspace_budget.prices.snapshot import GenaiCatalog, shared_catalog

__all__ = [
    "MAX_PRICE_CHANGE",
    "OVERRIDE_SOURCE",
    "MemoryPriceStore",
    "OverrideStore",
    "PriceBook",
]

OVERRIDE_SOURCE = "override"
MAX_PRICE_CHANGE = Decimal(100)
"""Largest factor a price may move by in one version without ``force=True``."""

_PRICE_FIELDS = (
    "input_price_per_1k",
    "output_price_per_1k",
    "cached_input_price_per_1k",
    "cache_write_price_per_1k",
    "request_price",
    "price_per_character",
    "price_per_second",
)


class OverrideStore(Protocol):
    """Where operator overrides live: :class:`MemoryPriceStore` or the ledger's PriceStore."""

    async def versions(self, provider: str, model: str) -> list[PricingData]:
        """Overrides of one (provider, model), oldest effective date first, ties in order added."""
        ...

    async def add(self, pricing: PricingData, *, forced: bool) -> PricingData:
        """Record a version; the same version id with the same content is a no-op."""
        ...

    async def models(self, provider: str | None = None) -> list[tuple[str, str]]:
        """(provider, model) pairs that have at least one override."""
        ...

    async def has_provider(self, provider: str) -> bool:
        """Whether any override was added for this provider."""
        ...

    async def get_version(self, version: str) -> PricingData | None:
        """One version by id, or ``None``."""
        ...


@dataclass
class MemoryPriceStore:
    """Overrides kept in this process only (tests, scripts, the embedded default)."""

    _rows: dict[tuple[str, str], list[PricingData]] = field(default_factory=dict)
    _by_version: dict[str, PricingData] = field(default_factory=dict)

    async def versions(self, provider: str, model: str) -> list[PricingData]:
        return list(self._rows.get((provider, model), ()))

    async def add(self, pricing: PricingData, *, forced: bool) -> PricingData:
        assert pricing.version is not None
        existing = self._by_version.get(pricing.version)
        if existing is not None:
            return same_version_or_conflict(existing, pricing)
        rows = self._rows.setdefault((pricing.provider, pricing.model_name), [])
        # Stable by effective date: a later-added version wins a tie.
        keys = [v.effective_date for v in rows]
        rows.insert(bisect.bisect_right(keys, pricing.effective_date), pricing)
        self._by_version[pricing.version] = pricing
        return pricing

    async def models(self, provider: str | None = None) -> list[tuple[str, str]]:
        return sorted(k for k in self._rows if provider is None or k[0] == provider)

    async def has_provider(self, provider: str) -> bool:
        return any(p == provider for p, _ in self._rows)

    async def get_version(self, version: str) -> PricingData | None:
        return self._by_version.get(version)


@dataclass(frozen=True)
class _Located:
    """A (provider, model) as written by a user, found in the book."""

    provider: str
    name: str  # canonical name reported to callers
    layers: tuple[list[PricingData], ...]  # versions, highest priority first; none empty


class PriceBook:
    """Price versions by provider and model; the read methods match the ``Backend`` protocol.

    ``store`` keeps operator overrides (a ledger ``PriceStore`` persists them; ``None`` keeps
    them in memory). ``catalog`` is the genai-prices view (``None`` for a book of overrides
    only). ``clock`` returns the current aware datetime (tests move it).
    """

    def __init__(
        self,
        store: OverrideStore | None = None,
        *,
        catalog: GenaiCatalog | bool | None = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store: OverrideStore = store if store is not None else MemoryPriceStore()
        if catalog is True:
            self._catalog: GenaiCatalog | None = shared_catalog()
        elif catalog is False or catalog is None:
            self._catalog = None
        else:
            self._catalog = catalog
        self._clock = clock

    @classmethod
    def from_genai_prices(cls, *, store: OverrideStore | None = None) -> PriceBook:
        """The default catalog: every provider and model of the installed genai-prices."""
        return cls(store, catalog=True)

    @classmethod
    def in_memory(cls, *, genai_prices: bool = True) -> PriceBook:
        """A book whose overrides live in memory; without genai-prices it starts empty."""
        return cls(None, catalog=genai_prices)

    # -- names -----------------------------------------------------------------------------

    async def resolve(self, provider: str, model: str) -> tuple[str, str]:
        """Canonical (provider, model) for names as users write them.

        Raises :class:`UnknownProviderError` / :class:`UnknownModelError` with close names.
        """
        located = await self._locate(provider, model)
        return located.provider, located.name

    async def _resolve_provider(self, provider: str) -> str:
        name = names.normalize(provider, what="provider")
        catalog = self._catalog
        if catalog is not None:
            strict = catalog.resolve_provider(name, lenient=False)
            if strict is not None:
                return strict
        if await self._store.has_provider(name):
            return name
        alias = names.provider_alias(name)
        if alias is not None and await self._store.has_provider(alias):
            return alias
        if catalog is not None:
            loose = catalog.resolve_provider(name, lenient=True)
            if loose is not None:
                return loose
        known = [p for p, _ in await self._store.models()]
        if catalog is not None:
            known += catalog.provider_ids()
        hint = _hint(names.closest(name, known + list(names.PROVIDER_ALIASES)))
        raise UnknownProviderError(f"unknown provider {provider!r}{hint}", provider=provider)

    def _model_name(self, provider_id: str, model: str) -> str:
        """The override key for a model name: lower case, without this provider's prefix."""
        name = names.normalize(model, what="model")
        split = names.split_prefix(name)
        if split is not None:
            prefix, rest = split
            same = prefix == provider_id or names.provider_alias(prefix) == provider_id
            if not same and self._catalog is not None:
                same = self._catalog.resolve_provider(prefix, lenient=False) == provider_id
            if same:
                return rest
        return name

    async def _locate(self, provider: str, model: str) -> _Located:
        provider_id = await self._resolve_provider(provider)
        name = self._model_name(provider_id, model)
        catalog = self._catalog
        catalog_id = None
        if catalog is not None:
            catalog_id = catalog.find_model(provider_id, names.normalize(model, what="model"))
        keys = [name]
        if catalog_id is not None and catalog_id != name:
            keys.append(catalog_id)
        layers: list[list[PricingData]] = []
        reported = None
        for key in keys:
            versions = await self._store.versions(provider_id, key)
            if versions:
                layers.append(versions)
                reported = reported or key
        if catalog_id is not None and catalog is not None:
            try:
                layers.append(catalog.versions(provider_id, catalog_id))
            except MissingPricingError:
                if not layers:
                    raise
            reported = reported or catalog_id
        if reported is not None:
            return _Located(provider_id, reported, tuple(layers))
        candidates = [m for _, m in await self._store.models(provider_id)]
        if catalog is not None:
            candidates += catalog.model_ids(provider_id)
        hint = _hint(names.closest(name, candidates))
        raise UnknownModelError(
            f"unknown model {model!r} for provider {provider_id!r}{hint}",
            provider=provider_id,
            model=model,
        )

    # -- reads -----------------------------------------------------------------------------

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData:
        """The version in force at ``at`` (now by default).

        Raises :class:`UnknownProviderError`, :class:`UnknownModelError`, or
        :class:`MissingPricingError` when the model has no price effective yet.
        """
        instant = _aware(at) if at is not None else self._clock()
        located = await self._locate(provider, model)
        layers = located.layers
        for layer in layers:
            index = bisect.bisect_right([v.effective_date for v in layer], instant)
            if index:
                return layer[index - 1].model_copy(deep=True)
        first = min((layer[0].effective_date for layer in layers), default=None)
        when = f"; its first price is effective from {first.isoformat()}" if first else ""
        raise MissingPricingError(
            f"no price for {located.provider}/{located.name} in force at {instant.isoformat()}"
            f"{when}",
            provider=located.provider,
            model=located.name,
        )

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]:
        """Versions in force at some moment of the last ``days`` days (all when ``None``).

        The version already in force when the window opens is included, as are versions
        scheduled for the future; superseded or shadowed versions are not. Oldest first.
        """
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 0):
            raise InvalidInputError(f"days must be a non-negative integer, got {days!r}")
        located = await self._locate(provider, model)
        since = None if days is None else self._clock() - timedelta(days=days)
        visible: list[PricingData] = []
        cutoff: datetime | None = None  # where a higher layer starts shadowing this one
        for layer in located.layers:
            for index, version in enumerate(layer):
                end = layer[index + 1].effective_date if index + 1 < len(layer) else None
                if cutoff is not None and (end is None or end > cutoff):
                    end = cutoff
                if end is not None and end <= version.effective_date:
                    continue  # never in force
                if since is not None and end is not None and end <= since:
                    continue  # replaced before the window
                visible.append(version.model_copy(deep=True))
            first = layer[0].effective_date
            cutoff = first if cutoff is None else min(cutoff, first)
        visible.sort(key=lambda v: v.effective_date)
        return visible

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]:
        """Known (provider, model) pairs, sorted; only one provider's when given."""
        provider_id = None if provider is None else await self._resolve_provider(provider)
        pairs = set(await self._store.models(provider_id))
        if self._catalog is not None:
            pairs.update(self._catalog.pairs(provider_id))
        return sorted(pairs)

    # -- writes ----------------------------------------------------------------------------

    async def add_price(self, pricing: PricingData, *, force: bool = False) -> PricingData:
        """Record an operator price (new model or override) and return the stored version.

        The version gets an id (unless it has one: re-adding the same id and content is a
        no-op), ``source="override"`` and ``last_updated`` = now; a naive ``effective_date``
        is taken as UTC. Raises :class:`InvalidInputError` when a price moves more than
        100x against the version in force at the effective date and ``force`` is false.
        """
        if not isinstance(pricing, PricingData):
            raise InvalidInputError(f"add_price needs a PricingData, not {type(pricing).__name__}")
        try:
            provider_id = await self._resolve_provider(pricing.provider)
        except UnknownProviderError:
            provider_id = names.normalize(pricing.provider, what="provider")
        name = self._model_name(provider_id, pricing.model_name)
        effective = _aware(pricing.effective_date)
        data = pricing.model_dump()
        data.update(
            provider=provider_id,
            model_name=name,
            effective_date=effective,
            last_updated=self._clock(),
            version=pricing.version or f"ovr-{uuid4().hex}",
            source=OVERRIDE_SOURCE,
        )
        version = PricingData.from_data(data)
        if pricing.version is not None:
            existing = await self._store.get_version(pricing.version)
            if existing is not None:  # a retried add: same content or a conflict
                return same_version_or_conflict(existing, version).model_copy(deep=True)
        current = await self._current(provider_id, name, effective)
        if current is not None and not force:
            _check_change(current, version)
        stored = await self._store.add(version, forced=force)
        return stored.model_copy(deep=True)

    async def _current(self, provider: str, name: str, at: datetime) -> PricingData | None:
        try:
            return await self.get_pricing(provider, name, at=at)
        except (UnknownProviderError, UnknownModelError, MissingPricingError):
            return None

    async def current_prices(
        self, provider: str | None = None
    ) -> list[tuple[str, str, PricingData | None]]:
        """Every known model with the version in force now (``None`` when it has none), in
        ``list_models`` order. The overrides are read once (``snapshot_store``), not once per
        model: a listing of the whole catalog costs one query."""
        snapshot = PriceBook(
            await snapshot_store(self._store), catalog=self._catalog, clock=self._clock
        )
        rows: list[tuple[str, str, PricingData | None]] = []
        for p, m in await snapshot.list_models(provider):
            try:
                price: PricingData | None = await snapshot.get_pricing(p, m)
            except (UnknownProviderError, UnknownModelError, MissingPricingError):
                price = None
            rows.append((p, m, price))
        return rows


async def snapshot_store(store: OverrideStore) -> OverrideStore:
    """The overrides of ``store`` copied into memory in one read, when the store can read
    them all at once (``all_versions``); else ``store`` itself."""
    read_all = getattr(store, "all_versions", None)
    if read_all is None:
        return store
    copy = MemoryPriceStore()
    for version in await read_all():
        await copy.add(version, forced=True)
    return copy


def _aware(instant: datetime) -> datetime:
    if not isinstance(instant, datetime):
        raise InvalidInputError(f"expected a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def _hint(suggestions: list[str]) -> str:
    if not suggestions:
        return ""
    return "; did you mean " + ", ".join(repr(s) for s in suggestions) + "?"


def _check_change(current: PricingData, new: PricingData) -> None:
    """Refuse a price that moves more than :data:`MAX_PRICE_CHANGE` times (either way)."""
    problems = []
    if current.pricing_model != new.pricing_model:
        problems.append(
            f"pricing model changes from {current.pricing_model.value} to "
            f"{new.pricing_model.value}, so the prices cannot be compared"
        )
    for name in _PRICE_FIELDS:
        old, fresh = getattr(current, name), getattr(new, name)
        if old is None or fresh is None or old == fresh:
            continue
        if old == 0 or fresh == 0:
            problems.append(f"{name} changes from {old} to {fresh}")
        elif max(fresh / old, old / fresh) > MAX_PRICE_CHANGE:
            factor = max(fresh / old, old / fresh)
            problems.append(f"{name} changes {factor:.1f}x, from {old} to {fresh}")
    if problems:
        raise InvalidInputError(
            f"refusing the price for {current.provider}/{current.model_name} against version "
            f"{current.version} in force at {new.effective_date}: "
            + "; ".join(problems)
            + f" (more than {MAX_PRICE_CHANGE}x); pass force=True if this is intended",
            provider=current.provider,
            model=current.model_name,
            version=current.version,
        )
