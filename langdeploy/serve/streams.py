"""Errors in a stream become an error event with a status and a message, not LangServe's
generic 500.

LangServe 0.3.3 answers any exception inside a stream with ``{"status_code": 500, "message":
"Internal Server Error"}``, re-raises it and logs a stack trace. This outermost wrapper ends the
stream quietly on a LangdeployError (an upstream that died mid-answer, a queue that filled up
between admission and submission) and records it for the request; the streaming layer in
serve/guarding.py then sends ``event: error`` with the error's status and message before ``end``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.runnables import RunnableConfig

from langdeploy.errors import LangdeployError
from langdeploy.runnables import DelegatingRunnable
from langdeploy.serve.guarding import record_stream_error


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
