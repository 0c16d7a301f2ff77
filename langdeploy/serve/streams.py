"""The stream boundary: however a stream stops early, it ends with one well-formed final event.

Two parts, one job:

- :class:`StreamErrorBoundary`, the outermost wrapper of every served chain, ends a stream
  quietly on a LangdeployError (an output guard's stop, an upstream that died mid-answer, a queue
  that filled up between admission and submission) and records it in the request's scope.
- :class:`BoundaryRoute`, the app's route class, wraps the event iterator of each LangServe
  stream response (its events are dicts, before any bytes are written): before ``end`` it sends
  the recorded error as ``event: error`` with the status and the route family's error body; and
  LangServe's own generic error event (``{"status_code": 500, "message": "Internal Server
  Error"}``, for an unexpected exception) becomes the same internal-error body, with the request
  id, that any other 500 gets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from langchain_core.runnables import RunnableConfig
from sse_starlette.sse import EventSourceResponse

from langdeploy.errors import LangdeployError
from langdeploy.runnables import DelegatingRunnable
from langdeploy.serve.context import current_request_id, current_stream_violation
from langdeploy.serve.context import record_stream_error as record_stream_error
from langdeploy.serve.errors import exc_payload, internal_error_payload


class StreamErrorBoundary(DelegatingRunnable):
    """Delegates everything to ``bound``; only streams change how errors end them."""

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.bound.invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self.bound.ainvoke(input, config, **kwargs)

    def batch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        return self.bound.batch(inputs, config, **kwargs)

    async def abatch(self, inputs: list[Any], config: Any = None, **kwargs: Any) -> list[Any]:
        return await self.bound.abatch(inputs, config, **kwargs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        try:
            yield from self.bound.stream(input, config, **kwargs)
        except LangdeployError as exc:
            if not record_stream_error(exc):
                raise

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        try:
            async for chunk in self.bound.astream(input, config, **kwargs):
                yield chunk
        except LangdeployError as exc:
            if not record_stream_error(exc):
                raise


def final_error_event(exc: LangdeployError | None) -> dict[str, str]:
    """The one final event of a stream that stopped early (None: an unexpected error)."""
    rid = current_request_id()
    if exc is None:
        status, message = 500, "The server failed while streaming; the log has the details."
        body = internal_error_payload("langserve", rid)
    else:
        status, message = exc.status_code, exc.public_message
        body = exc_payload(exc, "langserve", rid)
    return {
        "event": "error",
        "data": json.dumps({"status_code": status, "message": message, **body}),
    }


async def with_final_event(events: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """LangServe's stream events, ended by :func:`final_error_event` when the stream stopped
    early. Events are the dicts LangServe yields to sse-starlette."""
    async for event in events:
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "error":
            # LangServe's generic 500: the exception behind it is logged by the server.
            yield final_error_event(None)
            continue
        if kind == "end":
            violation = current_stream_violation()
            if violation is not None:
                yield final_error_event(violation)
        yield event


class BoundaryRoute(APIRoute):
    """FastAPI's documented hook for wrapping route handlers (``app.router.route_class``): every
    event-stream response the route returns gets the stream boundary."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            response = await handler(request)
            if isinstance(response, EventSourceResponse):
                response.body_iterator = with_final_event(response.body_iterator)
            return response

        return route_handler
