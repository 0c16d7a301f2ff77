"""Admission control: a fixed number of chain requests in flight, the rest refused at once.

A pure ASGI layer, so it counts a streamed request until its last byte is sent, and refuses
with 429 before any stream starts (a refusal inside a started stream could only be an error
event under a 200).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

# The calls that reach the model: LangServe's endpoints and the OpenAI-compatible one.
MODEL_CALL = re.compile(
    r"^/[^/]+/(invoke|batch|stream|stream_log|stream_events)$|^/v1/chat/completions$"
)


class AdmissionLimit:
    """At most ``limit()`` model calls in flight; beyond that, 429 with Retry-After."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int], retry_after_s: int = 2) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not MODEL_CALL.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        if self.in_flight >= limit:
            await self._refuse(send, limit)
            return
        # A single event loop runs this: the check and the increment cannot interleave.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps(
            {
                "error": {
                    "type": "overloaded",
                    "message": f"The model is busy: {limit} requests are already in flight. "
                    f"Retry after {self.retry_after_s}s, or raise model.queue_size.",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_s).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
