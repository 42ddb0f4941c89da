"""Workload replay: what a period's real usage would have cost on other models.

The ledger groups the period's usage entries by recorded model, UTC minute and usage in
every dimension (:class:`~smartspace_budget.models.replay.UsageShape`, one grouped
statement). Each group is priced on each target at the price version and time-of-day
window in force at its minute, and each call is rounded as a charge is (the provider price
to nano-USDC half-even, then the platform fee on it), so re-pricing a period on the models
it really used gives back what was charged, to the nano-dollar.

Speed: within one price version, time-of-day window and long-context tier, a call's exact
price is linear in its counts (each unit is charged once at the most specific price the
version has for it: :func:`~smartspace_budget.pricing.cost.exact_cost`). So for each such
(version, window, tier, dimensions used) we ask :func:`exact_cost` once per dimension for
its exact marginal price, kept as integer numerators over a common denominator, and a
group then costs a few integer multiplications: a month of a million calls replays in
seconds however varied its usage is. Usage that is not linear (per-second prices with a
minimum, per-character prices) is priced by :func:`exact_cost` for each distinct usage.

A target cannot serve a call whose input exceeds its context window (``max_input_tokens``),
whose output exceeds its output limit, that used audio or video (input or output) or
produced images without the target pricing that modality (the catalog's only sign of
support; a model is always taken to serve what it really served), that used something the
target has no price for (a web search), or that a per-character or per-second target
cannot price from tokens. Those calls are counted by reason and left out of the target's
total, and ``difference`` compares the total with what the *served* calls were charged.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from smartspace_budget.errors import InvalidInputError, SmartspaceBudgetError
from smartspace_budget.models import PricingData, PricingModel
from smartspace_budget.models.dimensions import DIMENSIONS, NESTS_IN, Usage
from smartspace_budget.models.ids import id_problem
from smartspace_budget.models.replay import (
    LINEAR_COLUMNS,
    LinearCase,
    LinearPricing,
    LinearTotals,
    ReplayReport,
    ReplayTarget,
    UsageShape,
)
from smartspace_budget.money import from_nano
from smartspace_budget.pricing.cost import exact_cost, tier_for, unit_prices

__all__ = [
    "LinearTotalsSource",
    "UsageShapeSource",
    "add_linear",
    "linear_pricing",
    "parse_target",
    "replay_shapes",
]

_NANO = 10**9
_MODALITIES = frozenset(
    {
        "input_audio_tokens",
        "cached_input_audio_tokens",
        "input_video_tokens",
        "output_audio_tokens",
        "output_image_tokens",
        "output_video_tokens",
    }
)
"""Usage that needs the target to support a modality (image *input* is billed as input
tokens by most vision models, so it needs no price of its own)."""


@runtime_checkable
class UsageShapeSource(Protocol):
    """A backend that groups recorded usage (``LocalBackend``, ``HttpBackend``)."""

    async def get_usage_shapes(
        self, user_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[UsageShape]: ...


def parse_target(target: object) -> tuple[str, str]:
    """``"provider/model"`` (split at the first ``/``: a provider holds none, a model may)
    or a ``(provider, model)`` pair, each part in the id grammar (:mod:`..models.ids`) and
    taken exactly as written: ``" openai"`` is refused, never read as ``"openai"``."""
    parts: tuple[object, object] | None = None
    if isinstance(target, str):
        provider, slash, model = target.partition("/")
        if slash:
            parts = (provider, model)
    elif isinstance(target, tuple | list) and len(target) == 2:
        parts = (target[0], target[1])
    if parts is not None and all(isinstance(part, str) for part in parts):
        provider, model = str(parts[0]), str(parts[1])
        for name, value in (("provider", provider), ("model", model)):
            problem = id_problem(value)
            if problem is not None:
                raise InvalidInputError(
                    f"target {target!r:.80}: its {name} {problem}", field="target"
                )
        return provider, model
    raise InvalidInputError(
        f"a target is 'provider/model' or a (provider, model) pair: {target!r:.80}",
        field="target",
    )


def _half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-even (``denominator`` > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


@dataclass(slots=True)
class _Linear:
    """The exact price of a usage as ``sum(numerators[i] * counts[i]) / denominator`` USDC,
    the counts of the dimensions the card was made for, in the same order."""

    numerators: tuple[int, ...]
    denominator: int


@dataclass(slots=True)
class _Target:
    """One target being priced: its versions, memos and running totals."""

    provider: str
    model: str
    versions: list[PricingData]
    starts: list[datetime]
    fee: Fraction
    usdc: Fraction
    prices: dict[tuple[Any, ...], _Linear | str] = field(default_factory=dict)
    exact: dict[tuple[Any, ...], tuple[int, int] | str] = field(default_factory=dict)
    windows: dict[tuple[int, int], tuple[Any, tuple[int, ...]]] = field(default_factory=dict)
    minutes: dict[datetime, tuple[int, PricingData, Any, tuple[int, ...]] | None] = field(
        default_factory=dict
    )
    total_nano: int = 0
    base_nano: int = 0
    served: int = 0
    charged_served: int = 0
    unserved: dict[str, int] = field(default_factory=dict)
    charged_unserved: int = 0

    def version_at(self, instant: datetime) -> tuple[int, PricingData] | None:
        index = bisect.bisect_right(self.starts, instant)
        return None if index == 0 else (index - 1, self.versions[index - 1])

    def charge_nano(self, numerator: int, denominator: int) -> tuple[int, int]:
        """A call whose exact price is ``numerator / denominator`` USDC, charged as the guard
        settles it: (base, base + fee) in nano-USDC, each rounded half-even."""
        base_nano = _half_even(numerator * _NANO, denominator)
        fee = _half_even(base_nano * self.fee.numerator, self.fee.denominator * 100)
        return base_nano, base_nano + fee


def _ancestors(name: str) -> frozenset[str]:
    return NESTS_IN[name]


def _linear(
    pricing: PricingData, usage: Usage, dims: tuple[str, ...], at: datetime, usdc: Fraction
) -> _Linear:
    """The marginal exact price of each dimension ``usage`` uses (``dims``), at its
    version, window and tier, each asked of :func:`exact_cost` (differences of two valid
    usages)."""
    tier = tier_for(pricing.prices_at(at).tiers, usage.input_tokens)
    base_input = 0 if tier is None else tier.min_input_tokens
    anchor: dict[str, Any] = {"input_tokens": base_input, "request_count": 0}

    def price(extra: Iterable[str]) -> Fraction:
        counts = dict(anchor)
        for name in extra:
            counts[name] = counts.get(name, 0) + 1
        return Fraction(exact_cost(pricing, Usage.of(**counts), at=at).total) * usdc

    zero = price(())
    coefficients: dict[str, Fraction] = {}
    for name in dims:
        parents = _ancestors(name)
        without = price(parents) if parents else zero
        coefficients[name] = price((*parents, name)) - without
    # The anchor (the tier's first input token count) only keeps every usage asked in the
    # call's tier: the price is linear through zero there, so the differences are exact.
    denominator = math.lcm(*(c.denominator for c in coefficients.values())) if coefficients else 1
    return _Linear(
        tuple(
            coefficients[name].numerator * (denominator // coefficients[name].denominator)
            for name in dims
        ),
        denominator,
    )


def _over_limits(pricing: PricingData, usage: Usage) -> str | None:
    if pricing.max_input_tokens is not None and usage.input_tokens > pricing.max_input_tokens:
        return "context window"
    if pricing.max_output_tokens is not None and usage.output_tokens > pricing.max_output_tokens:
        return "output limit"
    return None


def _why_unserved(
    pricing: PricingData, shape: UsageShape, usage: Usage, at: datetime, own: bool
) -> str | None:
    """Why ``pricing``'s model cannot serve calls like ``shape`` (``None``: it can)."""
    limit = _over_limits(pricing, usage)
    if limit is not None:
        return limit
    if pricing.pricing_model in (PricingModel.PER_CHARACTER, PricingModel.PER_SECOND) and (
        (pricing.pricing_model is PricingModel.PER_CHARACTER and usage.characters is None)
        or (pricing.pricing_model is PricingModel.PER_SECOND and usage.seconds is None)
    ):
        return "pricing model"
    prices = unit_prices(pricing, usage, at)
    if not own:
        for name, _ in usage.nonzero():
            if name in _MODALITIES and name not in prices:
                return f"modality: {name}"
    try:
        exact = exact_cost(pricing, usage, at=at)
    except SmartspaceBudgetError:
        return "pricing model"
    if exact.unpriced:
        return f"unpriced: {exact.unpriced[0][0]}"
    return None


@dataclass(slots=True)
class _Call:
    """One usage shape, prepared once for every target: its usage and non-zero counts."""

    shape: UsageShape
    usage: Usage
    dims: tuple[str, ...]
    values: tuple[int, ...]
    linear: bool


_ORDER = tuple(d.field for d in DIMENSIONS)


def _prepare(shape: UsageShape) -> _Call:
    counts = shape.counts()
    usage = Usage(**counts)
    dims = tuple(name for name in _ORDER if counts.get(name))
    linear = usage.seconds is None and usage.characters is None
    return _Call(shape, usage, dims, tuple(counts[n] for n in dims) if linear else (), linear)


def _at_minute(
    target: _Target, minute: datetime
) -> tuple[int, PricingData, Any, tuple[int, ...]] | None:
    """The version, window and the window's tier starts in force at ``minute`` (memoized)."""
    if minute in target.minutes:
        return target.minutes[minute]
    found = target.version_at(minute)
    answer = None
    if found is not None:
        index, pricing = found
        key = (index, minute.hour * 60 + minute.minute)
        known = target.windows.get(key)
        if known is None:
            window = pricing.prices_at(minute)
            starts = tuple(sorted(t.min_input_tokens for t in window.tiers or ()))
            known = target.windows[key] = (window, starts)
        answer = (index, pricing, known[0], known[1])
    if len(target.minutes) > 200_000:
        target.minutes.clear()
    target.minutes[minute] = answer
    return answer


def _price_group(target: _Target, call: _Call) -> tuple[int, int] | str:
    """One call of ``call``'s shape on ``target``: its (base, charge) in nano-USDC, or why
    it cannot be served."""
    shape, usage = call.shape, call.usage
    found = _at_minute(target, shape.minute)
    if found is None:
        return "no price in force"
    index, pricing, window, starts = found
    own = (shape.provider, shape.model) == (target.provider, target.model) or (
        shape.provider == pricing.provider and shape.model == pricing.model_name
    )
    if not call.linear:
        key = (index, id(window), own, shape.key())
        known_exact = target.exact.get(key)
        if known_exact is None:
            reason = _why_unserved(pricing, shape, usage, shape.minute, own)
            if reason is None:
                total = Fraction(exact_cost(pricing, usage, at=shape.minute).total) * target.usdc
                known_exact = target.charge_nano(total.numerator, total.denominator)
            else:
                known_exact = reason
            target.exact[key] = known_exact
        return known_exact
    limit = _over_limits(pricing, usage)
    if limit is not None:  # limits depend on the counts: checked before the shared card
        return limit
    tier = bisect.bisect_right(starts, usage.input_tokens) if starts else 0
    card_key = (index, id(window), tier, call.dims, own)
    card = target.prices.get(card_key)
    if card is None:
        reason = _why_unserved(pricing, shape, usage, shape.minute, own)
        card = (
            reason
            if reason is not None
            else _linear(pricing, usage, call.dims, shape.minute, target.usdc)
        )
        target.prices[card_key] = card
    if isinstance(card, str):
        return card
    numerator = sum(map(operator.mul, card.numerators, call.values))
    return target.charge_nano(numerator, card.denominator)


def replay_shapes(
    shapes: Sequence[UsageShape],
    targets: Sequence[tuple[str, str, list[PricingData] | Exception]],
    *,
    recorded: dict[tuple[str, str], list[PricingData] | Exception],
    fee_percent: Decimal,
    usdc_per_unit: dict[str, Decimal],
    user_id: str,
    project_id: str,
    start: datetime,
    end: datetime,
    model_counts: Sequence[tuple[str, str, int, int, int]] | None = None,
) -> ReplayReport:
    """Price ``shapes`` on each target (its price versions, oldest first, or the error that
    kept them from being read), and each on its own model (``recorded``: the versions of
    every model the shapes name), and report (see the module docstring)."""
    fee = Fraction(fee_percent)

    def target_of(
        provider: str, model: str, versions: list[PricingData] | Exception
    ) -> _Target | tuple[str, str, Exception]:
        if isinstance(versions, Exception):
            return (provider, model, versions)
        currency = versions[0].price_currency if versions else "USDC"
        return _Target(
            provider,
            model,
            versions,
            [v.effective_date for v in versions],
            fee,
            Fraction(usdc_per_unit.get(currency, Decimal(1))),
        )

    priced = [target_of(provider, model, versions) for provider, model, versions in targets]
    own = {key: target_of(*key, versions) for key, versions in recorded.items()}
    as_recorded = _Target("*", "*", [], [], fee, Fraction(1))
    calls = charged = estimated = 0
    by_model: dict[str, int] = {}
    prepared: dict[tuple[Any, ...], _Call] = {}
    for shape in shapes:
        charged_nano = int(shape.charged * _NANO)
        calls += shape.calls
        charged += charged_nano
        estimated += shape.estimated_calls
        name = f"{shape.provider}/{shape.model}"
        by_model[name] = by_model.get(name, 0) + shape.calls
        known = prepared.get(shape.key())
        if known is None:
            call = _prepare(shape)
            if len(prepared) > 200_000:
                prepared.clear()
            prepared[shape.key()] = call
        else:
            call = _Call(shape, known.usage, known.dims, known.values, known.linear)
        for target in priced:
            if isinstance(target, _Target):
                _add(target, shape, charged_nano, _price_group(target, call))
        mine = own.get((shape.provider, shape.model))
        _add(
            as_recorded,
            shape,
            charged_nano,
            "unknown model" if not isinstance(mine, _Target) else _price_group(mine, call),
        )
    if model_counts is not None:  # the shapes are part of the usage: count it all
        calls = sum(row[2] for row in model_counts)
        charged = sum(row[3] for row in model_counts)
        estimated = sum(row[4] for row in model_counts)
        by_model = {f"{p}/{m}": n for p, m, n, _, _ in model_counts}
    results = []
    for target in priced:
        if not isinstance(target, _Target):
            provider, model, error = target
            results.append(
                ReplayTarget(
                    provider=provider,
                    model=model,
                    calls_unserved=calls,
                    unserved={"unknown model": calls} if calls else {},
                    charged_for_unserved=from_nano(charged),
                    error=str(error),
                )
            )
            continue
        results.append(_result(target))
    recorded_result = _result(as_recorded)
    complete = [r for r in results if r.error is None and r.calls_unserved == 0]
    cheapest = min(complete, key=lambda r: r.total_cost).name if complete else None
    return ReplayReport(
        user_id=user_id,
        project_id=project_id,
        period_start=start,
        period_end=end,
        calls=calls,
        charged=from_nano(charged),
        estimated_calls=estimated,
        groups=len(shapes),
        by_model=by_model,
        targets=results,
        cheapest=cheapest,
        as_recorded=recorded_result,
    )


def _add(
    target: _Target, shape: UsageShape, charged_nano: int, result: tuple[int, int] | str
) -> None:
    if isinstance(result, str):
        target.unserved[result] = target.unserved.get(result, 0) + shape.calls
        target.charged_unserved += charged_nano
    else:
        target.base_nano += result[0] * shape.calls
        target.total_nano += result[1] * shape.calls
        target.served += shape.calls
        target.charged_served += charged_nano


def _result(target: _Target) -> ReplayTarget:
    return ReplayTarget(
        provider=target.provider,
        model=target.model,
        total_cost=from_nano(target.total_nano),
        base_cost=from_nano(target.base_nano),
        calls_served=target.served,
        charged_for_served=from_nano(target.charged_served),
        difference=from_nano(target.total_nano - target.charged_served),
        calls_unserved=sum(target.unserved.values()),
        unserved=target.unserved,
        charged_for_unserved=from_nano(target.charged_unserved),
    )


# -- the linear replay in the database -------------------------------------------------------


@runtime_checkable
class LinearTotalsSource(Protocol):
    """A backend that prices plain usage in the database (``LocalBackend``)."""

    async def get_usage_by_model(
        self, user_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, int, int]]: ...

    async def get_linear_totals(
        self, user_id: str, project_id: str, start: datetime, end: datetime, pricing: LinearPricing
    ) -> LinearTotals: ...

    async def get_usage_shapes(
        self,
        user_id: str,
        project_id: str,
        start: datetime,
        end: datetime,
        *,
        include_plain: bool = True,
    ) -> list[UsageShape]: ...


_LINEAR_DIMS = (*LINEAR_COLUMNS, "request_count")
_MAX_NUMERATOR = 10**11  # times counts up to LINEAR_LIMIT (10^7), six terms fit in 63 bits
_DAY = datetime(2000, 1, 1, tzinfo=UTC)


def linear_pricing(
    versions: Sequence[PricingData],
    fee_percent: Decimal,
    usdc: Decimal,
    *,
    provider: str | None = None,
    model: str | None = None,
) -> LinearPricing | None:
    """How a target prices plain usage (token columns, one request) case by case: each
    version's time span, each time-of-day window and each long-context tier, with the
    marginal nano-USDC price of each count asked of :func:`exact_cost`. ``None`` when the
    target cannot be priced this way (a per-character or per-second price, a token
    dimension it has no price for, a price too fine for 63-bit arithmetic): its calls are
    then priced group by group."""
    rate = Fraction(usdc)
    cases: list[LinearCase] = []
    maxima = {(v.max_input_tokens, v.max_output_tokens) for v in versions}
    if len(maxima) > 1:
        return None  # limits that change between versions: priced group by group
    max_input, max_output = next(iter(maxima), (None, None))
    for index, version in enumerate(versions):
        if version.pricing_model in (PricingModel.PER_CHARACTER, PricingModel.PER_SECOND):
            return None
        start = version.effective_date
        end = versions[index + 1].effective_date if index + 1 < len(versions) else None
        sources: list[tuple[Any, datetime]] = []
        for window in reversed(version.time_of_day or ()):
            at = datetime.combine(_DAY.date(), window.start_time.replace(tzinfo=None), UTC)
            sources.append((window, at))
        plain_at = None
        for minutes in range(1440):
            candidate = _DAY + timedelta(minutes=minutes)
            if version.prices_at(candidate) is version:
                plain_at = candidate
                break
        if plain_at is not None:
            sources.append((None, plain_at))
        for window, at in sources:
            source = version.prices_at(at)
            starts = [0, *sorted(t.min_input_tokens for t in source.tiers or ())]
            for number, low in enumerate(starts):
                high = starts[number + 1] if number + 1 < len(starts) else None
                probe = Usage.of(input_tokens=max(low, 1), output_tokens=1, reasoning_tokens=1,
                                 cached_input_tokens=1, cache_write_tokens=0)  # fmt: skip
                if exact_cost(version, probe, at=at).unpriced:
                    return None
                anchor = Usage.of(input_tokens=low)
                card = _linear(version, anchor, _LINEAR_DIMS, at, rate)
                nano = [Fraction(n * _NANO, card.denominator) for n in card.numerators]
                denominator = math.lcm(*(c.denominator for c in nano))
                numerators = tuple(int(c * denominator) for c in nano)
                if max(numerators) > _MAX_NUMERATOR or denominator > _MAX_NUMERATOR:
                    return None
                cases.append(
                    LinearCase(
                        start=start,
                        end=end,
                        time_from=None if window is None else window.start_time,
                        time_to=None if window is None else window.end_time,
                        input_from=low,
                        input_to=high,
                        numerators=numerators,
                        denominator=denominator,
                    )
                )
    fee = Fraction(fee_percent)
    return LinearPricing(
        cases=tuple(cases),
        max_input=max_input,
        max_output=max_output,
        fee_numerator=fee.numerator,
        fee_denominator=fee.denominator,
        provider=provider,
        model=model,
    )


def add_linear(target: ReplayTarget, totals: LinearTotals) -> ReplayTarget:
    """``target`` with the plain usage priced in the database added."""
    unserved = dict(target.unserved)
    for reason, calls in (
        ("context window", totals.over_context),
        ("output limit", totals.over_output),
        ("no price in force", totals.unpriced),
    ):
        if calls:
            unserved[reason] = unserved.get(reason, 0) + calls
    total = int(target.total_cost * _NANO) + totals.total_nano
    charged = int(target.charged_for_served * _NANO) + totals.charged_served_nano
    return target.model_copy(
        update={
            "total_cost": from_nano(total),
            "base_cost": from_nano(int(target.base_cost * _NANO) + totals.base_nano),
            "calls_served": target.calls_served + totals.served,
            "charged_for_served": from_nano(charged),
            "difference": from_nano(total - charged),
            "calls_unserved": sum(unserved.values()),
            "unserved": unserved,
            "charged_for_unserved": from_nano(
                int(target.charged_for_unserved * _NANO)
                + totals.charged_over_nano
                + totals.charged_unpriced_nano
            ),
        }
    )
