"""The genai-prices catalog, read as immutable price versions.

genai-prices describes each model's prices per million tokens, with dated changes
(``StartDateConstraint``), long-context tiers, cache prices and a few other units. This
module turns that into the spec's :class:`PricingData`, one version per dated price:

- Token prices become prices per 1,000 tokens by moving the decimal point (exact).
- A tiered price ("cliff" pricing: crossing a threshold re-prices *all* input tokens) becomes
  :class:`PriceTier` entries. genai-prices applies a tier when the input is *greater* than
  its start; our tiers apply from ``min_input_tokens``, so a tier starting at 200,000 becomes
  ``min_input_tokens=200001``. Each key may tier separately; every threshold gets all keys.
- Cache reads and (5-minute) cache writes become ``cached_input_price_per_1k`` and
  ``cache_write_price_per_1k``; requests priced per thousand become ``request_price``.
- Models priced only per character (text-to-speech) are ``per_character``; models priced
  only per hour of audio (transcription) are ``per_second`` at the hourly price / 3600,
  which is computed to 50 significant digits because it rarely divides exactly.
- Time-of-day prices (DeepSeek's peak hours) cannot be one version: each version takes, per
  price, the highest of its standard price and the time-of-day prices that can override it,
  so an estimate never falls short of the real charge.
- ``context_window`` becomes ``max_input_tokens``, unless a long-context tier starts beyond
  it (a model whose larger context is priced but not reflected in the window): then the
  limit is unknown (``None``) rather than wrong.
- Request-context variants (batch, priority tiers), images, audio tokens and tool calls are
  not part of the spec's pricing models and are left out.

The first, undated price of a model is effective from :data:`CATALOG_EPOCH`: genai-prices
does not say since when it applies. A catalog version never changes, so its
``last_updated`` is its effective date. Version ids are a hash of the content, so the same
price keeps its id across processes and genai-prices upgrades.
"""

from __future__ import annotations

import decimal
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from smartspace_budget.errors import MissingPricingError
from smartspace_budget.models import PriceTier, PricingData, PricingModel
from smartspace_budget.money import DEFAULT_CURRENCY
from smartspace_budget.pricing import names

__all__ = ["CATALOG_EPOCH", "GENAI_SOURCE", "GenaiCatalog", "shared_catalog"]

CATALOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Effective date of a model's first genai-prices price (the data gives none)."""

GENAI_SOURCE = "genai-prices"

_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)
_SECONDS_PER_HOUR = Decimal(3600)
# Price keys per pricing dimension, in genai-prices' names.
_TOKEN_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


@dataclass(frozen=True)
class _Found:
    """A model found for a provider: the provider asked for, and the model info to price."""

    provider_id: str
    model: Any  # genai_prices.types.ModelInfo


class GenaiCatalog:
    """Lazy view of genai-prices' providers and models as price versions.

    Nothing is imported until the first lookup (genai-prices' data module takes a few hundred
    milliseconds to import), and each model is converted once, on first use.
    """

    def __init__(self, providers: Sequence[Any] | None = None) -> None:
        self._providers: list[Any] | None = list(providers) if providers is not None else None
        self._by_id: dict[str, Any] = {}
        self._found: dict[tuple[str, str], _Found | None] = {}
        self._versions: dict[tuple[str, str], list[PricingData]] = {}

    # -- providers -------------------------------------------------------------------------

    @property
    def providers(self) -> list[Any]:
        """genai-prices' providers (the active snapshot, loaded on first use)."""
        if self._providers is None:
            from genai_prices.data_snapshot import get_snapshot

            self._providers = list(get_snapshot().providers)
        return self._providers

    def _index(self) -> dict[str, Any]:
        if not self._by_id:
            self._by_id = {p.id: p for p in self.providers}
        return self._by_id

    def provider_ids(self) -> list[str]:
        """Every provider id, sorted."""
        return sorted(p.id for p in self.providers)

    def resolve_provider(self, name: str, *, lenient: bool = True) -> str | None:
        """The provider id for a normalised name or alias; ``None`` if unknown.

        ``lenient`` also tries genai-prices' own provider matching (e.g. any name containing
        "bedrock" is AWS), which callers try last because it is loose.
        """
        index = self._index()
        if name in index:
            return name
        alias = names.provider_alias(name)
        if alias is not None and alias in index:
            return alias
        if lenient:
            for provider in self.providers:
                match = provider.provider_match
                if match is not None and match.is_match(name):
                    return str(provider.id)
        return None

    # -- models ----------------------------------------------------------------------------

    def find_model(self, provider_id: str, ref: str) -> str | None:
        """The model id genai-prices matches ``ref`` to for this provider, or ``None``.

        Tries the name as written, then without a provider prefix (``openai/gpt-4o``) and
        without a trailing date or version tag.
        """
        found = self._find(provider_id, ref)
        return None if found is None else str(found.model.id)

    def _find(self, provider_id: str, ref: str) -> _Found | None:
        key = (provider_id, ref)
        if key in self._found:
            return self._found[key]
        provider = self._index().get(provider_id)
        result: _Found | None = None
        if provider is not None:
            model = self._exact(provider, ref)
            candidates = [] if model is not None else self._candidates(ref)
            for candidate in candidates:
                model = provider.find_model(candidate, all_providers=self.providers)
                if model is not None:
                    break
            if model is not None:
                result = _Found(provider_id, model)
        if len(self._found) > 50_000:  # names come from callers: keep the memo bounded
            self._found.clear()
        self._found[key] = result
        if result is not None:
            self._found.setdefault((provider_id, str(result.model.id)), result)
        return result

    def _exact(self, provider: Any, ref: str) -> Any:
        """A model whose id is exactly ``ref``, the provider's own before its fallbacks'."""
        for owner in [provider, *self._fallbacks(provider)]:
            for model in owner.models:
                if model.id == ref:
                    return model
        return None

    def _fallbacks(self, provider: Any) -> list[Any]:
        index = self._index()
        return [index[p] for p in provider.fallback_model_providers or () if p in index]

    def _candidates(self, ref: str) -> list[str]:
        candidates = [ref]
        split = names.split_prefix(ref)
        if split is not None:
            prefix, rest = split
            if prefix == "models" or self.resolve_provider(prefix, lenient=False) is not None:
                candidates.append(rest)
        for name in list(candidates):
            stripped = names.strip_version_suffix(name)
            if stripped is not None:
                candidates.append(stripped)
        return candidates

    def model_ids(self, provider_id: str) -> list[str]:
        """Ids of the provider's own models and of the providers it falls back to."""
        provider = self._index().get(provider_id)
        if provider is None:
            return []
        return [str(m.id) for owner in [provider, *self._fallbacks(provider)] for m in owner.models]

    def pairs(self, provider_id: str | None = None) -> list[tuple[str, str]]:
        """(provider, model) pairs of the providers' own models."""
        return [
            (str(p.id), str(m.id))
            for p in self.providers
            if provider_id is None or p.id == provider_id
            for m in p.models
        ]

    def versions(self, provider_id: str, model_id: str) -> list[PricingData]:
        """The model's price versions, oldest first; raises :class:`MissingPricingError`.

        The returned list is shared: callers copy what they hand out.
        """
        key = (provider_id, model_id)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        found = self._find(provider_id, model_id)
        if found is None:
            raise MissingPricingError(
                f"genai-prices has no model {model_id!r} for provider {provider_id!r}",
                provider=provider_id,
                model=model_id,
            )
        versions = _convert(provider_id, found.model)
        self._versions[key] = versions
        return versions


_SHARED: GenaiCatalog | None = None


def shared_catalog() -> GenaiCatalog:
    """One catalog per process, so every price book shares the converted versions."""
    global _SHARED
    if _SHARED is None:
        _SHARED = GenaiCatalog()
    return _SHARED


# -- conversion --------------------------------------------------------------------------


def _convert(provider_id: str, model: Any) -> list[PricingData]:
    from genai_prices import types as gp

    if isinstance(model.prices, gp.ModelPrice):
        segments: list[tuple[date | None, list[Any]]] = [(None, [model.prices])]
    else:
        segments = _dated_segments(model.prices, gp)
    versions = []
    for start, candidates in segments:
        effective = (
            CATALOG_EPOCH
            if start is None
            else datetime(start.year, start.month, start.day, tzinfo=UTC)
        )
        versions.append(_version(provider_id, model, effective, candidates))
    versions.sort(key=lambda v: v.effective_date)
    return versions


def _dated_segments(conditional: list[Any], gp: Any) -> list[tuple[date | None, list[Any]]]:
    """One (start date, candidate prices) per dated price; see the module docstring."""
    segments = []
    for index, entry in enumerate(conditional):
        constraint = entry.constraint
        if isinstance(constraint, gp.TimeOfDateConstraint):
            continue
        start = constraint.start_date if isinstance(constraint, gp.StartDateConstraint) else None
        if start is None and index != 0:
            continue  # genai-prices only uses an unconstrained price as the first entry
        later_time_of_day = [
            e.prices
            for e in conditional[index + 1 :]
            if isinstance(e.constraint, gp.TimeOfDateConstraint)
        ]
        segments.append((start, [entry.prices, *later_time_of_day]))
    return segments


def _price(model_price: Any, key: str) -> Any:
    return model_price.__dict__.get(key)


def _at(value: Any, input_tokens: int) -> Decimal | None:
    """The per-million price of ``value`` for a request of ``input_tokens`` input tokens."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    price: Decimal = value.base
    for tier in value.tiers:  # sorted by start
        if input_tokens > tier.start:
            price = tier.price
    return price


def _highest(candidates: list[Any], key: str, input_tokens: int) -> Decimal | None:
    prices = [p for c in candidates if (p := _at(_price(c, key), input_tokens)) is not None]
    return max(prices) if prices else None


def _per_1k(per_million: Decimal | None) -> Decimal | None:
    return None if per_million is None else per_million.scaleb(-3)


def _version(
    provider_id: str, model: Any, effective: datetime, candidates: list[Any]
) -> PricingData:
    keys = {k for c in candidates for k, v in c.__dict__.items() if v is not None}
    fields: dict[str, Any] = {}
    if keys & {"input_mtok", "output_mtok"}:
        fields["pricing_model"] = PricingModel.TOKEN_BASED
        fields.update(_token_prices(candidates))
    elif "input_mchars" in keys:
        per_million = _highest(candidates, "input_mchars", 0)
        assert per_million is not None
        fields["pricing_model"] = PricingModel.PER_CHARACTER
        fields["price_per_character"] = per_million.scaleb(-6)
    elif keys & {"audio_hours", "input_audio_hours"}:
        hourly = _highest(candidates, "audio_hours", 0) or _highest(
            candidates, "input_audio_hours", 0
        )
        assert hourly is not None
        fields["pricing_model"] = PricingModel.PER_SECOND
        fields["price_per_second"] = _CONTEXT.divide(hourly, _SECONDS_PER_HOUR)
    elif "requests_kcount" in keys:
        fields["pricing_model"] = PricingModel.PER_REQUEST
    elif not keys and str(model.id).endswith(":free"):
        # OpenRouter's free variants: listed without prices because they cost nothing.
        fields["pricing_model"] = PricingModel.TOKEN_BASED
        fields["input_price_per_1k"] = Decimal(0)
        fields["output_price_per_1k"] = Decimal(0)
    else:
        what = ", ".join(sorted(keys)) or "no price at all"
        raise MissingPricingError(
            f"genai-prices prices {provider_id}/{model.id} by {what}, which is not a pricing "
            "model of the spec (token, request, character, second); add a price with add_price",
            provider=provider_id,
            model=str(model.id),
        )
    per_thousand_requests = _highest(candidates, "requests_kcount", 0)
    if per_thousand_requests is not None:
        fields["request_price"] = per_thousand_requests.scaleb(-3)
    limit = model.context_window
    if limit is not None and any(t.min_input_tokens > limit for t in fields.get("tiers") or ()):
        # A price tier beyond the context window (1M-token betas): the window is not the limit.
        limit = None
    fields.update(
        provider=provider_id,
        model_name=str(model.id),
        max_input_tokens=limit,
        effective_date=effective,
        last_updated=effective,
        source=GENAI_SOURCE,
    )
    fields["version"] = _version_id(fields)
    fields["currency"] = DEFAULT_CURRENCY  # genai-prices' USD, taken as USDC 1:1
    return PricingData.model_validate(fields)


def _token_prices(candidates: list[Any]) -> dict[str, Any]:
    starts = sorted(
        {
            tier.start
            for c in candidates
            for key in _TOKEN_KEYS
            if (value := _price(c, key)) is not None and not isinstance(value, Decimal)
            for tier in value.tiers
        }
    )

    def prices_at(input_tokens: int) -> dict[str, Decimal | None]:
        return {
            "input_price_per_1k": _per_1k(_highest(candidates, "input_mtok", input_tokens))
            or Decimal(0),
            "output_price_per_1k": _per_1k(_highest(candidates, "output_mtok", input_tokens))
            or Decimal(0),
            "cached_input_price_per_1k": _per_1k(
                _highest(candidates, "cache_read_mtok", input_tokens)
            ),
            "cache_write_price_per_1k": _per_1k(
                _highest(candidates, "cache_write_mtok", input_tokens)
            ),
        }

    fields: dict[str, Any] = prices_at(0)
    if starts:
        fields["tiers"] = [
            PriceTier.model_validate({"min_input_tokens": start + 1, **prices_at(start + 1)})
            for start in starts
        ]
    return fields


def _version_id(fields: dict[str, Any]) -> str:
    """A content hash: identical prices keep their id, any change gives a new one."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if key == "tiers" and value is not None:
            value = [sorted(t.model_dump(mode="json").items()) for t in value]
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        parts.append(f"{key}={value}")
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"gp-{digest[:24]}"
