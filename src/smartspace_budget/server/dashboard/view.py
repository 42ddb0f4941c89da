"""Everything one dashboard page shows, gathered from the read API the CLI uses.

The page, the CSV export and the JSON export are three renderings of one
:class:`DashboardView`, so an export always holds exactly what is on screen. The view reads
only the :class:`~smartspace_budget.backend.base.Backend` protocol (plus the optional alert
and price-comparison sources), and every chart reads spending *series*, which backends serve
from hourly rollups: a year of hourly usage costs the page a few dozen buckets, not a scan of
the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from smartspace_budget.backend.base import Backend
from smartspace_budget.budgets.analysis import BURN_RATE_DAYS, Forecast, burn_rate, forecast
from smartspace_budget.errors import InvalidInputError, SmartspaceBudgetError
from smartspace_budget.models import (
    Balance,
    BudgetStatus,
    CostEstimate,
    SpendingAlert,
    SpendingAnalytics,
    SpendingBucket,
)
from smartspace_budget.models.replay import ReplayReport
from smartspace_budget.periods import SpendingPeriod, Window, previous_windows, window_containing

__all__ = [
    "AlertsSource",
    "ChartSeries",
    "Comparer",
    "Comparison",
    "DashboardView",
    "Period",
    "Replayer",
    "Workload",
    "build_view",
    "ranked_amounts",
]

AlertsSource = Callable[[str, str], Awaitable[Sequence[SpendingAlert]]]
"""``(user_id, project_id) -> recent alerts``, e.g. ``SpendingMonitor.get_active_alerts``."""

Comparer = Callable[[list[tuple[str, str]], int, int], Awaitable[Mapping[str, CostEstimate]]]
"""``(models, input_tokens, output_tokens) -> {"provider/model": estimate}``."""

Replayer = Callable[
    [str, str, tuple[datetime, datetime], list[tuple[str, str]]], Awaitable[ReplayReport]
]
"""``(user_id, project_id, (start, end), models) -> report``: ``PricingEngine.replay``."""

MAX_WORKLOAD_TOKENS = 100_000_000
MAX_COMPARED_MODELS = 12


class Period(StrEnum):
    """The switcher's choices; each picks the chart's bucket size and the breakdown window."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"

    @property
    def window_period(self) -> SpendingPeriod:
        """The calendar window the chart and the breakdowns cover."""
        return _WINDOW[self]

    @property
    def granularity(self) -> SpendingPeriod:
        """The size of one bar."""
        return _GRANULARITY[self]


_WINDOW = {
    Period.DAY: SpendingPeriod.DAILY,
    Period.WEEK: SpendingPeriod.WEEKLY,
    Period.MONTH: SpendingPeriod.MONTHLY,
    Period.YEAR: SpendingPeriod.YEARLY,
}
_GRANULARITY = {
    Period.DAY: SpendingPeriod.HOURLY,
    Period.WEEK: SpendingPeriod.DAILY,
    Period.MONTH: SpendingPeriod.DAILY,
    Period.YEAR: SpendingPeriod.MONTHLY,
}


@dataclass(frozen=True, slots=True)
class Workload:
    """The request shape the user typed in for the price comparison."""

    input_tokens: int = 1000
    output_tokens: int = 500
    models: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(
        cls, input_tokens: str | None, output_tokens: str | None, models: str | None
    ) -> Workload:
        """Read the form's fields; :class:`InvalidInputError` for anything but sane counts."""
        default = cls()
        return cls(
            input_tokens=_token_count(input_tokens, "input_tokens", default.input_tokens),
            output_tokens=_token_count(output_tokens, "output_tokens", default.output_tokens),
            models=_model_list(models),
        )


def _token_count(raw: str | None, name: str, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    text = raw.strip().replace("_", "").replace(",", "")
    if not text.isdigit():
        raise InvalidInputError(f"{name} must be a whole number of tokens, got {raw!r}")
    value = int(text)
    if value > MAX_WORKLOAD_TOKENS:
        raise InvalidInputError(f"{name} must be at most {MAX_WORKLOAD_TOKENS}, got {value}")
    return value


def _model_list(raw: str | None) -> tuple[tuple[str, str], ...]:
    if raw is None or not raw.strip():
        return ()
    pairs: list[tuple[str, str]] = []
    for item in raw.replace("\n", ",").split(","):
        text = item.strip()
        if not text:
            continue
        provider, sep, model = text.partition("/")
        if not sep or not provider.strip() or not model.strip():
            raise InvalidInputError(f"models are written provider/model, got {text!r}")
        pair = (provider.strip(), model.strip())
        if pair not in pairs:
            pairs.append(pair)
    if len(pairs) > MAX_COMPARED_MODELS:
        raise InvalidInputError(f"compare at most {MAX_COMPARED_MODELS} models at once")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """Bars of the current window beside the same window one period earlier."""

    granularity: SpendingPeriod
    current_window: Window
    previous_window: Window
    current: list[SpendingBucket]
    previous: list[SpendingBucket]
    limit: Decimal | None
    limit_name: str | None

    @property
    def bar_count(self) -> int:
        """How many bars the chart draws (empty windows included)."""
        return len(self.current) + len(self.previous)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The price comparison table, cheapest first, or the reason it could not be made."""

    workload: Workload
    models: list[tuple[str, str]]
    rows: list[CostEstimate] = field(default_factory=list)
    error: str | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    rejected_input: bool = False
    """The typed workload was refused (``error`` says why): the form shows it again, marked."""


@dataclass(frozen=True, slots=True)
class DashboardView:
    """One account's dashboard at one instant (the unit of rendering and export)."""

    user_id: str
    project_id: str
    period: Period
    timezone: str
    currency: str
    generated_at: datetime
    balance: Balance
    status: BudgetStatus
    chart: ChartSeries
    month: list[SpendingBucket]
    forecast: Forecast
    analytics: SpendingAnalytics
    alerts: list[SpendingAlert]
    comparison: Comparison
    replay: ReplayReport | None = None
    """The previous window's real usage re-priced on the comparison's models."""
    replay_error: str | None = None

    @property
    def top_provider(self) -> tuple[str, Decimal] | None:
        """The provider with the most spend in the window, if any."""
        return _top(self.analytics.spending_by_provider)

    @property
    def top_model(self) -> tuple[str, Decimal] | None:
        """The model with the most spend in the window, if any."""
        return _top(self.analytics.spending_by_model)


def _top(amounts: Mapping[str, Decimal]) -> tuple[str, Decimal] | None:
    ranked = ranked_amounts(amounts)
    return ranked[0] if ranked else None


def ranked_amounts(amounts: Mapping[str, Decimal]) -> list[tuple[str, Decimal]]:
    """Largest first; ties by name so the order never flickers between renders."""
    return sorted(amounts.items(), key=lambda item: (-item[1], item[0]))


DEFAULT_COMPARISON: tuple[tuple[str, str], ...] = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-sonnet"),
    ("anthropic", "claude-3-5-haiku"),
    ("google", "gemini-1.5-pro"),
    ("google", "gemini-1.5-flash"),
)


async def build_view(
    backend: Backend,
    user_id: str,
    project_id: str,
    *,
    period: Period = Period.MONTH,
    workload: Workload | None = None,
    alerts: AlertsSource | None = None,
    compare: Comparer | None = None,
    replay: Replayer | None = None,
    now: datetime | None = None,
) -> DashboardView:
    """Read everything the page shows, concurrently; backend errors propagate typed.

    Alerts and the price comparison are extras: when their source fails the page still
    renders and says why (the comparison) or shows none (alerts), because a dashboard that
    goes blank when the pricing catalog misses one model helps nobody.
    """
    instant = (now or datetime.now(UTC)).astimezone(UTC)
    work = workload or Workload()
    balance, status = await asyncio.gather(
        backend.get_balance(user_id, project_id),
        backend.get_budget_status(user_id, project_id),
    )
    tz = status.timezone or "UTC"
    zone = ZoneInfo(tz)
    chart_task = _chart(backend, user_id, project_id, period, status, instant, zone)
    month_window = window_containing(SpendingPeriod.MONTHLY, instant, zone)
    month_task = backend.get_spending_series(
        user_id, project_id, SpendingPeriod.DAILY, month_window.start, month_window.end
    )
    burn_start = previous_windows(SpendingPeriod.DAILY, instant, BURN_RATE_DAYS, zone)[0].start
    today = window_containing(SpendingPeriod.DAILY, instant, zone)
    burn_task = backend.get_spending_series(
        user_id, project_id, SpendingPeriod.DAILY, burn_start, today.end
    )
    analytics_task = backend.get_analytics(user_id, project_id, period.window_period, at=instant)
    chart, month, burn, analytics = await asyncio.gather(
        chart_task, month_task, burn_task, analytics_task
    )
    outlook = forecast(
        status.spent_this_month,
        month_window,
        instant,
        burn_rate(burn, instant),
        status.available_balance,
    )
    recent, comparison = await asyncio.gather(
        _alerts(alerts, user_id, project_id),
        _compare(backend, compare, work, analytics),
    )
    (last,) = previous_windows(period.window_period, instant, 1, zone)
    replayed, replay_error = await _replay(replay, user_id, project_id, last, comparison)
    return DashboardView(
        user_id=user_id,
        project_id=project_id,
        period=period,
        timezone=tz,
        currency=status.currency or balance.currency,
        generated_at=instant,
        balance=balance,
        status=status,
        chart=chart,
        month=month,
        forecast=outlook,
        analytics=analytics,
        alerts=recent,
        comparison=comparison,
        replay=replayed,
        replay_error=replay_error,
    )


async def _replay(
    source: Replayer | None,
    user_id: str,
    project_id: str,
    window: Window,
    comparison: Comparison,
) -> tuple[ReplayReport | None, str | None]:
    """The previous window replayed on the compared models, or why it is not shown."""
    if source is None:
        return None, "replay is not available on this server"
    if not comparison.models:
        return None, comparison.error or "no models to replay on"
    try:
        report = await source(
            user_id, project_id, (window.start, window.end), list(comparison.models)
        )
    except SmartspaceBudgetError as exc:
        return None, exc.detail
    return report, None


async def _chart(
    backend: Backend,
    user_id: str,
    project_id: str,
    period: Period,
    status: BudgetStatus,
    instant: datetime,
    zone: ZoneInfo,
) -> ChartSeries:
    current = window_containing(period.window_period, instant, zone)
    (previous,) = previous_windows(period.window_period, instant, 1, zone)
    current_bars, previous_bars = await asyncio.gather(
        backend.get_spending_series(
            user_id, project_id, period.granularity, current.start, current.end
        ),
        backend.get_spending_series(
            user_id, project_id, period.granularity, previous.start, previous.end
        ),
    )
    limit: Decimal | None = None
    limit_name: str | None = None
    if period.granularity is SpendingPeriod.DAILY:
        limit, limit_name = status.daily_limit, "daily limit"
    elif period.granularity is SpendingPeriod.MONTHLY:
        limit, limit_name = status.monthly_limit, "monthly limit"
    return ChartSeries(
        granularity=period.granularity,
        current_window=current,
        previous_window=previous,
        current=list(current_bars),
        previous=list(previous_bars),
        limit=limit,
        limit_name=limit_name if limit is not None else None,
    )


async def _alerts(
    source: AlertsSource | None, user_id: str, project_id: str
) -> list[SpendingAlert]:
    if source is None:
        return []
    try:
        found = await source(user_id, project_id)
    except SmartspaceBudgetError:
        return []
    return sorted(found, key=lambda alert: (alert.created_at, alert.level.rank), reverse=True)


async def _compare(
    backend: Backend,
    compare: Comparer | None,
    workload: Workload,
    analytics: SpendingAnalytics,
) -> Comparison:
    if compare is None:
        return Comparison(workload, [], error="price comparison is not available on this server")
    try:
        models = list(workload.models) or await _default_models(backend, analytics)
        if not models:
            return Comparison(workload, [], error="no priced models are known")
        estimates = await compare(models, workload.input_tokens, workload.output_tokens)
    except SmartspaceBudgetError as exc:
        return Comparison(workload, list(workload.models), error=exc.detail)
    rows = sorted(estimates.values(), key=lambda e: (e.total_cost, e.provider, e.model))
    # PricingEngine's ProviderComparison reports the pairs it could not price beside the
    # others instead of failing them all; show those reasons under the table.
    failed: Mapping[str, Exception] = getattr(estimates, "failures", None) or {}
    failures = [
        (name, exc.detail if isinstance(exc, SmartspaceBudgetError) else type(exc).__name__)
        for name, exc in failed.items()
    ]
    return Comparison(workload, models, rows=rows, failures=failures)


FIRST_PARTY = ("openai", "anthropic", "google", "mistral", "deepseek", "x-ai", "groq")
"""Providers preferred when a model name is sold by several (a model's maker, then others)."""


async def _provider_of(
    backend: Backend, model: str, known: set[tuple[str, str]], used: Sequence[str]
) -> tuple[str, str] | None:
    """The (provider, model) pair this account most likely used for ``model``.

    Spending is broken down by model name alone, and catalogs list one name under several
    resellers; the account's own providers come first (asked through the price book, which
    resolves names as users write them: ``claude-3-5-haiku`` is Anthropic's
    ``claude-3-5-haiku-latest``), then the makers, then any reseller of that exact name.
    """
    provider, sep, name = model.partition("/")
    if sep and (provider, name) in known:
        return provider, name
    for own in used:
        if (own, model) in known:
            return own, model
        try:
            await backend.get_pricing(own, model)
        except SmartspaceBudgetError:
            continue
        return own, model
    candidates = sorted(p for p, m in known if m == model)
    for preferred in FIRST_PARTY:
        if preferred in candidates:
            return preferred, model
    return (candidates[0], model) if candidates else None


async def _default_models(backend: Backend, analytics: SpendingAnalytics) -> list[tuple[str, str]]:
    """The models this account spends on, topped up with well-known ones the catalog has."""
    known = set(await backend.list_models())
    used = [name for name, _ in ranked_amounts(analytics.spending_by_provider)]
    chosen: list[tuple[str, str]] = []
    for model, _ in ranked_amounts(analytics.spending_by_model):
        pair = await _provider_of(backend, model, known, used)
        if pair is not None and pair not in chosen:
            chosen.append(pair)
    for pair in DEFAULT_COMPARISON:
        if len(chosen) >= MAX_COMPARED_MODELS // 2:
            break
        if pair in known and pair not in chosen:
            chosen.append(pair)
    return chosen[:MAX_COMPARED_MODELS]
