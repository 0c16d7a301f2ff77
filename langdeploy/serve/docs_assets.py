"""/docs (Swagger UI) and /redoc from assets the app serves itself, never from a CDN.

FastAPI's own pages load Swagger UI and ReDoc from jsdelivr, so on an offline host (the default
deployment here) the API docs are a blank page. The PyPI package ``fastapi-offline`` ships the
built bundles (Swagger UI, Apache-2.0; ReDoc, MIT); only its static files are used, served under
:data:`ASSETS_PATH`, with pages built by FastAPI's own helpers.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from langdeploy.errors import ConfigError

ASSETS_PATH = "/_docs-assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def asset_dir() -> Path:
    """The folder of the bundled Swagger UI and ReDoc files."""
    try:
        folder = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        folder = None
    missing = [n for n in ASSET_FILES if folder is None or not (folder / n).is_file()]
    if folder is None or missing:
        raise ConfigError(
            f"The API docs' assets ({', '.join(missing)}) are missing: the package "
            "fastapi-offline, a dependency of langdeploy, is not installed or is incomplete.",
            fix="Install it with: pip install 'fastapi-offline>=1.7'",
        )
    return folder


# ReDoc's side menu shows Redocly's logo from their CDN; an empty inline image keeps the page
# from reaching out (the attribution link itself stays).
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/%3E"


@functools.cache
def _offline_redoc(folder: str) -> str:
    bundle = (Path(folder) / "redoc.standalone.js").read_text("utf-8")
    return bundle.replace(_REDOC_LOGO, _EMPTY_SVG)


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc with local assets. The app must be built with ``docs_url=None``
    and ``redoc_url=None``, so FastAPI's CDN pages are not registered first."""
    folder = asset_dir()

    # Registered before the mount below, so it answers for this one file.
    @app.get(f"{ASSETS_PATH}/redoc.standalone.js", include_in_schema=False)
    async def redoc_bundle() -> Response:
        return Response(_offline_redoc(str(folder)), media_type="application/javascript")

    app.mount(ASSETS_PATH, StaticFiles(directory=folder), name="docs-assets")
    redirect_url = "/docs/oauth2-redirect"

    def prefix(request: Request) -> str:
        # Behind a proxy that mounts the app under a path, links must carry that path.
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # Swagger UI's default sends the spec to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
