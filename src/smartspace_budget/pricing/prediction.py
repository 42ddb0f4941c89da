"""Output-token predictions from history: what to hold for a call that does not say.

A call without ``max_tokens`` (or an estimate without ``expected_output_tokens``) used to
hold the most the model can produce, often its whole context window: about $1.34 for a
short gpt-4o prompt. The ledger knows better: it keeps, per account, provider and model, a
log-bucket sketch of the output tokens every reported call produced
(:mod:`smartspace_budget.models.output_sketch`). :func:`predict_output` reads it (the
account's, else its project's, else every account's, the first with enough calls) and
answers the configured quantile (p95 by default), never less than the output already
streamed. With fewer than ``min_samples`` calls it answers ``None`` and the caller falls
back (the engine to its default, the guard to the worst case).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.models.output_sketch import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_OUTPUT_QUANTILE,
    OutputEstimate,
    OutputHistory,
    OutputMethod,
)

__all__ = [
    "OutputHistorySource",
    "check_quantile",
    "predict_output",
    "prediction_from",
]


@runtime_checkable
class OutputHistorySource(Protocol):
    """A backend that can read the output sketches (``LocalBackend``, ``HttpBackend``)."""

    async def get_output_history(
        self,
        user_id: str,
        project_id: str,
        provider: str,
        model: str,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> OutputHistory: ...


def check_quantile(value: object) -> Decimal:
    """A quantile in (0, 1] as a Decimal (floats are taken by their shortest text)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise InvalidInputError(f"output_quantile must be a number in (0, 1], got {value!r}")
    try:
        quantile = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except ArithmeticError:
        raise InvalidInputError(f"output_quantile must be a number, got {value!r}") from None
    if not quantile.is_finite() or not 0 < quantile <= 1:
        raise InvalidInputError(f"output_quantile must be in (0, 1], got {value!r}")
    return quantile


def prediction_from(
    history: OutputHistory,
    quantile: Decimal = DEFAULT_OUTPUT_QUANTILE,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    floor_tokens: int = 0,
) -> OutputEstimate | None:
    """The ``quantile`` of ``history`` as an output estimate, or ``None`` below
    ``min_samples`` recorded calls. Never less than ``floor_tokens``."""
    if history.samples < min_samples:
        return None
    found = history.quantile(quantile)
    if found is None:
        return None
    tokens = max(found.tokens, floor_tokens)
    fitting = found.fitting if tokens == found.tokens else history.samples
    confidence = (fitting + 1) / (found.samples + 2)
    return OutputEstimate(
        method=OutputMethod.PREDICTED,
        tokens=tokens,
        confidence=round(confidence, 4),
        quantile=quantile,
        scope=history.scope,
        samples=found.samples,
        floor_tokens=floor_tokens or None,
        note=(
            f"p{_percent(quantile)} of the output of {found.samples:,} past "
            f"{history.provider}/{history.model} calls ({history.scope.value})"
            + (f"; at least the {floor_tokens:,} tokens already streamed" if floor_tokens else "")
        ),
    )


async def predict_output(
    source: object,
    user_id: str,
    project_id: str,
    provider: str,
    model: str,
    *,
    quantile: Decimal = DEFAULT_OUTPUT_QUANTILE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    floor_tokens: int = 0,
) -> tuple[OutputEstimate | None, OutputHistory | None]:
    """The predicted output of a call, and the history it came from.

    ``(None, None)`` when ``source`` keeps no history (a price book alone, a test double);
    ``(None, history)`` when the history has fewer than ``min_samples`` calls. Backend
    errors are raised: the caller decides what a failed read means (the guard holds the
    worst case, never less).
    """
    if not isinstance(source, OutputHistorySource):
        return None, None
    history = await source.get_output_history(
        user_id, project_id, provider, model, min_samples=min_samples
    )
    return (
        prediction_from(history, quantile, min_samples=min_samples, floor_tokens=floor_tokens),
        history,
    )


def _percent(quantile: Decimal) -> str:
    return format((quantile * 100).normalize(), "f")
