"""GET /: JSON for API clients, a small HTML page for a person's browser.

The page lists the chains with links to their playgrounds and docs, the model card, readiness and
the OpenAI-compatible endpoint. Both forms come from one description of the server, and neither
shows where the server keeps its files (card_view's ``public`` rows, the handle's public name).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from langdeploy import __version__
from langdeploy.chains.registry import ChainSpec
from langdeploy.errors import LangdeployError
from langdeploy.models.card_view import card_rows
from langdeploy.models.factory import LocalModel, ModelHandle

_TEMPLATE = "home.html.j2"


def wants_html(accept: str) -> bool:
    """True when the Accept header ranks text/html above JSON (a browser), not for ``*/*``.

    curl, httpx and most API clients send ``*/*`` or ``application/json`` and keep getting JSON.
    """
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            ranks[media.lower()] = max(q, ranks.get(media.lower(), 0.0))
    html = max(ranks.get("text/html", 0.0), ranks.get("application/xhtml+xml", 0.0))
    return html > 0 and html >= ranks.get("application/json", 0.0)


def server_info(
    specs: list[ChainSpec], model: dict[str, Any], *, playground: bool, openai_chain: str | None
) -> dict[str, Any]:
    """The JSON answer of GET /: what is served and where."""
    return {
        "name": "langdeploy",
        "version": __version__,
        "model": model,
        "chains": [
            {
                "name": spec.name,
                "description": spec.description,
                "path": f"/{spec.name}",
                "invoke": f"/{spec.name}/invoke",
                "stream": f"/{spec.name}/stream",
                "batch": f"/{spec.name}/batch",
                "input_schema": f"/{spec.name}/input_schema",
                "sample_input": spec.sample_input,
                "playground": f"/{spec.name}/playground/" if playground else None,
            }
            for spec in specs
        ],
        "openai": "/v1/chat/completions" if openai_chain else None,
        "openai_chain": openai_chain,
    }


def model_card_rows(handle: ModelHandle) -> list[tuple[str, str]]:
    """The served model's card for the page; an upstream (OpenAI-compatible) model has none."""
    local = handle if isinstance(handle, LocalModel) else None
    if local is None:
        for inner in getattr(handle, "handles", ()):
            if isinstance(inner, LocalModel):
                local = inner
                break
    if local is None:
        return []
    try:
        from langdeploy.models import catalog

        card = catalog.model_card(local.name).as_dict()
    except LangdeployError as exc:
        return [("card", f"unavailable: {exc}")]
    return card_rows(card, public=True)


@functools.cache
def _template() -> jinja2.Template:
    source = (resources.files("langdeploy.serve") / "data" / _TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source)


def render_home(
    info: dict[str, Any], *, ready: bool, reason: str, card: list[Any], base_url: str
) -> str:
    return _template().render(info=info, ready=ready, reason=reason, card=card, base=base_url)


def install_index(
    app: FastAPI,
    specs: list[ChainSpec],
    handle: ModelHandle,
    *,
    playground: bool,
    openai_chain: str | None,
) -> None:
    """Register GET / (both forms)."""
    cached_card: list[list[tuple[str, str]]] = []

    @app.get(
        "/",
        tags=["meta"],
        response_model=None,
        responses={
            200: {"content": {"text/html": {}}, "description": "JSON, or HTML for a browser"}
        },
    )
    async def index(request: Request) -> Response:
        model = await run_in_threadpool(handle.describe)
        info = server_info(specs, model, playground=playground, openai_chain=openai_chain)
        if not wants_html(request.headers.get("accept", "")):
            return JSONResponse(info, headers={"Vary": "Accept"})
        if not cached_card:
            # The GGUF header is read once; the card does not change while the server runs.
            cached_card.append(await run_in_threadpool(model_card_rows, handle))
        ready = bool(model.get("ready"))
        reason = "" if ready else await run_in_threadpool(handle.not_ready_reason)
        page = render_home(
            info,
            ready=ready,
            reason=reason,
            card=cached_card[0],
            base_url=str(request.base_url).rstrip("/"),
        )
        return HTMLResponse(page, headers={"Vary": "Accept"})
