"""``keys``: API keys of the service, made and revoked directly in its database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import typer

from smartspace_budget.cli.output import console, key_values, print_json, run, table
from smartspace_budget.cli.runtime import JSON, CliOptions, options, settings
from smartspace_budget.errors import InvalidInputError

__all__ = ["register"]

keys_app = typer.Typer(help="Create, list and revoke the service's API keys.", no_args_is_help=True)


@asynccontextmanager
async def _engine(opts: CliOptions) -> AsyncIterator[Any]:
    """The ledger database's engine (keys live beside the ledger, never behind --url)."""
    from smartspace_budget.ledger.engine import create_engine, default_database_url
    from smartspace_budget.ledger.migrate import upgrade
    from smartspace_budget.server.key_tables import ensure_key_table

    if opts.url:
        raise InvalidInputError("keys are managed in the database: use --database-url, not --url")
    config = settings(opts)
    engine = create_engine(config.database_url or default_database_url())
    try:
        await upgrade(engine)
        await ensure_key_table(engine)
        yield engine
    finally:
        await engine.dispose()


def _info(key: Any) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "scope": key.scope.value,
        "user_id": key.user_id,
        "project_id": key.project_id,
        "name": key.name,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    admin: bool = typer.Option(False, "--admin", help="A key that may do everything."),
    scope: str = typer.Option(
        "account", "--scope", help="account, account_read, pricing_read, metrics."
    ),
    user: str | None = typer.Option(None, "--user", "-u", help="Account of an account key."),
    project: str | None = typer.Option(None, "--project", "-p"),
    name: str | None = typer.Option(None, "--name", help="A label to recognise the key."),
    as_json: bool = JSON,
) -> None:
    """Create a key and print it once (only its hash is stored)."""

    async def go() -> tuple[str, str]:
        from smartspace_budget.server.key_tables import create_api_key

        async with _engine(options(ctx)) as engine:
            return await create_api_key(
                engine, scope=scope, user_id=user, project_id=project, admin=admin, name=name
            )

    key_id, raw = run(go())
    chosen = "admin" if admin else scope
    if as_json:
        print_json({"key_id": key_id, "api_key": raw, "scope": chosen})
        return
    console.print(key_values("API key created", {"Key id": key_id, "Scope": chosen, "Key": raw}))
    console.print("Store the key now: it cannot be shown again.")


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    revoked: bool = typer.Option(False, "--revoked", help="Include revoked keys."),
    as_json: bool = JSON,
) -> None:
    """Keys without their secrets, oldest first."""

    async def go() -> list[Any]:
        from smartspace_budget.server.key_tables import list_api_keys

        async with _engine(options(ctx)) as engine:
            return await list_api_keys(engine, include_revoked=revoked)

    keys = run(go())
    if as_json:
        print_json([_info(k) for k in keys])
        return
    console.print(
        table(
            f"API keys ({len(keys)})",
            ["Key id", "Scope", "Account", "Name", "Created", "Revoked"],
            [
                (
                    k.key_id,
                    k.scope.value,
                    f"{k.user_id}/{k.project_id}" if k.user_id else "",
                    k.name or "",
                    k.created_at.strftime("%Y-%m-%d %H:%M"),
                    k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
                )
                for k in keys
            ],
        )
    )


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context, key_id: str = typer.Argument(...), as_json: bool = JSON
) -> None:
    """Revoke a key (services stop accepting it within their key cache time)."""

    async def go() -> Any:
        from smartspace_budget.server.key_tables import revoke_api_key

        async with _engine(options(ctx)) as engine:
            return await revoke_api_key(engine, key_id)

    key = run(go())
    if as_json:
        print_json(_info(key))
        return
    console.print(f"Revoked {key.key_id}.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(keys_app, name="keys")
