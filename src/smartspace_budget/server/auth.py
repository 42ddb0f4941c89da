"""Who is calling, what they may touch, and how often.

Every route depends on :func:`principal`, which reads ``Authorization: Bearer <key>``,
checks it against the admin key from the environment and the hashed keys in the database,
and charges the key's rate limit. The route then asks the :class:`Principal` for what it
needs:

- another tenant's account or reservation answers **404** with a fixed message, exactly as
  if it did not exist, so a key cannot learn which accounts exist;
- its own account with too small a scope answers **403**;
- a missing key and a wrong key answer the same **401**, byte for byte.

A ``metrics`` key is refused (403) by :func:`admit` everywhere but ``/metrics``, which
admits it with ``metrics_route=True``: the scraper's key can read counters and nothing else.

Raw keys are never logged, stored or put in an error message; only their SHA-256 is
compared and cached (``key_cache_ttl`` seconds). Revocations still take effect within
about a second on every replica: ``server/revocations.py`` watches the database and empties
the cache when a key is revoked anywhere.

Rate limits are charged through a :class:`Limiter`: :class:`RateLimiter` (a token bucket
in this process) or, when ``SMARTSPACE_BUDGET_REDIS_URL`` is set,
:class:`~smartspace_budget.server.shared_limits.SharedRateLimiter`, shared by all replicas.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from smartspace_budget.backend.cache import TTLCache
from smartspace_budget.errors import (
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from smartspace_budget.server.key_tables import ApiKeyInfo, Scope, hash_key

__all__ = [
    "ACCOUNT_NOT_FOUND",
    "CALLER_STATE",
    "METRICS_ONLY",
    "RESERVATION_NOT_FOUND",
    "Authenticator",
    "Limiter",
    "MetricsCaller",
    "Principal",
    "RateLimiter",
    "admit",
    "bearer",
    "bearer_token",
    "metrics_reader",
    "principal",
]

ACCOUNT_NOT_FOUND = "no such account"
RESERVATION_NOT_FOUND = "no such reservation"
UNAUTHORIZED = "missing or invalid API key"
METRICS_ONLY = "this key may only read /metrics"

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer ssb_...`")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a key's id and scope, and its account for account scopes."""

    key_id: str
    scope: Scope
    user_id: str | None = None
    project_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """May do everything."""
        return self.scope is Scope.ADMIN

    def owns(self, user_id: str, project_id: str) -> bool:
        """The account is visible to this key."""
        if self.is_admin:
            return True
        return self.scope in (Scope.ACCOUNT, Scope.ACCOUNT_READ) and (
            self.user_id == user_id and self.project_id == project_id
        )

    def require_read(self, user_id: str, project_id: str) -> None:
        """Read the account, or 404 as if it did not exist."""
        if not self.owns(user_id, project_id):
            raise NotFoundError(ACCOUNT_NOT_FOUND)

    def require_spend(self, user_id: str, project_id: str) -> None:
        """Record usage and manage holds on the account (``account`` or ``admin``)."""
        self.require_read(user_id, project_id)
        if self.scope not in (Scope.ADMIN, Scope.ACCOUNT):
            raise ForbiddenError("this key may only read the account")

    def require_admin_on(self, user_id: str, project_id: str) -> None:
        """Credit the account or change its policy: admin only (404 for other tenants)."""
        self.require_read(user_id, project_id)
        if not self.is_admin:
            raise ForbiddenError("only an admin key may credit an account or change its policy")

    def require_admin(self) -> None:
        """Service-wide operations."""
        if not self.is_admin:
            raise ForbiddenError("only an admin key may do this")

    def require_metrics_reader(self) -> None:
        """Reading ``/metrics``: an admin or a ``metrics`` key."""
        if self.scope not in (Scope.ADMIN, Scope.METRICS):
            raise ForbiddenError("only an admin or a metrics key may read metrics")

    def require_account_reader(self) -> None:
        """Listing accounts: any key that may see at least one account."""
        if self.scope is Scope.PRICING_READ:
            raise ForbiddenError("this key may only read prices")
        if self.scope is Scope.METRICS:
            raise ForbiddenError(METRICS_ONLY)


ANONYMOUS_ADMIN = Principal(key_id="no-auth", scope=Scope.ADMIN)


class Limiter(Protocol):
    """Charges one request to a key, or raises :class:`RateLimitedError`."""

    async def acquire(self, key: str) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~smartspace_budget.errors.BackendError` if requests cannot be
        charged (readiness)."""

    async def aclose(self) -> None: ...


class RateLimiter:
    """A token bucket per key, in process: ``rate`` per second sustained, ``burst`` at once.

    Each process limits on its own: with N replicas (or uvicorn workers) a key gets up to N
    times the rate. Set ``SMARTSPACE_BUDGET_REDIS_URL`` to share the limit instead
    (:class:`~smartspace_budget.server.shared_limits.SharedRateLimiter`). ``rate=0``
    disables it.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> None:
        """Spend one token of ``key``; :class:`RateLimitedError` with ``retry_after`` if none."""
        if self.rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            retry_after = max(1, math.ceil((1 - tokens) / self.rate))
            raise RateLimitedError(
                f"rate limit of {self.rate:g} requests/s exceeded", retry_after=retry_after
            )
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    async def acquire(self, key: str) -> None:
        """:meth:`take`, as the :class:`Limiter` protocol asks."""
        self.take(key)

    async def ping(self) -> None:
        """Always ready: the buckets live in this process."""

    async def aclose(self) -> None:
        """Nothing to release: the buckets live in this process."""


class Authenticator:
    """Turns a presented key into a :class:`Principal` (or an :class:`UnauthorizedError`).

    ``lookup`` finds an active key by its raw value (the database in the service). The
    admin key from the environment is compared in constant time.
    """

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[ApiKeyInfo | None]],
        *,
        admin_key: str | None = None,
        enabled: bool = True,
        cache_ttl: float = 5.0,
    ) -> None:
        self._lookup = lookup
        self._admin_hash = hash_key(admin_key) if admin_key else None
        self.enabled = enabled
        self._cache: TTLCache[Principal | None] = TTLCache(cache_ttl, max_entries=10_000)

    async def authenticate(self, raw_key: str | None) -> Principal:
        """The caller, or :class:`UnauthorizedError` (same message for missing and wrong keys)."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        if not raw_key:
            raise UnauthorizedError(UNAUTHORIZED)
        digest = hash_key(raw_key)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(key_id="env-admin", scope=Scope.ADMIN)
        found = await self._cache.get_or_fetch(digest, lambda: self._resolve(raw_key))
        if found is None:
            raise UnauthorizedError(UNAUTHORIZED)
        return found

    async def _resolve(self, raw_key: str) -> Principal | None:
        info = await self._lookup(raw_key)
        if info is None:
            return None
        return Principal(
            key_id=info.key_id, scope=info.scope, user_id=info.user_id, project_id=info.project_id
        )

    def forget(self) -> None:
        """Drop every cached verification (after revoking a key in this process)."""
        self._cache.invalidate()


def bearer_token(authorization: str | None) -> str | None:
    """The key in an ``Authorization`` header, read exactly as :data:`bearer` reads it."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


CALLER_STATE = "caller"
"""Where :func:`admit` leaves the caller in the request's ``state`` (for the request log)."""


async def admit(
    authenticator: Authenticator,
    limiter: Limiter,
    raw_key: str | None,
    client: str,
    *,
    state: MutableMapping[str, Any] | None = None,
    metrics_route: bool = False,
) -> Principal:
    """Authenticate a presented key and charge its rate limit (``client``: the peer address).

    ``state`` (the request's ``scope["state"]``) receives the caller once known, so the
    request log can name the key and account. A ``metrics`` key is refused (403) unless
    ``metrics_route``.
    """
    try:
        caller = await authenticator.authenticate(raw_key)
    except UnauthorizedError:
        # Failed attempts are limited per client address, so keys cannot be guessed fast.
        await limiter.acquire("anon:" + client)
        raise
    if state is not None:
        state[CALLER_STATE] = caller
    await limiter.acquire(caller.key_id)
    if caller.scope is Scope.METRICS and not metrics_route:
        raise ForbiddenError(METRICS_ONLY)
    return caller


def _request_state(request: Request) -> MutableMapping[str, Any]:
    state: MutableMapping[str, Any] = request.scope.setdefault("state", {})
    return state


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """FastAPI dependency: authenticate the request and charge its key's rate limit."""
    state = request.app.state
    raw = credentials.credentials if credentials is not None else None
    client = request.client.host if request.client else "unknown"
    return await admit(
        state.authenticator, state.rate_limiter, raw, client, state=_request_state(request)
    )


async def metrics_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """FastAPI dependency of ``/metrics``: like :func:`principal`, admitting metrics keys."""
    state = request.app.state
    raw = credentials.credentials if credentials is not None else None
    client = request.client.host if request.client else "unknown"
    caller = await admit(
        state.authenticator,
        state.rate_limiter,
        raw,
        client,
        state=_request_state(request),
        metrics_route=True,
    )
    caller.require_metrics_reader()
    return caller


Caller = Annotated[Principal, Depends(principal)]
"""A route parameter annotated ``Caller`` receives the authenticated :class:`Principal`."""

MetricsCaller = Annotated[Principal, Depends(metrics_reader)]
"""The caller of ``/metrics``: an admin or a ``metrics`` key."""
