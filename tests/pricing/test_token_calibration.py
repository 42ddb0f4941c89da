"""Official tokenizers (smartspace-budget[tokenizers]) and the calibrated ratios (issue 17).

With the extra, Mistral and Llama 3/4 counts equal their official tokenizers on a varied
corpus and are reported ``exact``; without it, the calibrated estimate is at or above the
true count on at least 90% of the corpus, for every tokenizer it stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.pricing.token_corpus import CORPUS

from smartspace_budget.models import TokenEstimationMethod
from smartspace_budget.pricing import official_tokenizers, tokens
from smartspace_budget.pricing.tokens import estimate_tokens

pytest.importorskip("mistral_common", reason="needs smartspace-budget[tokenizers]")
pytest.importorskip("llama_models", reason="needs smartspace-budget[tokenizers]")
pytest.importorskip("sentencepiece", reason="needs mistral-common[sentencepiece]")

Counter = Callable[[str], int]


def _mistral(version: str) -> Counter:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    loaded = (
        MistralTokenizer.v3(is_tekken=True)
        if version == "tekken"
        else getattr(MistralTokenizer, version)()
    )
    tokenizer = loaded.instruct_tokenizer.tokenizer
    return lambda text: len(tokenizer.encode(text, bos=False, eos=False))


def _llama(generation: str) -> Counter:
    if generation == "3":
        from llama_models.llama3 import tokenizer
    else:
        from llama_models.llama4 import tokenizer
    official = tokenizer.Tokenizer.get_instance()
    return lambda text: len(official.encode(text, bos=False, eos=False))


EXACT_MODELS = {
    "mistral-7b": ("mistral", "v1"),
    "mistral-large-2402": ("mistral", "v2"),
    "mixtral-8x22b-instruct": ("mistral", "v3"),
    "mistral-large-2411": ("mistral", "v7"),
    "mistral-nemo": ("mistral", "tekken"),
    "llama-3.3-70b-versatile": ("llama", "3"),
    "meta-llama/llama-4-scout-17b-16e-instruct": ("llama", "4"),
}


@pytest.fixture(scope="module")
def official() -> dict[tuple[str, str], Counter]:
    counters: dict[tuple[str, str], Counter] = {}
    for kind, version in EXACT_MODELS.values():
        counters[(kind, version)] = (_mistral if kind == "mistral" else _llama)(version)
    return counters


@pytest.mark.parametrize("model", list(EXACT_MODELS))
def test_counts_equal_the_official_tokenizers(
    model: str, official: dict[tuple[str, str], Counter]
) -> None:
    count = official[EXACT_MODELS[model]]
    for kind, text in CORPUS:
        estimate = estimate_tokens(text, model)
        assert estimate.method is TokenEstimationMethod.EXACT, estimate.note
        assert estimate.confidence == 1.0
        assert estimate.token_count == count(text), (kind, text)


def test_a_one_message_chat_counts_as_the_official_chat_formats() -> None:
    from llama_models.datatypes import RawMessage
    from llama_models.llama3.chat_format import ChatFormat
    from llama_models.llama3.tokenizer import Tokenizer
    from mistral_common.protocol.instruct.messages import UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    llama = ChatFormat(Tokenizer.get_instance())
    mistral = {
        "mistral-large-2411": MistralTokenizer.v7(),
        "mistral-nemo": MistralTokenizer.v3(is_tekken=True),
    }
    for text in ("What is machine learning?", "今天天气很好", "x"):
        chat = [{"role": "user", "content": text}]
        dialog = llama.encode_dialog_prompt([RawMessage(role="user", content=text)])
        assert estimate_tokens(chat, "llama-3.1-8b-instant").token_count == len(dialog.tokens)
        for model, tokenizer in mistral.items():
            request: ChatCompletionRequest[UserMessage] = ChatCompletionRequest(
                messages=[UserMessage(content=text)]
            )
            expected = len(tokenizer.encode_chat_completion(request).tokens)
            assert estimate_tokens(chat, model).token_count == expected


def test_later_mistral_models_are_counted_with_their_generations_vocabulary() -> None:
    estimate = estimate_tokens("Budgets keep platforms honest.", "mistral-large-2512", "mistral")
    assert estimate.method is TokenEstimationMethod.CALIBRATED
    assert estimate.encoding == "mistral-tekken"
    assert estimate.confidence == 0.9
    assert estimate.note is not None
    assert "tekken" in estimate.note


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if smartspace-budget[tokenizers] were not installed."""
    monkeypatch.setattr(official_tokenizers.OfficialTokenizer, "installed", lambda self: False)
    tokens.clear_encoding_cache()
    yield
    monkeypatch.undo()
    tokens.clear_encoding_cache()


def _covered(model: str, count: Counter) -> float:
    at_or_above = 0
    for _, text in CORPUS:
        estimate = estimate_tokens(text, model)
        assert estimate.method is TokenEstimationMethod.CALIBRATED
        at_or_above += estimate.token_count >= count(text)
    return at_or_above / len(CORPUS)


@pytest.mark.usefixtures("without_extra")
def test_calibrated_estimates_are_at_or_above_the_true_count_on_90_percent(
    official: dict[tuple[str, str], Counter],
) -> None:
    checks: list[tuple[str, tuple[str, str]]] = [
        # The Mistral ratio stands for every Mistral tokenizer.
        *(("mistral-medium-3-1", ("mistral", v)) for v in ("v1", "v2", "v3", "v7", "tekken")),
        ("llama-3.3-70b-versatile", ("llama", "3")),
        ("meta-llama/llama-4-scout-17b-16e-instruct", ("llama", "4")),
        # A family with no tokenizer: the envelope covers each modern one measured.
        *(("command-r", key) for key in (("mistral", "tekken"), ("llama", "3"), ("llama", "4"))),
    ]
    results: dict[str, Any] = {}
    for model, key in checks:
        results[f"{model} vs {key}"] = _covered(model, official[key])
    assert all(share >= 0.9 for share in results.values()), results
