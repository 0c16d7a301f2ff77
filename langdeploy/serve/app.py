"""create_app(settings) -> FastAPI: every enabled chain at /{name} through LangServe.

Layers, outermost first: Starlette's error boundary, request ids, then the routes. The model loads
once, in the background at start-up, so /healthz answers at once and /readyz turns 200 when the
model is ready; chain routes answer 503 with Retry-After until then.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from langchain_core.runnables import Runnable
from langserve import add_routes
from sse_starlette.sse import AppStatus
from starlette.concurrency import run_in_threadpool

from langdeploy import __version__
from langdeploy.chains.registry import ChainContext, chain_registry
from langdeploy.errors import ConfigError, LangdeployError, UnknownNameError
from langdeploy.models.factory import ModelHandle, build_model
from langdeploy.serve.admission import AdmissionLimit
from langdeploy.serve.docs_assets import install_docs
from langdeploy.serve.errors import error_body, install_error_handlers
from langdeploy.serve.guarding import install_guards
from langdeploy.serve.openai_facade import build_router
from langdeploy.serve.pages import install_index
from langdeploy.serve.playground import install_playground
from langdeploy.serve.streams import StreamErrorBoundary
from langdeploy.settings import Settings

log = logging.getLogger("langdeploy.serve")


def import_app_modules(settings: Settings) -> None:
    """Import the app's own modules so their chains register (``app.modules`` in settings)."""
    if settings.app.dir is not None and str(settings.app.dir) not in sys.path:
        sys.path.insert(0, str(settings.app.dir))
    for name in settings.app.modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"The app module {name!r} (app.modules in langdeploy.toml) failed to import: {exc}",
                fix="Check the module name and that the app directory is on the path.",
            ) from None
        hook = getattr(module, "register_chains", None)
        if hook is not None:
            hook(lambda spec, **kw: chain_registry.register(spec, replace=True, **kw))


def create_app(
    settings: Settings,
    model: ModelHandle | None = None,
    *,
    extras: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the app. ``model`` lets a caller (tests, eval) pass an already loaded model."""
    import_app_modules(settings)
    handle = model or build_model(settings.model)

    # Fail at start-up, not on the first request, when a chain name is wrong.
    specs = []
    for name in _chain_names(settings):
        try:
            specs.append(chain_registry.get(name))
        except UnknownNameError as exc:
            raise ConfigError(
                str(exc),
                fix="Fix server.chains (LANGDEPLOY_SERVER__CHAINS) or register the chain.",
            ) from None
    if not specs:
        raise ConfigError(
            "server.chains is empty, so there is nothing to serve.",
            fix="Set LANGDEPLOY_SERVER__CHAINS=chat (or list several chains).",
        )

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

    app = FastAPI(
        title="langdeploy",
        version=__version__,
        description="Guarded LangChain chains served by LangServe.",
        lifespan=lifespan,
        # Served from local assets by install_docs: FastAPI's own pages load them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.state.settings = settings
    app.state.model = handle
    app.state.chain_paths = {spec.name: f"/{spec.name}" for spec in specs}
    install_error_handlers(app)
    app.add_middleware(AdmissionLimit, limit=lambda: handle.capacity)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid[:64]
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    async def admission() -> None:
        # Refuse before a stream's 200 goes out: loading -> 503, queue full -> 429.
        handle.check_admission()

    ctx = ChainContext(
        settings=settings,
        model=handle.chat_model,
        count_tokens=handle.count_tokens,
        n_ctx=handle.n_ctx,
        extras=dict(extras or {}),
    )
    disabled = [] if settings.server.playground else ["playground"]
    guards = install_guards(app, settings, handle.count_tokens, [spec.name for spec in specs])
    ctx.extras.setdefault("guards", guards)  # a chain's retrieval guards: .chains[name].retrieval
    runnables: dict[str, Runnable[Any, Any]] = {}
    for spec in specs:
        # Each chain gets its own retrieval guards (used by rag and chains built on it).
        ctx.extras["retrieval_guard"] = (extras or {}).get(
            "retrieval_guard"
        ) or guards.retrieval_guard(spec.name)
        runnable = StreamErrorBoundary(guards.wrap(spec.name, spec.factory(ctx)))
        runnables[spec.name] = runnable
        # A chat-shaped chain gets the chat playground with schemas it recognises (before
        # add_routes, so its route wins); any other chain LangServe's default playground.
        playground_type = (
            install_playground(app, spec.name, runnable, spec.playground_type)
            if settings.server.playground
            else spec.playground_type
        )
        add_routes(
            app,
            runnable,
            path=f"/{spec.name}",
            playground_type=playground_type,
            dependencies=[Depends(admission), *guards.dependencies(spec.name)],
            disabled_endpoints=disabled or None,  # type: ignore[arg-type]
        )

    app.state.runnables = runnables
    if settings.server.openai_api and "chat" in runnables:
        # The same Runnable as /chat, so OpenAI clients get the same guards.
        app.include_router(
            build_router(runnables["chat"], handle.public_name), dependencies=[Depends(admission)]
        )

    install_index(
        app,
        specs,
        handle,
        playground=settings.server.playground,
        openai="chat" in runnables and settings.server.openai_api,
    )

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["meta"])
    async def readyz() -> JSONResponse:
        # An upstream probe does network I/O: keep it off the event loop.
        if await run_in_threadpool(lambda: handle.ready):
            return JSONResponse(
                {"status": "ready", "model": await run_in_threadpool(handle.describe)}
            )
        return JSONResponse(
            error_body("not_ready", handle.not_ready_reason()),
            status_code=503,
            headers={"Retry-After": "2"},
        )

    return app


def _chain_names(settings: Settings) -> list[str]:
    """server.chains, plus rag when a collection is configured or exists (retrieval.serve)."""
    from langdeploy.chains.rag import serve_by_default

    names = list(settings.server.chains)
    if "rag" not in names and serve_by_default(settings):
        names.append("rag")
    return names


def _load(handle: ModelHandle) -> None:
    try:
        handle.load()
    except LangdeployError as exc:
        log.error("model failed to load: %s", exc)
    except Exception:
        log.exception("model failed to load")
