"""create_app(runtime) -> FastAPI: every served chain at /{name} through LangServe.

Layers, outermost first: Starlette's error boundary, the request context (id, scope, body
limit), admission (503/429), then the routes; every error body comes from serve/errors.py and
every stream's final event from serve/streams.py. The model loads
once, in the background at start-up, so /healthz answers at once and /readyz turns 200 when the
model is ready; chain routes answer 503 with Retry-After until then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from langchain_core.runnables import Runnable
from langserve import add_routes
from sse_starlette.sse import AppStatus
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware

from langdeploy import __version__
from langdeploy.errors import LangdeployError
from langdeploy.models.factory import ModelHandle
from langdeploy.runtime import AppRuntime, load_app
from langdeploy.serve.admission import AdmissionLimit
from langdeploy.serve.context import RequestContext
from langdeploy.serve.docs_assets import install_docs
from langdeploy.serve.errors import error_response, install_error_handlers
from langdeploy.serve.guarding import install_guards
from langdeploy.serve.openai_facade import build_router
from langdeploy.serve.pages import install_index
from langdeploy.serve.playground import install_playground
from langdeploy.serve.streams import BoundaryRoute, StreamErrorBoundary
from langdeploy.settings import Settings

log = logging.getLogger("langdeploy.serve")


def create_app(
    app: AppRuntime | Settings,
    model: ModelHandle | None = None,
    *,
    extras: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the app from its runtime (or from settings, through ``load_app``). ``model`` lets a
    caller (tests, eval) pass an already loaded model."""
    runtime = app if isinstance(app, AppRuntime) else load_app(app)
    settings = runtime.settings
    handle = model or runtime.model()
    specs = runtime.served_specs()
    runtime.check_served_guards()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # sse-starlette 1.x (pinned by LangServe) binds a module-level Event to the first event
        # loop that streams; an app started on another loop (tests, embedding) would fail.
        AppStatus.should_exit_event = None
        task = None
        if not handle.ready:
            task = asyncio.create_task(asyncio.to_thread(_load, handle))
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()

    # The layers, outermost first, in one place. Starlette puts its error boundary
    # (ServerErrorMiddleware) outside these and its exception handlers inside them.
    middleware = [
        Middleware(RequestContext, max_body_bytes=settings.server.max_body_bytes),
        Middleware(AdmissionLimit, model=handle),
    ]
    api = FastAPI(
        title="langdeploy",
        version=__version__,
        description="Guarded LangChain chains served by LangServe.",
        lifespan=lifespan,
        middleware=middleware,
        # Served from local assets by install_docs: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    # Every stream response gets its final event from one place (serve/streams.py).
    api.router.route_class = BoundaryRoute
    install_docs(api)
    api.state.settings = settings
    api.state.model = handle
    api.state.chain_paths = {spec.name: f"/{spec.name}" for spec in specs}
    install_error_handlers(api)

    disabled = [] if settings.server.playground else ["playground"]
    guards = install_guards(api, runtime, handle.count_tokens)
    runnables: dict[str, Runnable[Any, Any]] = {}
    for spec in specs:
        # Each chain gets its own retrieval guards, counted and audited like the others.
        chain = runtime.build_chain(
            spec.name, runtime.chain_context(handle, extras=extras), observer=guards.observe
        )
        runnable = StreamErrorBoundary(guards.wrap(spec.name, chain))
        runnables[spec.name] = runnable
        # A chat-shaped chain gets the chat playground with schemas it recognises (before
        # add_routes, so its route wins); any other chain LangServe's default playground.
        playground_type = (
            install_playground(api, spec.name, runnable, spec.playground_type or "default")
            if settings.server.playground
            else spec.playground_type or "default"
        )
        add_routes(
            api,
            runnable,
            path=f"/{spec.name}",
            playground_type=playground_type,
            dependencies=guards.dependencies(spec.name),
            disabled_endpoints=disabled or None,  # type: ignore[arg-type]
        )

    api.state.runnables = runnables
    # /v1/chat/completions: the first served chain whose spec asks for it (chat, or an app chain
    # built on it), through the same Runnable as its LangServe routes, so the same guards.
    openai_chain = next((spec.name for spec in specs if spec.openai_route), None)
    if not settings.server.openai_api:
        openai_chain = None
    if openai_chain is not None:
        api.include_router(build_router(runnables[openai_chain], handle.public_name))

    install_index(
        api,
        specs,
        handle,
        playground=settings.server.playground,
        openai_chain=openai_chain,
    )

    @api.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["meta"])
    async def readyz() -> JSONResponse:
        # An upstream probe does network I/O: keep it off the event loop.
        if await run_in_threadpool(lambda: handle.ready):
            return JSONResponse(
                {"status": "ready", "model": await run_in_threadpool(handle.describe)}
            )
        return error_response(
            "langserve", 503, "not_ready", handle.not_ready_reason(), retry_after=2
        )

    return api


def _load(handle: ModelHandle) -> None:
    try:
        handle.load()
    except LangdeployError as exc:
        log.error("model failed to load: %s", exc)
    except Exception:
        log.exception("model failed to load")
