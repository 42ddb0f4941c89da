"""How many output tokens a call produces: a log-bucket histogram kept as integer counts.

A call's output tokens are counted in one of about 1,400 buckets whose bounds grow by a
factor :data:`GAMMA` (relative accuracy :data:`RELATIVE_ACCURACY`, 1%): bucket ``b`` holds
the counts ``t`` with ``UPPER[b-1] < t <= UPPER[b]`` (bucket 0 holds 0). This is DDSketch's
logarithmic mapping (Masson, Rim, Lee, VLDB 2019), with the bounds rounded down to whole
tokens; the ledger stores one integer per (account, provider, model, bucket) and adds to it
in the same transaction as the usage entry, so a quantile is read from at most a few
hundred rows, never from the entries. We keep our own few lines rather than the
``ddsketch`` package: the ledger needs the mapping (a bucket number) and integer counts in
SQL rows, not the package's in-memory stores, and the bounds must be exactly reproducible
(the integrity check rebuilds the counts from the entries with the same table).

A quantile is answered as the *upper* bound of the bucket holding it, so a hold never lies
below the true quantile of the recorded calls, and lies above it by at most a factor
``GAMMA`` (plus rounding to a whole token).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from smartspace_budget.models._base import SpecModel

__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_OUTPUT_QUANTILE",
    "GAMMA",
    "RELATIVE_ACCURACY",
    "UPPER",
    "OutputEstimate",
    "OutputHistory",
    "OutputMethod",
    "OutputScope",
    "SketchQuantile",
    "bucket_of",
    "quantile_of",
    "upper_of",
]

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LIMIT = 10**12  # the largest token count a usage entry may hold (models.usage.MAX_TOKENS)

UPPER: tuple[int, ...] = (
    0,
    *(math.floor(GAMMA**j) for j in range(math.ceil(math.log(_LIMIT, GAMMA)) + 2)),
)
"""Upper bound (inclusive) of each bucket; bucket 0 is the zero bucket."""

DEFAULT_OUTPUT_QUANTILE = Decimal("0.95")
"""The quantile of past output held when a call does not say how much it will produce."""
DEFAULT_MIN_SAMPLES = 30
"""Recorded calls needed before a prediction is trusted (else the caller's fallback)."""


def bucket_of(tokens: int) -> int:
    """The bucket of a call that produced ``tokens`` output tokens."""
    if tokens < 0:
        raise ValueError(f"output tokens must not be negative, got {tokens}")
    if tokens > _LIMIT:
        raise ValueError(f"output tokens must be at most {_LIMIT}, got {tokens}")
    return bisect.bisect_left(UPPER, tokens)


def upper_of(bucket: int) -> int:
    """The most output tokens a call in ``bucket`` produced."""
    return UPPER[bucket]


class OutputScope(StrEnum):
    """Whose history a prediction was read from: the account's own, else its project's
    (every user of the project), else every account's."""

    ACCOUNT = "account"
    PROJECT = "project"
    ALL = "all"


class OutputMethod(StrEnum):
    """How an estimate's output tokens were chosen."""

    GIVEN = "given"
    """The caller said (``expected_output_tokens``, ``max_tokens``)."""
    PREDICTED = "predicted"
    """A quantile of the output of past calls to this model (see :class:`OutputEstimate`)."""
    DEFAULT = "default"
    """Too little history: the engine's default (500 tokens)."""
    WORST_CASE = "worst_case"
    """Too little history: the most the model can produce (the guard)."""


@dataclass(frozen=True, slots=True)
class SketchQuantile:
    """A quantile read from a histogram: the tokens, from how many calls, how many fit."""

    tokens: int
    samples: int
    fitting: int
    """Recorded calls whose output was at most ``tokens``."""


def quantile_of(
    buckets: Mapping[int, int] | Iterable[tuple[int, int]], q: Decimal
) -> SketchQuantile | None:
    """The ``q`` quantile (0 < q <= 1) of the calls counted in ``buckets`` (bucket: calls).

    The rank is ``ceil(q * n)`` (the nearest-rank definition) and the answer is the upper
    bound of the bucket holding that call: never below the recorded calls' own quantile.
    ``None`` when no call was counted.
    """
    items = sorted(buckets.items() if isinstance(buckets, Mapping) else buckets)
    total = sum(count for _, count in items)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket, count in items:
        seen += count
        if seen >= rank:
            return SketchQuantile(upper_of(bucket), total, seen)
    bucket = items[-1][0]  # unreachable: seen reaches total >= rank
    return SketchQuantile(upper_of(bucket), total, total)


class OutputEstimate(SpecModel):
    """How a cost estimate's output tokens were chosen, and how far to trust them.

    ``method`` says which rule applied (:class:`OutputMethod`). For a prediction,
    ``quantile`` of the past calls of ``scope`` (``samples`` of them) was held, and
    ``confidence`` is the share of those calls that fitted in it, smoothed toward one half
    for few samples: ``(fitting + 1) / (samples + 2)``. A prediction never holds less than
    ``floor_tokens`` (output already streamed).
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset(
        {"quantile", "scope", "samples", "floor_tokens", "note"}
    )

    method: OutputMethod
    tokens: int = Field(ge=0)
    confidence: float = Field(ge=0.0, le=1.0)
    quantile: Decimal | None = None
    scope: OutputScope | None = None
    samples: int | None = Field(default=None, ge=0)
    floor_tokens: int | None = Field(default=None, ge=0)
    note: str | None = None


class OutputHistory(SpecModel):
    """The output sketch a prediction reads: from the first of account, project, all
    accounts with at least ``min_samples`` recorded calls to the model (else the widest,
    with what it has). ``buckets`` are ``[bucket, calls]`` pairs (see :func:`bucket_of`)."""

    provider: str
    model: str
    scope: OutputScope
    samples: int = Field(ge=0)
    buckets: list[tuple[int, int]] = Field(default_factory=list)

    def quantile(self, q: Decimal) -> SketchQuantile | None:
        """The ``q`` quantile of the recorded output (``None`` without any call)."""
        return quantile_of(self.buckets, q)
