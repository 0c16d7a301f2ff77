"""Guards in the server: every served chain is wrapped in its guards from guards.yaml.

- A blocked request gets HTTP 400 ``{"error": {"type": "guardrail_violation", "stage": ...,
  "guard": ..., "message": ...}}`` (GuardrailViolation through the app's error handlers).
- Streams: input guards run in a route dependency, so a blocked stream is a 400 before any
  event. When an output guard blocks mid-stream, the guarded runnable ends the stream quietly and
  records the violation for this request; :class:`GuardStreamMiddleware` then sends an ``error``
  event with the same contract just before LangServe's ``end`` event. (LangServe 0.3.3 would
  otherwise send ``{"status_code": 500, "message": "Internal Server Error"}``, re-raise, and log
  a stack trace.)
- Every violation goes to the audit log (JSON lines: request id, chain, stage, guard, category,
  action, SHA-256 of the text; never the text) and to the Prometheus counter
  ``langdeploy_guard_violations_total{chain,stage,guard,action}`` on ``/metrics``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from langchain_core.runnables import Runnable
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langdeploy.errors import ConfigError, LangdeployError
from langdeploy.guards.base import GuardrailViolation
from langdeploy.guards.config import ChainGuards
from langdeploy.guards.guarded import GuardedRunnable
from langdeploy.guards.pipeline import GuardEvent, collect_texts, sha256
from langdeploy.runtime import AppRuntime

log = logging.getLogger("langdeploy.serve")
audit_log = logging.getLogger("langdeploy.guards.audit")

STREAM_SUFFIXES = ("/stream", "/stream_log", "/stream_events")


@dataclass
class RequestScope:
    """What one HTTP request shares with the runnables it runs (through a contextvar)."""

    request_id: str
    # The error that ended this request's stream quietly: a guard's, or any other
    # LangdeployError raised mid-stream (the upstream died, the queue filled up).
    violation: LangdeployError | None = None


_scope: ContextVar[RequestScope | None] = ContextVar("langdeploy_guard_scope", default=None)


def current_request_id() -> str | None:
    scope = _scope.get()
    return scope.request_id if scope is not None else None


def current_stream_violation() -> LangdeployError | None:
    """The output-guard violation that ended this request's stream quietly, if any: another
    streaming front end (an OpenAI-style route) can turn it into its own error chunk."""
    scope = _scope.get()
    return scope.violation if scope is not None else None


class AuditLog:
    """JSON lines, one per violation; appended and flushed line by line."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"The guard audit log {path} cannot be written: {exc}",
                    fix="Fix guards.audit_log (LANGDEPLOY_GUARDS__AUDIT_LOG).",
                ) from None

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False)
        if self.path is None:
            audit_log.info(line)
            return
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


class GuardRuntime:
    """The served chains' guards: pipelines per chain (from the app runtime), the audit log and
    the metrics."""

    def __init__(
        self,
        app: AppRuntime,
        count_tokens: Callable[[str], int],
        registry: CollectorRegistry,
    ) -> None:
        self.app = app
        self.enabled = app.settings.guards.enabled
        self.count_tokens = count_tokens
        self.audit = AuditLog(app.settings.guards.audit_log)
        self.violations = Counter(
            "langdeploy_guard_violations",
            "Guard violations, by chain, stage, guard and action.",
            ["chain", "stage", "guard", "action"],
            registry=registry,
        )
        self.chains: dict[str, ChainGuards] = {
            name: app.chain_guards(name, observer=self.observe) for name in app.served
        }

    def observe(self, event: GuardEvent) -> None:
        v = event.violation
        chain = event.chain or "-"
        self.violations.labels(chain, v.stage, v.guard, v.action).inc()
        self.audit.write(
            {
                "ts": round(time.time(), 3),
                "request_id": current_request_id(),
                "chain": chain,
                "stage": v.stage,
                "guard": v.guard,
                "category": v.category,
                "action": v.action,
                "text_sha256": event.text_sha256,
            }
        )

    def wrap(self, chain: str, runnable: Runnable[Any, Any]) -> Runnable[Any, Any]:
        if not self.enabled:
            return runnable
        guards = self.chains[chain]
        if not guards.input and not guards.output:
            return runnable
        return GuardedRunnable(
            runnable,
            guards.input,
            guards.output,
            count_tokens=self.count_tokens,
            on_stream_violation=_record_stream_violation,
        )

    def retrieval_guard(self, chain: str) -> Callable[[list[Any]], list[Any]] | None:
        """The chain's retrieval guards, their violations counted and audited like the others."""
        return self.app.retrieval_guard(chain, observer=self.observe)

    def dependencies(self, chain: str) -> list[Any]:
        """A route dependency that runs a stream's input guards before the stream starts."""
        if not self.enabled or not self.chains[chain].input:
            return []
        # Checks only: warnings are recorded when the chain runs, so they count once.
        pipeline = dataclasses.replace(self.chains[chain].input, observer=None)

        async def guard_stream_input(request: Request) -> None:
            if request.method != "POST" or not request.url.path.endswith(STREAM_SUFFIXES):
                return
            try:
                body = await request.json()
            except ValueError:
                return  # LangServe answers malformed JSON with its own 422
            value = body.get("input") if isinstance(body, dict) else None
            if value is None:
                return
            ctx = pipeline.context(self.count_tokens)
            try:
                pipeline.guard_value(value, ctx)
            except GuardrailViolation as exc:
                text = "\n".join(collect_texts(value))
                self.observe(GuardEvent(exc.violation, sha256(text), chain))
                raise

        return [Depends(guard_stream_input)]


def record_stream_error(exc: LangdeployError) -> bool:
    """Keep ``exc`` for this request's stream error event; False outside a request."""
    return _record_stream_violation(exc)


def _record_stream_violation(exc: LangdeployError) -> bool:
    scope = _scope.get()
    if scope is None:
        return False  # not inside a request: let the caller see the exception
    scope.violation = exc
    return True


_END_EVENT = re.compile(rb"(?m)^event: end(\r?\n)")


def _contract(exc: LangdeployError) -> dict[str, Any]:
    if isinstance(exc, GuardrailViolation):
        return exc.contract()
    return {"error": {"type": exc.error_type, "message": exc.public_message}}


class GuardStreamMiddleware:
    """Per request: a RequestScope in a contextvar (request id, stream violation), and the
    stream's error event when an output guard blocked it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        rid = next((v.decode("latin-1") for k, v in headers if k == b"x-request-id"), None)
        if not rid:
            # Put the id in the request, so the app's request-id layer uses the same one.
            rid = uuid.uuid4().hex
            scope = {**scope, "headers": [*headers, (b"x-request-id", rid.encode())]}
        request_scope = RequestScope(rid[:64])
        token = _scope.set(request_scope)
        sent_error = False

        async def send_wrapper(message: Message) -> None:
            nonlocal sent_error
            violation = request_scope.violation
            if message["type"] == "http.response.body" and violation is not None and not sent_error:
                body = message.get("body", b"")
                m = _END_EVENT.search(body)
                if m is not None:
                    sent_error = True
                    nl = m.group(1).decode()
                    payload = {
                        "status_code": violation.status_code,
                        "message": violation.public_message,
                        **_contract(violation),
                    }
                    event = f"event: error{nl}data: {json.dumps(payload)}{nl}{nl}".encode()
                    message = {**message, "body": body[: m.start()] + event + body[m.start() :]}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _scope.reset(token)


def install_guards(
    app: FastAPI, runtime: AppRuntime, count_tokens: Callable[[str], int]
) -> GuardRuntime:
    """Build the guards of every chain, add the stream layer and ``/metrics``."""
    registry = getattr(app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry()
        app.state.metrics_registry = registry
    guards = GuardRuntime(runtime, count_tokens, registry)
    app.state.guards = guards
    app.add_middleware(GuardStreamMiddleware)
    if not any(getattr(r, "path", None) == "/metrics" for r in app.router.routes):

        @app.get("/metrics", tags=["meta"], include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return guards
