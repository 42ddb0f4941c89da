"""The usage model: every dimension a provider bills, and how the dimensions nest.

A provider's invoice counts more than input and output tokens: cache reads, cache writes
per time-to-live, audio, image and video tokens, reasoning, web searches, pages, messages,
characters and seconds. :class:`Usage` holds one call's counts of all of them, and
:data:`DIMENSIONS` says what each one is.

Counts **nest**, the way the providers report them and the way genai-prices prices them:
``input_tokens`` is every input token (text, audio, image, cached, written to the cache),
``cached_input_tokens`` every cached one (audio included), ``cache_write_1h_tokens`` the part
of ``cache_write_tokens`` written with a one-hour lifetime, ``reasoning_tokens`` part of
``output_tokens``, ``annotated_pages`` part of ``pages``. A dimension *nests in* another when
its traits include all of the other's (``cached_input_audio_tokens`` nests in
``cached_input_tokens`` and in ``input_audio_tokens``). Pricing charges each token once, at the
most specific price the model has for it (see :func:`smartspace_budget.pricing.cost`).

Each dimension names genai-prices' usage key, so a usage converts to theirs without loss;
``price_per`` is how many units our price of that dimension is for (1,000 for tokens, as the
spec's ``*_per_1k`` prices; one for everything else, except seconds, priced per hour).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from smartspace_budget.errors import InconsistentInputError, InvalidInputError
from smartspace_budget.money import parse_amount

__all__ = [
    "DIMENSIONS",
    "DIMENSIONS_BY_FIELD",
    "MAX_COUNT",
    "NESTS_IN",
    "SPECIFICITY",
    "Dimension",
    "Usage",
]

MAX_COUNT = 10**12
"""More of any unit than one request could use; larger counts are refused as malformed."""


@dataclass(frozen=True, slots=True)
class Dimension:
    """One billed dimension: its field on :class:`Usage`, genai-prices' key, and its traits."""

    field: str
    usage_key: str
    traits: frozenset[tuple[str, str]]
    price_per: int
    label: str

    @property
    def is_tokens(self) -> bool:
        return ("family", "tokens") in self.traits

    def nests_in(self, other: Dimension) -> bool:
        """Whether every unit of this dimension is also counted by ``other``."""
        return other is not self and other.traits < self.traits


def _dim(
    field: str, usage_key: str, label: str, traits: dict[str, str], per: int = 1000
) -> Dimension:
    return Dimension(field, usage_key, frozenset(traits.items()), per, label)


_IN = {"family": "tokens", "direction": "input"}
_OUT = {"family": "tokens", "direction": "output"}

DIMENSIONS: tuple[Dimension, ...] = (
    _dim("input_tokens", "input_tokens", "input tokens", {**_IN}),
    _dim("output_tokens", "output_tokens", "output tokens", {**_OUT}),
    _dim(
        "cached_input_tokens",
        "cache_read_tokens",
        "cached input tokens",
        {**_IN, "token_type": "cache_read"},
    ),
    _dim(
        "cache_write_tokens",
        "cache_write_tokens",
        "cache-write tokens",
        {**_IN, "token_type": "cache_write"},
    ),
    _dim(
        "cache_write_1h_tokens",
        "cache_write_1h_tokens",
        "cache-write tokens (1 hour)",
        {**_IN, "token_type": "cache_write", "cache_ttl": "1h"},
    ),
    _dim(
        "input_audio_tokens",
        "input_audio_tokens",
        "audio input tokens",
        {**_IN, "modality": "audio"},
    ),
    _dim(
        "cached_input_audio_tokens",
        "cache_audio_read_tokens",
        "cached audio input tokens",
        {**_IN, "modality": "audio", "token_type": "cache_read"},
    ),
    _dim(
        "input_image_tokens",
        "input_image_tokens",
        "image input tokens",
        {**_IN, "modality": "image"},
    ),
    _dim(
        "cached_input_image_tokens",
        "cache_image_read_tokens",
        "cached image input tokens",
        {**_IN, "modality": "image", "token_type": "cache_read"},
    ),
    _dim(
        "input_video_tokens",
        "input_video_tokens",
        "video input tokens",
        {**_IN, "modality": "video"},
    ),
    _dim(
        "reasoning_tokens",
        "output_reasoning_tokens",
        "reasoning tokens",
        {**_OUT, "token_type": "reasoning"},
    ),
    _dim(
        "citation_tokens",
        "output_citation_tokens",
        "citation tokens",
        {**_OUT, "token_type": "citation"},
    ),
    _dim(
        "output_audio_tokens",
        "output_audio_tokens",
        "audio output tokens",
        {**_OUT, "modality": "audio"},
    ),
    _dim(
        "output_image_tokens",
        "output_image_tokens",
        "image output tokens",
        {**_OUT, "modality": "image"},
    ),
    _dim(
        "output_video_tokens",
        "output_video_tokens",
        "video output tokens",
        {**_OUT, "modality": "video"},
    ),
    _dim("request_count", "requests", "requests", {"family": "requests"}, per=1),
    _dim(
        "web_searches",
        "web_searches",
        "web searches",
        {"family": "tool_calls", "tool_type": "web_search"},
        per=1,
    ),
    _dim(
        "file_searches",
        "storage_searches",
        "file searches",
        {"family": "tool_calls", "tool_type": "storage_search"},
        per=1,
    ),
    _dim(
        "messages",
        "input_text_messages",
        "messages",
        {"family": "messages", "direction": "input", "modality": "text"},
        per=1,
    ),
    _dim(
        "characters",
        "input_characters",
        "characters",
        {"family": "characters", "direction": "input"},
        per=1,
    ),
    _dim(
        "seconds",
        "input_audio_seconds",
        "audio seconds",
        {"family": "durations", "direction": "input", "modality": "audio"},
        per=3600,
    ),
    _dim(
        "pages",
        "input_document_pages",
        "pages",
        {"family": "document_pages", "direction": "input"},
        per=1,
    ),
    _dim(
        "annotated_pages",
        "input_annotated_document_pages",
        "annotated pages",
        {"family": "document_pages", "direction": "input", "page_type": "annotated"},
        per=1,
    ),
)
"""Every dimension, parents before the dimensions that nest in them."""

DIMENSIONS_BY_FIELD: dict[str, Dimension] = {d.field: d for d in DIMENSIONS}

NESTS_IN: dict[str, frozenset[str]] = {
    d.field: frozenset(p.field for p in DIMENSIONS if d.nests_in(p)) for d in DIMENSIONS
}
"""For each dimension, every dimension that counts it too (its parents, transitively)."""

SPECIFICITY: dict[str, int] = {d.field: len(d.traits) for d in DIMENSIONS}
"""How specific each dimension is: a dimension nests only in less specific ones."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What one call used, in every billed dimension (see the module docstring).

    Counts nest: ``input_tokens`` includes cached, cache-write, audio, image and video input
    tokens; ``output_tokens`` includes reasoning, citation, audio, image and video output.
    ``characters`` and ``seconds`` are ``None`` when not known (a per-character or
    per-second price then cannot be applied). Built through :meth:`of`, which validates.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    cached_input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_input_image_tokens: int = 0
    input_video_tokens: int = 0
    reasoning_tokens: int = 0
    citation_tokens: int = 0
    output_audio_tokens: int = 0
    output_image_tokens: int = 0
    output_video_tokens: int = 0
    request_count: int = 1
    web_searches: int = 0
    file_searches: int = 0
    messages: int = 0
    pages: int = 0
    annotated_pages: int = 0
    characters: int | None = None
    seconds: Decimal | None = None

    @classmethod
    def of(cls, **counts: Any) -> Usage:
        """A validated usage; raises :class:`InvalidInputError` naming the bad count.

        Counts are whole numbers from 0 to :data:`MAX_COUNT` (bools and floats refused),
        ``seconds`` a finite non-negative Decimal (or int/str of one), and every nested
        count at most the count it nests in.
        """
        unknown = sorted(set(counts) - _FIELD_NAMES)
        if unknown:
            raise InvalidInputError(
                f"unknown usage dimension(s) {', '.join(unknown)}; known: "
                + ", ".join(d.field for d in DIMENSIONS),
                field=unknown[0],
            )
        values: dict[str, Any] = {}
        for name, value in counts.items():
            if value is None:
                if name in ("characters", "seconds"):
                    continue
                raise InvalidInputError(f"{name} must be a whole number, got None", field=name)
            values[name] = _seconds(value) if name == "seconds" else _whole(value, name)
        usage = cls(**values)
        usage.check_nesting()
        return usage

    def check_nesting(self) -> None:
        """Raise :class:`InvalidInputError` when a nested count exceeds its parent's."""
        for child, amount in self.nonzero():
            for parent in NESTS_IN[child]:
                total = self.amount(parent)
                if amount > total:
                    raise InconsistentInputError(
                        f"{child} ({amount}) cannot exceed {parent} ({total}): "
                        f"{parent} counts them all",
                        field=child,
                    )

    def amount(self, field: str) -> Decimal | int:
        """The count of one dimension (0 where unknown)."""
        value = getattr(self, field)
        return 0 if value is None else value

    def nonzero(self) -> Iterator[tuple[str, Decimal | int]]:
        """(field, count) of every dimension used, in :data:`DIMENSIONS` order."""
        for dimension in DIMENSIONS:
            value = self.amount(dimension.field)
            if value:
                yield dimension.field, value

    def to_dict(self) -> dict[str, int | str]:
        """The non-zero counts, JSON-ready (seconds as a decimal string), for storage."""
        return {
            field: (format(value, "f") if isinstance(value, Decimal) else value)
            for field, value in self.nonzero()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """The inverse of :meth:`to_dict` (missing dimensions are 0, one request).

        ``seconds`` was stored as this package wrote it (``format(value, "f")``, any number
        of decimals), so it is read back as that Decimal, not held to the typed grammar.
        """
        counts = dict(data)
        seconds = counts.get("seconds")
        if isinstance(seconds, str):
            try:
                counts["seconds"] = Decimal(seconds)
            except ArithmeticError:
                raise InvalidInputError(
                    f"stored seconds {seconds[:40]!r} is not a decimal"
                ) from None
        return cls.of(**counts)


_FIELD_NAMES = frozenset(f.name for f in fields(Usage))


def _whole(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(
            f"{name} must be a whole number, got {value!r} ({type(value).__name__})", field=name
        )
    if value < 0:
        raise InvalidInputError(f"{name} must not be negative, got {value}", field=name)
    if value > MAX_COUNT:
        raise InvalidInputError(f"{name} {value} is above the limit of {MAX_COUNT}", field=name)
    return value


_SECONDS_TEXT = re.compile(r"(0|[1-9][0-9]{0,12})(\.[0-9]{1,9})?", re.ASCII)


def _seconds(value: object) -> Decimal:
    if isinstance(value, str):
        # Typed text: plain decimal digits as for amounts, but up to 10^12 seconds.
        if _SECONDS_TEXT.fullmatch(value) is None:
            raise InvalidInputError(
                f"seconds must be written as ASCII digits with at most 9 decimals: {value[:40]!r}",
                field="seconds",
            )
        value = Decimal(value)
    seconds = parse_amount(value, name="seconds", allow_negative=False)
    if seconds > MAX_COUNT:
        raise InvalidInputError(f"seconds {seconds} is above the limit", field="seconds")
    return seconds
