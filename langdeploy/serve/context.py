"""The request context: made once per request, by one ASGI layer, and shared through a contextvar.

It holds the request id (``X-Request-ID`` in, or a new one; sent back on every response), the
error that ended the request's stream quietly (the stream boundary sends it as the final event),
and a memo of the input guards' results, so a stream's input guards run once even though the
route checks them before the stream starts and the chain meets them again. It also enforces the
body-size limit while the body is read: 413 before any JSON is parsed.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from langdeploy.errors import LangdeployError
from langdeploy.guards.pipeline import guard_memo
from langdeploy.serve.errors import error_response, family_of


@dataclass
class RequestScope:
    """What one HTTP request shares with the runnables it runs."""

    request_id: str
    # The error that ended this request's stream quietly: a guard's, or any other
    # LangdeployError raised mid-stream (the upstream died, the queue filled up).
    violation: LangdeployError | None = None


_scope: ContextVar[RequestScope | None] = ContextVar("langdeploy_request_scope", default=None)


def current_request_id() -> str | None:
    scope = _scope.get()
    return scope.request_id if scope is not None else None


def current_stream_violation() -> LangdeployError | None:
    """The error that ended this request's stream quietly, if any."""
    scope = _scope.get()
    return scope.violation if scope is not None else None


def record_stream_error(exc: LangdeployError) -> bool:
    """Keep ``exc`` for this request's final stream event; False outside a request (the
    caller then raises it)."""
    scope = _scope.get()
    if scope is None:
        return False
    scope.violation = exc
    return True


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the body passes the limit; turned into a 413 here."""


class RequestContext:
    """Request id, request scope, guard memo and body-size limit, once per HTTP request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        family = family_of(scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send, rid, family)
            return
        started = False
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        token = _scope.set(RequestScope(rid))
        try:
            with guard_memo():
                await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send, rid, family)
        finally:
            _scope.reset(token)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, rid: str, family: str
    ) -> None:
        limit = self.max_body_bytes
        response = error_response(
            "openai" if family == "openai" else "langserve",
            413,
            "request_too_large",
            f"The request body is larger than {limit:,} bytes. Send a smaller body, or raise "
            "server.max_body_bytes (LANGDEPLOY_SERVER__MAX_BODY_BYTES).",
            request_id=rid,
            headers={"Connection": "close", "X-Request-ID": rid},
        )
        await response(scope, receive, send)
