"""The spec's PricingEngine: prices from the backend, token estimates, costs and anomalies.

The engine only reads. Prices come from any object with the backend's three pricing reads
(``get_pricing``, ``get_price_history``, ``list_models``): a ``LocalBackend``, an
``HttpBackend``, or a :class:`~smartspace_budget.prices.catalog.PriceBook` directly. Our
backends cache each price for their ``pricing_ttl`` (the spec's 5 minutes) and the engine
reads through that cache, adding none of its own: a second one would let a price go twice
as stale. Over any other reader the engine caches each (provider, model) price
``cache_ttl_seconds`` itself. Either way one fetch is in flight per key; a failed fetch is
not cached, and a backend error is raised, never replaced by a price.

Rounding: every amount is computed exactly and rounded once, half-even to nine decimal
places (nano-USDC, :func:`money.quantize`). ``base_cost`` is the rounded exact sum of input
and output cost, so ``input_cost + output_cost`` may differ from it by one nano-unit;
``platform_fee`` is the rounded fee on ``base_cost``, and ``total_cost = base_cost +
platform_fee`` exactly. Prices in another currency than USDC are converted exactly before
rounding; genai-prices' USD prices are taken as USDC at 1:1 (the default exchange rates).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from smartspace_budget.errors import (
    InconsistentInputError,
    InvalidInputError,
    SmartspaceBudgetError,
)
from smartspace_budget.models import (
    CostAnomaly,
    CostEstimate,
    CostLine,
    PricingData,
    PricingModel,
    SpendingSummary,
    TokenEstimate,
)
from smartspace_budget.models._trusted import trusted
from smartspace_budget.models.output_sketch import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_OUTPUT_QUANTILE,
    OutputEstimate,
    OutputMethod,
)
from smartspace_budget.models.pricing import MAX_HISTORY_DAYS
from smartspace_budget.models.replay import LinearPricing, LinearTotals, ReplayReport
from smartspace_budget.models.usage import MAX_TOKENS
from smartspace_budget.money import DEFAULT_CURRENCY, ExchangeRates, parse_amount, quantize
from smartspace_budget.periods import SpendingPeriod, parse_period
from smartspace_budget.prices import names
from smartspace_budget.pricing import anomaly
from smartspace_budget.pricing._quote import Quote, compile_fee, compile_quote
from smartspace_budget.pricing._rate_card import RateCard, compile_card
from smartspace_budget.pricing.cost import (
    EXACT_CONTEXT,
    ExactCost,
    Usage,
    check_limits,
    count,
    exact_cost,
    fee_percent,
    platform_fee,
    tier_for,
    to_usdc,
    unit_prices,
)
from smartspace_budget.pricing.prediction import check_quantile, predict_output
from smartspace_budget.pricing.replay import (
    LinearTotalsSource,
    UsageShapeSource,
    add_linear,
    linear_pricing,
    parse_target,
    replay_shapes,
)
from smartspace_budget.pricing.tokens import estimate_chat_text, estimate_tokens

if TYPE_CHECKING:
    from smartspace_budget.backend.cache import TTLCache

# asyncio and the backend package are imported when first needed: importing this module
# stays cheap for callers that only build estimates (see bench/pricing.py, import time).

__all__ = [
    "DEFAULT_EXPECTED_OUTPUT_TOKENS",
    "PricingEngine",
    "PricingReader",
    "ProviderComparison",
]

DEFAULT_EXPECTED_OUTPUT_TOKENS = 500
"""Output tokens assumed when the caller does not say (the spec's examples use 500)."""

# Texts longer than this are tokenized in a worker thread, off the event loop.
_THREAD_THRESHOLD_CHARS = 1 << 16

# The hot path admits the default counts by identity: CPython's ints 0 and 1 are single
# objects, so every int 0 or 1 passes and bools (False is not 0) do not. A value that
# fails the test only takes the general path, which validates it.
_ZERO = 0
_ONE = 1
_DEFAULT_OUTPUT = DEFAULT_EXPECTED_OUTPUT_TOKENS


class PricingReader(Protocol):
    """The pricing reads of the ``Backend`` protocol, all the engine needs."""

    async def get_pricing(
        self, provider: str, model: str, *, at: datetime | None = None
    ) -> PricingData: ...

    async def get_price_history(
        self, provider: str, model: str, *, days: int | None = None
    ) -> list[PricingData]: ...

    async def list_models(self, provider: str | None = None) -> list[tuple[str, str]]: ...


def _default_backend() -> PricingReader:
    """The configured backend (``SMARTSPACE_BUDGET_*``): the embedded ledger's price book
    (genai-prices plus stored overrides) by default, opened on first use."""
    from smartspace_budget.backend import default_backend

    return default_backend()


@runtime_checkable
class _SpendingReader(Protocol):
    async def get_spending(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod,
        *,
        at: datetime | None = None,
    ) -> SpendingSummary: ...


class ProviderComparison(dict[str, CostEstimate]):
    """Estimates by ``"provider/model"``, in the order asked; pairs that failed are in
    :attr:`failures` (the typed error, e.g. ``UnknownModelError``) instead of failing the rest.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, Exception] = {}

    def cheapest(self) -> tuple[str, CostEstimate] | None:
        """The pair with the lowest ``total_cost`` (first asked wins a tie), if any succeeded."""
        if not self:
            return None
        return min(self.items(), key=lambda item: item[1].total_cost)


class PricingEngine:
    """Prices, token estimates, cost estimates and cost anomalies (see the module docstring).

    ``backend`` is any :class:`PricingReader` (``None``: the embedded default).
    ``platform_fee_percent`` is added to every estimate (0-100, default 5).
    ``exchange_rates`` converts estimates to other currencies (USDC and USD 1:1 by default).
    ``cache_ttl_seconds`` and ``clock`` (monotonic seconds) apply to the engine's own price
    cache, used only over a reader that does not cache prices itself (see the module
    docstring).
    """

    def __init__(
        self,
        backend: PricingReader | None = None,
        *,
        platform_fee_percent: Decimal = Decimal("5"),
        exchange_rates: ExchangeRates | None = None,
        cache_ttl_seconds: float = 300,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.backend: PricingReader = backend if backend is not None else _default_backend()
        self.platform_fee_percent = fee_percent(platform_fee_percent)
        self.exchange_rates = exchange_rates if exchange_rates is not None else ExchangeRates()
        if isinstance(cache_ttl_seconds, bool) or not isinstance(cache_ttl_seconds, int | float):
            raise InvalidInputError("cache_ttl_seconds must be a number of seconds")
        if cache_ttl_seconds < 0:
            raise InvalidInputError(f"cache_ttl_seconds must not be negative: {cache_ttl_seconds}")
        from smartspace_budget.backend.cache import TTLCache

        self._keys: dict[tuple[str, str], str] = {}
        self._quotes: dict[tuple[str, str], Quote] = {}
        self._unquoted: dict[tuple[str, str], PricingData] = {}
        self._cards: dict[tuple[int, int, int], tuple[PricingData, RateCard | None]] = {}
        self._fee = compile_fee(self.platform_fee_percent)
        self._prices: TTLCache[PricingData] = TTLCache(
            float(cache_ttl_seconds), clock=clock if clock is not None else time.monotonic
        )
        from smartspace_budget.backend._cached import CachedReads

        # A backend that caches prices itself is the only cache (DESIGN.md: "the engine adds
        # no second cache"); the engine peeks into it on the hot path.
        self._shared: CachedReads | None = (
            self.backend if isinstance(self.backend, CachedReads) else None
        )
        self._peek: Callable[[str], PricingData | None] = (
            self._prices.peek if self._shared is None else self._shared.peek_pricing
        )

    # -- prices ----------------------------------------------------------------------------

    def _cached(self, provider: str, model: str) -> PricingData | None:
        """The cached price version if fresh, without a coroutine (the hot path)."""
        key = self._keys.get((provider, model)) if _names(provider, model) else None
        return None if key is None else self._peek(key)

    async def _pricing(self, provider: str, model: str) -> PricingData:
        """The cached price version (shared: never handed out without a copy)."""
        key = self._keys.get((provider, model)) if _names(provider, model) else None
        if key is None:
            key = names.normalize(provider, what="provider") + "\x1f"
            key += names.normalize(model, what="model")
            if self._shared is not None:
                key = self._shared.pricing_key(provider, model)
            if len(self._keys) >= 10_000:  # names come from callers: keep the memo bounded
                self._keys.clear()
            self._keys[(provider, model)] = key
        cached = self._peek(key)
        if cached is not None:
            return cached
        if self._shared is not None:
            return await self._shared.get_pricing(provider, model)
        return await self._prices.get_or_fetch(
            key, lambda: self.backend.get_pricing(provider, model)
        )

    async def get_provider_pricing(self, provider: str, model: str) -> PricingData:
        """The price version in force now (cached 5 minutes; see the module docstring).

        Raises :class:`UnknownProviderError`, :class:`UnknownModelError`,
        :class:`MissingPricingError`, or the backend's :class:`BackendError`.
        """
        return (await self._pricing(provider, model)).model_copy(deep=True)

    async def get_price_history(
        self, provider: str, model: str, days: int | None = 30
    ) -> list[PricingData]:
        """Price versions in force during the last ``days`` days (all when ``None``).

        ``days`` is 0 (the version in force now, and any scheduled) to
        :data:`~smartspace_budget.models.pricing.MAX_HISTORY_DAYS`, as over HTTP.
        """
        if days is not None:
            days = count(days, "days")
            if days > MAX_HISTORY_DAYS:
                raise InvalidInputError(
                    f"days must be at most {MAX_HISTORY_DAYS}, got {days}", field="days"
                )
        return await self.backend.get_price_history(provider, model, days=days)

    def invalidate(self) -> None:
        """Forget cached prices (after an operator changed one in this process), the
        backend's too when it is the one caching them."""
        self._quotes.clear()
        self._unquoted.clear()
        self._cards.clear()
        self._prices.invalidate()
        if self._shared is not None:
            self._shared.invalidate_pricing()

    # -- tokens ----------------------------------------------------------------------------

    async def estimate_tokens(
        self, text: str | Sequence[Mapping[str, Any]], model: str, *, provider: str | None = None
    ) -> TokenEstimate:
        """Tokens of ``text`` or chat messages for ``model`` (see :mod:`.tokens`).

        Long inputs are tokenized in a worker thread so the event loop keeps running.
        """
        if _size(text) > _THREAD_THRESHOLD_CHARS:
            import asyncio

            return await asyncio.to_thread(estimate_tokens, text, model, provider)
        return estimate_tokens(text, model, provider)

    # -- costs -----------------------------------------------------------------------------

    async def estimate_cost(
        self,
        provider: str,
        model: str,
        input_text: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        input_tokens: int | None = None,
        expected_output_tokens: int | None = None,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        currency: str = DEFAULT_CURRENCY,
        request_count: int = 1,
        seconds: Decimal | int | str | None = None,
        characters: int | None = None,
        usage: Usage | Mapping[str, Any] | None = None,
        at: datetime | None = None,
        as_chat: bool = True,
        user_id: str | None = None,
        project_id: str | None = None,
        output_quantile: Decimal | float | str = DEFAULT_OUTPUT_QUANTILE,
        min_output_samples: int = DEFAULT_MIN_SAMPLES,
        streamed_output_tokens: int = 0,
    ) -> CostEstimate:
        """The cost of one request before it is made, with the platform fee.

        Input is ``input_text``, ``messages`` or a known ``input_tokens`` (at most one; none
        means no input). ``cached_input_tokens`` / ``cache_write_tokens`` are part of the
        input priced at the cache prices. ``request_count``, ``seconds`` and ``characters``
        feed per-request, per-second and per-character prices (characters default to the
        input's). ``usage`` adds any other dimension of the usage model (one-hour cache
        writes, audio/image/video tokens, reasoning, web searches, pages...; see
        :mod:`smartspace_budget.models.dimensions`), as a :class:`Usage` or a mapping of
        dimension to count; a dimension may come from ``usage`` or from its argument, not
        both. ``at`` prices the call at that instant (the price version and time-of-day
        window in force then; now by default). The estimate's ``line_items`` itemize every
        dimension charged, and ``unpriced`` names used dimensions no price covers.

        ``input_text`` is counted as a one-message chat (``role: user``: the text plus the
        chat formatting tokens, as the guard counts such a call); ``as_chat=False`` counts
        the bare text (a completion-style prompt, a text for an embedding model).

        Output: ``expected_output_tokens`` when given. Otherwise, for an account
        (``user_id`` and ``project_id``) on a backend that keeps output history, the
        ``output_quantile`` (p95 by default) of the output of its past calls to this model
        (else its project's, else every account's; see :mod:`.prediction`) once there are
        ``min_output_samples`` of them, never less than ``streamed_output_tokens`` nor more
        than the model's output limit; else the default of 500 tokens. The estimate's
        ``output_estimate`` then says which, from how many calls, with what confidence.

        Raises :class:`InvalidInputError` for bad counts,
        :class:`ContextLimitExceededError` past the model's limits, the pricing errors for
        unknown names, and :class:`UnknownCurrencyError` for an unconfigured currency.
        """
        if expected_output_tokens is None:
            if user_id is None and project_id is None and streamed_output_tokens is _ZERO:
                expected_output_tokens = _DEFAULT_OUTPUT
            else:
                return await self._estimate_predicted(
                    provider,
                    model,
                    user_id,
                    project_id,
                    check_quantile(output_quantile),
                    count(min_output_samples, "min_output_samples", at_least=1),
                    count(streamed_output_tokens, "streamed_output_tokens"),
                    {
                        "input_text": input_text,
                        "messages": messages,
                        "input_tokens": input_tokens,
                        "cached_input_tokens": cached_input_tokens,
                        "cache_write_tokens": cache_write_tokens,
                        "currency": currency,
                        "request_count": request_count,
                        "seconds": seconds,
                        "characters": characters,
                        "usage": usage,
                        "at": at,
                        "as_chat": as_chat,
                    },
                )
        quote = (
            self._quotes.get((provider, model))
            if type(provider) is str and type(model) is str
            else None
        )
        fee = self._fee
        # Hot path: a token-priced model in USDC whose price is cached and fresh, plain token
        # input, no cache tokens, one request, the fee the engine compiled. It gives what the
        # general path gives (tested against it); anything it does not cover, including
        # every error, goes there.
        if (
            quote is not None
            and fee is not None
            and fee.percent is self.platform_fee_percent
            and messages is None
            and seconds is None
            and characters is None
            and usage is None
            and at is None
            and currency == DEFAULT_CURRENCY
            and request_count is _ONE
            and type(as_chat) is bool
            and cached_input_tokens is _ZERO
            and cache_write_tokens is _ZERO
            and type(expected_output_tokens) is int
            and 0 <= expected_output_tokens <= MAX_TOKENS
            and self._peek(quote.key) is quote.pricing
        ):
            token_estimate = None
            tokens = -1
            if input_tokens is None:
                if input_text is None:
                    tokens = 0
                elif type(input_text) is str and len(input_text) <= _THREAD_THRESHOLD_CHARS:
                    token_estimate = (
                        estimate_chat_text(input_text, model, quote.provider)
                        if as_chat
                        else estimate_tokens(input_text, model, quote.provider)
                    )
                    tokens = token_estimate.token_count
            elif (
                input_text is None and type(input_tokens) is int and 0 <= input_tokens <= MAX_TOKENS
            ):
                tokens = input_tokens
            if 0 <= tokens < quote.tier_start:
                output = expected_output_tokens
                if (
                    tokens > quote.max_input
                    or output > quote.max_output
                    or tokens + output > quote.context_window
                ):
                    check_limits(quote.pricing, tokens, output)
                return quote.estimate(fee, tokens, output, token_estimate)
        if (
            type(usage) is Usage
            and fee is not None
            and fee.percent is self.platform_fee_percent
            and input_text is None
            and messages is None
            and input_tokens is None
            and expected_output_tokens is _DEFAULT_OUTPUT
            and cached_input_tokens is _ZERO
            and cache_write_tokens is _ZERO
            and request_count is _ONE
            and seconds is None
            and characters is None
            and at is None
            and currency == DEFAULT_CURRENCY
        ):
            # A whole usage at a cached price: the version's compiled rate card answers.
            pricing = self._cached(provider, model)
            if pricing is not None:
                now = datetime.now(UTC)
                card = self._card(pricing, usage, now)
                if card is not None:
                    check_limits(pricing, usage.input_tokens, usage.output_tokens)
                    estimate = card.estimate(usage, fee, None, now)
                    if estimate is not None:
                        return estimate
        return await self._estimate_general(
            provider,
            model,
            input_text,
            messages,
            input_tokens,
            expected_output_tokens,
            cached_input_tokens,
            cache_write_tokens,
            currency,
            request_count,
            seconds,
            characters,
            usage,
            at,
            as_chat,
        )

    async def _estimate_predicted(
        self,
        provider: str,
        model: str,
        user_id: str | None,
        project_id: str | None,
        quantile: Decimal,
        min_samples: int,
        streamed: int,
        arguments: dict[str, Any],
    ) -> CostEstimate:
        """:meth:`estimate_cost` without an output size: predicted from the account's
        history when there is enough of it, else the default (see :mod:`.prediction`)."""
        if user_id is None or project_id is None:
            raise InvalidInputError("an output prediction needs both user_id and project_id")
        pricing = self._cached(provider, model) or await self._pricing(provider, model)
        predicted, history = await predict_output(
            self.backend,
            user_id,
            project_id,
            pricing.provider,
            pricing.model_name,
            quantile=quantile,
            min_samples=min_samples,
            floor_tokens=streamed,
        )
        if predicted is not None:
            if pricing.max_output_tokens is not None and predicted.tokens > max(
                pricing.max_output_tokens, streamed
            ):
                predicted = predicted.model_copy(
                    update={"tokens": max(pricing.max_output_tokens, streamed)}
                )
            output_estimate = predicted
        else:
            samples = 0 if history is None else history.samples
            output_estimate = OutputEstimate(
                method=OutputMethod.DEFAULT,
                tokens=max(DEFAULT_EXPECTED_OUTPUT_TOKENS, streamed),
                confidence=0.5,
                samples=samples,
                floor_tokens=streamed or None,
                note=(
                    "the backend keeps no output history"
                    if history is None
                    else f"{samples} recorded call(s) of this model, fewer than "
                    f"{min_samples}; the default of {DEFAULT_EXPECTED_OUTPUT_TOKENS} tokens"
                ),
            )
        estimate = await self.estimate_cost(
            provider, model, expected_output_tokens=output_estimate.tokens, **arguments
        )
        return estimate.model_copy(update={"output_estimate": output_estimate})

    async def _estimate_general(
        self,
        provider: str,
        model: str,
        input_text: str | None,
        messages: Sequence[Mapping[str, Any]] | None,
        input_tokens: int | None,
        expected_output_tokens: int,
        cached_input_tokens: int,
        cache_write_tokens: int,
        currency: str,
        request_count: int,
        seconds: Decimal | int | str | None,
        characters: int | None,
        usage: Usage | Mapping[str, Any] | None,
        at: datetime | None,
        as_chat: bool = True,
    ) -> CostEstimate:
        """Every case of :meth:`estimate_cost`, validating each argument."""
        if type(as_chat) is not bool:
            raise InvalidInputError(
                f"as_chat must be True or False, not {as_chat!r}", field="as_chat"
            )
        if (input_text is not None) + (messages is not None) + (input_tokens is not None) > 1:
            given = [n for n, v in (("input_text", input_text), ("messages", messages),
                                    ("input_tokens", input_tokens)) if v is not None]  # fmt: skip
            raise InvalidInputError(f"pass only one of {', '.join(given)}")
        if input_text is not None and not isinstance(input_text, str):
            raise InvalidInputError(f"input_text must be a string, not {type(input_text).__name__}")
        tokens = 0 if input_tokens is None else count(input_tokens, "input_tokens")
        output = count(expected_output_tokens, "expected_output_tokens")
        usage_seconds = (
            None if seconds is None else parse_amount(seconds, name="seconds", allow_negative=False)
        )
        chars = None if characters is None else count(characters, "characters")
        requests = count(request_count, "request_count", at_least=1)
        cached = count(cached_input_tokens, "cached_input_tokens")
        written = count(cache_write_tokens, "cache_write_tokens")
        instant = datetime.now(UTC) if at is None else _instant(at)
        if at is None:
            pricing = self._cached(provider, model) or await self._pricing(provider, model)
        else:
            pricing = await self.backend.get_pricing(provider, model, at=instant)
        token_estimate = None
        text = input_text if input_text is not None else messages
        if text is not None:
            if isinstance(text, str) and as_chat:
                if _size(text) > _THREAD_THRESHOLD_CHARS:
                    import asyncio

                    token_estimate = await asyncio.to_thread(
                        estimate_chat_text, text, model, pricing.provider
                    )
                else:
                    token_estimate = estimate_chat_text(text, model, pricing.provider)
            elif _size(text) > _THREAD_THRESHOLD_CHARS:
                token_estimate = await self.estimate_tokens(text, model, provider=pricing.provider)
            else:
                token_estimate = estimate_tokens(text, model, pricing.provider)
            tokens = token_estimate.token_count
            chars = token_estimate.character_count if chars is None else chars
        arguments = {
            "input_tokens": (tokens, input_tokens is not None or text is not None),
            "output_tokens": (output, expected_output_tokens != DEFAULT_EXPECTED_OUTPUT_TOKENS),
            "cached_input_tokens": (cached, cached != 0),
            "cache_write_tokens": (written, written != 0),
            "request_count": (requests, requests != 1),
            "characters": (chars, characters is not None),
            "seconds": (usage_seconds, usage_seconds is not None),
        }
        if isinstance(usage, Usage) and not any(e for _, e in arguments.values()):
            call = usage  # whole and already validated
        else:
            counts: dict[str, Any] = _usage_counts(usage)
            for name, (value, explicit) in arguments.items():
                if name in counts and explicit:
                    raise InvalidInputError(
                        f"{name} is given twice: as an argument and in usage", field=name
                    )
                if name not in counts or (name == "characters" and counts[name] is None):
                    counts[name] = value
            call = Usage.of(**counts)
        tokens, output = call.input_tokens, call.output_tokens
        check_limits(pricing, tokens, output)
        requests = call.request_count
        uses_requests = (
            pricing.pricing_model is PricingModel.PER_REQUEST or pricing.request_price is not None
        )
        estimate = None
        if at is None:
            self._remember(provider, model, pricing)
            card = self._card(pricing, call, instant)
            fee = self._fee
            if card is not None and fee is not None and fee.percent is self.platform_fee_percent:
                estimate = card.estimate(call, fee, token_estimate, instant)
        if estimate is None:
            exact = exact_cost(pricing, call, at=instant).scaled(
                to_usdc(self.exchange_rates, pricing.price_currency)
            )
            estimate = self._build(
                pricing,
                tokens,
                output,
                exact.input_cost,
                exact.output_cost,
                token_estimate,
                requests if uses_requests else None,
                call.seconds,
                exact,
                None if at is None else instant,
            )
        if currency != DEFAULT_CURRENCY:
            return self.convert(estimate, currency)
        return estimate

    def _build(
        self,
        pricing: PricingData,
        input_tokens: int,
        output_tokens: int,
        input_exact: Decimal,
        output_exact: Decimal,
        token_estimate: TokenEstimate | None,
        request_count: int | None,
        seconds: Decimal | None,
        exact: ExactCost,
        priced_at: datetime | None,
    ) -> CostEstimate:
        """The USDC estimate from exact (unrounded) costs: each amount rounded once."""
        base = quantize(EXACT_CONTEXT.add(input_exact, output_exact))
        lines = [
            trusted(
                CostLine,
                {
                    "dimension": name,
                    "quantity": quantity,
                    "unit_price": price,
                    "per": per,
                    "cost": quantize(cost),
                },
            )
            for name, quantity, price, per, cost in exact.lines
        ]
        fee = platform_fee(base, self.platform_fee_percent)
        # Every value has its final type and total = base + fee by construction: built
        # without re-validation (see models/_trusted.py; tests compare with the validated model).
        return trusted(
            CostEstimate,
            {
                "provider": pricing.provider,
                "model": pricing.model_name,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "input_cost": quantize(input_exact),
                "output_cost": quantize(output_exact),
                "base_cost": base,
                "platform_fee_percent": self.platform_fee_percent,
                "platform_fee": fee,
                "total_cost": EXACT_CONTEXT.add(base, fee),
                "currency": DEFAULT_CURRENCY,
                "input_token_estimate": token_estimate,
                "price_version": pricing.version,
                "exchange_rate": None,
                "request_count": request_count,
                "seconds": seconds,
                "estimated_at": datetime.now(UTC),
                "line_items": lines,
                "priced_at": priced_at,
                "unpriced": {name: Decimal(value) for name, value in exact.unpriced} or None,
                "output_estimate": None,
            },
        )

    def _card(self, pricing: PricingData, call: Usage, instant: datetime) -> RateCard | None:
        """The compiled prices of a cached version for this call's window and tier."""
        window = pricing.prices_at(instant)
        tier = tier_for(window.tiers, call.input_tokens)
        key = (id(pricing), id(window), -1 if tier is None else tier.min_input_tokens)
        known = self._cards.get(key)
        if known is not None and known[0] is pricing:
            return known[1]
        card = compile_card(pricing, unit_prices(pricing, call, instant))
        if len(self._cards) >= 10_000:
            self._cards.clear()
        self._cards[key] = (pricing, card)
        return card

    def _remember(self, provider: str, model: str, pricing: PricingData) -> None:
        """Compile what the hot path of :meth:`estimate_cost` needs for this price version
        (see :mod:`._quote`), and the fee again if ``platform_fee_percent`` was replaced."""
        if self._fee is None or self._fee.percent is not self.platform_fee_percent:
            self._fee = compile_fee(self.platform_fee_percent)
        if type(provider) is not str or type(model) is not str:
            return
        key = self._keys.get((provider, model))
        if key is None or self._peek(key) is not pricing:
            return  # not cached (ttl 0, or replaced meanwhile): nothing to keep in step with
        known = self._quotes.get((provider, model))
        if known is not None and known.pricing is pricing:
            return  # already compiled
        if self._unquoted.get((provider, model)) is pricing:
            return  # this version was tried and does not compile
        quote = compile_quote(key, pricing)
        if quote is None:
            if len(self._unquoted) >= 10_000:
                self._unquoted.clear()
            self._unquoted[(provider, model)] = pricing
            return
        if len(self._quotes) >= 10_000:
            self._quotes.clear()
        self._quotes[(provider, model)] = quote

    async def calculate_total_cost(
        self, base_cost: Decimal, platform_fee_percent: Decimal | None = None
    ) -> Decimal:
        """``base_cost`` (rounded to nine places) plus the platform fee on it.

        Uses the engine's fee unless ``platform_fee_percent`` is given; the result equals an
        estimate's ``total_cost`` for the same base cost.
        """
        base = quantize(parse_amount(base_cost, name="base_cost", allow_negative=False))
        percent = (
            self.platform_fee_percent
            if platform_fee_percent is None
            else fee_percent(platform_fee_percent)
        )
        return base + platform_fee(base, percent)

    def convert(self, estimate: CostEstimate, currency: str) -> CostEstimate:
        """The same estimate in ``currency``, with ``exchange_rate`` = units per USDC.

        Each amount is converted once from the original (see ``ExchangeRates.convert``) and
        ``total_cost`` stays ``base_cost + platform_fee``. Raises
        :class:`UnknownCurrencyError` for a currency without a rate.
        """
        if not isinstance(estimate, CostEstimate):
            raise InvalidInputError(f"convert needs a CostEstimate, not {type(estimate).__name__}")
        rates = self.exchange_rates
        target = rates.rate(currency)
        if target.currency == rates.rate(estimate.currency).currency:
            return estimate.model_copy(deep=True)

        def to_target(amount: Decimal) -> Decimal:
            return rates.convert(amount, estimate.currency, target.currency)

        base, fee = to_target(estimate.base_cost), to_target(estimate.platform_fee)
        data = estimate.model_dump()
        if estimate.line_items is not None:
            data["line_items"] = [
                {
                    **line.model_dump(),
                    "unit_price": to_target(line.unit_price),
                    "cost": to_target(line.cost),
                }
                for line in estimate.line_items
            ]
        data.update(
            input_cost=to_target(estimate.input_cost),
            output_cost=to_target(estimate.output_cost),
            base_cost=base,
            platform_fee=fee,
            total_cost=base + fee,
            currency=target.currency,
            exchange_rate=target.rate / rates.rate(DEFAULT_CURRENCY).rate,
        )
        return CostEstimate.from_data(data)

    async def compare_provider_costs(
        self,
        providers: Iterable[tuple[str, str]],
        input_tokens: int,
        output_tokens: int,
        *,
        currency: str = DEFAULT_CURRENCY,
    ) -> ProviderComparison:
        """Estimates for many (provider, model) pairs at once, keyed ``"provider/model"``.

        Pairs are priced concurrently. A pair that fails (unknown model, missing price, a
        backend error) is reported in ``result.failures`` and the others still answer; bad
        token counts or malformed pairs raise :class:`InvalidInputError` before any work.
        """
        count(input_tokens, "input_tokens")
        count(output_tokens, "output_tokens")
        pairs: dict[str, tuple[str, str]] = {}
        for pair in providers:
            if (
                not isinstance(pair, tuple | list)
                or len(pair) != 2
                or not all(isinstance(part, str) for part in pair)
            ):
                raise InvalidInputError(
                    f"each entry must be a (provider, model) pair, got {pair!r}"
                )
            pairs.setdefault(f"{pair[0]}/{pair[1]}", (pair[0], pair[1]))
        import asyncio

        results = await asyncio.gather(
            *(
                self.estimate_cost(
                    provider,
                    model,
                    input_tokens=input_tokens,
                    expected_output_tokens=output_tokens,
                    currency=currency,
                )
                for provider, model in pairs.values()
            ),
            return_exceptions=True,
        )
        comparison = ProviderComparison()
        for key, result in zip(pairs, results, strict=True):
            if isinstance(result, CostEstimate):
                comparison[key] = result
            elif isinstance(result, Exception):
                comparison.failures[key] = result
            else:
                raise result  # cancellation and other BaseExceptions are not a pair's failure
        return comparison

    # -- replay ----------------------------------------------------------------------------

    async def replay(
        self,
        user_id: str,
        project_id: str,
        period: SpendingPeriod | str | tuple[datetime, datetime] = SpendingPeriod.MONTHLY,
        targets: Iterable[str | tuple[str, str]] | None = None,
        *,
        at: datetime | None = None,
    ) -> ReplayReport:
        """What the account's real usage in ``period`` would have cost on each target.

        ``period`` is a spending period (the account's calendar window containing ``at``,
        now by default: ``("monthly", at=<a day of last month>)`` is last month) or a
        ``(start, end)`` pair of aware instants. ``targets`` are ``"provider/model"`` (or
        pairs); ``None`` re-prices on the models the period really used. Every recorded
        dimension is priced, at the price in force at each call's minute, each call rounded
        as a charge is; the report has each target's total, the difference with what the
        served calls were really charged, the calls it cannot serve and why, and the
        cheapest target that serves them all (see :mod:`.replay`). Needs a backend that
        keeps usage (``LocalBackend``, ``HttpBackend``): :class:`InvalidInputError` else.
        """
        if not isinstance(self.backend, UsageShapeSource):
            raise InvalidInputError(
                "replay needs a backend that keeps usage (LocalBackend or HttpBackend)"
            )
        if isinstance(period, tuple):
            if len(period) != 2:
                raise InvalidInputError("period is a spending period or a (start, end) pair")
            start, end = _instant(period[0]), _instant(period[1])
            if end < start:
                raise InconsistentInputError("the period's end is before its start", field="end")
        else:
            if not isinstance(self.backend, _SpendingReader):
                raise InvalidInputError("a spending period needs a backend with accounts")
            summary = await self.backend.get_spending(
                user_id, project_id, parse_period(period), at=None if at is None else _instant(at)
            )
            start, end = summary.period_start, summary.period_end
        wanted = None if targets is None else [parse_target(t) for t in targets]
        if isinstance(targets, str):
            raise InvalidInputError("targets is a list of 'provider/model'")
        import asyncio

        backend = self.backend
        fast = isinstance(backend, LinearTotalsSource)
        counts: list[tuple[str, str, int, int, int]] | None = None
        if isinstance(backend, LinearTotalsSource):
            counts = await backend.get_usage_by_model(user_id, project_id, start, end)
            used = [(provider, model) for provider, model, *_ in counts]
        else:
            shapes = await backend.get_usage_shapes(user_id, project_id, start, end)
            used = list(dict.fromkeys((shape.provider, shape.model) for shape in shapes))
        wanted = list(dict.fromkeys(used if wanted is None else wanted))
        every = list(dict.fromkeys([*wanted, *used]))
        histories = await asyncio.gather(
            *(backend.get_price_history(p, m, days=None) for p, m in every),
            return_exceptions=True,
        )
        versions: dict[tuple[str, str], list[PricingData] | Exception] = {}
        rates: dict[str, Decimal] = {}
        for pair, history in zip(every, histories, strict=True):
            if isinstance(history, SmartspaceBudgetError):
                versions[pair] = history
                continue
            if isinstance(history, BaseException):
                raise history  # a backend failure is not a target's answer
            for version in history:
                currency = version.price_currency
                if currency not in rates:
                    rates[currency] = to_usdc(self.exchange_rates, currency)
            versions[pair] = history
        # Plain usage (token columns, one request) is priced in the database when every
        # target and every recorded model can be priced linearly; the rest group by group.
        specs: dict[tuple[str, str, bool], LinearPricing] = {}
        if isinstance(backend, LinearTotalsSource):
            for pair, own in [*((p, False) for p in wanted), *((p, True) for p in used)]:
                history = versions[pair]
                if isinstance(history, Exception):
                    continue
                spec = linear_pricing(
                    history,
                    self.platform_fee_percent,
                    rates.get(history[0].price_currency, Decimal(1)) if history else Decimal(1),
                    provider=pair[0] if own else None,
                    model=pair[1] if own else None,
                )
                if spec is None:
                    fast = False
                    break
                specs[(*pair, own)] = spec
        if fast and isinstance(backend, LinearTotalsSource):
            shapes = await backend.get_usage_shapes(
                user_id, project_id, start, end, include_plain=False
            )
            keys = list(specs)
            totals = dict(
                zip(
                    keys,
                    await asyncio.gather(
                        *(
                            backend.get_linear_totals(user_id, project_id, start, end, specs[key])
                            for key in keys
                        )
                    ),
                    strict=True,
                )
            )
        elif isinstance(backend, LinearTotalsSource):
            counts = None
            shapes = await backend.get_usage_shapes(user_id, project_id, start, end)
        report = replay_shapes(
            shapes,
            [(provider, model, versions[(provider, model)]) for provider, model in wanted],
            recorded={pair: versions[pair] for pair in used},
            fee_percent=self.platform_fee_percent,
            usdc_per_unit=rates,
            user_id=user_id,
            project_id=project_id,
            start=start,
            end=end,
            model_counts=counts if fast else None,
        )
        if not fast or counts is None:
            return report
        results = [
            target
            if (target.provider, target.model, False) not in totals
            else add_linear(target, totals[(target.provider, target.model, False)])
            for target in report.targets
        ]
        recorded = report.as_recorded
        if recorded is not None:
            shaped: dict[tuple[str, str], tuple[int, int]] = {}
            for shape in shapes:
                calls, charged = shaped.get((shape.provider, shape.model), (0, 0))
                shaped[(shape.provider, shape.model)] = (
                    calls + shape.calls,
                    charged + int(shape.charged * 1_000_000_000),
                )
            for provider, model, calls, charged, _ in counts:
                own_totals = totals.get((provider, model, True))
                if own_totals is None:  # an unknown model: its plain calls cannot be priced
                    plain_calls, plain_charged = shaped.get((provider, model), (0, 0))
                    own_totals = LinearTotals(
                        0, 0, 0, 0, 0, 0, 0, calls - plain_calls, charged - plain_charged
                    )
                    recorded = add_linear(recorded, own_totals)
                    unserved = dict(recorded.unserved)
                    moved = unserved.pop("no price in force", 0)
                    if moved:
                        unserved["unknown model"] = unserved.get("unknown model", 0) + moved
                    recorded = recorded.model_copy(update={"unserved": unserved})
                    continue
                recorded = add_linear(recorded, own_totals)
        complete = [r for r in results if r.error is None and r.calls_unserved == 0]
        cheapest = min(complete, key=lambda r: r.total_cost).name if complete else None
        return report.model_copy(
            update={"targets": results, "as_recorded": recorded, "cheapest": cheapest}
        )

    # -- anomalies -------------------------------------------------------------------------

    async def detect_cost_anomaly(
        self,
        request_id: str,
        provider: str,
        model: str,
        estimated_cost: Decimal,
        actual_cost: Decimal,
    ) -> CostAnomaly:
        """Compare a request's estimated and actual cost (bands in :mod:`.anomaly`)."""
        return anomaly.detect_cost_anomaly(request_id, provider, model, estimated_cost, actual_cost)


def _usage_counts(usage: Usage | Mapping[str, Any] | None) -> dict[str, Any]:
    """The counts ``usage`` gives (only its non-zero ones for a :class:`Usage`)."""
    if usage is None:
        return {}
    if isinstance(usage, Usage):  # every dimension, zeros included: the usage is whole
        return {name: getattr(usage, name) for name in Usage.__dataclass_fields__}
    if not isinstance(usage, Mapping) or not all(isinstance(k, str) for k in usage):
        raise InvalidInputError(
            f"usage must be a Usage or a mapping of dimension to count, not {type(usage).__name__}"
        )
    return dict(usage)


def _instant(at: object) -> datetime:
    if not isinstance(at, datetime):
        raise InvalidInputError(f"at must be a datetime, not {type(at).__name__}", field="at")
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _names(provider: object, model: object) -> bool:
    """Whether both names are strings (and so can key the memos; others fail validation)."""
    return isinstance(provider, str) and isinstance(model, str)


def _size(text: object) -> int:
    if isinstance(text, str):
        return len(text)
    if isinstance(text, Sequence):
        total = 0
        for message in text:
            if not isinstance(message, Mapping):
                continue
            for value in message.values():
                if isinstance(value, str):
                    total += len(value)
                elif isinstance(value, list):
                    total += sum(
                        len(part["text"])
                        for part in value
                        if isinstance(part, Mapping) and isinstance(part.get("text"), str)
                    )
        return total
    return 0
