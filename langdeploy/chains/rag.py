"""The rag chain: ``{"question": ...}`` in, ``{"answer": ..., "sources": [...]}`` out.

Steps: embed the question, take the top ``retrieval.top_k`` chunks from the Chroma collection,
keep those whose cosine similarity reaches ``retrieval.min_score``, pass them through the
retrieval guard, and prompt the model with what is left, numbered so the answer can cite [n].

When no chunk passes the threshold (or the guard drops them all), the chain answers
:data:`NO_ANSWER` with no sources and does not call the model: a small model given unrelated
context makes an answer up. Raise ``min_score`` to refuse more, lower it to answer more.

``retrieval_guard`` in :attr:`ChainContext.extras` is the seam for the guardrails (indirect
prompt injection in retrieved text): a callable that takes the retrieved chunks and returns the
ones allowed. The default lets every chunk through. A retriever in ``extras["retriever"]``
replaces the one built from settings.

Streaming yields ``{"sources": [...]}`` first, then the answer token by token as
``{"answer": "..."}``; invoke returns both merged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel, Field

from langdeploy.chains.registry import ChainContext
from langdeploy.errors import InputError, LangdeployError
from langdeploy.retrieval.store import RetrievedChunk
from langdeploy.settings import Settings

log = logging.getLogger("langdeploy.rag")

NO_ANSWER = "I don't know: none of the ingested documents is relevant enough to this question."

PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer the question using only the numbered context passages. Cite the passages "
            "you use as [1], [2]. If the passages do not contain the answer, say that you "
            "do not know.",
        ),
        ("human", "Context:\n{context}\n\nQuestion: {question}"),
    ]
)

# Tokens kept free for the prompt's own words and the chat template.
PROMPT_OVERHEAD = 96

RetrievalGuard = Callable[[list[RetrievedChunk]], list[RetrievedChunk]]


def pass_through(chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
    """The default retrieval guard: every retrieved chunk is allowed."""
    return chunks


class RagInput(BaseModel):
    """A question about the ingested documents."""

    question: str = Field(
        ...,
        min_length=1,
        max_length=4000,
        description="The question, e.g. 'How do I rotate the API keys?'.",
    )


class Source(BaseModel):
    """A chunk the answer was given from."""

    source: str = Field(..., description="Path (or id) of the document the chunk comes from.")
    id: str = Field(..., description="The chunk's id in the collection.")
    chunk: int = Field(..., description="Index of the chunk within its document, from 0.")
    score: float = Field(..., description="Cosine similarity to the question, -1..1.")
    snippet: str = Field(..., description="The start of the chunk's text.")
    page: int | None = Field(None, description="PDF page, when the document is a PDF.")


class RagOutput(BaseModel):
    """The answer and the sources it was given; no sources means the chain did not know."""

    answer: str = Field(..., description="The model's answer, or the don't-know message.")
    sources: list[Source] = Field(default_factory=list, description="Chunks used, best first.")


class RagChain:
    """Holds the parts; the retriever is built on first use, never at import or start-up."""

    def __init__(self, ctx: ChainContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings.retrieval
        self.guard: RetrievalGuard = ctx.extras.get("retrieval_guard") or pass_through
        self._retriever: Any = ctx.extras.get("retriever")
        self.answer_chain = PROMPT | ctx.model | StrOutputParser()
        self.budget = ctx.n_ctx - ctx.settings.model.max_tokens - PROMPT_OVERHEAD

    @property
    def retriever(self) -> Any:
        if self._retriever is None:
            from langdeploy.retrieval.retriever import Retriever

            self._retriever = Retriever(self.ctx.settings)
        return self._retriever

    def _question(self, payload: dict[str, Any] | RagInput) -> str:
        data = payload if isinstance(payload, RagInput) else RagInput.model_validate(payload)
        question = data.question.strip()
        if not question:
            raise InputError("The question is blank.", fix="Send a non-empty 'question'.")
        return question

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        chunks = self.retriever.relevant(question)
        return list(self.guard(chunks))

    def _fit(self, question: str, chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
        # Drop the weakest chunks until the prompt fits the model's context.
        kept = list(chunks)
        while len(kept) > 1:
            text = _context(kept) + question
            if self.ctx.count_tokens(text) <= self.budget:
                break
            kept.pop()
        return kept

    def _sources(self, chunks: list[RetrievedChunk]) -> list[dict[str, Any]]:
        n = self.settings.snippet_chars
        out = []
        for c in chunks:
            snippet = " ".join(c.text.split())
            if len(snippet) > n:
                snippet = snippet[: max(0, n - 1)].rstrip() + "…"
            page = c.metadata.get("page")
            out.append(
                Source(
                    source=c.source,
                    id=c.id,
                    chunk=c.chunk,
                    score=c.score,
                    snippet=snippet,
                    page=page if isinstance(page, int) else None,
                ).model_dump()
            )
        return out

    def stream(self, payload: dict[str, Any] | RagInput, config: RunnableConfig) -> Iterator[Any]:
        question = self._question(payload)
        chunks = self._fit(question, self.retrieve(question))
        if not chunks:
            yield AddableDict(answer=NO_ANSWER, sources=[])
            return
        yield AddableDict(sources=self._sources(chunks))
        prompt = {"context": _context(chunks), "question": question}
        for token in self.answer_chain.stream(prompt, config):
            yield AddableDict(answer=token)

    async def astream(
        self, payload: dict[str, Any] | RagInput, config: RunnableConfig
    ) -> AsyncIterator[Any]:
        import asyncio

        question = self._question(payload)
        # Embedding and the Chroma query are blocking; keep them off the event loop.
        chunks = await asyncio.to_thread(self.retrieve, question)
        chunks = self._fit(question, chunks)
        if not chunks:
            yield AddableDict(answer=NO_ANSWER, sources=[])
            return
        yield AddableDict(sources=self._sources(chunks))
        prompt = {"context": _context(chunks), "question": question}
        async for token in self.answer_chain.astream(prompt, config):
            yield AddableDict(answer=token)


def _context(chunks: list[RetrievedChunk]) -> str:
    return "\n\n".join(
        f"[{n}] (from {c.metadata.get('name') or c.source})\n{c.text}"
        for n, c in enumerate(chunks, start=1)
    )


def rag_chain(ctx: ChainContext) -> Runnable[Any, Any]:
    rag = RagChain(ctx)
    # Generator functions: RunnableLambda streams their chunks and merges them for invoke.
    chain: Runnable[Any, Any] = RunnableLambda(
        rag.stream,
        afunc=rag.astream,  # type: ignore[arg-type]
        name="rag",
    )
    return chain.with_types(input_type=RagInput, output_type=RagOutput).with_config(run_name="rag")


def serve_by_default(settings: Settings) -> bool:
    """Whether the default app adds /rag: ``retrieval.serve``, and in ``auto`` mode when the
    collection is configured (set in settings) or exists in the store."""
    r = settings.retrieval
    if r.serve != "auto":
        return r.serve == "always"
    if "collection" in r.model_fields_set:
        return True
    try:
        from langdeploy.retrieval.store import collection_exists

        return collection_exists(settings)
    except LangdeployError as exc:
        log.warning("not serving /rag: %s", exc)
        return False
    except Exception as exc:  # an unreachable or unreadable store must not stop the app
        log.warning("not serving /rag: the Chroma store could not be checked: %s", exc)
        return False
