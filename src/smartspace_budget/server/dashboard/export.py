"""The dashboard's CSV and JSON exports: exactly what the page shows, amounts exact.

Both exports are flat renderings of one :class:`DashboardView`. The JSON keeps the page's
structure; the CSV is "long" (one row per figure, with a ``section`` column) so a
spreadsheet or ``pandas.read_csv`` gets every number of the page from one table.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from smartspace_budget.models import SpendingBucket, dumps
from smartspace_budget.server.dashboard.charts import bucket_label
from smartspace_budget.server.dashboard.view import DashboardView, ranked_amounts

__all__ = ["CSV_COLUMNS", "view_to_csv", "view_to_data", "view_to_json"]

CSV_COLUMNS = ("section", "name", "start", "end", "amount", "requests")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _buckets(view: DashboardView, buckets: list[SpendingBucket]) -> list[dict[str, Any]]:
    zone = ZoneInfo(view.timezone)
    return [
        {
            "label": bucket_label(b.start, view.chart.granularity, zone),
            "start": _iso(b.start.astimezone(zone)),
            "end": _iso(b.end.astimezone(zone)),
            "spent": b.spent,
            "request_count": b.request_count,
        }
        for b in buckets
    ]


def view_to_data(view: DashboardView) -> dict[str, Any]:
    """The page as plain data (Decimals kept; :func:`view_to_json` writes them exactly)."""
    status = view.status
    outlook = view.forecast
    analytics = view.analytics
    requests_by_model = analytics.requests_by_model or {}
    return {
        "account": {"user_id": view.user_id, "project_id": view.project_id},
        "period": view.period.value,
        "timezone": view.timezone,
        "currency": view.currency,
        "generated_at": _iso(view.generated_at),
        "balance": {
            "total_balance": view.balance.total_balance,
            "available_balance": view.balance.available_balance,
            "reserved_amount": view.balance.reserved_amount,
        },
        "spending": {
            "spent_today": status.spent_today,
            "daily_limit": status.daily_limit,
            "spent_this_month": status.spent_this_month,
            "monthly_limit": status.monthly_limit,
            "spent_total": status.spent_total,
        },
        "chart": {
            "granularity": view.chart.granularity.value,
            "limit": view.chart.limit,
            "limit_name": view.chart.limit_name,
            "current": _buckets(view, view.chart.current),
            "previous": _buckets(view, view.chart.previous),
        },
        "forecast": {
            "spent_this_month": outlook.spent_so_far,
            "burn_rate_per_day": outlook.burn_rate_per_day,
            "projected_month_end": outlook.projected_total,
            "balance_runs_out_at": _iso(outlook.exhaustion_at),
        },
        "by_provider": [
            {
                "provider": name,
                "spent": amount,
                "request_count": analytics.requests_by_provider.get(name, 0),
            }
            for name, amount in ranked_amounts(analytics.spending_by_provider)
        ],
        "by_model": [
            {"model": name, "spent": amount, "request_count": requests_by_model.get(name)}
            for name, amount in ranked_amounts(analytics.spending_by_model)
        ],
        "alerts": [
            {
                "level": alert.level.value,
                "type": alert.alert_type.value,
                "title": alert.title,
                "message": alert.message,
                "current_value": alert.current_value,
                "threshold_value": alert.threshold_value,
                "created_at": _iso(alert.created_at),
            }
            for alert in view.alerts
        ],
        "comparison": {
            "input_tokens": view.comparison.workload.input_tokens,
            "output_tokens": view.comparison.workload.output_tokens,
            "error": view.comparison.error,
            "failures": [
                {"model": name, "reason": reason} for name, reason in view.comparison.failures
            ],
            "rows": [
                {
                    "provider": row.provider,
                    "model": row.model,
                    "input_cost": row.input_cost,
                    "output_cost": row.output_cost,
                    "platform_fee": row.platform_fee,
                    "total_cost": row.total_cost,
                }
                for row in view.comparison.rows
            ],
        },
        "replay": _replay_data(view),
        "predictions": None
        if analytics.predictions is None
        else {
            "predicted_calls": analytics.predictions.predicted_calls,
            "missed_calls": analytics.predictions.missed_calls,
            "miss_rate": analytics.predictions.miss_rate,
        },
    }


def _replay_data(view: DashboardView) -> dict[str, Any]:
    report = view.replay
    if report is None:
        return {"error": view.replay_error, "targets": []}
    return {
        "error": None,
        "start": _iso(report.period_start),
        "end": _iso(report.period_end),
        "calls": report.calls,
        "charged": report.charged,
        "cheapest": report.cheapest,
        "targets": [
            {
                "provider": t.provider,
                "model": t.model,
                "total_cost": t.total_cost,
                "difference": t.difference,
                "calls_served": t.calls_served,
                "calls_unserved": t.calls_unserved,
                "unserved": t.unserved,
                "error": t.error,
            }
            for t in report.targets
        ],
    }


def view_to_json(view: DashboardView) -> str:
    """The JSON export; amounts are exact JSON numbers, never rounded through float."""
    return dumps(view_to_data(view), indent=2)


def _amount(value: Decimal | int | None) -> str:
    # Positional, exact: str() of a nine-place zero is "0E-9", which spreadsheets misread.
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def view_to_csv(view: DashboardView) -> str:
    """The CSV export: one row per figure on the page (see :data:`CSV_COLUMNS`)."""
    data = view_to_data(view)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)

    def row(section: str, name: str, amount: Any = None, **extra: Any) -> None:
        count = extra.get("requests")
        writer.writerow(
            [
                section,
                name,
                extra.get("start") or "",
                extra.get("end") or "",
                _amount(amount),
                "" if count is None else count,
            ]
        )

    for key, value in data["balance"].items():
        row("balance", key, value)
    for key, value in data["spending"].items():
        row("spending", key, value)
    for series in ("previous", "current"):
        for b in data["chart"][series]:
            row(
                f"chart_{series}",
                b["label"],
                b["spent"],
                start=b["start"],
                end=b["end"],
                requests=b["request_count"],
            )
    forecast = data["forecast"]
    row("forecast", "burn_rate_per_day", forecast["burn_rate_per_day"])
    row("forecast", "projected_month_end", forecast["projected_month_end"])
    row("forecast", "balance_runs_out_at", None, start=forecast["balance_runs_out_at"])
    for item in data["by_provider"]:
        row("provider", item["provider"], item["spent"], requests=item["request_count"])
    for item in data["by_model"]:
        row("model", item["model"], item["spent"], requests=item["request_count"])
    for alert in data["alerts"]:
        row(
            "alert",
            f"{alert['level']}: {alert['title']}",
            alert["current_value"],
            start=alert["created_at"],
        )
    for item in data["comparison"]["rows"]:
        row("comparison", f"{item['provider']}/{item['model']}", item["total_cost"])
    replay = data["replay"]
    for item in replay["targets"]:
        row(
            "replay",
            f"{item['provider']}/{item['model']}",
            item["total_cost"] if item["error"] is None else None,
            start=replay.get("start"),
            end=replay.get("end"),
            requests=item["calls_served"],
        )
    if data["predictions"] is not None:
        row("predictions", "predicted_calls", requests=data["predictions"]["predicted_calls"])
        row("predictions", "missed_calls", requests=data["predictions"]["missed_calls"])
        row("predictions", "miss_rate", data["predictions"]["miss_rate"])
    return out.getvalue()
