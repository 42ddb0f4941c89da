"""Token estimates: exact for OpenAI models, calibrated elsewhere, heuristic when offline."""

from __future__ import annotations

import math
import threading
import time
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import tiktoken
import tiktoken_ext.openai_public  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models import TokenEstimate, TokenEstimationMethod
from smartspace_budget.pricing import tokens
from smartspace_budget.pricing.tokens import count_text_tokens, estimate_tokens

TEXTS = [
    "",
    "Hello, world!",
    "What is machine learning?",
    "The quick brown fox jumps over the lazy dog. " * 40,
    "  leading and trailing spaces   ",
    "multiple\n\nnewlines\r\nand\ttabs\n",
    "Unicode: naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 中文文本, 한국어",
    "Emoji 😀🚀👩‍💻 and symbols ∑∫√≈≠ ©®™",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    '{"key": [1, 2, 3], "nested": {"a": null, "b": true}}',
    "<|endoftext|> special markers are billed as text <|im_start|>",
    "1234567890 3.14159 -42 1e10 0x1F",
    "https://example.com/path?query=1&b=2#frag",
    "a" * 5000,
    " ".join(str(i) for i in range(2000)),
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 200,
    "ALLCAPS words and MiXeD CaSe and camelCaseIdentifiers",
    "Tabs\tand\u00a0non-breaking\u2003spaces",
    "مرحبا بالعالم — שלום עולם — नमस्ते दुनिया",
    "It's a test; isn't it? They'll see, we've done, I'd say.",
]

MESSAGES: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "Hello"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the French revolution in one line."},
    ],
    [
        {"role": "system", "content": "Be brief.", "name": "policy"},
        {"role": "user", "content": "Hi", "name": "alice"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke about tokens. " * 10},
    ],
    [{"role": "user", "content": t} for t in TEXTS[5:10]],
]


def cookbook_count(messages: list[dict[str, Any]], encoding: tiktoken.Encoding) -> int:
    """OpenAI cookbook, "How to count tokens with tiktoken" (gpt-3.5-turbo-0613 onwards)."""
    total = 0
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(encoding.encode(value, disallowed_special=()))
            if key == "name":
                total += 1
    return total + 3


@pytest.fixture(autouse=True)
def fresh_encodings() -> Iterator[None]:
    tokens.clear_encoding_cache()
    yield
    tokens.clear_encoding_cache()


@pytest.mark.parametrize(
    "model", ["gpt-4o", "gpt-4", "gpt-3.5-turbo", "gpt-4.1-mini", "o1", "gpt-5"]
)
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_exact_counts_equal_tiktoken(model: str, text: str) -> None:
    encoding = tiktoken.encoding_for_model(model)
    estimate = estimate_tokens(text, model)
    assert estimate.method is TokenEstimationMethod.EXACT
    assert estimate.confidence == 1.0
    assert estimate.encoding == encoding.name
    assert estimate.token_count == len(encoding.encode(text, disallowed_special=()))
    assert estimate.character_count == len(text)
    # Asked again, the short-text path (plan and vocabulary cached) answers the same.
    assert estimate_tokens(text, model) == estimate


def test_models_get_their_own_encoding() -> None:
    assert estimate_tokens("hi", "gpt-4o").encoding == "o200k_base"
    assert estimate_tokens("hi", "gpt-4o-2024-08-06").encoding == "o200k_base"
    assert estimate_tokens("hi", "openai/gpt-4.1").encoding == "o200k_base"
    assert estimate_tokens("hi", "o1-mini").encoding == "o200k_base"
    assert estimate_tokens("hi", "gpt-5-nano").encoding == "o200k_base"
    assert estimate_tokens("hi", "gpt-4").encoding == "cl100k_base"
    assert estimate_tokens("hi", "gpt-3.5-turbo-0125").encoding == "cl100k_base"
    assert estimate_tokens("hi", "text-embedding-3-small").encoding == "cl100k_base"


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "gpt-4o-mini"])
@pytest.mark.parametrize("messages", MESSAGES, ids=range(len(MESSAGES)))
def test_chat_messages_count_their_formatting(model: str, messages: list[dict[str, Any]]) -> None:
    estimate = estimate_tokens(messages, model)
    assert estimate.method is TokenEstimationMethod.EXACT
    assert estimate.token_count == cookbook_count(messages, tiktoken.encoding_for_model(model))


def test_gpt_35_turbo_0301_uses_its_own_chat_format() -> None:
    messages = [{"role": "user", "content": "Hi", "name": "bob"}]
    encoding = tiktoken.get_encoding("cl100k_base")
    body = sum(len(encoding.encode(v)) for v in messages[0].values())
    assert estimate_tokens(messages, "gpt-3.5-turbo-0301").token_count == 4 + body - 1 + 3


def test_content_parts_count_text_and_report_the_rest() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    encoding = tiktoken.get_encoding("o200k_base")
    estimate = estimate_tokens(messages, "gpt-4o")
    expected = 3 + len(encoding.encode("user")) + len(encoding.encode("What is in this image?")) + 3
    assert estimate.token_count == expected
    assert estimate.confidence < 1.0
    assert estimate.note is not None
    assert "not counted" in estimate.note


def test_other_providers_are_calibrated_with_a_documented_ratio() -> None:
    text = TEXTS[15]
    o200k = len(tiktoken.get_encoding("o200k_base").encode(text))
    cl100k = len(tiktoken.get_encoding("cl100k_base").encode(text))
    claude = estimate_tokens(text, "claude-3-opus-20240229", "anthropic")
    gemini = estimate_tokens(text, "gemini-1.5-pro", "google")
    other = estimate_tokens(text, "command-r", "cohere")
    for estimate in (claude, gemini, other):
        assert estimate.method is TokenEstimationMethod.CALIBRATED
        assert 0 < estimate.confidence < 1
        assert estimate.note  # says which ratio and where it comes from
    assert claude.token_count == -(-o200k * 125 // 100)  # x1.25, rounded up
    assert gemini.token_count == o200k
    # Per script class: Latin x1.1, CJK x1.15, other x2.9, weighted by the characters.
    latin, cjk = tokens.script_counts(text)
    weighted = Decimal(latin) * Decimal("1.1") + Decimal(cjk) * Decimal("1.15")
    weighted += Decimal(len(text) - latin - cjk) * Decimal("2.9")
    assert other.token_count == math.ceil(cl100k * weighted / len(text))
    assert "Latin 1.1, CJK 1.15, other 2.9" in (other.note or "")
    assert "VentureBeat" in (claude.note or "")
    assert "Gemini docs" in (gemini.note or "")
    # Asked again, the short-text path (plan and vocabulary cached) answers the same.
    assert estimate_tokens(text, "claude-3-opus-20240229", "anthropic") == claude
    assert estimate_tokens(text, "command-r", "cohere") == other


def test_unknown_openai_model_is_counted_with_the_newest_encoding() -> None:
    estimate = estimate_tokens("Hello there", "my-azure-deployment", "azure")
    assert estimate.method is TokenEstimationMethod.CALIBRATED
    assert estimate.encoding == "o200k_base"
    assert estimate.token_count == len(tiktoken.get_encoding("o200k_base").encode("Hello there"))


def test_missing_vocabulary_falls_back_to_a_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str) -> Any:
        raise ConnectionError(f"cannot download {name}: no network")

    monkeypatch.setattr(tokens, "_load_vocabulary", offline)
    text = "héllo wörld " * 100  # 1,400 bytes in UTF-8
    estimate = estimate_tokens(text, "gpt-4o")
    assert estimate.method is TokenEstimationMethod.HEURISTIC
    assert estimate.token_count == 350
    assert estimate.confidence <= 0.5
    assert estimate.encoding is None
    assert estimate.note is not None
    assert "o200k_base" in estimate.note
    assert "no network" in estimate.note
    assert "TIKTOKEN_CACHE_DIR" in estimate.note  # what would fix it


def test_a_load_failure_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def offline(name: str) -> Any:
        calls.append(name)
        raise OSError("no cache")

    monkeypatch.setattr(tokens, "_load_vocabulary", offline)
    for _ in range(5):
        estimate_tokens("text", "gpt-4o")
    assert calls == ["o200k_base"]


def test_a_hanging_load_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(name: str) -> Any:
        release.wait(5)
        raise OSError("gave up")

    monkeypatch.setattr(tokens, "_load_vocabulary", hang)
    monkeypatch.setattr(tokens, "LOAD_TIMEOUT_SECONDS", 0.05)
    started = time.perf_counter()
    estimate = estimate_tokens("some text", "gpt-4")
    assert time.perf_counter() - started < 1.0
    assert estimate.method is TokenEstimationMethod.HEURISTIC
    assert "longer than" in (estimate.note or "")
    release.set()


def test_estimates_are_valid_models() -> None:
    estimate = estimate_tokens(MESSAGES[2], "claude-3-haiku")
    assert TokenEstimate.from_data(estimate.model_dump()) == estimate


@pytest.mark.parametrize("bad", [None, 42, b"bytes", {"role": "user"}])
def test_input_that_is_not_text_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="text must be"):
        estimate_tokens(bad, "gpt-4o")


def test_messages_must_be_mappings() -> None:
    with pytest.raises(InvalidInputError, match=r"messages\[1\]"):
        estimate_tokens([{"role": "user", "content": "a"}, "oops"], "gpt-4o")  # type: ignore[list-item]


def test_model_must_be_named() -> None:
    with pytest.raises(InvalidInputError, match="model"):
        estimate_tokens("text", "  ")


def test_ten_megabytes_in_bounded_memory_and_time() -> None:
    paragraph = (
        "Budgets keep agents honest. Every request is priced before it is sent, "
        "and settled at its real cost afterwards.\n"
    )
    text = paragraph * (10_000_000 // len(paragraph) + 1)
    encoding = tiktoken.get_encoding("o200k_base")
    expected = len(encoding.encode_ordinary(paragraph)) * (len(text) // len(paragraph))
    estimate_tokens("warm up", "gpt-4o")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        estimate = estimate_tokens(text, "gpt-4o")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert estimate.token_count == expected
    assert estimate.method is TokenEstimationMethod.EXACT
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while counting 10 MB"
    assert elapsed < 30


@settings(max_examples=60, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "word",
                "Ab",
                " ",
                "  ",
                "9",
                "123",
                ".",
                "/",
                "'s",
                "\n",
                "\r\n",
                "\t",
                "é",
                "中文",
                "😀",
                "\n\n",
                ",",
                "x",
            ]
        ),
        max_size=120,
    ).map("".join),
    chunk=st.integers(min_value=4, max_value=64),
)
def test_chunked_counting_equals_the_whole_text(text: str, chunk: int) -> None:
    for name in ("o200k_base", "cl100k_base"):
        encoding = tiktoken.get_encoding(name)
        counted, rough = count_text_tokens(encoding, text, chunk_chars=chunk)
        if rough == 0:  # every cut fell where tiktoken splits anyway
            assert counted == len(encoding.encode_ordinary(text))


def test_own_vocabulary_counts_like_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a shared tiktoken encoding we build a lighter one; it must count the same."""
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    for name in ("o200k_base", "cl100k_base"):
        ours = tokens._load_vocabulary(name)
        reference = tiktoken.Encoding(**tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]())
        assert ours is not reference
        for text in TEXTS:
            assert ours.encode_ordinary(text) == reference.encode_ordinary(text)


def test_a_shared_tiktoken_encoding_is_reused() -> None:
    shared = tiktoken.get_encoding("cl100k_base")
    assert tokens._load_vocabulary("cl100k_base") is shared


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize(
    "text",
    [
        TEXTS[3],
        TEXTS[14],
        TEXTS[15],
        " ".join(TEXTS) * 3,
        "<|endoftext|> billed as text " * 40,
        "lone \ud800 surrogate " * 60,  # tiktoken's public encode_ordinary repairs it
        "x" * 511,
        "x" * 512,
    ],
    ids=range(8),
)
def test_our_lighter_vocabulary_counts_long_texts_exactly(name: str, text: str) -> None:
    reference = tiktoken.Encoding(**tiktoken_ext.openai_public.ENCODING_CONSTRUCTORS[name]())
    ours = tokens._load_vocabulary(name)
    assert tokens.count_text_tokens(ours, text) == (len(reference.encode_ordinary(text)), 0)


def test_counting_uses_only_the_public_encode_ordinary() -> None:
    """Issue 20: no private tiktoken API on the counting path (only the public method)."""

    class PublicOnly:
        def encode_ordinary(self, text: str) -> list[int]:
            return [0] * (len(text) // 2)

    assert tokens.count_text_tokens(PublicOnly(), "ab" * 1000) == (1000, 0)
