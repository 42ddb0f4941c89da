"""The genai-prices catalog, read as immutable price versions.

genai-prices describes each model's prices per million tokens, with dated changes
(``StartDateConstraint``), long-context tiers, cache prices and a few other units. This
module turns that into the spec's :class:`PricingData`, one version per dated price:

- Token prices become prices per 1,000 tokens by moving the decimal point (exact).
- A tiered price ("cliff" pricing: crossing a threshold re-prices *all* input tokens) becomes
  :class:`PriceTier` entries. genai-prices applies a tier when the input is *greater* than
  its start; our tiers apply from ``min_input_tokens``, so a tier starting at 200,000 becomes
  ``min_input_tokens=200001``. Each key may tier separately; every threshold gets all keys.
- Every other price becomes a price of one usage dimension (see
  :mod:`smartspace_budget.models.dimensions`): cache reads and writes, one-hour cache
  writes, audio, image and video tokens, reasoning and citation tokens in
  ``dimension_prices`` per 1,000 tokens; requests (``request_price``), web and file searches,
  messages and pages per unit. A price key this module does not know makes the model
  unpriceable (:class:`MissingPricingError`) rather than silently free.
- Models priced per character (text-to-speech) are ``per_character``; models priced per hour
  of audio (transcription) are ``per_second``, keeping the exact hourly price in
  ``price_per_hour`` (the per-second price is rounded to 50 digits, as it rarely divides);
  the 10-second minimum genai-prices applies to Groq's Whisper models in code is
  ``minimum_billed_seconds``. Models priced per page (OCR) are ``per_request`` at a request
  price of 0, their page prices in ``dimension_prices``.
- Time-of-day prices (DeepSeek's off-peak hours) are ``time_of_day`` windows of the version
  they apply to, in UTC; the price at an instant is the window's inside it.
- ``context_window`` becomes ``max_input_tokens`` and ``context_window`` (input and output
  together must fit it), unless a long-context tier starts beyond it (a model whose larger
  context is priced but not reflected in the window): then the limit is unknown (``None``)
  rather than wrong. genai-prices has no output limits: ``max_output_tokens`` comes from an
  operator's override (``prices set --max-output-tokens``).
- Request-context variants (batch, priority service tiers) are left out: the standard price
  is the one charged, as genai-prices does without a price context.

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
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from smartspace_budget.errors import MissingPricingError
from smartspace_budget.models import PriceTier, PricingData, PricingModel
from smartspace_budget.models.pricing import TimeOfDayPrice
from smartspace_budget.money import DEFAULT_CURRENCY
from smartspace_budget.prices import names

__all__ = ["CATALOG_EPOCH", "GENAI_SOURCE", "GenaiCatalog", "shared_catalog"]

CATALOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Effective date of a model's first genai-prices price (the data gives none)."""

GENAI_SOURCE = "genai-prices"

_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)
_SECONDS_PER_HOUR = Decimal(3600)


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

        Tries the name as written, then without a provider prefix (``openai/gpt-4o``); dated
        names match only where the catalog lists them (``gpt-4o-2024-08-06``).
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
        # No guessing beyond the catalog's own names: a dated or suffixed name it does not
        # list (gpt-4o-2099-01-01) is refused, never priced as its base model.
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
        segments: list[tuple[date | None, Any, list[Any]]] = [(None, model.prices, [])]
    else:
        segments = _dated_segments(model.prices, gp)
    versions = []
    for start, standard, windows in segments:
        effective = (
            CATALOG_EPOCH
            if start is None
            else datetime(start.year, start.month, start.day, tzinfo=UTC)
        )
        versions.append(_version(provider_id, model, effective, standard, windows))
    versions.sort(key=lambda v: v.effective_date)
    return versions


def _dated_segments(conditional: list[Any], gp: Any) -> list[tuple[date | None, Any, list[Any]]]:
    """One (start date, standard prices, time-of-day windows) per dated price.

    genai-prices tries a model's conditional prices last to first and takes the first whose
    constraint holds, falling back to the first entry. So the first entry applies from the
    start, each dated entry from its date, and a time-of-day entry applies inside its hours
    to the dated prices listed before it (later entries take precedence).
    """
    segments = []
    for index, entry in enumerate(conditional):
        constraint = entry.constraint
        if index and not isinstance(constraint, gp.StartDateConstraint):
            continue
        start = constraint.start_date if index and constraint is not None else None
        windows = [
            e for e in conditional[index + 1 :] if isinstance(e.constraint, gp.TimeOfDateConstraint)
        ]
        segments.append((start, entry.prices, windows))
    return segments


# genai-prices' price keys: (our field or dimension, power of ten to our unit).
# Token prices are per million there and per 1,000 here; counts per thousand there, per unit
# here; characters per million there, per character here.
_SPEC_KEYS = {
    "input_mtok": ("input_price_per_1k", -3),
    "output_mtok": ("output_price_per_1k", -3),
    "cache_read_mtok": ("cached_input_price_per_1k", -3),
    "cache_write_mtok": ("cache_write_price_per_1k", -3),
    "requests_kcount": ("request_price", -3),
    "input_mchars": ("price_per_character", -6),
}
_DIMENSION_KEYS = {
    "cache_write_1h_mtok": ("cache_write_1h_tokens", -3),
    "input_audio_mtok": ("input_audio_tokens", -3),
    "cache_audio_read_mtok": ("cached_input_audio_tokens", -3),
    "input_image_mtok": ("input_image_tokens", -3),
    "cache_image_read_mtok": ("cached_input_image_tokens", -3),
    "input_video_mtok": ("input_video_tokens", -3),
    "output_reasoning_mtok": ("reasoning_tokens", -3),
    "output_citation_mtok": ("citation_tokens", -3),
    "output_audio_mtok": ("output_audio_tokens", -3),
    "output_image_mtok": ("output_image_tokens", -3),
    "output_video_mtok": ("output_video_tokens", -3),
    "web_searches_kcount": ("web_searches", -3),
    "storage_searches_kcount": ("file_searches", -3),
    "input_text_messages_kcount": ("messages", -3),
    "input_document_kpages": ("pages", -3),
    "input_annotated_document_kpages": ("annotated_pages", -3),
}
_HOUR_KEYS = ("input_audio_hours", "audio_hours")  # the first priced one prices our seconds
_TOKEN_PRICE_KEYS = frozenset(
    {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"}
    | {key for key in _DIMENSION_KEYS if key.endswith("_mtok")}
)
_MINIMUM_SECONDS = {("groq", "whisper-large-v3"): 10, ("groq", "whisper-large-v3-turbo"): 10}
"""Per-call minimums genai-prices applies in code rather than in its data."""


def _price(model_price: Any, key: str) -> Any:
    return model_price.__dict__.get(key)


def _keys(model_price: Any) -> set[str]:
    return {k for k, v in model_price.__dict__.items() if v is not None and not k.startswith("_")}


def _at(value: Any, input_tokens: int) -> Decimal | None:
    """The price of ``value`` for a request of ``input_tokens`` input tokens."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    price: Decimal = value.base
    for tier in value.tiers:  # sorted by start
        if input_tokens > tier.start:
            price = tier.price
    return price


def _prices_at(model_price: Any, input_tokens: int) -> dict[str, Any]:
    """Our price fields of one genai-prices price set, at one input size."""
    fields: dict[str, Any] = {}
    dimensions: dict[str, Decimal] = {}
    for key in _keys(model_price):
        value = _at(_price(model_price, key), input_tokens)
        if key in _SPEC_KEYS:
            name, shift = _SPEC_KEYS[key]
            fields[name] = value.scaleb(shift) if value is not None else None
        elif key in _DIMENSION_KEYS:
            name, shift = _DIMENSION_KEYS[key]
            if value is not None:
                dimensions[name] = value.scaleb(shift)
    if dimensions:
        fields["dimension_prices"] = dimensions
    return fields


def _tier_starts(model_price: Any) -> list[int]:
    return sorted(
        {
            tier.start
            for key in _keys(model_price) & _TOKEN_PRICE_KEYS
            if not isinstance(value := _price(model_price, key), Decimal)
            for tier in value.tiers
        }
    )


def _token_tiers(model_price: Any) -> list[PriceTier] | None:
    """One tier per threshold, each with every token price at that threshold.

    genai-prices applies a tier when the input is *greater* than its start; ours apply from
    ``min_input_tokens``, so a tier starting at 200,000 becomes ``min_input_tokens=200001``.
    """
    tiers = []
    for start in _tier_starts(model_price):
        fields = _prices_at(model_price, start + 1)
        tier: dict[str, Any] = {
            "min_input_tokens": start + 1,
            "input_price_per_1k": fields.get("input_price_per_1k") or Decimal(0),
            "output_price_per_1k": fields.get("output_price_per_1k") or Decimal(0),
            "cached_input_price_per_1k": fields.get("cached_input_price_per_1k"),
            "cache_write_price_per_1k": fields.get("cache_write_price_per_1k"),
        }
        tokens = {
            name: price
            for name, price in (fields.get("dimension_prices") or {}).items()
            if name.endswith("_tokens")
        }
        if tokens:
            tier["dimension_prices"] = tokens
        tiers.append(PriceTier.model_validate(tier))
    return tiers or None


def _unmapped(provider_id: str, model: Any, model_price: Any) -> None:
    known = set(_SPEC_KEYS) | set(_DIMENSION_KEYS) | set(_HOUR_KEYS)
    unknown = _keys(model_price) - known
    if unknown:
        raise MissingPricingError(
            f"genai-prices prices {provider_id}/{model.id} by {', '.join(sorted(unknown))}, "
            "which this version cannot charge; add a price with add_price",
            provider=provider_id,
            model=str(model.id),
        )


def _window(provider_id: str, model: Any, entry: Any) -> TimeOfDayPrice:
    _unmapped(provider_id, model, entry.prices)
    constraint = entry.constraint
    fields = _prices_at(entry.prices, 0)
    fields.pop("price_per_character", None)
    return TimeOfDayPrice.model_validate(
        {
            "start_time": _utc_time(constraint.start_time),
            "end_time": _utc_time(constraint.end_time),
            **fields,
            "tiers": _token_tiers(entry.prices),
        }
    )


def _utc_time(value: time) -> time:
    if value.tzinfo is None:
        return value
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).time()


def _version(
    provider_id: str, model: Any, effective: datetime, standard: Any, windows: list[Any]
) -> PricingData:
    _unmapped(provider_id, model, standard)
    keys = _keys(standard)
    fields: dict[str, Any] = _prices_at(standard, 0)
    hourly = next(
        (p for key in _HOUR_KEYS if (p := _at(_price(standard, key), 0)) is not None), None
    )
    if keys & {"input_mtok", "output_mtok"}:
        fields["pricing_model"] = PricingModel.TOKEN_BASED
        fields.setdefault("input_price_per_1k", Decimal(0))
        fields.setdefault("output_price_per_1k", Decimal(0))
        fields["tiers"] = _token_tiers(standard)
    elif "input_mchars" in keys:
        fields["pricing_model"] = PricingModel.PER_CHARACTER
    elif hourly is not None:
        fields["pricing_model"] = PricingModel.PER_SECOND
    elif "requests_kcount" in keys:
        fields["pricing_model"] = PricingModel.PER_REQUEST
    elif keys & {"input_document_kpages", "input_text_messages_kcount"}:
        # Billed per page (OCR): the spec has no such model, so it is per request at no fee
        # per request, with the page prices in dimension_prices.
        fields["pricing_model"] = PricingModel.PER_REQUEST
        fields["request_price"] = Decimal(0)
    elif not keys and str(model.id).endswith(":free"):
        # OpenRouter's free variants: listed without prices because they cost nothing.
        fields["pricing_model"] = PricingModel.TOKEN_BASED
        fields["input_price_per_1k"] = Decimal(0)
        fields["output_price_per_1k"] = Decimal(0)
    else:
        what = ", ".join(sorted(keys)) or "no price at all"
        raise MissingPricingError(
            f"genai-prices prices {provider_id}/{model.id} by {what}, which is not a pricing "
            "model of the spec (token, request, character, second); add a price with "
            "add_price",
            provider=provider_id,
            model=str(model.id),
        )
    if hourly is not None:
        fields["price_per_hour"] = hourly
        fields["price_per_second"] = _CONTEXT.divide(hourly, _SECONDS_PER_HOUR)
        minimum = _MINIMUM_SECONDS.get((provider_id, str(model.id)))
        if minimum is not None:
            fields["minimum_billed_seconds"] = Decimal(minimum)
    if windows:
        fields["time_of_day"] = [_window(provider_id, model, entry) for entry in windows]
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
    # Version ids hash these fields; keep the keys earlier releases hashed (token prices and
    # the input limit, even when None) so that an unchanged price keeps its id.
    kept = {"max_input_tokens"}
    if fields["pricing_model"] is PricingModel.TOKEN_BASED:
        kept |= {"cached_input_price_per_1k", "cache_write_price_per_1k"}
        fields.setdefault("cached_input_price_per_1k", None)
        fields.setdefault("cache_write_price_per_1k", None)
    fields = {k: v for k, v in fields.items() if v is not None or k in kept}
    fields["version"] = _version_id(fields)
    fields["currency"] = DEFAULT_CURRENCY  # genai-prices' USD, taken as USDC 1:1
    # The window bounds input and output together. Not hashed: it is the same catalog
    # figure as max_input_tokens, so it cannot change without changing the id.
    fields["context_window"] = limit
    return PricingData.model_validate(fields)


def _version_id(fields: dict[str, Any]) -> str:
    """A content hash: identical prices keep their id, any change gives a new one."""
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if key in ("tiers", "time_of_day") and value is not None:
            value = [sorted(t.model_dump(mode="json").items()) for t in value]
        elif key == "dimension_prices":
            value = sorted((k, format(v.normalize(), "f")) for k, v in value.items())
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        parts.append(f"{key}={value}")
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return f"gp-{digest[:24]}"
