"""``upgrade`` leaves a database already at the packaged head alone, without Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from smartspace_budget.ledger.engine import create_engine
from smartspace_budget.ledger.migrate import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    packaged_head,
    upgrade,
)


def test_packaged_head_is_alembics_head() -> None:
    assert packaged_head() is not None
    assert packaged_head() == head_revision()


async def test_a_database_at_head_is_not_migrated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()

        from alembic import command

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("Alembic ran on a database already at head")

        monkeypatch.setattr(command, "upgrade", refuse)
        await upgrade(engine)  # one read of the revision table, nothing else
        # Behind head (or any other revision): Alembic is asked again.
        async with engine.begin() as conn:
            await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'ledger_0001'"))
        with pytest.raises(AssertionError, match="Alembic ran"):
            await upgrade(engine)
    finally:
        await engine.dispose()


async def test_a_new_database_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite3'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


def test_opening_a_ledger_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}"
    script = (
        "import asyncio, sys\n"
        "from smartspace_budget.ledger.ledger import Ledger\n"
        "async def main():\n"
        f"    ledger = await Ledger.connect({url!r})\n"
        "    await ledger.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "alembic" in first.stdout  # a new database: migrated with Alembic
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "[]"
