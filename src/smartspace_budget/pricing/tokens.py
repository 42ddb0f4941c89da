"""Token estimates that say how they were made: exact, calibrated or heuristic.

- **exact**: OpenAI models are counted with their own tiktoken encoding (``o200k_base`` for
  gpt-4o, gpt-4.1, gpt-5 and the o-series; ``cl100k_base`` for gpt-4 and gpt-3.5; whatever
  tiktoken maps a model to). Chat messages add OpenAI's documented formatting overhead.
- **exact** too, with the optional extra ``smartspace-budget[tokenizers]``: Mistral models
  through ``mistral-common`` and Llama 3/4 through Meta's ``tokenizer.model`` (see
  :mod:`.official_tokenizers`).
- **calibrated**: other providers do not publish their tokenizers. We count with a tiktoken
  encoding and multiply by a ratio measured or documented for that family (the table
  :data:`CALIBRATIONS`, each with its source), rounding up. Where an official tokenizer
  could be measured (Mistral, Llama) the ratio is per script class, weighted by the text's
  share of Latin, CJK and other characters (:func:`script_counts`).
- **heuristic**: when a vocabulary cannot be loaded (no network and no cached file, a
  corrupt cache, a load that hangs), we never fail: the count is UTF-8 bytes / 4, OpenAI's
  "about four characters per token" for English, counted in bytes so non-Latin scripts,
  which use more tokens per character, come out higher. The estimate says why in ``note``.

Encodings are loaded once per process, in a background thread bounded by
:data:`LOAD_TIMEOUT_SECONDS`; a failure is remembered for :data:`RETRY_AFTER_SECONDS` so a
missing vocabulary does not cost a network attempt per call. Texts longer than
:data:`CHUNK_CHARS` are counted chunk by chunk, cut where tiktoken's pre-tokenizer would
split anyway (before a single space between two words, or after a newline), so the count
equals the whole-text count while memory stays bounded.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import TokenEstimate, TokenEstimationMethod
from smartspace_budget.models._trusted import builder
from smartspace_budget.pricing.cost import EXACT_CONTEXT
from smartspace_budget.pricing.official_tokenizers import is_official, load_official, official_for

__all__ = [
    "CALIBRATIONS",
    "CHUNK_CHARS",
    "LOAD_TIMEOUT_SECONDS",
    "OFFICIAL_LOAD_TIMEOUT_SECONDS",
    "RETRY_AFTER_SECONDS",
    "Calibration",
    "clear_encoding_cache",
    "count_text_tokens",
    "encoding_for",
    "estimate_chat_text",
    "estimate_tokens",
    "script_counts",
]

CHUNK_CHARS = 1 << 18
LOAD_TIMEOUT_SECONDS = 10.0
OFFICIAL_LOAD_TIMEOUT_SECONDS = 60.0
RETRY_AFTER_SECONDS = 300.0
HEURISTIC_BYTES_PER_TOKEN = 4
_BOUNDARY_WINDOW = 1 << 12
_CONFIDENCE_EXACT = 1.0
_CONFIDENCE_HEURISTIC = 0.5
_CONFIDENCE_SAME_GENERATION = 0.9
# Every reply is primed with <|start|>assistant<|message|> (OpenAI cookbook,
# "How to count tokens with tiktoken").
_REPLY_PRIMER = 3


@dataclass(frozen=True)
class Calibration:
    """A tokenizer family we cannot run: count with ``encoding``, multiply by ``ratio``."""

    family: str
    pattern: re.Pattern[str]
    encoding: str
    ratio: Decimal
    confidence: float
    source: str
    by_script: tuple[Decimal, Decimal, Decimal] | None = None
    """Ratios for Latin, CJK and other characters (see :func:`script_counts`), measured
    against an official tokenizer; ``None``: ``ratio`` for every text."""


CALIBRATIONS: tuple[Calibration, ...] = (
    # Anthropic announced with Claude Opus 4.7 an updated tokenizer producing "1.0-1.35x more
    # tokens depending on content" than before; we take the middle of that range on top of
    # the Claude 3/4 ratio below. Later generations are assumed to keep this tokenizer.
    Calibration(
        "claude-2026-tokenizer",
        re.compile(r"claude-(?:opus-4-[7-9]|[a-z]+-[5-9](?:-|$))"),
        "o200k_base",
        Decimal("1.47"),
        0.65,
        "Anthropic, Claude Opus 4.7 release notes (2026): 1.0-1.35x more tokens; x1.25 below",
    ),
    # Claude 3.x/4.x: VentureBeat (May 2025), "Hidden costs in AI deployment: why Claude
    # models may be 20-30% more expensive than GPT", measured Claude's tokenizer against
    # GPT-4o's (o200k_base) on the same prompts: 20-30% more tokens, more on code than prose.
    Calibration(
        "claude",
        re.compile(r"claude"),
        "o200k_base",
        Decimal("1.25"),
        0.75,
        "VentureBeat 2025-05: Claude tokenizer yields 20-30% more tokens than GPT-4o",
    ),
    # Google documents "a token is equivalent to about 4 characters" and "100 tokens is about
    # 60-80 English words" for Gemini (ai.google.dev/gemini-api/docs/tokens), the same
    # density as o200k_base on English prose; both vocabularies have 200k+ entries.
    Calibration(
        "gemini",
        re.compile(r"gemini|gemma|learnlm"),
        "o200k_base",
        Decimal("1.0"),
        0.8,
        "Google Gemini docs: about 4 characters per token, like o200k_base",
    ),
    # Meta, "Introducing Meta Llama 3" (2024): the 128K-token tokenizer "yields up to 15%
    # fewer tokens compared to Llama 2". Llama 3's tokenizer is tiktoken's cl100k_base plus
    # 28K extra tokens (meta-llama/llama3, tokenizer.py), so English counts match cl100k.
    Calibration(
        "llama-2",
        re.compile(r"llama-?2"),
        "cl100k_base",
        Decimal("1.15"),
        0.75,
        "Meta Llama 3 announcement: Llama 3 uses up to 15% fewer tokens than Llama 2",
    ),
    # The ratios below are measured per script class against the official tokenizers
    # (smartspace-budget[tokenizers], which counts these models exactly when installed) on
    # tests/pricing/token_corpus.py by bench/calibrate_tokens.py: the estimate is at or
    # above the true count on at least 90% of that corpus.
    Calibration(
        "llama-4",
        re.compile(r"llama-?v?4|llama-guard-4"),
        "o200k_base",
        Decimal("1.0"),
        0.8,
        "measured against Meta's llama4 tokenizer.model",
        by_script=(Decimal("1.0"), Decimal("1.15"), Decimal("1.4")),
    ),
    Calibration(
        "llama",
        re.compile(r"llama"),
        "cl100k_base",
        Decimal("1.0"),
        0.85,
        "measured against Meta's llama3 tokenizer.model (cl100k_base plus 28K tokens)",
        by_script=(Decimal("1.0"), Decimal("0.7"), Decimal("1.0")),
    ),
    # Any Mistral tokenizer (SentencePiece v1-v7 spends a token per digit and per repeated
    # character; Tekken is closer to cl100k_base on prose).
    Calibration(
        "mistral",
        re.compile(r"mistral|mixtral|codestral|ministral|pixtral|magistral|devstral|voxtral"),
        "cl100k_base",
        Decimal("1.35"),
        0.7,
        "measured against every tokenizer mistral-common ships (the largest count)",
        by_script=(Decimal("1.35"), Decimal("1.3"), Decimal("2.95")),
    ),
    # No tokenizer to measure (Cohere, DeepSeek, xAI, ...): the envelope of the ratios
    # measured for the modern BPE vocabularies (Tekken, Llama 3, Llama 4), so that estimates
    # used for budget checks lean high rather than low.
    Calibration(
        "other",
        re.compile(r""),
        "cl100k_base",
        Decimal("1.10"),
        0.6,
        "no tokenizer; the envelope of the ratios measured for Tekken, Llama 3 and Llama 4",
        by_script=(Decimal("1.1"), Decimal("1.15"), Decimal("2.9")),
    ),
)

_UNKNOWN_OPENAI = Calibration(
    "openai-unknown",
    re.compile(r""),
    "o200k_base",
    Decimal("1.0"),
    0.9,
    "OpenAI model unknown to tiktoken; counted with o200k_base, its newest encoding",
)

_OPENAI_PROVIDERS = frozenset({"openai", "azure", "azure-openai", "azure_openai"})

# Estimates are built from values computed here with their final types (see models/_trusted.py).
_token_estimate = builder(TokenEstimate)


@dataclass(frozen=True, slots=True)
class _Plan:
    model: str
    encoding: str
    method: TokenEstimationMethod
    ratio: Decimal
    confidence: float
    note: str | None
    per_message: int = 3
    per_name: int = 1
    primer: int = 3
    count_roles: bool = True
    class_ratios: tuple[Decimal, Decimal, Decimal] | None = None
    """Ratios for Latin, CJK and other characters (weighted by the text's share of each),
    replacing ``ratio``: see :data:`SCRIPT_CALIBRATIONS`."""
    # For the hot path of estimate_tokens, which runs on every short estimate: whether
    # counts are multiplied by ratio (a Decimal comparison costs more than a flag), and the
    # fields of a one-piece estimate that do not depend on the text (copying them is cheaper
    # than writing them all).
    scaled: bool = field(init=False, compare=False)
    fields: dict[str, object] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaled", self.ratio != 1 or self.class_ratios is not None)
        fields: dict[str, object] = dict.fromkeys(TokenEstimate.model_fields)
        fields.update(
            model=self.model,
            method=self.method,
            confidence=self.confidence,
            encoding=self.encoding,
            note=self.note,
        )
        object.__setattr__(self, "fields", fields)


_plans: dict[tuple[str, str | None], _Plan] = {}


def _plan(model: str, provider: str | None) -> _Plan:
    key = (model, provider)
    plan = _plans.get(key)
    if plan is None:
        plan = _make_plan(model, provider)
        if len(_plans) > 10_000:
            _plans.clear()
        _plans[key] = plan
    return plan


def encoding_for(model: str) -> str | None:
    """tiktoken's encoding for an OpenAI model name (prefixes like ``openai/`` ignored)."""
    from tiktoken.model import encoding_name_for_model

    name = model.strip().lower().rsplit("/", 1)[-1]
    try:
        return str(encoding_name_for_model(name))
    except KeyError:
        return None


def _make_plan(model: str, provider: str | None) -> _Plan:
    exact = encoding_for(model)
    is_openai = provider is not None and provider.strip().lower() in _OPENAI_PROVIDERS
    official = None if exact is not None or is_openai else official_for(model)
    if official is not None:
        return _Plan(
            model,
            official.encoding,
            TokenEstimationMethod.EXACT if official.exact else TokenEstimationMethod.CALIBRATED,
            Decimal(1),
            _CONFIDENCE_EXACT if official.exact else _CONFIDENCE_SAME_GENERATION,
            None if official.exact else f"{official.encoding}: {official.source}",
            per_message=official.per_message,
            per_name=0,
            primer=official.primer,
            count_roles=official.count_roles,
        )
    if exact is not None:
        # gpt-3.5-turbo-0301 used a different chat format (cookbook): 4 per message, -1 per name.
        legacy = model.strip().lower().endswith("gpt-3.5-turbo-0301")
        return _Plan(
            model,
            exact,
            TokenEstimationMethod.EXACT,
            Decimal(1),
            _CONFIDENCE_EXACT,
            None,
            per_message=4 if legacy else 3,
            per_name=-1 if legacy else 1,
        )
    lowered = model.strip().lower()
    if is_openai:
        calibration = _UNKNOWN_OPENAI
    else:
        calibration = next(c for c in CALIBRATIONS if c.pattern.search(lowered))
    factor = (
        str(calibration.ratio)
        if calibration.by_script is None
        else "(Latin {}, CJK {}, other {})".format(*calibration.by_script)
    )
    note = f"{calibration.family}: {calibration.encoding} x {factor} ({calibration.source})"
    return _Plan(
        model,
        calibration.encoding,
        TokenEstimationMethod.CALIBRATED,
        calibration.ratio,
        calibration.confidence,
        note,
        class_ratios=calibration.by_script,
    )


# -- encodings ---------------------------------------------------------------------------

_encodings: dict[str, Any] = {}
_failures: dict[str, tuple[float, str]] = {}
_loading: dict[str, threading.Event] = {}
_lock = threading.Lock()


def _load_vocabulary(name: str) -> Any:
    """Load a tiktoken encoding (may read the network when the file is not cached).

    An encoding someone already loaded through tiktoken (``tiktoken.get_encoding`` keeps them
    in ``tiktoken.registry.ENCODINGS``) is shared. Otherwise we build our own from the
    constructors tiktoken's plugin interface publishes and drop its Python copy of the
    vocabulary: tiktoken keeps that 200k-entry dict only to pickle the encoding (the Rust core
    has its own), and releasing it saves about 27 MB per encoding (o200k_base: 79 MB resident
    with it, 52 MB without). That write to the private ``_mergeable_ranks`` is the one private
    API this package keeps, because tiktoken offers no public way to load a lighter encoding
    and the memory is a third of the default engine's (``docs/design-notes.md``, issue 20).
    Our instance is never pickled or shared.
    """
    official = load_official(name)
    if official is not None:
        return official
    import tiktoken

    shared = getattr(tiktoken.registry, "ENCODINGS", {}).get(name)
    if shared is not None:
        return shared
    try:
        from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS  # type: ignore[import-untyped]

        constructor = ENCODING_CONSTRUCTORS[name]
    except (ImportError, KeyError):
        return tiktoken.get_encoding(name)
    encoding = tiktoken.Encoding(**constructor())
    if isinstance(getattr(encoding, "_mergeable_ranks", None), dict):
        encoding._mergeable_ranks = {}
    return encoding


def _encoding(name: str) -> tuple[Any | None, str | None]:
    """The encoding, or ``(None, reason)`` when it cannot be loaded now."""
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding, None
    with _lock:
        failure = _failures.get(name)
        if failure is not None and time.monotonic() - failure[0] < RETRY_AFTER_SECONDS:
            return None, failure[1]
        done = _loading.get(name)
        if done is None:
            done = _loading[name] = threading.Event()
            threading.Thread(
                target=_load_in_background, args=(name, done), daemon=True, name=f"tiktoken-{name}"
            ).start()
    # An official tokenizer is read from a local file (no network to hang on) but builds a
    # large vocabulary (Tekken: a 15 MB JSON): seconds on a busy machine.
    timeout = OFFICIAL_LOAD_TIMEOUT_SECONDS if is_official(name) else LOAD_TIMEOUT_SECONDS
    if not done.wait(timeout):
        reason = f"loading the {name} vocabulary took longer than {timeout:g}s"
        with _lock:
            _failures.setdefault(name, (time.monotonic(), reason))
        return None, reason
    encoding = _encodings.get(name)
    if encoding is not None:
        return encoding, None
    failure = _failures.get(name)
    return None, failure[1] if failure else f"the {name} vocabulary could not be loaded"


def _load_in_background(name: str, done: threading.Event) -> None:
    try:
        encoding = _load_vocabulary(name)
    except Exception as exc:  # any failure means "no tokenizer": fall back, never crash
        with _lock:
            _failures[name] = (time.monotonic(), _load_failure(name, exc))
    else:
        with _lock:
            _encodings[name] = encoding
            _failures.pop(name, None)
    finally:
        with _lock:
            _loading.pop(name, None)
        done.set()


def clear_encoding_cache() -> None:
    """Forget loaded encodings and remembered failures (tests; after fixing a cache dir)."""
    with _lock:
        _encodings.clear()
        _failures.clear()
        _plans.clear()
        _role_counts.clear()


# -- counting ----------------------------------------------------------------------------


def _cut(text: str, start: int, limit: int) -> tuple[int, bool]:
    """Where to end the chunk beginning at ``start``; ``True`` when the cut is clean."""
    if limit >= len(text):
        return len(text), True
    low = max(start + 1, limit - _BOUNDARY_WINDOW)
    position = text.rfind(" ", low, limit)
    while position > low:
        before, after = text[position - 1], text[position + 1]
        if not before.isspace() and not after.isspace():
            return position, True  # " word" starts a new pre-token
        position = text.rfind(" ", low, position)
    position = text.rfind("\n", low, limit)
    while position >= low:
        if position + 1 < len(text) and text[position + 1].isalnum():
            return position + 1, True  # a newline run ends before a letter or digit
        position = text.rfind("\n", low, position)
    return limit, False


def count_text_tokens(
    encoding: Any, text: str, *, chunk_chars: int = CHUNK_CHARS
) -> tuple[int, int]:
    """Tokens of ``text`` with ``encoding``, and how many chunk cuts were not clean.

    Special-token markers in the text (``<|endoftext|>``) count as ordinary text, as the API
    bills them.
    """
    if len(text) <= chunk_chars:
        return len(encoding.encode_ordinary(text)), 0
    total = rough = start = 0
    while start < len(text):
        end, clean = _cut(text, start, start + chunk_chars)
        total += len(encoding.encode_ordinary(text[start:end]))
        rough += 0 if clean else 1
        start = end
    return total, rough


def _heuristic(text: str) -> int:
    size = 0
    for start in range(0, len(text), CHUNK_CHARS):
        size += len(text[start : start + CHUNK_CHARS].encode("utf-8", "surrogatepass"))
    return math.ceil(size / HEURISTIC_BYTES_PER_TOKEN)


@dataclass
class _Tally:
    tokens: int = 0
    characters: int = 0
    latin: int = 0
    cjk: int = 0
    rough_cuts: int = 0
    skipped_parts: int = 0
    structured: int = 0


def _add_text(tally: _Tally, encoding: Any | None, text: str, scripts: bool = False) -> None:
    tally.characters += len(text)
    if scripts:
        latin, cjk = _script_counts(text)
        tally.latin += latin
        tally.cjk += cjk
    if encoding is None:
        tally.tokens += _heuristic(text)
    else:
        tokens, rough = count_text_tokens(encoding, text)
        tally.tokens += tokens
        tally.rough_cuts += rough


def _add_messages(
    tally: _Tally, encoding: Any | None, messages: Sequence[Any], plan: _Plan
) -> None:
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise InvalidInputError(
                f"messages[{index}] must be a mapping like {{'role': ..., 'content': ...}}, "
                f"not {type(message).__name__}"
            )
        tally.tokens += plan.per_message
        scripts = plan.class_ratios is not None
        for key, value in message.items():
            if value is None or (key == "role" and not plan.count_roles):
                continue
            if isinstance(value, str):
                _add_text(tally, encoding, value, scripts)
            elif key == "content" and isinstance(value, list):
                for part in value:
                    if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        _add_text(tally, encoding, part["text"], scripts)
                    else:
                        tally.skipped_parts += 1
            else:
                tally.structured += 1
                text = json.dumps(value, separators=(",", ":"), default=str)
                _add_text(tally, encoding, text, scripts)
            if key == "name":
                tally.tokens += plan.per_name
    tally.tokens += plan.primer


def _quick_estimate(text: str, model: Any, provider: Any, *, as_chat: bool) -> TokenEstimate | None:
    """The hot path of :func:`estimate_tokens` and :func:`estimate_chat_text`, or ``None``.

    It answers when the names were planned before (so validated), the vocabulary is loaded
    and the text is one piece: the same count and fields as the general path (for a chat,
    the text plus the role, the per-message formatting and the reply primer).
    """
    if type(model) is not str or (provider is not None and type(provider) is not str):
        return None
    plan = _plans.get((model, provider))
    if plan is None or len(text) > CHUNK_CHARS:
        return None
    encoding = _encodings.get(plan.encoding)
    if encoding is None:
        return None
    count = len(encoding.encode_ordinary(text))
    if as_chat:
        count += plan.per_message + plan.primer
        if plan.count_roles:
            count += _role_tokens(plan.encoding, encoding.encode_ordinary)
    if plan.scaled:
        count = _scale(count, _ratio_of(plan, text))
    fields = plan.fields.copy()
    fields["token_count"] = count
    fields["character_count"] = len(text)
    return _token_estimate(fields)


def estimate_tokens(
    text: str | Sequence[Mapping[str, Any]], model: str, provider: str | None = None
) -> TokenEstimate:
    """Estimate the input tokens of ``text`` (a string or chat messages) for ``model``.

    Never raises for a missing tokenizer (the estimate becomes ``heuristic``); raises
    :class:`InvalidInputError` for input that is neither text nor a list of messages.
    """
    if type(text) is str:
        quick = _quick_estimate(text, model, provider, as_chat=False)
        if quick is not None:
            return quick
    if not isinstance(model, str) or not model.strip():
        raise InvalidInputError("model must be a non-empty string")
    if provider is not None and not isinstance(provider, str):
        raise InvalidInputError(f"provider must be a string, not {type(provider).__name__}")
    if not isinstance(text, str) and not (
        isinstance(text, Sequence) and not isinstance(text, bytes | bytearray)
    ):
        raise InvalidInputError(
            f"text must be a string or a list of chat messages, not {type(text).__name__}"
        )
    plan = _plan(model, provider)
    encoding, failure = _encoding(plan.encoding)
    tally = _Tally()
    if isinstance(text, str):
        _add_text(tally, encoding, text, plan.class_ratios is not None)
    else:
        _add_messages(tally, encoding, text, plan)
    return _estimate(model, plan, encoding, failure, tally)


# Latin: ASCII letters, whitespace and punctuation, and the Latin-1/Extended-A/B letters.
# Digits are "other": SentencePiece vocabularies spend a token per digit.
_LATIN = re.compile(r"[A-Za-z\s!-/:-@\[-`{-~\u00c0-\u024f]")
# CJK: Han, kana, Hangul and their punctuation and full-width forms.
_CJK = re.compile(
    "[\u3000-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
    "\uf900-\ufaff\uff00-\uffef\u1100-\u11ff\u3130-\u318f]"
)


def script_counts(text: str) -> tuple[int, int]:
    """Characters of ``text`` that are Latin and CJK (the rest is "other": digits, Thai,
    Cyrillic, emoji...), the classes calibrated ratios are measured by."""
    return len(_LATIN.findall(text)), len(_CJK.findall(text))


_script_counts = script_counts


def _mixed_ratio(
    ratios: tuple[Decimal, Decimal, Decimal], latin: int, cjk: int, total: int
) -> Decimal:
    if total <= 0:
        return ratios[0]
    other = max(total - latin - cjk, 0)
    weighted = latin * ratios[0] + cjk * ratios[1] + other * ratios[2]
    return EXACT_CONTEXT.divide(weighted, Decimal(total))


def _ratio_of(plan: _Plan, text: str) -> Decimal:
    if plan.class_ratios is None:
        return plan.ratio
    latin, cjk = script_counts(text)
    return _mixed_ratio(plan.class_ratios, latin, cjk, len(text))


def _tally_ratio(plan: _Plan, tally: _Tally) -> Decimal:
    if plan.class_ratios is None:
        return plan.ratio
    return _mixed_ratio(plan.class_ratios, tally.latin, tally.cjk, tally.characters)


_CHAT_ROLE = "user"


def estimate_chat_text(text: str, model: str, provider: str | None = None) -> TokenEstimate:
    """The input tokens of ``text`` sent as a one-message chat (``role: user``) to ``model``.

    What :func:`estimate_tokens` counts for ``[{"role": "user", "content": text}]`` (the
    text, the role, the per-message formatting and the reply primer, scaled together for a
    calibrated family), which is what the guard counts for a chat call; but
    ``character_count`` is the text's own, as per-character prices bill it.
    """
    if type(text) is str:
        quick = _quick_estimate(text, model, provider, as_chat=True)
        if quick is not None:
            return quick
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a string, not {type(text).__name__}")
    estimate = estimate_tokens([{"role": _CHAT_ROLE, "content": text}], model, provider)
    if estimate.character_count == len(text):
        return estimate
    fields = {name: getattr(estimate, name) for name in TokenEstimate.model_fields}
    fields["character_count"] = len(text)
    return _token_estimate(fields)


_role_counts: dict[str, int] = {}


def _role_tokens(encoding: str, encode: Callable[[str], Sequence[int]]) -> int:
    """Tokens of the role ``user`` in ``encoding`` (counted once per encoding)."""
    known = _role_counts.get(encoding)
    if known is None:
        known = _role_counts[encoding] = len(encode(_CHAT_ROLE))
    return known


def _scale(count: int, ratio: Decimal) -> int:
    """``count`` times a calibration ratio, rounded up (estimates lean high, not low)."""
    # The package's own context: a caller's lowered decimal precision must not round it.
    exact = EXACT_CONTEXT.multiply(Decimal(count), ratio)
    return int(exact.to_integral_value(rounding=ROUND_CEILING, context=EXACT_CONTEXT))


def _load_failure(name: str, exc: Exception) -> str:
    """Why a vocabulary did not load, short enough for a note, with what would fix it."""
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    detail = f"{type(exc).__name__}: {first_line}"
    if len(detail) > 120:
        detail = detail[:117] + "..."
    return f"{detail}; put the {name} vocabulary in the folder TIKTOKEN_CACHE_DIR names"


def _estimate(
    model: str, plan: _Plan, encoding: Any | None, failure: str | None, tally: _Tally
) -> TokenEstimate:
    notes = []
    if encoding is None:
        method = TokenEstimationMethod.HEURISTIC
        confidence = _CONFIDENCE_HEURISTIC
        count = tally.tokens
        notes.append(
            f"tokenizer {plan.encoding} unavailable ({failure}); "
            f"estimated as UTF-8 bytes / {HEURISTIC_BYTES_PER_TOKEN}"
        )
    else:
        method, confidence = plan.method, plan.confidence
        count = tally.tokens
        if plan.scaled:
            count = _scale(count, _tally_ratio(plan, tally))
        if plan.note:
            notes.append(plan.note)
        if tally.rough_cuts:
            confidence = min(confidence, 0.99)
            notes.append(
                f"{tally.rough_cuts} chunk cut(s) inside a word; may differ by a few tokens"
            )
    if tally.skipped_parts:
        confidence = min(confidence, 0.7)
        notes.append(f"{tally.skipped_parts} non-text content part(s) (images, audio) not counted")
    if tally.structured:
        confidence = min(confidence, 0.9)
        notes.append(f"{tally.structured} structured field(s) counted as their JSON text")
    return _token_estimate(
        {
            "model": model,
            "token_count": count,
            "method": method,
            "confidence": confidence,
            "character_count": tally.characters,
            "encoding": None if encoding is None else plan.encoding,
            "note": "; ".join(notes) or None,
        },
    )
