"""serve(): authentication off only on loopback; the metrics directory of several workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smartspace_budget.errors import InvalidInputError
from smartspace_budget.server.run import is_loopback, metrics_directory, serve
from smartspace_budget.server.telemetry import MULTIPROC_ENV


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_no_auth_is_refused_off_loopback() -> None:
    with pytest.raises(InvalidInputError, match="without authentication"):
        serve(host="0.0.0.0", port=1, auth=False)


def test_worker_count_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="workers"):
        serve(workers=0)


def test_several_workers_get_a_fresh_metrics_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with metrics_directory(1) as none:
        assert none is None
        assert MULTIPROC_ENV not in os.environ
    with metrics_directory(2) as made:
        assert made is not None
        assert made.is_dir()
        assert os.environ[MULTIPROC_ENV] == str(made)
    assert not made.exists()
    assert MULTIPROC_ENV not in os.environ


def test_a_given_metrics_directory_is_emptied_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"old values")
    (tmp_path / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with metrics_directory(1) as given:
        assert given == tmp_path
        assert not (tmp_path / "counter_123.db").exists()
    assert (tmp_path / "notes.txt").exists()


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="log format"):
        serve(log_format="xml")  # type: ignore[arg-type]
