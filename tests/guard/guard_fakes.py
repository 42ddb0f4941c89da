"""Small in-memory stand-ins for the ledger and the pricing engine, for guard unit tests.

They keep the contract's behaviour that the guard relies on: reserve refuses what the
available balance cannot cover (and what the per-request limit forbids), settle charges once
and frees the hold, idempotency keys return the first result.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from smartspace_budget.errors import (
    BudgetExceededError,
    PolicyViolationError,
    ReservationResolvedError,
    UnknownModelError,
)
from smartspace_budget.models import (
    AnomalyDirection,
    AnomalySeverity,
    BudgetPolicy,
    BudgetReservation,
    CostAnomaly,
    CostEstimate,
    LedgerEntry,
    PricingData,
    UsageEvent,
)
from smartspace_budget.models.budget import ReservationStatus
from smartspace_budget.models.usage import EntryKind
from smartspace_budget.money import quantize

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeLedger:
    """One account's balance, holds and entries."""

    def __init__(self, balance: Decimal = Decimal("10")) -> None:
        self.balance = balance
        self.policy = BudgetPolicy()
        self.holds: dict[str, BudgetReservation] = {}
        self.entries: list[LedgerEntry] = []
        self.usages: list[UsageEvent] = []
        self._keys: dict[str, BudgetReservation | LedgerEntry] = {}

    @property
    def reserved(self) -> Decimal:
        return sum(
            (h.amount for h in self.holds.values() if h.status is ReservationStatus.PENDING),
            Decimal(0),
        )

    def _entry(self, kind: EntryKind, amount: Decimal, **extra: Any) -> LedgerEntry:
        self.balance += amount
        entry = LedgerEntry(
            entry_id=uuid.uuid4().hex,
            user_id="u",
            project_id="p",
            kind=kind,
            amount=amount,
            balance_after=self.balance,
            occurred_at=NOW,
            **extra,
        )
        self.entries.append(entry)
        return entry

    async def reserve(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        ttl_seconds: int = 300,
        idempotency_key: str,
        request_id: str | None = None,
    ) -> BudgetReservation:
        if idempotency_key in self._keys:
            held = self._keys[idempotency_key]
            assert isinstance(held, BudgetReservation)
            return held
        limit = self.policy.per_request_limit
        if limit is not None and amount > limit:
            raise PolicyViolationError(f"{amount} over the per-request limit {limit}")
        if amount > self.balance - self.reserved:
            raise BudgetExceededError(f"{amount} over the available {self.balance - self.reserved}")
        hold = BudgetReservation(
            reservation_id=uuid.uuid4().hex,
            user_id=user_id,
            project_id=project_id,
            amount=amount,
            created_at=NOW,
            expires_at=NOW + timedelta(seconds=ttl_seconds),
            request_id=request_id,
        )
        self.holds[hold.reservation_id] = hold
        self._keys[idempotency_key] = hold
        return hold

    async def settle(
        self, reservation_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        if idempotency_key in self._keys:
            settled = self._keys[idempotency_key]
            assert isinstance(settled, LedgerEntry)
            return settled
        hold = self.holds[reservation_id]
        if hold.status is not ReservationStatus.PENDING:
            raise ReservationResolvedError("already resolved")
        hold.status = ReservationStatus.SETTLED
        hold.settled_amount = usage.actual_cost
        self.usages.append(usage)
        entry = self._entry(
            EntryKind.USAGE,
            -usage.actual_cost,
            provider=usage.provider,
            model=usage.model,
            reservation_id=reservation_id,
            request_id=usage.request_id,
        )
        self._keys[idempotency_key] = entry
        return entry

    async def release(self, reservation_id: str, *, idempotency_key: str) -> BudgetReservation:
        hold = self.holds[reservation_id]
        if hold.status is not ReservationStatus.PENDING:
            raise ReservationResolvedError("already resolved")
        hold.status = ReservationStatus.RELEASED
        return hold


PRICES = {
    ("openai", "gpt-4o"): PricingData(
        provider="openai",
        model_name="gpt-4o",
        input_price_per_1k=Decimal("0.0025"),
        output_price_per_1k=Decimal("0.01"),
        cached_input_price_per_1k=Decimal("0.00125"),
        effective_date=NOW,
        last_updated=NOW,
        version="v1",
    ),
    ("anthropic", "claude-haiku-4-5"): PricingData(
        provider="anthropic",
        model_name="claude-haiku-4-5",
        input_price_per_1k=Decimal("0.003"),
        output_price_per_1k=Decimal("0.015"),
        cached_input_price_per_1k=Decimal("0.0003"),
        cache_write_price_per_1k=Decimal("0.00375"),
        effective_date=NOW,
        last_updated=NOW,
        version="v7",
    ),
}


def word_tokens(messages: Sequence[dict[str, Any]] | None, text: str | None) -> int:
    """The fake tokenizer: one token per whitespace-separated word."""
    if messages is not None:
        return sum(len(str(m.get("content", "")).split()) for m in messages)
    return len((text or "").split())


class FakePricing:
    """Prices from :data:`PRICES`, a word-count tokenizer and the spec's anomaly bands."""

    fee = Decimal(5)

    def __init__(self) -> None:
        self.anomaly_checks: list[tuple[Decimal, Decimal]] = []

    async def get_provider_pricing(self, provider: str, model: str) -> PricingData:
        try:
            return PRICES[(provider, model)]
        except KeyError:
            raise UnknownModelError(f"unknown model {provider}/{model}") from None

    async def estimate_cost(
        self,
        provider: str,
        model: str,
        input_text: str | None = None,
        *,
        messages: Sequence[dict[str, Any]] | None = None,
        input_tokens: int | None = None,
        expected_output_tokens: int = 500,
        currency: str = "USDC",
    ) -> CostEstimate:
        pricing = await self.get_provider_pricing(provider, model)
        assert pricing.input_price_per_1k is not None
        assert pricing.output_price_per_1k is not None
        tokens = input_tokens if input_tokens is not None else word_tokens(messages, input_text)
        input_cost = tokens * pricing.input_price_per_1k / 1000
        output_cost = expected_output_tokens * pricing.output_price_per_1k / 1000
        base = quantize(input_cost + output_cost)
        fee = quantize((input_cost + output_cost) * self.fee / 100)
        return CostEstimate(
            provider=provider,
            model=model,
            input_tokens=tokens,
            output_tokens=expected_output_tokens,
            input_cost=input_cost,
            output_cost=output_cost,
            base_cost=base,
            platform_fee_percent=self.fee,
            platform_fee=fee,
            total_cost=base + fee,
            price_version=pricing.version,
        )

    async def detect_cost_anomaly(
        self,
        request_id: str,
        provider: str,
        model: str,
        estimated_cost: Decimal,
        actual_cost: Decimal,
    ) -> CostAnomaly:
        self.anomaly_checks.append((estimated_cost, actual_cost))
        diff = actual_cost - estimated_cost
        pct = abs(diff) / estimated_cost * 100 if estimated_cost else None
        if pct is None or pct > 200:
            severity = AnomalySeverity.CRITICAL
        elif pct >= 100:
            severity = AnomalySeverity.HIGH
        elif pct >= 50:
            severity = AnomalySeverity.MEDIUM
        elif pct >= 20:
            severity = AnomalySeverity.LOW
        else:
            severity = AnomalySeverity.NONE
        return CostAnomaly(
            request_id=request_id,
            provider=provider,
            model=model,
            estimated_cost=estimated_cost,
            actual_cost=actual_cost,
            difference=diff,
            difference_percent=pct,
            severity=severity,
            direction=AnomalyDirection.OVER if diff > 0 else AnomalyDirection.UNDER,
        )
