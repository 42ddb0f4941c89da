"""One exception tree for the whole package.

Every error the library raises on purpose is a :class:`SmartspaceBudgetError`, so a caller can
catch one class, or pick the exact branch it can handle. Each class carries the HTTP status
the service answers with, so one handler maps them all to ``{"error": ..., "detail": ...}``::

    SmartspaceBudgetError                      500
    ├── InvalidInputError (ValueError)         400  bad argument, malformed document
    │   ├── InvalidAmountError                 400  NaN, infinity, float, negative, out of range
    │   ├── InconsistentInputError             422  well-formed values that contradict each other
    │   └── UnknownCurrencyError               400  no exchange rate for a currency
    ├── PricingError                           404
    │   ├── UnknownProviderError               404  provider not in the price book
    │   ├── UnknownModelError                  404  model not in the price book (never $0)
    │   ├── MissingPricingError                404  known model, no price for that case
    │   └── ContextLimitExceededError          400  input longer than the model's context
    ├── BudgetError                            402
    │   ├── BudgetExceededError                402  balance or hold cannot cover the amount
    │   └── PolicyViolationError               402  a policy limit forbids the spending
    ├── BackendError                           503
    │   ├── BackendUnavailableError            503  cannot reach the backend, or it failed
    │   └── BackendTimeoutError                504  the deadline passed before an answer
    ├── ConflictError                          409
    │   ├── IdempotencyConflictError           409  key reused with another request body
    │   └── ReservationResolvedError           409  reservation already settled/released/expired
    ├── NotFoundError                          404  no such account, reservation, entry
    ├── UnauthorizedError                      401  missing or wrong API key (indistinguishable)
    ├── ForbiddenError                         403  the key's scope does not allow the action
    ├── RateLimitedError                       429  too many requests for this key
    └── PolicyNotLoadedError                   500  a fetched policy's limits read before loading

A failing backend is never read as "budget available": reads raise :class:`BackendError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "BudgetError",
    "BudgetExceededError",
    "ConflictError",
    "ContextLimitExceededError",
    "ForbiddenError",
    "IdempotencyConflictError",
    "InconsistentInputError",
    "InvalidAmountError",
    "InvalidInputError",
    "MissingPricingError",
    "NotFoundError",
    "PolicyNotLoadedError",
    "PolicyViolationError",
    "PricingError",
    "RateLimitedError",
    "ReservationResolvedError",
    "SmartspaceBudgetError",
    "UnauthorizedError",
    "UnknownCurrencyError",
    "UnknownModelError",
    "UnknownProviderError",
]


class SmartspaceBudgetError(Exception):
    """Base of every error this package raises on purpose.

    ``detail`` is the human message; ``context`` holds the values involved (ids, amounts,
    limits) so callers and logs need not parse the message.
    """

    status_code: ClassVar[int] = 500

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context: dict[str, Any] = context

    def to_dict(self) -> dict[str, str]:
        """The service's error body: ``{"error": ClassName, "detail": message}``."""
        return {"error": type(self).__name__, "detail": self.detail}


class InvalidInputError(SmartspaceBudgetError, ValueError):
    """An argument or document is malformed; nothing was changed."""

    status_code = 400


class InconsistentInputError(InvalidInputError):
    """Each value is well formed, but together they contradict each other (a nested count
    above its parent's, an end before its start); nothing was changed.

    The service answers 422 for these and 400 for input its OpenAPI document refuses, so a
    client can tell "my request breaks the schema" from "my values disagree".
    """

    status_code = 422


class InvalidAmountError(InvalidInputError):
    """An amount is NaN, infinite, a float, negative where that is meaningless, or too large."""


class UnknownCurrencyError(InvalidInputError):
    """No exchange rate is configured for the currency."""


class PricingError(SmartspaceBudgetError):
    """Pricing cannot be determined."""

    status_code = 404


class UnknownProviderError(PricingError):
    """The provider is not in the price book."""


class UnknownModelError(PricingError):
    """The model is not in the price book; we never fall back to a price of zero."""


class MissingPricingError(PricingError):
    """The model is known but has no price for what was asked (pricing model or date)."""


class ContextLimitExceededError(PricingError):
    """The input is longer than the model's maximum input tokens."""

    status_code = 400


class BudgetError(SmartspaceBudgetError):
    """Spending is not allowed."""

    status_code = 402


class BudgetExceededError(BudgetError):
    """The available balance (balance minus open holds) cannot cover the amount."""


class PolicyViolationError(BudgetError):
    """A limit of the account's budget policy forbids the spending."""


class BackendError(SmartspaceBudgetError):
    """The backend could not answer; never treated as approval."""

    status_code = 503


class BackendUnavailableError(BackendError):
    """The backend is unreachable or answered with a server error."""


class BackendTimeoutError(BackendError):
    """The overall deadline passed before the backend answered."""

    status_code = 504


class ConflictError(SmartspaceBudgetError):
    """The request conflicts with what is already recorded."""

    status_code = 409


class IdempotencyConflictError(ConflictError):
    """The idempotency key was already used with a different request."""


class ReservationResolvedError(ConflictError):
    """The reservation was already settled, released or expired."""


class NotFoundError(SmartspaceBudgetError):
    """No such account, reservation or entry (or not visible to the caller)."""

    status_code = 404


class UnauthorizedError(SmartspaceBudgetError):
    """Missing or wrong credentials; both cases look the same on purpose."""

    status_code = 401


class ForbiddenError(SmartspaceBudgetError):
    """The credentials are valid but their scope does not allow the action."""

    status_code = 403


class RateLimitedError(SmartspaceBudgetError):
    """Too many requests for this key; ``retry_after`` seconds tell when to come back."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after: int, **context: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **context)
        self.retry_after = retry_after


class PolicyNotLoadedError(SmartspaceBudgetError):
    """The limits of ``BudgetPolicy.fetch_from_backend(...)`` were read before it was loaded
    (``await`` it, or pass it to ``check_against_policy``): never read as "no limits"."""

    status_code = 500
