"""Settings from the environment: every variable is ``SMARTSPACE_BUDGET_<FIELD>``.

One object answers "where is the ledger, which service do the components talk to, how long
are answers cached, how is the service protected". The library, the service and the CLI
read the same settings, so one variable switches all of them:

- ``SMARTSPACE_BUDGET_URL``: the components talk to a running service (``HttpBackend``),
  authenticating with ``SMARTSPACE_BUDGET_API_KEY``.
- ``SMARTSPACE_BUDGET_DATABASE_URL``: the ledger lives in that database (PostgreSQL with
  ``postgresql+asyncpg://...``, or SQLite with ``sqlite+aiosqlite:///path``).
- neither: the embedded default, a SQLite file in ``SMARTSPACE_BUDGET_DATA_DIR`` (the
  user's data directory unless set).

Secrets are :class:`~pydantic.SecretStr`, so printing the settings never shows a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from smartspace_budget.errors import InvalidInputError

__all__ = ["APP_NAME", "Settings", "default_data_dir", "get_settings"]

APP_NAME = "smartspace-budget"


def default_data_dir() -> Path:
    """The user's data directory for this application (platformdirs), e.g. ``~/.local/share``."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


class Settings(BaseSettings):
    """Configuration of the library, the service and the CLI (see the module docstring)."""

    model_config = SettingsConfigDict(
        env_prefix="SMARTSPACE_BUDGET_",
        env_file=None,
        extra="ignore",
        frozen=True,
    )

    # Where the components read from.
    url: str | None = Field(
        default=None, description="Base URL of a running service; switches to HttpBackend."
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key HttpBackend sends as a Bearer token."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL of the ledger database."
    )
    data_dir: Path = Field(
        default_factory=default_data_dir, description="Directory of the embedded SQLite ledger."
    )

    # Client-side caching and resilience (spec: pricing 5 minutes, status 30 seconds).
    status_ttl: float = Field(default=30.0, ge=0, description="Seconds budget reads are cached.")
    pricing_ttl: float = Field(default=300.0, ge=0, description="Seconds prices are cached.")
    deadline: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Seconds one backend call may take (HttpBackend: retries included; the direct "
            "database path: opening, lock, connection, statement and pool waits included)."
        ),
    )
    max_retries: int = Field(default=3, ge=0, le=10, description="Retries after the first try.")

    # The outbox of settlements and usage the ledger has not acknowledged yet.
    outbox_path: Path | None = Field(
        default=None,
        description=(
            "SQLite file journaling settlements and usage until the ledger acknowledges them; "
            "unset: beside the embedded SQLite ledger, else outbox.sqlite3 in data_dir."
        ),
    )
    outbox_max_delay: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait in seconds between two delivery attempts of the outbox.",
    )

    # The service.
    host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    admin_key: SecretStr | None = Field(
        default=None, description="Admin API key accepted in addition to keys in the database."
    )
    auth_enabled: bool = Field(
        default=True, description="False only for a local development server (--no-auth)."
    )
    rate_limit_per_second: float = Field(
        default=100.0, ge=0, description="Sustained requests per second per key; 0 disables."
    )
    rate_limit_burst: int = Field(default=200, ge=1, description="Requests a key may burst.")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body accepted (413 beyond)."
    )
    expiry_interval: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between the service's sweeps of expired reservations; 0 disables.",
    )
    key_cache_ttl: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a verified API key is remembered (between revocation checks).",
    )
    key_revocation_poll: float = Field(
        default=0.5,
        ge=0,
        description=(
            "Seconds between each replica's reads of the revocation count: a key revoked "
            "anywhere stops working everywhere within about this long; 0 leaves it to "
            "key_cache_ttl."
        ),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Redis (redis://host:6379/0) holding the rate limits all replicas share; unset, "
            "each process limits on its own."
        ),
    )
    metrics_account_labels: bool = Field(
        default=False,
        description=(
            "Export budget utilisation per account (user_id/project_id labels): one series "
            "per account, for small deployments. Off: a histogram over all accounts."
        ),
    )
    opentelemetry: bool = Field(
        default=False,
        description=(
            "Let FastAPI trace requests to the globally configured OpenTelemetry providers. "
            "Off by default: its per-request check costs the status path ~10% of its time, "
            "and /metrics already counts and times every route."
        ),
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidInputError(_explain(exc, values)) from None

    @field_validator("url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip().rstrip("/")

    @field_validator("database_url", "redis_url", "outbox_path", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return value.strip() or None


_SECRET_FIELDS = frozenset({"api_key", "admin_key"})


def _explain(exc: ValidationError, given: dict[str, Any]) -> str:
    """A bad setting named the way the user set it (the environment variable, usually), with
    the value it had (never a secret's) and what it should be; not pydantic's own report."""
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"setting {field}" if field in given else f"SMARTSPACE_BUDGET_{field.upper()}"
        shown = "" if field in _SECRET_FIELDS else f"={error.get('input')!r}"
        problems.append(f"{name}{shown}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)


def get_settings() -> Settings:
    """Read the settings from the environment now (not cached: tests change the environment)."""
    return Settings()
