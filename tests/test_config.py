"""Settings come from SMARTSPACE_BUDGET_* and never show their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartspace_budget.config import Settings, default_data_dir


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_URL", " http://ledger:8000/ ")
    monkeypatch.setenv("SMARTSPACE_BUDGET_API_KEY", "ssb_client_secret")
    monkeypatch.setenv("SMARTSPACE_BUDGET_ADMIN_KEY", "ssb_admin_secret")
    monkeypatch.setenv("SMARTSPACE_BUDGET_STATUS_TTL", "5")
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATABASE_URL", "  ")
    monkeypatch.setenv("SMARTSPACE_BUDGET_DATA_DIR", "/tmp/ssb-data")
    settings = Settings()
    assert settings.url == "http://ledger:8000"
    assert settings.database_url is None
    assert settings.status_ttl == 5
    assert settings.pricing_ttl == 300
    assert settings.deadline == 2.0
    assert settings.data_dir == Path("/tmp/ssb-data")
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "ssb_client_secret"
    shown = repr(settings) + str(settings.model_dump())
    assert "ssb_client_secret" not in shown
    assert "ssb_admin_secret" not in shown


def test_defaults_are_the_embedded_ledger_with_auth_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("URL", "DATABASE_URL", "DATA_DIR", "AUTH_ENABLED"):
        monkeypatch.delenv(f"SMARTSPACE_BUDGET_{name}", raising=False)
    settings = Settings()
    assert settings.url is None
    assert settings.database_url is None
    assert settings.data_dir == default_data_dir()
    assert settings.auth_enabled is True


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTSPACE_BUDGET_DEADLINE", "0")
    with pytest.raises(ValueError, match="SMARTSPACE_BUDGET_DEADLINE"):
        Settings()
