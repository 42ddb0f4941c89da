"""How users write provider and model names, and how we turn that into the catalog's names.

People write ``"Gemini"``, ``"vertex_ai"``, ``"openai/gpt-4o"``, ``"models/gemini-1.5-pro"``
or ``"claude-3-opus@20240229"``. The price book keys prices by canonical names (genai-prices'
provider and model ids, or the exact lower-case name an operator added), so every lookup
first goes through these helpers. They only normalise text; deciding whether a name exists
is the catalog's job.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from smartspace_budget.errors import InvalidInputError

__all__ = [
    "PROVIDER_ALIASES",
    "closest",
    "normalize",
    "provider_alias",
    "split_prefix",
]

MAX_NAME_LENGTH = 200

# Names under which providers appear in SDKs, gateways (LiteLLM, OpenRouter) and clouds,
# mapped to genai-prices' provider ids. Ids that genai-prices already uses are found
# without an entry here.
PROVIDER_ALIASES: dict[str, str] = {
    "open-ai": "openai",
    "chatgpt": "openai",
    "azure-openai": "azure",
    "azureopenai": "azure",
    "azure-ai": "azure",
    "claude": "anthropic",
    "anthropic-ai": "anthropic",
    "gemini": "google",
    "google-gla": "google",
    "google-vertex": "google",
    "google-genai": "google",
    "google-ai": "google",
    "googleai": "google",
    "google-ai-studio": "google",
    "vertex": "google",
    "vertex-ai": "google",
    "vertexai": "google",
    "vertex-ai-beta": "google",
    "palm": "google",
    "mistralai": "mistral",
    "mistral-ai": "mistral",
    "codestral": "mistral",
    "xai": "x-ai",
    "grok": "x-ai",
    "bedrock": "aws",
    "aws-bedrock": "aws",
    "amazon": "aws",
    "amazon-bedrock": "aws",
    "together-ai": "together",
    "togetherai": "together",
    "fireworks-ai": "fireworks",
    "fireworksai": "fireworks",
    "meta-llama": "meta",
    "llama": "meta",
    "moonshot": "moonshotai",
    "kimi": "moonshotai",
    "zhipu": "zhipuai",
    "voyage": "voyageai",
    "voyage-ai": "voyageai",
    "deep-seek": "deepseek",
}


def normalize(name: object, *, what: str) -> str:
    """Trim and lower-case a provider or model name; refuse empty, non-text or huge names.

    Raises :class:`InvalidInputError` naming ``what`` ("provider" or "model").
    """
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be a string, not {type(name).__name__}")
    text = name.strip().lower()
    if not text:
        raise InvalidInputError(f"{what} must not be empty")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} name is {len(text)} characters long; at most {MAX_NAME_LENGTH} allowed"
        )
    return text


def provider_alias(name: str) -> str | None:
    """The genai-prices id an alias stands for (``"vertex_ai"`` -> ``"google"``), if any."""
    dashed = name.replace("_", "-").replace(" ", "-")
    return PROVIDER_ALIASES.get(dashed) or PROVIDER_ALIASES.get(name)


def split_prefix(model: str) -> tuple[str, str] | None:
    """``"openai/gpt-4o"`` -> ``("openai", "gpt-4o")``; ``None`` when there is no prefix."""
    prefix, sep, rest = model.partition("/")
    if not sep or not prefix or not rest:
        return None
    return prefix, rest


def closest(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """Up to ``limit`` candidates that look like ``name``, best first, for error messages."""
    pool = sorted(set(candidates))
    found = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
    if len(found) < limit:
        # Names that share the typed prefix help more than nothing ("gpt-4o-mni" -> gpt-4o...).
        head = name[: max(3, len(name) // 2)]
        found += [c for c in pool if c.startswith(head) and c not in found][: limit - len(found)]
    return found
