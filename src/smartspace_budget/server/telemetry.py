"""Prometheus metrics of one service instance: requests, latency, spend, budget utilisation.

Each app owns its :class:`~prometheus_client.CollectorRegistry`, so several apps in one
process (tests, or an app mounted twice) never clash. Counters are per replica, the
Prometheus way: with several replicas, sum them in the query. Several uvicorn workers of
one replica answer on one port, so a scrape reaches one of them at random: with
``PROMETHEUS_MULTIPROC_DIR`` set (``serve --workers N`` sets it), every worker writes its
values there and ``/metrics`` sums all of them (prometheus-client's multiprocess mode).

Requests are labelled by the route *template* (``/api/v1/budgets/user/{user_id}/...``,
``/docs``), never the concrete path, so ids neither leak into metrics nor explode their
cardinality; a path no route matches is ``unmatched``.

Budget utilisation (spent / limit, refreshed by every status read) is by default a
histogram over all accounts, labelled only by limit (daily, monthly): one series per
bucket whatever the number of accounts. ``account_labels=True``
(``SMARTSPACE_BUDGET_METRICS_ACCOUNT_LABELS``) adds a gauge per account instead, for small
deployments; it keeps the ``max_accounts`` most recently seen accounts.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartspace_budget.models import BudgetStatus, EntryKind, LedgerEntry
from smartspace_budget.server.request_log import log_error, log_request

__all__ = ["MULTIPROC_ENV", "MetricsMiddleware", "ServiceMetrics", "route_template"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_GaugeInputs = tuple[Decimal, Decimal | None, Decimal, Decimal | None]
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_UTILISATION_BUCKETS = (0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 1.0, 1.25)


class ServiceMetrics:
    """The collectors of one app (see the module docstring)."""

    def __init__(self, *, account_labels: bool = False, max_accounts: int = 1000) -> None:
        # Read once: prometheus-client picks its value storage when first imported.
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.account_labels = account_labels
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "smartspace_budget_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "smartspace_budget_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.spend = Counter(
            "smartspace_budget_spend_usdc",
            "USDC charged for provider usage recorded through this instance.",
            ["provider", "model"],
            registry=self.registry,
        )
        self.usage_requests = Counter(
            "smartspace_budget_usage_requests",
            "Provider requests charged through this instance.",
            ["provider", "model"],
            registry=self.registry,
        )
        self.writes = Counter(
            "smartspace_budget_ledger_writes",
            "Ledger entries written through this instance, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.utilisation = Gauge(
            "smartspace_budget_budget_utilisation_ratio",
            "Spent / limit for an account's daily and monthly limits (last status read).",
            ["user_id", "project_id", "limit"],
            registry=self.registry if account_labels else None,
            multiprocess_mode="mostrecent",
        )
        self.utilisation_seen = Histogram(
            "smartspace_budget_status_utilisation_ratio",
            "Spent / limit found by each budget status read, over all accounts.",
            ["limit"],
            buckets=_UTILISATION_BUCKETS,
            registry=self.registry,
        )
        # Accounts with gauges, least recently read first, each with the amounts its gauges
        # were last set from: a status read again unchanged only moves its account up.
        self._accounts: OrderedDict[tuple[str, str], _GaugeInputs] = OrderedDict()
        self._max_accounts = max_accounts
        # Gauges currently set, so a status without limits removes nothing it never set (a
        # removal that misses raises inside prometheus_client, on every status read).
        self._gauges: set[tuple[str, str, str]] = set()
        self._request_children: dict[tuple[str, str, int], tuple[Histogram, Counter]] = {}

    def observe_request(self, method: str, template: str, status: int, seconds: float) -> None:
        """Count and time one answered request.

        The labelled children are looked up once per (method, route, status): resolving
        labels costs a lock and a validation each time, a fifth of a cached status answer.
        """
        key = (method, template, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.latency.labels(method, template),
                self.requests.labels(method, template, str(status)),
            )
            self._request_children[key] = children
        latency, count = children
        latency.observe(seconds)
        count.inc()

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers: this app's registry, or every worker's values
        summed in multiprocess mode."""
        if self.multiprocess_dir is None:
            return bytes(generate_latest(self.registry))
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))

    def observe_entry(self, entry: LedgerEntry) -> None:
        """Count a ledger write; usage also adds to spend by provider/model."""
        self.writes.labels(entry.kind.value).inc()
        if entry.kind is EntryKind.USAGE:
            provider, model = entry.provider or "unknown", entry.model or "unknown"
            self.spend.labels(provider, model).inc(float(abs(entry.amount)))
            self.usage_requests.labels(provider, model).inc()

    def observe_status(self, user_id: str, project_id: str, status: BudgetStatus) -> None:
        """Count the utilisation a status read found (and refresh the account's gauges when
        they are on)."""
        if status.daily_limit is not None:
            self.utilisation_seen.labels("daily").observe(
                _ratio(status.spent_today, status.daily_limit)
            )
        if status.monthly_limit is not None:
            self.utilisation_seen.labels("monthly").observe(
                _ratio(status.spent_this_month, status.monthly_limit)
            )
        if self.account_labels:
            self._observe_account(user_id, project_id, status)

    def _observe_account(self, user_id: str, project_id: str, status: BudgetStatus) -> None:
        account = (user_id, project_id)
        inputs = (
            status.spent_today,
            status.daily_limit,
            status.spent_this_month,
            status.monthly_limit,
        )
        if self._accounts.get(account) == inputs:
            self._accounts.move_to_end(account)
            return
        self._accounts.pop(account, None)
        self._accounts[account] = inputs
        for limit, spent, cap in (
            ("daily", status.spent_today, status.daily_limit),
            ("monthly", status.spent_this_month, status.monthly_limit),
        ):
            if cap is None:
                self._remove(user_id, project_id, limit)
            else:
                self.utilisation.labels(user_id, project_id, limit).set(_ratio(spent, cap))
                self._gauges.add((user_id, project_id, limit))
        while len(self._accounts) > self._max_accounts:
            (old_user, old_project), _ = self._accounts.popitem(last=False)
            for limit in ("daily", "monthly"):
                self._remove(old_user, old_project, limit)

    def _remove(self, user_id: str, project_id: str, limit: str) -> None:
        labels = (user_id, project_id, limit)
        if labels in self._gauges:
            self._gauges.discard(labels)
            self.utilisation.remove(*labels)


def _ratio(spent: Decimal, cap: Decimal) -> float:
    if cap == 0:
        return 1.0  # a zero limit blocks everything: fully used
    return float(spent / cap)


class MetricsMiddleware:
    """Count and time every request by route template (plain ASGI, no per-request objects)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except Exception as exc:
            log_error(scope, route_template(scope), exc)
            raise
        finally:
            template = route_template(scope)
            seconds = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], template, status, seconds)
            log_request(scope, template, status, seconds)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``unmatched`` when none did).

    The router leaves the route it picked in ``scope["route"]``. Older Starlette releases
    do so only for FastAPI's own routes (``/docs`` and ``/openapi.json`` are Starlette's),
    so a request without it is matched against the routes again, which only requests no
    route took (404s) pay for; a mounted app is named by its mount's path.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        if candidate.matches(scope)[0] is Match.FULL:
            return str(getattr(candidate, "path", "unmatched") or "unmatched")
    return "unmatched"
