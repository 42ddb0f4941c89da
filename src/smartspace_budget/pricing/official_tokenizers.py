"""Official tokenizers that load offline, from the optional extra ``smartspace-budget[tokenizers]``.

- **Mistral** through ``mistral-common``, whose package ships Mistral's tokenizer files
  (SentencePiece v1, v2, v3, v7 and Tekken). Models that mistral-common's own table maps to
  one of those files are counted exactly; later Tekken-generation models (Mistral Small 3,
  Medium 3, Large 3, Magistral, Devstral, Codestral 25.x...) whose own file is not shipped
  are counted with the shipped Tekken vocabulary and reported ``calibrated``.
- **Llama 3 and 4** through their tiktoken-format ``tokenizer.model``, shipped in Meta's
  ``llama-models`` package and read with ``tiktoken`` (the way Meta's own ``Tokenizer``
  does), so counting runs on tiktoken's Rust core like OpenAI's encodings.

Without the extra these models fall back to the calibrated estimates of ``tokens.py``. Chat
formatting is each format's own: Llama's header tokens around the role and ``<|eot_id|>``,
Mistral's ``[INST]``/``[/INST]`` (no role names), measured against ``encode_chat_completion``
and ``ChatFormat`` in the tests.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OFFICIAL", "OfficialTokenizer", "is_official", "load_official", "official_for"]


@dataclass(frozen=True, slots=True)
class OfficialTokenizer:
    """A model family counted with an official tokenizer (``encoding`` names it)."""

    encoding: str
    pattern: re.Pattern[str]
    package: str
    exact: bool
    per_message: int
    primer: int
    count_roles: bool
    source: str

    def installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None


def _family(
    encoding: str,
    pattern: str,
    package: str,
    *,
    exact: bool = True,
    per_message: int = 2,
    primer: int = 1,
    count_roles: bool = False,
    source: str,
) -> OfficialTokenizer:
    return OfficialTokenizer(
        encoding, re.compile(pattern), package, exact, per_message, primer, count_roles, source
    )


_LLAMA = "llama_models"
_MISTRAL = "mistral_common"

OFFICIAL: tuple[OfficialTokenizer, ...] = (
    # Llama: <|begin_of_text|> once, then per message <|start_header_id|> role
    # <|end_header_id|> "\n\n" ... <|eot_id|>, and the assistant's header to reply.
    _family(
        "llama4",
        r"llama-?v?4|llama-guard-4",
        _LLAMA,
        per_message=4,
        primer=5,
        count_roles=True,
        source="Meta llama-models: llama4/tokenizer.model",
    ),
    _family(
        "llama3",
        r"(?<!distill-)llama-?v?3(?!.*prompt-guard)|llama-guard-3",
        _LLAMA,
        per_message=4,
        primer=5,
        count_roles=True,
        source="Meta llama-models: llama3/tokenizer.model",
    ),
    # Mistral: <s> once, [INST] ... [/INST] per user turn (control tokens from v2 on).
    _family(
        "mistral-spm-v7",
        r"mistral-large-2411|pixtral-large",
        _MISTRAL,
        source="mistral-common: mistral_instruct_tokenizer_241114 (v7)",
    ),
    _family(
        "mistral-tekken",
        r"mistral-nemo|pixtral-12b|ministral-(?:3b|8b)(?:-2410|-latest)?$|mistral-small-2409",
        _MISTRAL,
        source="mistral-common: tekken_240718 (v3)",
    ),
    _family(
        "mistral-spm-v3",
        r"mixtral-8x22b|codestral-(?:2405|mamba)|mistral-large-2407|mistral-tiny-2407",
        _MISTRAL,
        source="mistral-common: mistral_instruct_tokenizer_240323 (v3)",
    ),
    _family(
        "mistral-spm-v2",
        r"mistral-small-(?:2312|2402)|mistral-large-2402|mistral-tiny-2312",
        _MISTRAL,
        source="mistral-common: mistral_instruct_tokenizer_240216 (v2)",
    ),
    _family(
        "mistral-spm-v1",
        r"^(?:open-)?mistral-7b|^(?:open-)?mixtral-8x7b|mistral-medium-2312|^mistral-tiny$",
        _MISTRAL,
        per_message=4,
        primer=4,
        source="mistral-common: tokenizer.model.v1",
    ),
    # Later Mistral models: the Tekken generation, whose own files are not shipped.
    _family(
        "mistral-tekken",
        r"mistral|mixtral|codestral|ministral|pixtral|magistral|devstral|voxtral",
        _MISTRAL,
        exact=False,
        source="mistral-common: tekken_240718, this model generation's vocabulary",
    ),
)
"""Families with an official tokenizer, first match wins (names are matched lower-case,
after the last ``/`` and ``.``-separated vendor prefix)."""


def official_for(model: str) -> OfficialTokenizer | None:
    """The official tokenizer for ``model`` when its package is installed."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    for family in OFFICIAL:
        if family.pattern.search(name) and family.installed():
            return family
    return None


class _SentencePieceCounter:
    """``encode_ordinary`` for a mistral-common tokenizer (no BOS/EOS, as text is billed)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def encode_ordinary(self, text: str) -> Sequence[int]:
        tokens: Sequence[int] = self._tokenizer.encode(text, bos=False, eos=False)
        return tokens


def _mistral(version: str) -> Callable[[], Any]:
    def load() -> Any:
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        if version == "tekken":
            loaded = MistralTokenizer.v3(is_tekken=True)
        else:
            loaded = getattr(MistralTokenizer, version)()
        return _SentencePieceCounter(loaded.instruct_tokenizer.tokenizer)

    return load


def _llama(generation: str) -> Callable[[], Any]:
    def load() -> Any:
        if generation == "3":
            from llama_models.llama3 import tokenizer
        else:
            from llama_models.llama4 import tokenizer
        return tokenizer.Tokenizer.get_instance().model  # a tiktoken.Encoding

    return load


_LOADERS: dict[str, Callable[[], Any]] = {
    "llama3": _llama("3"),
    "llama4": _llama("4"),
    "mistral-spm-v1": _mistral("v1"),
    "mistral-spm-v2": _mistral("v2"),
    "mistral-spm-v3": _mistral("v3"),
    "mistral-spm-v7": _mistral("v7"),
    "mistral-tekken": _mistral("tekken"),
}


def is_official(encoding: str) -> bool:
    """Whether ``encoding`` names one of the official tokenizers here."""
    return encoding in _LOADERS


def load_official(encoding: str) -> Any | None:
    """The tokenizer named ``encoding`` (an object with ``encode_ordinary``), or ``None``
    when it is not one of ours. Raises when its package cannot load it."""
    loader = _LOADERS.get(encoding)
    return None if loader is None else loader()
