"""``/dashboard``: the spending dashboard, its CSV/JSON exports, static files and sign-in.

The page is rendered on the server from the same :class:`~smartspace_budget.backend.base.Backend`
the CLI reads, so the dashboard can never show a number the API would not. Access follows
the API's keys (:mod:`smartspace_budget.server.auth`): an account key sees its own account;
an admin names one with ``user_id``/``project_id`` (or picks from a list); another tenant's
account answers 404 like the API. Browsers cannot attach a Bearer header to a link, so the
key may also come from a session opened by ``POST /dashboard/login``: an HttpOnly,
SameSite=Strict cookie holding a signed session id, never the key (``dashboard/sessions.py``).

These routes are left out of the OpenAPI document: they answer HTML for people, and the
document describes the JSON API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from smartspace_budget.backend.base import Backend
from smartspace_budget.budgets.spending_monitor import SpendingMonitor
from smartspace_budget.errors import (
    BackendError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    SmartspaceBudgetError,
    UnauthorizedError,
)
from smartspace_budget.models import SpendingAlert
from smartspace_budget.models.replay import ReplayReport
from smartspace_budget.server.auth import METRICS_ONLY, Authenticator, Limiter, Principal, admit
from smartspace_budget.server.dashboard.export import view_to_csv, view_to_json
from smartspace_budget.server.dashboard.render import (
    STATIC_FILES,
    preload,
    render_accounts,
    render_message,
    render_page,
    static_file,
)
from smartspace_budget.server.dashboard.sessions import SESSION_TTL, Sessions
from smartspace_budget.server.dashboard.view import (
    AlertsSource,
    Comparer,
    Comparison,
    DashboardView,
    Period,
    Replayer,
    Workload,
    build_view,
)
from smartspace_budget.server.key_tables import Scope
from smartspace_budget.server.responses import error_response

__all__ = ["COOKIE", "DashboardServices", "install_dashboard", "monitor_alerts", "router"]

COOKIE = "ssb_dashboard_session"
COOKIE_MAX_AGE = SESSION_TTL
QUERY_KEYS = ("user_id", "project_id", "period", "input_tokens", "output_tokens", "models")
MAX_QUERY_VALUE = 2000
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/dashboard", include_in_schema=False)


RECENT_ALERT_MINUTES = 24 * 60


def monitor_alerts(monitor: SpendingMonitor, minutes: int = RECENT_ALERT_MINUTES) -> AlertsSource:
    """Alerts for the page: what describes the account now, plus those raised recently."""

    async def alerts(user_id: str, project_id: str) -> list[SpendingAlert]:
        current = await monitor.check_spending_status(user_id, project_id)
        recent = await monitor.get_active_alerts(user_id, project_id, minutes=minutes)
        seen = {alert.alert_id for alert in current}
        return [*current, *(alert for alert in recent if alert.alert_id not in seen)]

    return alerts


@dataclass(slots=True)
class DashboardServices:
    """What the dashboard reads. ``backend=None`` means ``app.state.backend`` at request time.

    Without explicit ``alerts``/``compare`` sources, one :class:`SpendingMonitor` and one
    :class:`PricingEngine` are made per backend on first use and kept (their caches and the
    monitor's memory of announced alerts live as long as the app).
    """

    backend: Backend | None = None
    alerts: AlertsSource | None = None
    compare: Comparer | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sessions: Sessions = field(default_factory=Sessions)
    replay: Replayer | None = None
    _defaults: dict[int, tuple[Backend, AlertsSource, Comparer, Replayer | None]] = field(
        default_factory=dict
    )

    def sources(self, backend: Backend) -> tuple[AlertsSource, Comparer]:
        """The alert and comparison sources to use with ``backend``."""
        made = self._made(backend)
        return self.alerts or made[1], self.compare or made[2]

    def replayer(self, backend: Backend) -> Replayer | None:
        """The replay source to use with ``backend`` (``None``: it keeps no usage)."""
        return self.replay or self._made(backend)[3]

    def _made(self, backend: Backend) -> tuple[Backend, AlertsSource, Comparer, Replayer | None]:
        made = self._defaults.get(id(backend))
        if made is None or made[0] is not backend:
            from smartspace_budget.pricing.pricing_engine import PricingEngine
            from smartspace_budget.pricing.replay import UsageShapeSource

            monitor = SpendingMonitor(backend, clock=self.clock)
            engine = PricingEngine(backend)
            replayer: Replayer | None = None
            if isinstance(backend, UsageShapeSource):

                async def replayer(
                    user_id: str,
                    project_id: str,
                    window: tuple[datetime, datetime],
                    models: list[tuple[str, str]],
                ) -> ReplayReport:
                    return await engine.replay(user_id, project_id, window, models)

            made = (backend, monitor_alerts(monitor), engine.compare_provider_costs, replayer)
            self._defaults[id(backend)] = made
        return made


def install_dashboard(
    app: FastAPI,
    *,
    backend: Backend | None = None,
    alerts: AlertsSource | None = None,
    compare: Comparer | None = None,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Serve the dashboard from ``app``; it authenticates with ``app.state.authenticator``.

    ``alerts`` is typically ``lambda u, p: monitor.get_active_alerts(u, p, minutes=...)`` and
    ``compare`` ``PricingEngine.compare_provider_costs``; without them those panels say so.
    """
    app.state.dashboard = DashboardServices(
        backend=backend,
        alerts=alerts,
        compare=compare,
        clock=clock or (lambda: datetime.now(UTC)),
    )
    app.include_router(router)
    preload()


def _services(request: Request) -> tuple[DashboardServices, Backend]:
    services: DashboardServices = request.app.state.dashboard
    backend = services.backend or request.app.state.backend
    return services, backend


def _raw_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    services: DashboardServices = request.app.state.dashboard
    return services.sessions.key_for(request.cookies.get(COOKIE))


async def _caller(request: Request) -> Principal:
    """Authenticate like the API does, charging the same per-key rate limit."""
    state = request.app.state
    client = request.client.host if request.client else "unknown"
    return await admit(
        state.authenticator,
        state.rate_limiter,
        _raw_key(request),
        client,
        state=request.scope.setdefault("state", {}),
    )


def _query(request: Request) -> dict[str, str]:
    """The page's own parameters (unknown ones dropped, so links never echo junk)."""
    params: dict[str, str] = {}
    for key in QUERY_KEYS:
        value = request.query_params.get(key)
        if value is None or not value.strip():
            continue
        if len(value) > MAX_QUERY_VALUE:
            raise InvalidInputError(f"{key} is longer than {MAX_QUERY_VALUE} characters")
        params[key] = value.strip()
    return params


def _period(raw: str | None) -> Period:
    if raw is None:
        return Period.MONTH
    try:
        return Period(raw.lower())
    except ValueError:
        choices = ", ".join(p.value for p in Period)
        raise InvalidInputError(f"period must be one of {choices}, got {raw!r}") from None


def _account(caller: Principal, query: dict[str, str]) -> tuple[str, str] | None:
    """The account to show, ``None`` for the admin's picker; 404 for another tenant's."""
    user_id, project_id = query.get("user_id"), query.get("project_id")
    if (user_id is None) != (project_id is None):
        raise InvalidInputError("give both user_id and project_id, or neither")
    if user_id is not None and project_id is not None:
        caller.require_read(user_id, project_id)
        return user_id, project_id
    if caller.user_id is not None and caller.project_id is not None:
        return caller.user_id, caller.project_id
    if caller.is_admin:
        return None
    raise ForbiddenError("this key may only read prices; use an account or admin key")


async def _view(
    request: Request, query: dict[str, str], account: tuple[str, str], *, page: bool = False
) -> DashboardView:
    """The view for ``query``. On the ``page``, a workload the comparison form cannot read
    is reported inside the form (the rest of the page still shows); exports refuse it."""
    services, backend = _services(request)
    rejected: str | None = None
    try:
        workload = Workload.parse(
            query.get("input_tokens"), query.get("output_tokens"), query.get("models")
        )
    except InvalidInputError as exc:
        if not page:
            raise
        workload, rejected = Workload(), exc.detail
    alerts, compare = services.sources(backend)
    view = await build_view(
        backend,
        *account,
        period=_period(query.get("period")),
        workload=workload,
        alerts=alerts,
        compare=compare if rejected is None else None,
        replay=services.replayer(backend),
        now=services.clock(),
    )
    if rejected is not None:
        rejection = Comparison(workload, [], error=rejected, rejected_input=True)
        view = replace(view, comparison=rejection)
    return view


_TITLES = {
    UnauthorizedError: ("Sign in", True),
    ForbiddenError: ("Not allowed", False),
    NotFoundError: ("No such account", False),
    InvalidInputError: ("That request was not valid", False),
    RateLimitedError: ("Too many requests", False),
    BackendError: ("The ledger is not answering", False),
}


def _error_page(exc: SmartspaceBudgetError) -> HTMLResponse:
    title, login = next(
        (value for kind, value in _TITLES.items() if isinstance(exc, kind)), ("Error", False)
    )
    headers = dict(_SECURITY_HEADERS)
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    return HTMLResponse(
        render_message(title, exc.detail, login=login), status_code=exc.status_code, headers=headers
    )


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    """The page (or the account picker, or a sign-in/error page with the error's status)."""
    try:
        query = _query(request)
        if _raw_key(request) is None and request.app.state.authenticator.enabled:
            # A person who has not signed in yet: send them to the form (a 401 page would
            # also work, but browsers log every 401 as an error in the console).
            return RedirectResponse(_login_url(query), status_code=303)
        caller = await _caller(request)
        account = _account(caller, query)
        if account is None:
            _, backend = _services(request)
            accounts = await backend.list_accounts()
            return HTMLResponse(render_accounts(accounts, query), headers=_SECURITY_HEADERS)
        view = await _view(request, query, account, page=True)
    except SmartspaceBudgetError as exc:
        return _error_page(exc)
    return HTMLResponse(render_page(view, query), headers=_SECURITY_HEADERS)


async def _export(request: Request, kind: str) -> Response:
    try:
        query = _query(request)
        caller = await _caller(request)
        account = _account(caller, query)
        if account is None:
            raise InvalidInputError("an admin export needs user_id and project_id")
        view = await _view(request, query, account)
    except SmartspaceBudgetError as exc:
        return error_response(exc)
    stamp = view.generated_at.strftime("%Y%m%dT%H%M%SZ")
    name = f"spending-{view.period.value}-{stamp}.{kind}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if kind == "csv":
        return Response(view_to_csv(view), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(view_to_json(view), media_type="application/json", headers=headers)


@router.get("/export.csv")
async def export_csv(request: Request) -> Response:
    """What the page shows, one row per figure (same query parameters as the page)."""
    return await _export(request, "csv")


@router.get("/export.json")
async def export_json(request: Request) -> Response:
    """What the page shows as JSON, amounts exact (same query parameters as the page)."""
    return await _export(request, "json")


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The dashboard's own CSS and JS, from the package (no CDN, works offline)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return error_response(NotFoundError(f"no static file {name!r}"))
    return Response(
        static_file(name),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _login_url(query: dict[str, str]) -> str:
    return "/dashboard/login" + (("?" + urlencode(query)) if query else "")


def _after_login(raw_query: str) -> str:
    """Where to go after signing in: the dashboard with the page's own parameters only."""
    fields = parse_qs(raw_query, keep_blank_values=False)
    query = {k: v[0][:MAX_QUERY_VALUE] for k, v in fields.items() if k in QUERY_KEYS and v}
    return "/dashboard" + (("?" + urlencode(query)) if query else "")


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    """The sign-in form: paste an API key once, then browse with a cookie."""
    try:
        query = _query(request)
    except InvalidInputError:
        query = {}
    return HTMLResponse(
        render_message(
            "Sign in",
            "Paste an API key to see its account.",
            login=True,
            next_query=urlencode(query),
        ),
        headers=_SECURITY_HEADERS,
    )


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key, then open a session whose signed id goes in an HttpOnly cookie scoped
    to ``/dashboard`` (the key itself stays on the server).

    A form posted from another site is refused (``Origin`` must be this host), so no page
    elsewhere can sign a visitor in under someone else's key.
    """
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        return _error_page(ForbiddenError("sign in from this site's own form"))
    body = await request.body()
    if len(body) > 4096:
        return _error_page(InvalidInputError("the sign-in form is too large"))
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    raw = (fields.get("api_key") or [""])[0].strip()
    authenticator: Authenticator = request.app.state.authenticator
    try:
        caller = await authenticator.authenticate(raw)
    except UnauthorizedError as exc:
        limiter: Limiter = request.app.state.rate_limiter
        try:
            await limiter.acquire("anon:" + (request.client.host if request.client else "unknown"))
        except RateLimitedError as limited:
            return _error_page(limited)
        return _error_page(exc)
    if caller.scope is Scope.METRICS:
        return _error_page(ForbiddenError(METRICS_ONLY))
    next_query = (fields.get("next") or [""])[0]
    response = RedirectResponse(_after_login(next_query), status_code=303)
    services: DashboardServices = request.app.state.dashboard
    response.set_cookie(
        COOKIE,
        services.sessions.open(raw),  # a signed session id: the key never leaves the server
        max_age=COOKIE_MAX_AGE,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session and forget its cookie."""
    services: DashboardServices = request.app.state.dashboard
    services.sessions.close(request.cookies.get(COOKIE))
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response
