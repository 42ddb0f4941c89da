"""The guarded call: estimate, reserve, call, settle at the real cost, flag the difference.

Every call goes through the same five steps, whether it is made by a wrapped SDK client or
inside ``async with guard.request(...)``:

1. **estimate** the cost with the pricing engine: exact input tokens where a tokenizer
   exists, ``max_tokens`` as the worst case for output (or the caller's expected output;
   with neither, the most the model can produce: its output limit, else its context window
   minus the input, else ``default_max_output_tokens``);
2. **reserve** that amount in the ledger. The reservation *is* the policy check: the ledger
   refuses it atomically with :class:`~smartspace_budget.errors.BudgetExceededError` or
   :class:`~smartspace_budget.errors.PolicyViolationError`, before any network traffic, and
   concurrent calls can never overspend the balance between a check and a charge;
3. the caller makes the provider call;
4. **settle** the reservation with the real usage priced at the instant of the call (plus
   the platform fee; at least the reservation when part of it has no price). When the usage
   is unknown (cancelled, failed midway, not reported) the reservation amount is charged,
   flagged ``cost_is_estimate``: never zero;
5. **compare** estimate and actual with ``detect_cost_anomaly``; medium or worse is turned
   into a :class:`~smartspace_budget.models.SpendingAlert` for the monitor's handlers. The
   estimate compared is the caller's expected output when given, else the worst case; a
   cost *under* a worst-case hold is what a hold is for, so only then it is not reported.

Every ledger write carries an idempotency key derived from the call's id, so a retried
settlement can never charge twice. The settlement is journaled in the durable outbox
(``backend/outbox.py``) before it is sent: if the ledger cannot be reached, or the process
dies, it is delivered later (in the background, or by the next process using the same
outbox), and the hold covers the call until then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from smartspace_budget.backend.outbox import Outbox, OutboxWriter
from smartspace_budget.errors import (
    BudgetError,
    InvalidInputError,
    MissingPricingError,
    ReservationResolvedError,
)
from smartspace_budget.guard import at_exit
from smartspace_budget.guard.anomalies import (
    REPORTED,
    anomaly_alert,
    can_receive,
    deliver_alert,
    isolated,
)
from smartspace_budget.guard.call import GuardBackend, GuardedCall, PricingSource
from smartspace_budget.guard.costing import Charge, ProviderUsage, charge, usage_counts
from smartspace_budget.guard.portal import Portal
from smartspace_budget.guard.price_at import pricing_at
from smartspace_budget.guard.settling import settle
from smartspace_budget.guard.sizing import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    estimate_call,
    for_choices,
    worst_case_output,
)
from smartspace_budget.guard.usage import PartialUsage
from smartspace_budget.models import (
    AnomalyDirection,
    CostAnomaly,
    PricingData,
    UsageEvent,
)
from smartspace_budget.models.output_sketch import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_OUTPUT_QUANTILE,
    OutputEstimate,
)
from smartspace_budget.pricing.cost import to_usdc
from smartspace_budget.pricing.prediction import (
    OutputHistorySource,
    check_quantile,
    predict_output,
)
from smartspace_budget.pricing.tokens import estimate_tokens

__all__ = ["DEFAULT_MAX_OUTPUT_TOKENS", "Guard", "GuardBackend", "GuardedCall", "PricingSource"]

log = logging.getLogger("smartspace_budget.guard")


class Guard:
    """Guards LLM calls of one user/project against its budget (see the module docstring).

    ``backend`` provides reads and ledger writes (``LocalBackend``, ``HttpBackend``);
    ``pricing_engine`` estimates and prices (``PricingEngine``); ``monitor`` (a
    ``SpendingMonitor``), when given, receives cost anomalies of medium severity or worse
    through its alert handlers; ``on_anomaly`` is called with every such anomaly.
    Synchronous clients run the backend on ``portal`` (one is created when needed).
    ``default_max_output_tokens`` is held for a call without ``max_tokens`` on a model whose
    output limit and context window are both unknown. ``outbox`` journals settlements until
    the ledger has them (default: the configured outbox of ``backend``'s ledger, see
    :class:`~smartspace_budget.backend.outbox.Outbox`); what an earlier process left there is
    delivered in the background from the first use on.

    A call without ``max_tokens`` (nor ``expected_output_tokens``) holds, when
    ``predict_output`` and the backend keeps output history, the ``output_quantile`` (p95)
    of the output of the account's past calls to the model (else its project's, else every
    account's) once there are ``min_output_samples`` (30) of them; else the worst case. A
    call that then produces more is charged in full and counted as a miss (``analytics``).
    """

    def __init__(
        self,
        backend: GuardBackend,
        pricing_engine: PricingSource,
        *,
        user_id: str,
        project_id: str,
        monitor: Any | None = None,
        reservation_ttl: int = 300,
        on_anomaly: Callable[[CostAnomaly], None] | None = None,
        portal: Portal | None = None,
        default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        outbox: Outbox | None = None,
        predict_output: bool = True,
        output_quantile: Decimal | float | str = DEFAULT_OUTPUT_QUANTILE,
        min_output_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> None:
        if not user_id or not project_id:
            raise InvalidInputError("user_id and project_id must not be empty")
        if isinstance(reservation_ttl, bool) or not 1 <= reservation_ttl <= 86_400:
            raise InvalidInputError("reservation_ttl must be between 1 and 86400 seconds")
        if isinstance(default_max_output_tokens, bool) or default_max_output_tokens < 1:
            raise InvalidInputError("default_max_output_tokens must be a positive int")
        if monitor is not None and not can_receive(monitor):
            raise InvalidInputError(
                f"{type(monitor).__name__} cannot receive alerts (expected a SpendingMonitor)"
            )
        self.backend = backend
        self.pricing_engine = pricing_engine
        self.user_id = user_id
        self.project_id = project_id
        self.monitor = monitor
        self.reservation_ttl = reservation_ttl
        self.on_anomaly = on_anomaly
        self.default_max_output_tokens = default_max_output_tokens
        self.predict_output = bool(predict_output)
        self.output_quantile = check_quantile(output_quantile)
        if isinstance(min_output_samples, bool) or min_output_samples < 1:
            raise InvalidInputError("min_output_samples must be a positive int")
        self.min_output_samples = min_output_samples
        self._portal = portal
        self._owns_portal = False
        self._pending: set[concurrent.futures.Future[Any] | asyncio.Future[Any]] = set()
        self.outbox = OutboxWriter.for_backend(backend, outbox)
        self.outbox.resume()  # a running loop: deliver what earlier processes left, now

    def close(self) -> None:
        """Stop the portal's thread if this guard started one (synchronous clients)."""
        if self._portal is not None and self._owns_portal:
            self._portal.close()
            self._portal = None

    @property
    def portal(self) -> Portal:
        """The background loop synchronous clients use (created on first use)."""
        if self._portal is None:
            self._portal = Portal()
            self._owns_portal = True
        return self._portal

    def wrap(self, client: Any) -> Any:
        """Return a guarded proxy of an ``openai`` or ``anthropic`` client (sync or async)."""
        from smartspace_budget.guard.wrappers import is_async_client, wrap_client

        wrapped = wrap_client(self, client)
        if not is_async_client(client) and self.outbox.pending():
            # A synchronous client's ledger calls run on the portal: deliver there.
            self._track(self.portal.submit(self._resume()))
        return wrapped

    async def _resume(self) -> None:
        self.outbox.resume()

    @asynccontextmanager
    async def request(
        self,
        provider: str,
        model: str,
        *,
        input_text: str | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        expected_output_tokens: int | None = None,
        request_id: str | None = None,
        choices: int = 1,
    ) -> AsyncIterator[GuardedCall]:
        """Guard one provider call made inside the block; raises before the block if denied."""
        call = await self.open_call(
            provider,
            model,
            input_text=input_text,
            messages=messages,
            max_tokens=max_tokens,
            expected_output_tokens=expected_output_tokens,
            request_id=request_id,
            choices=choices,
        )
        try:
            yield call
        except BaseException:
            await asyncio.shield(self.finish_call(call, call.usage))
            raise
        await self.finish_call(call, call.usage)

    async def open_call(
        self,
        provider: str,
        model: str,
        *,
        input_text: str | None = None,
        messages: Sequence[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        expected_output_tokens: int | None = None,
        request_id: str | None = None,
        choices: int = 1,
    ) -> GuardedCall:
        """Steps 1-2: estimate and reserve. Raises the budget errors when the ledger refuses.

        ``choices`` is OpenAI's ``n``: each choice may produce the full output.
        """
        for name, value in (
            ("max_tokens", max_tokens),
            ("expected_output", expected_output_tokens),
        ):
            if value is not None and (isinstance(value, bool) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative int, got {value!r}")
        if isinstance(choices, bool) or not isinstance(choices, int) or choices < 1:
            raise InvalidInputError(f"choices (n) must be a positive int, got {choices!r}")
        self.outbox.resume()
        call_id = uuid.uuid4().hex
        request_id = request_id or f"req_{call_id}"
        worst_output = max_tokens if max_tokens is not None else expected_output_tokens
        assumed: str | None = None
        predicted: int | None = None
        if worst_output is None:
            worst_output, assumed = await worst_case_output(
                self.pricing_engine,
                provider,
                model,
                input_text,
                messages,
                self.default_max_output_tokens,
            )
            prediction = await self._prediction(provider, model)
            if prediction is not None and prediction.tokens < worst_output:
                worst_output = predicted = prediction.tokens
                assumed = prediction.note
        estimate = await estimate_call(
            self.pricing_engine, provider, model, input_text, messages, worst_output
        )
        if choices > 1:
            estimate = await for_choices(self.pricing_engine, estimate, choices)
        expected_cost = estimate.total_cost
        if (
            expected_output_tokens is not None
            and max_tokens is not None
            and expected_output_tokens != max_tokens
        ):
            expected = await estimate_call(
                self.pricing_engine,
                provider,
                model,
                None,
                None,
                expected_output_tokens,
                input_tokens=estimate.input_tokens,
            )
            if choices > 1:
                expected = await for_choices(self.pricing_engine, expected, choices)
            expected_cost = expected.total_cost
        try:
            reservation = await self.backend.reserve(
                self.user_id,
                self.project_id,
                estimate.total_cost,
                ttl_seconds=self.reservation_ttl,
                idempotency_key=f"guard:{call_id}:reserve",
                request_id=request_id,
            )
        except BudgetError as exc:
            if assumed is None:
                raise
            hint = (
                f"{exc.detail} (no max_tokens was given, so {worst_output:,} output tokens "
                f"were held: {assumed}; pass max_tokens to hold less)"
            )
            raise type(exc)(hint, **exc.context) from exc
        return GuardedCall(
            call_id=call_id,
            request_id=request_id,
            provider=estimate.provider or provider,
            model=estimate.model or model,
            estimate=estimate,
            reservation=reservation,
            expected_cost=expected_cost,
            expected_given=expected_output_tokens is not None,
            predicted_output=predicted,
        )

    async def _prediction(self, provider: str, model: str) -> OutputEstimate | None:
        """The predicted output of a call from the account's history, if there is enough.

        A failed read is logged and answered ``None``: the call then holds the worst case,
        more than a prediction would, never less.
        """
        if not self.predict_output or not isinstance(self.backend, OutputHistorySource):
            return None
        try:
            pricing = await self.pricing_engine.get_provider_pricing(provider, model)
            prediction, _ = await predict_output(
                self.backend,
                self.user_id,
                self.project_id,
                pricing.provider,
                pricing.model_name,
                quantile=self.output_quantile,
                min_samples=self.min_output_samples,
            )
        except Exception:
            log.warning(
                "could not read the output history of %s/%s; holding the worst case",
                provider,
                model,
                exc_info=True,
            )
            return None
        return prediction

    async def finish_call(
        self, call: GuardedCall, usage: ProviderUsage | PartialUsage | None
    ) -> None:
        """Steps 4-5: settle at the real cost (or at the reservation if unknown), then compare.

        The settlement is journaled in the outbox first and sent with a fixed idempotency
        key; if the ledger cannot be reached it stays there (``call.delivery == "queued"``)
        and is delivered in the background, the hold covering the call until then.
        """
        if call.finished:
            return
        partial = isinstance(usage, PartialUsage)
        if isinstance(usage, PartialUsage):
            usage = self._left_usage(call, usage)
        call.usage = usage
        counts = usage
        streamed_only = usage is None and call.streamed_output_tokens > call.estimate.output_tokens
        if streamed_only:
            # Usage unknown, but more output was streamed than the hold covered: charge at
            # least what was seen (a prediction never holds less than what streamed).
            counts = ProviderUsage(
                input_tokens=call.estimate.input_tokens,
                output_tokens=call.streamed_output_tokens,
            )
        pricing: PricingData | None = None
        charged: Charge | None = None
        if counts is not None:
            try:
                pricing = await pricing_at(
                    self.pricing_engine, call.provider, call.model, call.started_at
                )
                charged = charge(
                    pricing,
                    counts,
                    call.estimate.platform_fee_percent,
                    call.reserved_amount,
                    self._usdc_per_unit(pricing.price_currency),
                    at=call.started_at,
                )
                if streamed_only:  # a floor, not the bill: never below the hold, an estimate
                    amount = max(charged.amount, call.reserved_amount)
                    charged = Charge(amount, charged.priced, True, charged.unpriced)
            except Exception:
                log.exception(
                    "could not price %s/%s; charging the reservation", call.provider, call.model
                )
        is_estimate = charged is None or charged.at_hold or partial
        actual = call.reserved_amount if charged is None else charged.amount
        unpriced = {} if charged is None else charged.unpriced
        if unpriced:
            log.warning(
                "%s used what no price covers (%s); charged %s, at least its hold",
                call.request_id,
                ", ".join(f"{name}={n}" for name, n in unpriced.items()),
                actual,
            )
        counts = counts or ProviderUsage(
            input_tokens=call.estimate.input_tokens, output_tokens=call.estimate.output_tokens
        )
        event = UsageEvent(
            occurred_at=datetime.now(UTC),  # filed when it happened, however late delivered
            provider=call.provider,
            model=call.model,
            **usage_counts(counts),
            unpriced=unpriced,
            actual_cost=actual,
            estimated_cost=call.expected_cost,
            price_version=(pricing.version if pricing else call.estimate.price_version),
            request_id=call.request_id,
            cost_is_estimate=is_estimate,
            tags=call.tags,
            predicted_output_tokens=call.predicted_output,
        )
        delivery = await settle(self.outbox, self.user_id, self.project_id, call, event)
        call.delivery = delivery.state
        if delivery.state in ("queued", "delivered"):
            call.actual_cost, call.cost_is_estimate = actual, is_estimate
            call.unpriced = unpriced
        if delivery.entry is None:
            return
        call.entry = delivery.entry
        if not is_estimate:
            await self._compare(call, actual)

    def _left_usage(self, call: GuardedCall, left: PartialUsage) -> ProviderUsage:
        """A stream left before its end: the usage the provider reported, with the output it
        streamed counted by the model's tokenizer (at most what was held for)."""
        reported = left.reported
        streamed = 0
        if left.streamed_text:
            try:
                streamed = estimate_tokens(
                    left.streamed_text, call.model, call.provider
                ).token_count
            except Exception:
                log.exception("could not count the output streamed by %s", call.request_id)
        held = max(call.estimate.output_tokens, reported.output_tokens)
        output = min(max(reported.output_tokens, streamed), held)
        log.warning(
            "%s was left before its end: charging the %d input tokens reported and %d output "
            "tokens streamed",
            call.request_id,
            reported.input_tokens,
            output,
        )
        if output == reported.output_tokens:
            return reported
        return replace(reported, output_tokens=max(output, reported.reasoning_tokens))

    def _usdc_per_unit(self, currency: str) -> Decimal:
        if currency in ("USDC", "USD"):
            return Decimal(1)
        rates = getattr(self.pricing_engine, "exchange_rates", None)
        if rates is None:
            raise MissingPricingError(f"no exchange rate to convert {currency} prices to USDC")
        return to_usdc(rates, currency)

    async def release_call(self, call: GuardedCall) -> None:
        """Free the hold without charging: the provider refused the request, nothing was used.

        A hold that already expired has nothing left to free.
        """
        if call.finished:
            return
        try:
            await self.backend.release(
                call.reservation.reservation_id, idempotency_key=f"guard:{call.call_id}:release"
            )
        except ReservationResolvedError as exc:
            log.warning("the hold of %s was already resolved: %s", call.request_id, exc.detail)
        call.released = True

    async def _compare(self, call: GuardedCall, actual: Decimal) -> None:
        try:
            anomaly = await self.pricing_engine.detect_cost_anomaly(
                call.request_id, call.provider, call.model, call.expected_cost, actual
            )
        except Exception:
            log.exception("cost anomaly check failed for %s", call.request_id)
            return
        call.anomaly = anomaly
        level = REPORTED.get(anomaly.severity)
        # A worst-case hold is meant to be above the cost: coming in under it is news only
        # when the caller said what it expected.
        if level is None or (
            anomaly.direction is not AnomalyDirection.OVER and not call.expected_given
        ):
            return
        if self.on_anomaly is not None:
            isolated(self.on_anomaly, anomaly)
        if self.monitor is not None:
            await deliver_alert(
                self.monitor, anomaly_alert(self.user_id, self.project_id, call, anomaly, level)
            )

    # -- background settlement (streams dropped without being closed) ---------------------

    def settle_later(
        self,
        call: GuardedCall,
        usage: ProviderUsage | PartialUsage | None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Settle from a finalizer, without blocking it.

        An async stream settles on the loop it was read on (its backend's loop); a sync one
        on the portal. If that loop is gone, it is settled when the process exits (see
        ``at_exit.py``), and the ledger expires its hold meanwhile once its TTL is past.
        """
        if loop is None:
            self._track(self.portal.submit(self.finish_call(call, usage)))
            return
        if loop.is_closed():
            log.warning("loop closed; %s is settled at exit", call.request_id)
            at_exit.defer(self, call, usage)
            return

        def _start() -> None:
            self._track(loop.create_task(self.finish_call(call, usage)))

        loop.call_soon_threadsafe(_start)

    def _track(self, future: concurrent.futures.Future[Any] | asyncio.Future[Any]) -> None:
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait until settlements started in the background (dropped streams) are done."""
        await asyncio.sleep(0)
        while self._pending:
            batch = list(self._pending)
            await asyncio.gather(
                *(f if isinstance(f, asyncio.Future) else asyncio.wrap_future(f) for f in batch),
                return_exceptions=True,
            )
            self._pending.difference_update(batch)
