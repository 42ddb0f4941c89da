"""What the guard works with: its two collaborators' protocols and one call in flight."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from smartspace_budget.backend.base import Backend, LedgerClient
from smartspace_budget.errors import InvalidInputError
from smartspace_budget.guard.costing import ProviderUsage
from smartspace_budget.models import (
    BudgetReservation,
    CostAnomaly,
    CostEstimate,
    LedgerEntry,
    PricingData,
)
from smartspace_budget.models.dimensions import Usage

__all__ = ["GuardBackend", "GuardedCall", "PricingSource"]


class GuardBackend(Backend, LedgerClient, Protocol):
    """What the guard needs: the ledger writes (reserve/settle/release) and the reads."""


class PricingSource(Protocol):
    """The part of :class:`~smartspace_budget.pricing.PricingEngine` the guard uses."""

    async def get_provider_pricing(self, provider: str, model: str) -> PricingData: ...

    async def estimate_cost(
        self,
        provider: str,
        model: str,
        input_text: str | None = None,
        *,
        messages: Sequence[dict[str, Any]] | None = None,
        input_tokens: int | None = None,
        expected_output_tokens: int = ...,
        currency: str = "USDC",
    ) -> CostEstimate: ...

    async def detect_cost_anomaly(
        self,
        request_id: str,
        provider: str,
        model: str,
        estimated_cost: Decimal,
        actual_cost: Decimal,
    ) -> CostAnomaly: ...


@dataclass
class GuardedCall:
    """One call in flight: its estimate, its hold and, once settled, what it cost.

    Inside ``guard.request(...)`` call :meth:`record_usage` with what the provider reported;
    if it is never called the reservation amount is charged as an estimate. ``started_at``
    is the instant of the call, at which it is priced (time-of-day prices); ``unpriced``,
    once settled, names what the call used that no price covered (it was then charged at
    least its reservation). ``delivery`` says what became of the settlement: ``delivered``
    (``entry`` is the ledger's), ``queued`` (the ledger could not be reached: it waits in the
    outbox and is delivered in the background; ``actual_cost`` is what it will charge),
    ``dead`` (the ledger refused it for good; see ``smartspace-budget outbox``).
    """

    call_id: str
    request_id: str
    provider: str
    model: str
    estimate: CostEstimate
    reservation: BudgetReservation
    expected_cost: Decimal
    usage: ProviderUsage | None = None
    entry: LedgerEntry | None = None
    actual_cost: Decimal | None = None
    cost_is_estimate: bool = False
    anomaly: CostAnomaly | None = None
    released: bool = False
    expected_given: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    unpriced: dict[str, int] = field(default_factory=dict)
    delivery: str | None = None

    predicted_output: int | None = None
    """The output tokens held when an output prediction sized the hold."""
    streamed_output_tokens: int = 0
    """Output pieces seen on a stream so far (about one token each): a dropped stream is
    charged at least for them."""

    @property
    def reserved_amount(self) -> Decimal:
        """The amount held for this call (the worst-case estimate)."""
        return self.reservation.amount

    @property
    def finished(self) -> bool:
        """Settled (or its settlement journaled) or released: nothing more to do here."""
        return self.entry is not None or self.released or self.delivery is not None

    def record_usage(
        self,
        usage: Usage | None = None,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        unpriced: Mapping[str, int] | None = None,
        **dimensions: int,
    ) -> None:
        """Tell the guard what the provider reported.

        Either a :class:`~smartspace_budget.models.dimensions.Usage` (a
        :class:`ProviderUsage` too), or ``input_tokens`` and ``output_tokens`` with any other
        dimension by name (``cached_input_tokens=``, ``cache_write_1h_tokens=``,
        ``input_audio_tokens=``, ``reasoning_tokens=``, ``web_searches=``...; they nest in
        the input and output counts). ``unpriced`` names what the provider reported that no
        dimension holds, with counts: the call is then charged at least its reservation.
        Raises :class:`InvalidInputError` for unknown dimensions or counts that do not nest.
        """
        if usage is None:
            if input_tokens is None or output_tokens is None:
                raise InvalidInputError(
                    "record_usage needs usage or input_tokens and output_tokens"
                )
            usage = ProviderUsage.of_counts(
                {"input_tokens": input_tokens, "output_tokens": output_tokens, **dimensions}
            )
        elif input_tokens is not None or output_tokens is not None or dimensions:
            raise InvalidInputError("record_usage takes usage or counts, not both")
        usage = ProviderUsage.of_usage(usage)
        if unpriced:
            named = {**dict(usage.unmapped), **unpriced}
            usage = replace(usage, unmapped=tuple(sorted(named.items())))
        self.usage = usage
