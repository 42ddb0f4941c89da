"""Chart geometry for the dashboard's server-rendered SVG.

The charts are drawn on the server so the first paint needs no script and no library: the
browser receives finished ``<svg>`` elements. Coordinates are computed with Decimal and
rounded to a tenth of a pixel, so no amount ever passes through a float on its way to the
page. Every mark carries its exact value and a text label; colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from smartspace_budget.budgets.analysis import Forecast
from smartspace_budget.models import SpendingBucket
from smartspace_budget.periods import SpendingPeriod

__all__ = [
    "Bar",
    "BarChart",
    "HBar",
    "LineChart",
    "Tick",
    "bar_chart",
    "bucket_label",
    "cumulative_chart",
    "horizontal_bars",
    "nice_ceiling",
    "tick_label",
]

WIDTH = Decimal(720)
HEIGHT = Decimal(260)
LEFT = Decimal(64)
RIGHT = Decimal(12)
TOP = Decimal(16)
BOTTOM = Decimal(44)
HBAR_WIDTH = Decimal(400)
HBAR_SPAN = HBAR_WIDTH - Decimal(4)
HBAR_ROW = 44
_TENTH = Decimal("0.1")
_STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


def _px(value: Decimal) -> Decimal:
    return value.quantize(_TENTH, rounding=ROUND_HALF_EVEN)


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (1 if <= 0)."""
    if value <= 0:
        return Decimal(1)
    base = Decimal(1).scaleb(value.adjusted())
    for step in _STEPS:
        if step * base >= value:
            return (step * base).normalize()
    return (Decimal(10) * base).normalize()  # pragma: no cover - _STEPS ends at 10


def bucket_label(start: datetime, granularity: SpendingPeriod, zone: ZoneInfo) -> str:
    """A bar's name in the account's timezone: ``14:00``, ``Nov 03`` or ``Nov 2026``."""
    local = start.astimezone(zone)
    if granularity is SpendingPeriod.HOURLY:
        return local.strftime("%b %d %H:00")
    if granularity is SpendingPeriod.MONTHLY:
        return local.strftime("%b %Y")
    if granularity is SpendingPeriod.YEARLY:
        return local.strftime("%Y")
    return local.strftime("%a %b %d")


def tick_label(start: datetime, granularity: SpendingPeriod, zone: ZoneInfo) -> str:
    """The short axis label under a bar: ``14:00``, ``Nov 03`` or ``Nov 26``."""
    local = start.astimezone(zone)
    if granularity is SpendingPeriod.HOURLY:
        return local.strftime("%H:00")
    if granularity is SpendingPeriod.MONTHLY:
        return local.strftime("%b %y")
    if granularity is SpendingPeriod.YEARLY:
        return local.strftime("%Y")
    return local.strftime("%b %d")


@dataclass(frozen=True, slots=True)
class Tick:
    """A horizontal grid line with its amount, and that amount as the axis writes it."""

    y: Decimal
    value: Decimal
    label: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    """One window's bar; ``series`` is ``current`` or ``previous``."""

    x: Decimal
    y: Decimal
    width: Decimal
    height: Decimal
    series: str
    label: str
    tick: str
    value: Decimal
    requests: int
    start: datetime
    over_limit: bool
    show_label: bool
    dense: bool = False
    """An axis label that a narrow screen leaves out (every other one, each window's first kept)."""


@dataclass(frozen=True, slots=True)
class BarChart:
    """Bars of two windows side by side, a value axis and an optional limit line."""

    bars: list[Bar]
    ticks: list[Tick]
    scale_max: Decimal
    limit: Decimal | None
    limit_y: Decimal | None
    divider_x: Decimal | None
    width: Decimal = WIDTH
    height: Decimal = HEIGHT
    left: Decimal = LEFT
    plot_bottom: Decimal = HEIGHT - BOTTOM


def _ticks(scale_max: Decimal, bottom: Decimal, plot_height: Decimal) -> list[Tick]:
    """Five grid lines; their labels share the fewest decimals that write every one exactly.

    ``0 25 50 75 100`` rather than ``100.00``: short labels fit the axis margin even when a
    phone scales the chart down and the text is drawn larger to stay legible.
    """
    values = [(scale_max * i / 4).normalize() for i in range(5)]
    places = max(0, *(-int(v.as_tuple().exponent) for v in values))
    return [
        Tick(y=_px(bottom - plot_height * i / 4), value=v, label=f"{v:,.{places}f}")
        for i, v in enumerate(values)
    ]


def bar_chart(
    previous: Sequence[SpendingBucket],
    current: Sequence[SpendingBucket],
    granularity: SpendingPeriod,
    zone: ZoneInfo,
    limit: Decimal | None = None,
) -> BarChart:
    """Lay out ``previous`` then ``current`` with one empty slot between them.

    The scale always includes the limit, so the limit line is on the chart even in a quiet
    month. Negative spend (refunds above usage) draws as an empty bar but keeps its value.
    """
    values = [b.spent for b in (*previous, *current)]
    top = max([*values, limit or Decimal(0), Decimal(0)])
    scale_max = nice_ceiling(top * Decimal("1.05")) if top > 0 else Decimal(1)
    bottom = HEIGHT - BOTTOM
    plot_height = bottom - TOP
    slots = len(previous) + len(current) + (1 if previous and current else 0)
    slot = (WIDTH - LEFT - RIGHT) / max(slots, 1)
    width = _px(slot * Decimal("0.78"))
    every = max(1, (len(previous) + len(current)) // 10)
    bars: list[Bar] = []
    index = 0
    divider_x: Decimal | None = None
    for series, buckets in (("previous", previous), ("current", current)):
        if series == "current" and previous and current:
            divider_x = _px(LEFT + slot * index + slot / 2)
            index += 1
        for position, bucket in enumerate(buckets):
            shown = max(bucket.spent, Decimal(0))
            height = _px(plot_height * shown / scale_max)
            # Skip the labels just before the gap, where they would run into the next
            # window's first label.
            show_label = position % every == 0 and (
                series == "current" or len(buckets) - position > every // 2 + 1
            )
            bars.append(
                Bar(
                    x=_px(LEFT + slot * index + (slot - width) / 2),
                    y=_px(bottom - height),
                    width=width,
                    height=height,
                    series=series,
                    label=bucket_label(bucket.start, granularity, zone),
                    tick=tick_label(bucket.start, granularity, zone),
                    value=bucket.spent,
                    requests=bucket.request_count,
                    start=bucket.start,
                    over_limit=limit is not None and bucket.spent > limit,
                    show_label=show_label,
                    # Hidden on a phone: every other label, and the previous window's last
                    # one, which the larger phone text would run into the next window's first.
                    dense=show_label
                    and (
                        (position // every) % 2 == 1
                        or (series == "previous" and len(buckets) - position <= 2 * every)
                    ),
                )
            )
            index += 1
    limit_y = _px(bottom - plot_height * limit / scale_max) if limit is not None else None
    return BarChart(
        bars=bars,
        ticks=_ticks(scale_max, bottom, plot_height),
        scale_max=scale_max,
        limit=limit,
        limit_y=limit_y,
        divider_x=divider_x,
    )


@dataclass(frozen=True, slots=True)
class LineChart:
    """This month's running total, the projection to month end and the monthly limit."""

    points: str
    projection: str | None
    ticks: list[Tick]
    limit: Decimal | None
    limit_y: Decimal | None
    projected_total: Decimal
    end_x: Decimal
    first_day: str
    last_day: str
    width: Decimal = WIDTH
    height: Decimal = HEIGHT
    left: Decimal = LEFT
    plot_bottom: Decimal = HEIGHT - BOTTOM


def cumulative_chart(
    month: Sequence[SpendingBucket],
    now: datetime,
    outlook: Forecast,
    limit: Decimal | None,
    zone: ZoneInfo,
) -> LineChart:
    """Running total of the month's days that have begun, then a dashed line to the forecast."""
    bottom = HEIGHT - BOTTOM
    plot_height = bottom - TOP
    days = max(len(month), 1)
    step = (WIDTH - LEFT - RIGHT) / days
    running = Decimal(0)
    totals: list[Decimal] = []
    for bucket in month:
        if bucket.start >= now:
            break
        running += bucket.spent
        totals.append(running)
    top = max([*totals, outlook.projected_total, limit or Decimal(0), Decimal(0)])
    scale_max = nice_ceiling(top * Decimal("1.05")) if top > 0 else Decimal(1)

    def point(day: int, amount: Decimal) -> str:
        y = _px(bottom - plot_height * max(amount, Decimal(0)) / scale_max)
        return f"{_px(LEFT + step * day)},{y}"

    coords = [point(0, Decimal(0))] + [point(i + 1, t) for i, t in enumerate(totals)]
    projection = None
    if totals and len(totals) < days:
        projection = f"{coords[-1]} {point(days, outlook.projected_total)}"
    limit_y = _px(bottom - plot_height * limit / scale_max) if limit is not None else None
    return LineChart(
        points=" ".join(coords),
        projection=projection,
        ticks=_ticks(scale_max, bottom, plot_height),
        limit=limit,
        limit_y=limit_y,
        projected_total=outlook.projected_total,
        end_x=_px(LEFT + step * days),
        first_day=month[0].start.astimezone(zone).strftime("%b %d") if month else "",
        last_day=month[-1].start.astimezone(zone).strftime("%b %d") if month else "",
    )


@dataclass(frozen=True, slots=True)
class HBar:
    """One row of a breakdown: name, amount, share of the total and the bar's length."""

    name: str
    value: Decimal
    share: Decimal
    length: Decimal
    y: Decimal
    pattern: int


def horizontal_bars(
    ranked: Sequence[tuple[str, Decimal]], *, limit: int = 8
) -> tuple[list[HBar], Decimal]:
    """Rows for the provider/model charts (largest first, at most ``limit``) and the height.

    Each row is a label line above its bar, so long model names never squeeze the bars. Each
    row gets one of eight fill patterns in turn, so neighbours differ in texture as well
    as colour.
    """
    rows = list(ranked[:limit])
    total = sum((max(v, Decimal(0)) for _, v in ranked), Decimal(0))
    largest = max([v for _, v in rows] + [Decimal(0)])
    bars: list[HBar] = []
    for i, (name, value) in enumerate(rows):
        positive = max(value, Decimal(0))
        share = (positive * 100 / total).quantize(_TENTH) if total > 0 else Decimal(0)
        length = _px(HBAR_SPAN * positive / largest) if largest > 0 else Decimal(0)
        bars.append(HBar(name, value, share, length, Decimal(20 + HBAR_ROW * i), i % 8))
    return bars, Decimal(8 + HBAR_ROW * len(rows))
