"""Guards in the server: every served chain is wrapped in its guards from guards.yaml.

- A blocked request gets HTTP 400 ``{"error": {"type": "guardrail_violation", "stage": ...,
  "guard": ..., "message": ...}}`` (GuardrailViolation through the app's error handlers).
- Streams: input guards run in a route dependency, so a blocked stream is a 400 before any
  event; the request's guard memo (serve/context.py) keeps their result, so the chain does not
  run them again. When an output guard blocks mid-stream, the guarded runnable ends the stream
  quietly and records the violation for this request; the stream boundary (serve/streams.py)
  sends it as the stream's final ``error`` event.
- Every violation goes to the audit log (JSON lines: request id, chain, stage, guard, category,
  action, SHA-256 of the text; never the text) and to the Prometheus counter
  ``langdeploy_guard_violations_total{chain,stage,guard,action}`` on ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from langchain_core.runnables import Runnable
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from langdeploy.errors import ConfigError
from langdeploy.guards.config import ChainGuards
from langdeploy.guards.guarded import GuardedRunnable
from langdeploy.guards.pipeline import GuardEvent
from langdeploy.runtime import AppRuntime
from langdeploy.serve.context import current_request_id, record_stream_error

log = logging.getLogger("langdeploy.serve")
audit_log = logging.getLogger("langdeploy.guards.audit")

STREAM_SUFFIXES = ("/stream", "/stream_log", "/stream_events")


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
            on_stream_violation=record_stream_error,
        )

    def dependencies(self, chain: str) -> list[Any]:
        """A route dependency that runs a stream's input guards before the stream starts."""
        if not self.enabled or not self.chains[chain].input:
            return []
        # The request's guard memo keeps the result, so the chain does not run them again and
        # each violation is reported once.
        pipeline = self.chains[chain].input

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
            pipeline.guard_value(value, pipeline.context(self.count_tokens))

        return [Depends(guard_stream_input)]


def install_guards(
    app: FastAPI, runtime: AppRuntime, count_tokens: Callable[[str], int]
) -> GuardRuntime:
    """Build the guards of every served chain and add ``/metrics``."""
    registry = getattr(app.state, "metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry()
        app.state.metrics_registry = registry
    guards = GuardRuntime(runtime, count_tokens, registry)
    app.state.guards = guards
    if not any(getattr(r, "path", None) == "/metrics" for r in app.router.routes):

        @app.get("/metrics", tags=["meta"], include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return guards
