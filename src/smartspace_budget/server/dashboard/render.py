"""HTML rendering of the dashboard: one Jinja2 environment over the package's templates.

Templates and static files ship inside the package (hatchling includes them), so the page
works with no network at all. Autoescaping is on for every template: account ids, model
names and alert messages come from callers and are never trusted as markup.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from smartspace_budget.models import AccountRef
from smartspace_budget.server.dashboard.charts import (
    HBAR_WIDTH,
    bar_chart,
    cumulative_chart,
    horizontal_bars,
)
from smartspace_budget.server.dashboard.view import DashboardView, Period, ranked_amounts

__all__ = [
    "STATIC_FILES",
    "format_amount",
    "preload",
    "render_accounts",
    "render_message",
    "render_page",
]

STATIC_FILES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
"""The only files ``/dashboard/static/`` serves (a fixed list, so no path is ever joined)."""


def exact_amount(value: Decimal | None) -> str:
    """Exact positional form for data attributes: ``str()`` of the ledger's nine-place zero
    is "0E-9", which the CSV export (and a reader of the page) would not show."""
    return "" if value is None else format(value, "f")


def format_amount(value: Decimal | None, places: int = 2) -> str:
    """Display form of an amount: two decimals, more for sub-cent values, grouped thousands.

    For display only; exports and data attributes carry the exact Decimal.
    """
    if value is None:
        return "—"
    if value != 0 and abs(value) < Decimal("0.01"):
        places = max(places, 6)
    shown = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{shown:,}"


def _when(value: datetime | None, zone: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y %H:%M")


def _day(value: datetime | None, zone: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y")


def _percent(part: Decimal, whole: Decimal | None) -> Decimal | None:
    if whole is None or whole <= 0:
        return None
    return min(Decimal(100), max(Decimal(0), part * 100 / whole)).quantize(Decimal(1))


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("smartspace_budget.server.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["amount"] = format_amount
    env.filters["exact"] = exact_amount
    env.filters["when"] = _when
    env.filters["day"] = _day
    return env


@cache
def static_file(name: str) -> bytes:
    """Bytes of one of :data:`STATIC_FILES` (read once; they never change at run time)."""
    return (
        resources.files("smartspace_budget.server.dashboard").joinpath("static", name).read_bytes()
    )


def _link(base: dict[str, str], **changes: str) -> str:
    params = {**base, **changes}
    return "?" + urlencode({k: v for k, v in params.items() if v})


def preload() -> None:
    """Compile the templates now, so the first visitor does not wait for it."""
    env = _environment()
    for name in ("dashboard.html", "accounts.html", "message.html"):
        env.get_template(name)


def render_page(view: DashboardView, query: dict[str, str]) -> str:
    """The dashboard page for ``view``; ``query`` is the request's own parameters."""
    zone = ZoneInfo(view.timezone)
    chart = bar_chart(
        view.chart.previous, view.chart.current, view.chart.granularity, zone, view.chart.limit
    )
    month = cumulative_chart(
        view.month, view.generated_at, view.forecast, view.status.monthly_limit, zone
    )
    providers = ranked_amounts(view.analytics.spending_by_provider)
    models = ranked_amounts(view.analytics.spending_by_model)
    provider_bars, provider_height = horizontal_bars(providers)
    model_bars, model_height = horizontal_bars(models)
    base = {k: v for k, v in query.items() if k != "period"}
    context: dict[str, Any] = {
        "view": view,
        "status": view.status,
        "chart": chart,
        "month": month,
        "providers": providers,
        "models": models,
        "provider_bars": provider_bars,
        "provider_height": provider_height,
        "model_bars": model_bars,
        "model_height": model_height,
        "hbar_width": HBAR_WIDTH,
        "chart_last_day": _day(
            view.chart.current_window.end - timedelta(microseconds=1), view.timezone
        ),
        "periods": [(p, _link(base, period=p.value)) for p in Period],
        "export_query": _link(query),
        "query": query,
        "daily_percent": _percent(view.status.spent_today, view.status.daily_limit),
        "monthly_percent": _percent(view.status.spent_this_month, view.status.monthly_limit),
        "monthly_forecast_over": (
            view.status.monthly_limit is not None
            and view.forecast.projected_total > view.status.monthly_limit
        ),
        "runs_out_this_month": view.forecast.exhausts_before(view.forecast.period_end),
        "compare_models": ", ".join(f"{p}/{m}" for p, m in view.comparison.models),
    }
    return _environment().get_template("dashboard.html").render(context)


def render_accounts(accounts: list[AccountRef], query: dict[str, str]) -> str:
    """The account picker an admin sees when no account was named."""
    base = {k: v for k, v in query.items() if k not in ("user_id", "project_id")}
    links = [
        (a, _link(base, user_id=a.user_id, project_id=a.project_id))
        for a in sorted(accounts, key=lambda a: (a.user_id, a.project_id))
    ]
    return _environment().get_template("accounts.html").render(links=links)


def render_message(title: str, detail: str, *, login: bool = False, next_query: str = "") -> str:
    """An error or sign-in page in the dashboard's style."""
    return (
        _environment()
        .get_template("message.html")
        .render(title=title, detail=detail, login=login, next_query=next_query)
    )
