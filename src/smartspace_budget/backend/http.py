"""``HttpBackend``: the Backend and LedgerClient protocols over the service's REST API.

Resilience, because a budget check must answer quickly or fail loudly, never hang:

- every attempt has a timeout, and one call (retries included) never takes longer than
  ``deadline`` seconds (2 by default): past it, :class:`BackendTimeoutError`;
- network errors and 5xx answers are retried (at most ``max_retries`` times, with
  jittered exponential backoff); anything else the service says is final and is raised as
  the package's own error class, rebuilt from the ``{"error", "detail"}`` body;
- when retries run out, :class:`BackendUnavailableError`; nothing is remembered about the
  failure, so the next call works as soon as the service is back;
- writes carry an ``Idempotency-Key`` and every retry sends the same one, so a write whose
  answer was lost is never applied twice.

Bodies are read with :func:`smartspace_budget.models.loads`, so amounts stay exact Decimals.
Status, analytics and prices are asked for with ``extended=true``: by default the service
answers only the spec's keys, and the library needs the rest (the low-balance threshold
behind the warning, cached-token prices, tiers, the price version...).
Reads are cached like ``LocalBackend``'s (see ``_cached``); writes made through this client
forget its cached reads of their account. The ``httpx.AsyncClient`` is created on first use
in the running event loop, so the object can be built in synchronous code.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from smartspace_budget import errors
from smartspace_budget.backend._cached import CachedReads
from smartspace_budget.errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    InvalidInputError,
    SmartspaceBudgetError,
)
from smartspace_budget.models import (
    AccountRef,
    AdjustRequest,
    Balance,
    BudgetPolicy,
    BudgetReservation,
    BudgetStatus,
    DepositRequest,
    LedgerEntry,
    PricingData,
    RefundRequest,
    ReserveRequest,
    SettleRequest,
    SpecModel,
    SpendingAlert,
    SpendingAnalytics,
    SpendingBucket,
    SpendingSummary,
    UsageEvent,
    dumps,
    loads,
)
from smartspace_budget.models.alert_claims import (
    RANK_DIGITS,
    AlertAcknowledgement,
    AlertClaim,
    AlertClaimResult,
    AlertReport,
)
from smartspace_budget.models.output_sketch import DEFAULT_MIN_SAMPLES, OutputHistory
from smartspace_budget.models.replay import UsageShape
from smartspace_budget.money import NANO_DIGITS, quantize
from smartspace_budget.periods import SpendingPeriod

__all__ = ["HttpBackend"]

_EXTENDED = "true"
"""The service's answers with our extension keys, not just the spec's (see the module doc)."""

M = TypeVar("M", bound=SpecModel)

_BY_STATUS: dict[int, type[SmartspaceBudgetError]] = {
    400: errors.InvalidInputError,
    401: errors.UnauthorizedError,
    402: errors.BudgetError,
    403: errors.ForbiddenError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.InvalidInputError,
    422: errors.InvalidInputError,
}


def _seg(value: str) -> str:
    """One path segment, percent-encoded (slashes included; the service decodes them)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"identifier must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _iso(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{value} is naive; pass a timezone-aware datetime")
    return value.isoformat()


class _Retryable(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _nano_rounded(data: Any) -> Any:
    """``data`` with every Decimal of more than nine decimals rounded half-even to nine.

    The service refuses a tenth decimal (an amount as text is taken as typed); a Decimal the
    library computed is rounded here exactly as the local ledger rounds it (``to_nano``),
    so both backends charge the same.
    """
    if isinstance(data, Decimal):
        exponent = data.as_tuple().exponent
        return quantize(data) if isinstance(exponent, int) and exponent < -NANO_DIGITS else data
    if isinstance(data, dict):
        return {key: _nano_rounded(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_nano_rounded(value) for value in data]
    return data


class HttpBackend(CachedReads):
    """Backend + LedgerClient over ``base_url`` (e.g. ``http://127.0.0.1:8000``).

    ``api_key`` is sent as ``Authorization: Bearer``. ``deadline`` bounds one call in
    seconds, retries included; ``attempt_timeout`` bounds one attempt (default: whatever
    remains of the deadline). ``transport`` lets tests plug in an ASGI app or a mock.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        deadline: float = 2.0,
        attempt_timeout: float | None = None,
        max_retries: int = 3,
        backoff: float = 0.05,
        max_backoff: float = 0.5,
        status_ttl: float = 30.0,
        pricing_ttl: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_ttl=status_ttl, pricing_ttl=pricing_ttl)
        if deadline <= 0:
            raise InvalidInputError(f"deadline must be positive, got {deadline}")
        if max_retries < 0:
            raise InvalidInputError(f"max_retries must not be negative, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._transport = transport
        self._headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def outbox_target(self) -> str:
        """The service's name in the outbox (its base URL)."""
        return self.base_url

    def __repr__(self) -> str:
        # Never show the key.
        return f"HttpBackend({self.base_url!r}, deadline={self.deadline})"

    async def __aenter__(self) -> HttpBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (the object stays usable: a new pool opens on demand)."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # A client belongs to the loop that made it (asyncio.run twice in a script).
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=self._headers,
                transport=self._transport,
                timeout=httpx.Timeout(self.deadline),
            )
            self._client_loop = loop
        return self._client

    # -- one call: attempts, retries, deadline ---------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: SpecModel | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers: dict[str, str] = {}
        content: bytes | None = None
        if body is not None:
            content = dumps(_nano_rounded(body.model_dump(mode="python"))).encode()
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v is not None}
        started = time.monotonic()
        last, timed_out = "no attempt made", True
        for attempt in range(self.max_retries + 1):
            remaining = self.deadline - (time.monotonic() - started)
            if remaining <= 0:
                break
            timeout = remaining
            if self.attempt_timeout is not None:
                timeout = min(remaining, self.attempt_timeout)
            try:
                async with asyncio.timeout(timeout):
                    return await self._attempt(method, path, query, content, headers, limit=timeout)
            except TimeoutError:
                last, timed_out = f"no answer within {timeout:.3f} s", True
            except _Retryable as failure:
                last, timed_out = failure.detail, False
            if attempt == self.max_retries:
                break
            pause = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
            if time.monotonic() - started + pause >= self.deadline:
                break
            await asyncio.sleep(pause)
        elapsed = time.monotonic() - started
        if timed_out:
            raise BackendTimeoutError(
                f"{method} {path}: no answer within the {self.deadline} s deadline ({last})",
                url=self.base_url,
                deadline=self.deadline,
            )
        raise BackendUnavailableError(
            f"{method} {path} failed after {elapsed:.3f} s and retries: {last}",
            url=self.base_url,
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any],
        content: bytes | None,
        headers: Mapping[str, str],
        *,
        limit: float,
    ) -> Any:
        try:
            response = await self._http().request(
                method, path, params=query, content=content, headers=headers, timeout=limit
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc)) from None
        except httpx.TransportError as exc:
            # Connection refused or dropped: the request may not have run, and writes carry
            # their idempotency key, so trying again is safe.
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}: {_detail(response)}")
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            return loads(response.content)
        except (InvalidInputError, UnicodeDecodeError):
            raise _Retryable(f"HTTP {response.status_code} with a body that is not JSON") from None

    async def _get(self, path: str, model: type[M], **params: Any) -> M:
        return _parse(model, await self._call("GET", path, params=params), path)

    async def _get_list(self, path: str, model: type[M], **params: Any) -> list[M]:
        data = await self._call("GET", path, params=params)
        if not isinstance(data, list):
            raise BackendUnavailableError(f"GET {path} did not answer with a list")
        return [_parse(model, item, path) for item in data]

    async def _write(
        self, method: str, path: str, body: SpecModel | None, model: type[M], key: str
    ) -> M:
        return _parse(model, await self._call(method, path, body=body, idempotency_key=key), path)

    # -- reads ----------------------------------------------------------------------------

    @staticmethod
    def _account(user_id: str, project_id: str) -> str:
        return f"/api/v1/budgets/user/{_seg(user_id)}/project/{_seg(project_id)}"

    @staticmethod
    def _model(provider: str, model: str) -> str:
        return f"/api/v1/pricing/provider/{_seg(provider)}/model/{_seg(model)}"

    async def _fetch_balance(self, user_id: str, project_id: str) -> Balance:
        return await self._get(f"{self._account(user_id, project_id)}/balance", Balance)

    async def _fetch_status(self, user_id: str, project_id: str) -> BudgetStatus:
        return await self._get(
            f"{self._account(user_id, project_id)}/status", BudgetStatus, extended=_EXTENDED
        )

    async def _fetch_spending(
        self, user_id: str, project_id: str, period: SpendingPeriod, at: datetime | None
    ) -> SpendingSummary:
        path = f"{self._account(user_id, project_id)}/spending/{_seg(str(period))}"
        return await self._get(path, SpendingSummary, at=_iso(at) if at else None)

    async def _fetch_analytics(
        self, user_id: str, project_id: str, period: SpendingPeriod, at: datetime | None
    ) -> SpendingAnalytics:
        return await self._get(
            f"{self._account(user_id, project_id)}/analytics",
            SpendingAnalytics,
            period=str(period),
            at=_iso(at) if at else None,
            extended=_EXTENDED,
        )

    async def _fetch_series(
        self,
        user_id: str,
        project_id: str,
        granularity: SpendingPeriod,
        start: datetime,
        end: datetime,
    ) -> list[SpendingBucket]:
        return await self._get_list(
            f"{self._account(user_id, project_id)}/series",
            SpendingBucket,
            granularity=str(granularity),
            start=_iso(start),
            end=_iso(end),
        )

    async def get_output_history(
        self,
        user_id: str,
        project_id: str,
        provider: str,
        model: str,
        *,
        min_samples: int = DEFAULT_MIN_SAMPLES,
    ) -> OutputHistory:
        """``GET .../output-history``: recorded output sizes of the model's calls."""
        path = f"{self._account(user_id, project_id)}/output-history"
        params = {"provider": provider, "model": model, "min_samples": min_samples}
        return _parse(OutputHistory, await self._call("GET", path, params=params), path)

    async def get_usage_shapes(
        self, user_id: str, project_id: str, start: datetime, end: datetime
    ) -> list[UsageShape]:
        """``GET .../usage-shapes``: the window's usage grouped by model, minute and shape."""
        return await self._get_list(
            f"{self._account(user_id, project_id)}/usage-shapes",
            UsageShape,
            start=_iso(start),
            end=_iso(end),
        )

    async def _fetch_policy(self, user_id: str, project_id: str) -> BudgetPolicy:
        return await self._get(f"{self._account(user_id, project_id)}/policy", BudgetPolicy)

    async def _fetch_accounts(self) -> list[AccountRef]:
        return await self._get_list("/api/v1/budgets/accounts", AccountRef)

    async def _fetch_pricing(self, provider: str, model: str, at: datetime | None) -> PricingData:
        return await self._get(
            self._model(provider, model),
            PricingData,
            at=_iso(at) if at else None,
            extended=_EXTENDED,
        )

    async def _fetch_price_history(
        self, provider: str, model: str, days: int | None
    ) -> list[PricingData]:
        return await self._get_list(
            f"{self._model(provider, model)}/history", PricingData, days=days, extended=_EXTENDED
        )

    async def _fetch_models(self, provider: str | None) -> list[tuple[str, str]]:
        data = await self._call("GET", "/api/v1/pricing/models", params={"provider": provider})
        try:
            return [(str(item["provider"]), str(item["model"])) for item in data]
        except (TypeError, KeyError):
            raise BackendUnavailableError("GET /api/v1/pricing/models: unexpected body") from None

    async def _fetch_prices(
        self, provider: str | None
    ) -> list[tuple[str, str, PricingData | None]]:
        data = await self._call(
            "GET", "/api/v1/pricing/prices", params={"provider": provider, "extended": "true"}
        )
        try:
            return [
                (
                    str(item["provider"]),
                    str(item["model"]),
                    None if item["pricing"] is None else PricingData.from_data(item["pricing"]),
                )
                for item in data
            ]
        except (TypeError, KeyError, ValueError):
            raise BackendUnavailableError("GET /api/v1/pricing/prices: unexpected body") from None

    # -- writes ---------------------------------------------------------------------------

    def _ledger(self, user_id: str, project_id: str, action: str) -> str:
        return f"/api/v1/ledger/user/{_seg(user_id)}/project/{_seg(project_id)}/{action}"

    async def _account_write(
        self,
        user_id: str,
        project_id: str,
        method: str,
        action: str,
        body: SpecModel,
        model: type[M],
        key: str,
    ) -> M:
        try:
            return await self._write(
                method, self._ledger(user_id, project_id, action), body, model, key
            )
        finally:
            # Even a failed write may have landed (lost answer): forget what it could change.
            self._written(user_id, project_id)

    async def deposit(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        reference: str | None = None,
    ) -> LedgerEntry:
        """Credit the account (``POST /api/v1/ledger/.../deposit``)."""
        body = DepositRequest.from_data({"amount": amount, "reference": reference})
        return await self._account_write(
            user_id, project_id, "POST", "deposit", body, LedgerEntry, idempotency_key
        )

    async def record_usage(
        self, user_id: str, project_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        """Charge one provider call that had no reservation."""
        return await self._account_write(
            user_id, project_id, "POST", "usage", usage, LedgerEntry, idempotency_key
        )

    async def refund(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        idempotency_key: str,
        usage_entry_id: str | None = None,
        reason: str = "",
    ) -> LedgerEntry:
        """Credit back earlier usage."""
        body = RefundRequest.from_data(
            {"amount": amount, "usage_entry_id": usage_entry_id, "reason": reason}
        )
        return await self._account_write(
            user_id, project_id, "POST", "refund", body, LedgerEntry, idempotency_key
        )

    async def adjust(
        self,
        user_id: str,
        project_id: str,
        amount: Decimal,
        *,
        reason: str,
        idempotency_key: str,
    ) -> LedgerEntry:
        """A signed correction with a reason."""
        body = AdjustRequest.from_data({"amount": amount, "reason": reason})
        return await self._account_write(
            user_id, project_id, "POST", "adjust", body, LedgerEntry, idempotency_key
        )

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
        """Hold funds; the service's 402 comes back as BudgetExceeded/PolicyViolationError."""
        body = ReserveRequest.from_data(
            {"amount": amount, "ttl_seconds": ttl_seconds, "request_id": request_id}
        )
        return await self._account_write(
            user_id, project_id, "POST", "reserve", body, BudgetReservation, idempotency_key
        )

    async def settle(
        self, reservation_id: str, usage: UsageEvent, *, idempotency_key: str
    ) -> LedgerEntry:
        """Charge the real usage once and free the hold."""
        path = f"/api/v1/ledger/reservations/{_seg(reservation_id)}/settle"
        entry: LedgerEntry | None = None
        try:
            entry = await self._write(
                "POST",
                path,
                SettleRequest.from_data({"usage": usage}),
                LedgerEntry,
                idempotency_key,
            )
            return entry
        finally:
            self._written(entry.user_id if entry else None, entry.project_id if entry else None)

    async def release(self, reservation_id: str, *, idempotency_key: str) -> BudgetReservation:
        """Free the hold without charging."""
        path = f"/api/v1/ledger/reservations/{_seg(reservation_id)}/release"
        held: BudgetReservation | None = None
        try:
            held = await self._write("POST", path, None, BudgetReservation, idempotency_key)
            return held
        finally:
            self._written(held.user_id if held else None, held.project_id if held else None)

    async def set_policy(self, user_id: str, project_id: str, policy: BudgetPolicy) -> BudgetPolicy:
        """Replace the account's policy; one idempotency key covers the retries of this call."""
        return await self._account_write(
            user_id, project_id, "PUT", "policy", policy, BudgetPolicy, f"policy-{uuid.uuid4()}"
        )

    # -- the shared alert state (``/api/v1/alerts``; see ``budgets.alert_store``) ------------

    @staticmethod
    def _alerts(user_id: str, project_id: str, action: str) -> str:
        return f"/api/v1/alerts/user/{_seg(user_id)}/project/{_seg(project_id)}/{action}"

    async def claim_alert(
        self,
        alert: SpendingAlert,
        *,
        rule: str,
        period_start: datetime,
        period_end: datetime,
        rank: Decimal,
    ) -> tuple[bool, SpendingAlert]:
        """``POST .../claims``: record ``alert`` for (rule, period) at ``rank`` unless it
        already fired there at that rank or higher; ``(True, alert)`` for the one caller that
        won (a retry of the same claim included), else ``(False, the alert that stands)``."""
        body = AlertClaim.from_data(
            {
                "alert": _alert_data(alert),
                "rule": rule,
                "period_start": period_start,
                "period_end": period_end,
                "rank": _rank(rank),
            }
        )
        path = self._alerts(alert.user_id, alert.project_id, "claims")
        result = _parse(AlertClaimResult, await self._call("POST", path, body=body), path)
        return result.claimed, result.alert

    async def record_alert(self, alert: SpendingAlert, *, rule: str) -> SpendingAlert:
        """``POST .../reports``: keep an alert raised elsewhere (no period to claim in)."""
        body = AlertReport.from_data({"alert": _alert_data(alert), "rule": rule})
        path = self._alerts(alert.user_id, alert.project_id, "reports")
        return _parse(SpendingAlert, await self._call("POST", path, body=body), path)

    async def acknowledge_alert(
        self, alert_id: str, *, at: datetime | None = None, by: str | None = None
    ) -> SpendingAlert:
        """``POST /api/v1/alerts/{alert_id}/acknowledge``: the first acknowledgement stands."""
        body = AlertAcknowledgement.from_data({"by": by, "at": at})
        path = f"/api/v1/alerts/{_seg(alert_id)}/acknowledge"
        return _parse(SpendingAlert, await self._call("POST", path, body=body), path)

    async def recent_alerts(
        self,
        *,
        since: datetime,
        user_id: str | None = None,
        project_id: str | None = None,
        include_acknowledged: bool = False,
        limit: int = 1000,
    ) -> list[SpendingAlert]:
        """Alerts raised at or after ``since``, newest first: of one account (``GET
        .../recent``), or of every account the key may see (``GET /api/v1/alerts/recent``),
        filtered here when only one of ``user_id``/``project_id`` is given."""
        params = {
            "since": _iso(since),
            "include_acknowledged": "true" if include_acknowledged else "false",
            "limit": max(1, min(limit, 1000)),
        }
        if user_id is not None and project_id is not None:
            return await self._get_list(
                self._alerts(user_id, project_id, "recent"), SpendingAlert, **params
            )
        alerts = await self._get_list("/api/v1/alerts/recent", SpendingAlert, **params)
        return [
            alert
            for alert in alerts
            if (user_id is None or alert.user_id == user_id)
            and (project_id is None or alert.project_id == project_id)
        ]


_RANK_STEP = Decimal(1).scaleb(-RANK_DIGITS)


def _rank(rank: Decimal) -> Decimal:
    """A rank with at most the decimals the service keeps, rounded as the ledger rounds."""
    exponent = rank.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -RANK_DIGITS:
        return rank.quantize(_RANK_STEP)
    return rank


def _plain(value: Any) -> Any:
    """Metadata as the service reads it: a float as the Decimal its text shows."""
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _alert_data(alert: SpendingAlert) -> dict[str, Any]:
    data = alert.model_dump(mode="python")
    data["metadata"] = _nano_rounded(_plain(data["metadata"]))
    return data


def _parse(model: type[M], data: Any, path: str) -> M:
    """A model from the service's answer; an answer we cannot read is the service's fault."""
    try:
        return model.from_data(data)
    except InvalidInputError as exc:
        raise BackendUnavailableError(f"{path}: unexpected answer: {exc.detail}") from None


def _detail(response: httpx.Response) -> str:
    try:
        body = loads(response.content)
    except (InvalidInputError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return response.text[:200]


def _error_from(response: httpx.Response) -> SmartspaceBudgetError:
    """Rebuild the package's exception from a 4xx ``{"error": Name, "detail": ...}`` body."""
    name, detail = "", f"HTTP {response.status_code}"
    try:
        body = loads(response.content)
    except (InvalidInputError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        name = str(body.get("error", ""))
        detail = str(body.get("detail", detail))
    cls = getattr(errors, name, None)
    status = response.status_code
    if status == 429 or cls is errors.RateLimitedError:
        retry_after = response.headers.get("Retry-After", "1")
        return errors.RateLimitedError(
            detail, retry_after=int(retry_after) if retry_after.isdigit() else 1
        )
    if not (isinstance(cls, type) and issubclass(cls, SmartspaceBudgetError)):
        cls = _BY_STATUS.get(status, SmartspaceBudgetError)
    return cls(detail, status=status)
