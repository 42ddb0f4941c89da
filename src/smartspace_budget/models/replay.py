"""Workload replay: a period's recorded usage re-priced on other models.

:class:`UsageShape` is one group of the period's usage entries that are priced alike: same
recorded provider and model, same UTC minute, same usage in every dimension (the token
columns and the ``usage_detail`` column's other dimensions). :class:`ReplayReport` is what
``PricingEngine.replay`` answers for each target model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from smartspace_budget.models._base import Money, NonNegativeMoney, SpecModel
from smartspace_budget.models.dimensions import Usage

__all__ = [
    "LINEAR_COLUMNS",
    "LINEAR_LIMIT",
    "LinearCase",
    "LinearPricing",
    "LinearTotals",
    "ReplayReport",
    "ReplayTarget",
    "UsageShape",
]

_FIELDS = frozenset(Usage.__dataclass_fields__)
_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


class UsageShape(SpecModel):
    """Usage entries of one model and minute with the same usage, and what they cost.

    ``detail`` is the entries' ``usage_detail`` (the dimensions beyond the token columns, and
    what was unpriced, ``unpriced:NAME``), as stored. ``charged`` is what the entries were
    charged in all (USDC); ``estimated_calls`` of them were charged at their hold because
    the real usage was not known.
    """

    provider: str
    model: str
    minute: datetime
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    detail: str | None = None
    calls: int = Field(ge=1)
    charged: Money
    estimated_calls: int = Field(default=0, ge=0)

    def counts(self) -> dict[str, Any]:
        """One call's counts by dimension (``request_count`` 1 unless recorded otherwise),
        what was unpriced left out."""
        counts: dict[str, Any] = {"request_count": 1}
        for name in _COLUMNS:
            counts[name] = getattr(self, name)
        if self.detail:
            for name, value in json.loads(self.detail).items():
                if name.startswith("unpriced:"):
                    continue
                if name not in _FIELDS:
                    raise ValueError(f"usage_detail names an unknown dimension {name!r}")
                counts[name] = Decimal(value) if name == "seconds" else value
        return counts

    def usage(self) -> Usage:
        """One call's usage in every dimension (what was unpriced left out).

        The counts were validated when the entries were written (they nest, they are in
        range), so the usage is built without checking them again: a replay builds one per
        distinct shape, up to a million.
        """
        return Usage(**self.counts())

    def key(self) -> tuple[Any, ...]:
        """What prices the calls: the counts and the detail (not the model or minute)."""
        return (*(getattr(self, name) for name in _COLUMNS), self.detail)


class ReplayTarget(SpecModel):
    """One target model's price for the replayed usage.

    ``total_cost`` (provider price plus the platform fee, each call rounded as a charge is)
    covers the ``calls_served``; ``charged_for_served`` is what those same calls were really
    charged, and ``difference = total_cost - charged_for_served``. ``unserved`` counts the
    calls the target cannot serve, by reason (``context window``, ``output limit``,
    ``modality: input_audio_tokens``, ``unpriced: web_searches``, ``pricing model``);
    ``error`` is set when the target could not be priced at all (unknown model).
    """

    _optional_keys: ClassVar[frozenset[str]] = frozenset({"error"})

    provider: str
    model: str
    total_cost: NonNegativeMoney = Decimal(0)
    base_cost: NonNegativeMoney = Decimal(0)
    calls_served: int = Field(default=0, ge=0)
    charged_for_served: Money = Decimal(0)
    difference: Money = Decimal(0)
    calls_unserved: int = Field(default=0, ge=0)
    unserved: dict[str, int] = Field(default_factory=dict)
    charged_for_unserved: Money = Decimal(0)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"


class ReplayReport(SpecModel):
    """A period's recorded usage re-priced on each target (see :class:`ReplayTarget`).

    ``cheapest`` is the target with the lowest ``total_cost`` among those that serve every
    call (``None`` when none does). ``groups`` is how many usage shapes were priced one by
    one (on the embedded ledger, plain usage, token columns and one request, is priced in
    the database and not counted here);
    ``by_model`` counts the calls of each model really used.
    """

    user_id: str
    project_id: str
    period_start: datetime
    period_end: datetime
    calls: int = Field(ge=0)
    charged: Money
    estimated_calls: int = Field(default=0, ge=0)
    groups: int = Field(ge=0)
    by_model: dict[str, int] = Field(default_factory=dict)
    targets: list[ReplayTarget] = Field(default_factory=list)
    cheapest: str | None = None
    as_recorded: ReplayTarget | None = None
    """Each call re-priced on the model it really used (``provider`` and ``model`` are
    ``*``): its ``difference`` is zero unless prices were changed after the fact, calls
    were charged at their hold, or something was unpriced."""


@dataclass(frozen=True, slots=True)
class LinearCase:
    """One price of a linear replay: calls in a version's time span, time-of-day window and
    long-context tier cost ``sum(numerators[i] * count[i]) / denominator`` nano-USDC, the
    counts being :data:`LINEAR_COLUMNS` (``request_count`` is 1 for these calls)."""

    start: datetime | None
    end: datetime | None
    time_from: time | None
    time_to: time | None
    input_from: int
    input_to: int | None
    numerators: tuple[int, ...]
    denominator: int


@dataclass(frozen=True, slots=True)
class LinearPricing:
    """How a target prices the calls a linear replay covers (see
    ``PricingEngine.replay``): the first matching case wins; calls over the limits are
    counted, not priced; ``provider``/``model`` restrict the calls to one recorded model.
    The fee is ``fee_numerator / fee_denominator`` percent of each call's rounded base."""

    cases: tuple[LinearCase, ...]
    max_input: int | None
    max_output: int | None
    fee_numerator: int
    fee_denominator: int
    provider: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class LinearTotals:
    """What a linear replay sums, in nano-USDC: the calls priced, their base and total, what
    they were charged; the calls over the context window or the output limit and what they
    were charged; the calls no case covers (no price in force) and what they were charged."""

    served: int
    base_nano: int
    total_nano: int
    charged_served_nano: int
    over_context: int
    over_output: int
    charged_over_nano: int
    unpriced: int
    charged_unpriced_nano: int


LINEAR_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
LINEAR_LIMIT = 10**7
"""Counts up to which a call is priced in the database (products stay within 63 bits)."""
