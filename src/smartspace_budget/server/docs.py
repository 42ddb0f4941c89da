"""``/docs`` (Swagger UI) and ``/redoc`` served entirely by the service, so they work offline.

FastAPI's own pages load their scripts and styles from a CDN: on a machine without internet
access (or behind a proxy that blocks it) they are blank. The same pages are served here
with the assets of the ``fastapi-offline`` package, which ships Swagger UI and ReDoc's
files; the service serves them under ``/docs/static/`` (a fixed directory of the package,
read through :class:`~starlette.staticfiles.StaticFiles`, which refuses paths outside it).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS", "install_docs"]

ASSETS = "/docs/static"
"""Where the Swagger UI and ReDoc files are served."""


def _asset_directory() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets (the app is built with both URLs off)."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    app.mount(ASSETS, StaticFiles(directory=_asset_directory()), name="docs-assets")
