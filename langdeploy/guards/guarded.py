"""``guarded(chain, input_guards, output_guards)``: the chain, wrapped, with its own schemas.

Input guards run on the free text of the input (the messages' text for chat, every string field
otherwise); a redaction rewrites the input the chain sees. Output guards run on the answer; on a
stream they hold back only what they need (see StreamRedactor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.utils import AddableDict

from langdeploy.guards.base import Guard, GuardContext, GuardrailViolation, Redactions
from langdeploy.guards.request import GuardPipeline
from langdeploy.guards.stream import StreamCollector, StreamRedactor
from langdeploy.runnables import Call, Core, DelegatingRunnable, arun_core, run_core

# Called with a violation raised inside a stream; returning True ends the stream quietly (the
# server then sends the error event itself), False re-raises.
StreamViolationHandler = Callable[[GuardrailViolation], bool]


class GuardedRunnable(DelegatingRunnable):
    """A Runnable that runs input guards, the chain, then output guards."""

    def __init__(
        self,
        bound: Runnable[Any, Any],
        input_pipeline: GuardPipeline,
        output_pipeline: GuardPipeline,
        *,
        count_tokens: Callable[[str], int] | None = None,
        on_stream_violation: StreamViolationHandler | None = None,
        name: str | None = None,
    ) -> None:
        # The chain's own types and schemas show through, for LangServe and the playground.
        super().__init__(bound, name)
        self.input_pipeline = input_pipeline
        self.output_pipeline = output_pipeline
        self.count_tokens = count_tokens
        self.on_stream_violation = on_stream_violation

    # -- guard steps --------------------------------------------------------------------------

    def _context(self) -> GuardContext:
        return GuardContext(stage="input", count_tokens=self.count_tokens, redactions=Redactions())

    def guard_input(self, value: Any, ctx: GuardContext) -> Any:
        return self.input_pipeline.guard_value(value, ctx)

    def guard_output(self, value: Any, ctx: GuardContext) -> Any:
        return self.output_pipeline.guard_value(value, ctx)

    # -- invoke / batch -----------------------------------------------------------------------
    # Written once as cores (see langdeploy.runnables); the sync and async methods only say how
    # the chain is called.

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return run_core(self._invoke(input, config, kwargs))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await arun_core(self._invoke(input, config, kwargs))

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return run_core(self._batch(inputs, config, return_exceptions, kwargs))

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Any]:
        return await arun_core(self._batch(inputs, config, return_exceptions, kwargs))

    def _invoke(
        self, input: Any, config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> Core[Any]:
        ctx = self._context()
        output = yield Call.of(self.bound, "invoke", self.guard_input(input, ctx), config, **kwargs)
        return self.guard_output(output, ctx)

    def _batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None,
        return_exceptions: bool,
        kwargs: dict[str, Any],
    ) -> Core[list[Any]]:
        # Input guards first, for every input, so a blocked one fails before any generation.
        ctxs = [self._context() for _ in inputs]
        outputs = self._guard_inputs(inputs, ctxs, return_exceptions)
        todo = [i for i, g in enumerate(outputs) if not isinstance(g, Exception)]
        if not todo:
            return outputs
        configs = _configs(config, len(inputs))
        results = yield Call.of(
            self.bound,
            "batch",
            [outputs[i] for i in todo],
            [configs[i] for i in todo],
            return_exceptions=return_exceptions,
            **kwargs,
        )
        for i, out in zip(todo, results, strict=True):
            outputs[i] = (
                out if isinstance(out, Exception) else self._out(out, ctxs[i], return_exceptions)
            )
        return outputs

    def _guard_inputs(
        self, inputs: Sequence[Any], ctxs: list[GuardContext], return_exceptions: bool
    ) -> list[Any]:
        out: list[Any] = []
        for value, ctx in zip(inputs, ctxs, strict=True):
            try:
                out.append(self.guard_input(value, ctx))
            except GuardrailViolation as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    def _out(self, value: Any, ctx: GuardContext, return_exceptions: bool) -> Any:
        try:
            return self.guard_output(value, ctx)
        except GuardrailViolation as exc:
            if not return_exceptions:
                raise
            return exc

    # -- streams ------------------------------------------------------------------------------
    # The logic is _StreamState's (feed, finish), shared; the two methods differ only in how
    # they iterate the chain's stream.

    def _open_stream(self, input: Any) -> tuple[Any, _StreamState]:
        ctx = self._context()
        return self.guard_input(input, ctx), _StreamState(self.output_pipeline, ctx)

    def _ends_quietly(self, exc: GuardrailViolation) -> bool:
        return self.on_stream_violation is not None and self.on_stream_violation(exc)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        guarded_input, state = self._open_stream(input)
        try:
            for chunk in self.bound.stream(guarded_input, config, **kwargs):
                yield from state.feed(chunk)
            yield from state.finish()
        except GuardrailViolation as exc:
            if not self._ends_quietly(exc):
                raise

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        guarded_input, state = self._open_stream(input)
        try:
            async for chunk in self.bound.astream(guarded_input, config, **kwargs):
                for out in state.feed(chunk):
                    yield out
            for out in state.finish():
                yield out
        except GuardrailViolation as exc:
            if not self._ends_quietly(exc):
                raise


class _StreamState:
    """Routes text chunks through a StreamRedactor and anything else through a collector."""

    def __init__(self, pipeline: GuardPipeline, ctx: GuardContext) -> None:
        self.pipeline = pipeline
        self.ctx = ctx
        self.redactor = StreamRedactor(pipeline, ctx) if pipeline else None
        self.collector = StreamCollector()
        # The latest text chunk is held so that its metadata (usage, finish reason) goes out
        # last, attached to whatever text is released at the end.
        self.pending: Any = None
        self.pending_text = ""
        # Dict chunks with text fields ({"answer": "tok"}) stream per field, each through its own
        # redactor, so a structured stream (rag) stays a stream.
        self.fields: dict[str, StreamRedactor] = {}

    def feed(self, chunk: Any) -> Iterator[Any]:
        if self.redactor is None:
            yield chunk
            return
        if isinstance(chunk, AddableDict) and chunk:
            # Deltas that sum into the answer (rag's {"answer": "tok"}): stream per field.
            yield from self._feed_dict(chunk)
            return
        if isinstance(chunk, dict):
            # A plain dict is a snapshot of the whole value so far (a JSON parser's partial
            # object), not a delta: guarded once, whole, at the end, never piece by piece.
            self.collector.add(chunk)
            return
        text = _chunk_text(chunk)
        if text is None:
            self.collector.add(chunk)
            return
        safe = self.redactor.feed(text)
        if self.pending is not None and not self.pending_text:
            # Nothing released yet: fold this chunk in rather than send an empty one (a client
            # would see a run of empty events while the guards hold text back).
            merged = self.pending + chunk if isinstance(chunk, BaseMessageChunk) else chunk
            self.pending, self.pending_text = merged, safe
            return
        if self.pending is not None:
            yield _with_text(self.pending, self.pending_text)
        self.pending, self.pending_text = chunk, safe

    def _feed_dict(self, chunk: dict[str, Any]) -> Iterator[Any]:
        if all(isinstance(v, str) for v in chunk.values()):
            out = AddableDict()
            for key, text in chunk.items():
                redactor = self.fields.setdefault(key, StreamRedactor(self.pipeline, self.ctx))
                safe = redactor.feed(text)
                if safe:
                    out[key] = safe
            if out:
                yield out
        else:
            # A field that arrives whole in its chunk (rag's sources): guard it whole now.
            yield AddableDict(self.pipeline.guard_value(chunk, self.ctx))

    def finish(self) -> Iterator[Any]:
        if self.redactor is None:
            return
        for key, redactor in self.fields.items():
            rest = redactor.finish()
            if rest:
                yield AddableDict({key: rest})
        rest = self.redactor.finish()
        if self.pending is not None:
            yield _with_text(self.pending, self.pending_text + rest)
        if self.collector.chunks:
            yield self.pipeline.guard_value(self.collector.aggregate(), self.ctx)


def _chunk_text(chunk: Any) -> str | None:
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, BaseMessageChunk) and isinstance(chunk.content, str):
        return chunk.content
    return None


def _with_text(chunk: Any, text: str) -> Any:
    if isinstance(chunk, str):
        return text
    return chunk.model_copy(update={"content": text})


def _configs(config: RunnableConfig | list[RunnableConfig] | None, n: int) -> list[Any]:
    if isinstance(config, list):
        return list(config)
    return [config] * n


def guarded(
    chain: Runnable[Any, Any],
    input_guards: Sequence[Guard] | GuardPipeline = (),
    output_guards: Sequence[Guard] | GuardPipeline = (),
    *,
    count_tokens: Callable[[str], int] | None = None,
    on_stream_violation: StreamViolationHandler | None = None,
) -> GuardedRunnable:
    """Wrap ``chain`` in input and output guards; the result keeps the chain's schemas."""
    inp = (
        input_guards
        if isinstance(input_guards, GuardPipeline)
        else GuardPipeline("input", list(input_guards))
    )
    out = (
        output_guards
        if isinstance(output_guards, GuardPipeline)
        else GuardPipeline("output", list(output_guards))
    )
    return GuardedRunnable(
        chain, inp, out, count_tokens=count_tokens, on_stream_violation=on_stream_violation
    )


def guard_documents(pipeline: GuardPipeline) -> Runnable[list[Document], list[Document]]:
    """A step for a retrieval chain: ``retriever | guard_documents(retrieval_pipeline)``.
    Documents that a blocking guard flags (indirect prompt injection) are dropped; the others
    come out redacted."""

    def run(docs: list[Document]) -> list[Document]:
        return pipeline.documents(list(docs))[0]

    return RunnableLambda(run, name="retrieval_guards")
