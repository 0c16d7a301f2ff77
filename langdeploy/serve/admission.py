"""Admission control: a fixed number of model calls in flight, the rest refused at once.

A pure ASGI layer, so it counts a streamed request until its last byte is sent, and refuses
with 429 before any stream starts (a refusal inside a started stream could only be an error
event under a 200).
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from langdeploy.errors import ServiceUnavailable
from langdeploy.models.factory import ModelHandle
from langdeploy.serve.errors import error_response, exc_response, family_of

# The calls that reach the model: LangServe's endpoints and the OpenAI-compatible one.
MODEL_CALL = re.compile(
    r"^/[^/]+/(invoke|batch|stream|stream_log|stream_events)$|^/v1/chat/completions$"
)


class AdmissionLimit:
    """The one admission decision for a model call: 503 while the model cannot answer (loading,
    failed), 429 when ``capacity`` calls are already in flight; both with Retry-After."""

    def __init__(self, app: ASGIApp, model: ModelHandle) -> None:
        self.app = app
        self.model = model
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not MODEL_CALL.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        family = family_of(scope["path"])
        rid = scope.get("state", {}).get("request_id")
        try:
            self.model.check_admission()
        except ServiceUnavailable as exc:
            await exc_response(exc, family, rid)(scope, receive, send)
            return
        limit = self.model.capacity
        if self.in_flight >= limit:
            retry = self.model.retry_after_s
            response = error_response(
                family,
                429,
                "overloaded",
                f"The model is busy: {limit} requests are already in flight. Retry after "
                f"{max(1, round(retry))}s, or raise model.queue_size.",
                retry_after=retry,
                request_id=rid,
            )
            await response(scope, receive, send)
            return
        # A single event loop runs this: the check and the increment cannot interleave.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
