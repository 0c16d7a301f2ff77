"""The summarize chain: a text of any length in, a summary out.

The text is split by the model's own token count so every piece fits the context with room for
the prompt and the answer. Pieces are summarised one by one (map), and the partial summaries are
merged (reduce) until one summary is left. ``refine`` folds the pieces into a running summary
instead. The final step streams token by token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import BaseModel, Field

from langdeploy.chains.registry import ChainContext
from langdeploy.errors import InputError

MAP_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You write short, faithful summaries. Keep names, numbers and facts."),
        ("human", "Summarize this text in a few sentences:\n\n{text}"),
    ]
)
REDUCE_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You write short, faithful summaries. Keep names, numbers and facts."),
        (
            "human",
            "These are summaries of consecutive parts of one document. "
            "Write one summary of the whole document:\n\n{text}",
        ),
    ]
)
REFINE_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "You write short, faithful summaries. Keep names, numbers and facts."),
        (
            "human",
            "Here is a summary so far:\n{summary}\n\nImprove it with this next part of the "
            "document, and answer with the new summary only:\n\n{text}",
        ),
    ]
)

# Tokens kept free for the prompt's own words and the chat template.
PROMPT_OVERHEAD = 96


class SummarizeInput(BaseModel):
    """A text to summarise; it may be longer than the model's context."""

    text: str = Field(..., min_length=1, description="The text to summarise, of any length.")


class Summarizer:
    """Splits by tokens, then map-reduces or refines; one object per chain, no request state."""

    def __init__(
        self,
        model: Runnable[LanguageModelInput, BaseMessage],
        count_tokens: Callable[[str], int],
        n_ctx: int,
        max_tokens: int,
        chunk_tokens: int | None,
        strategy: str,
        max_rounds: int,
        map_concurrency: int = 2,
    ) -> None:
        self.model = model
        self.count_tokens = count_tokens
        budget = n_ctx - max_tokens - PROMPT_OVERHEAD
        if budget < 32:
            raise InputError(
                f"The context ({n_ctx} tokens) leaves no room for text after {max_tokens} answer "
                "tokens.",
                fix="Raise model.n_ctx or lower model.max_tokens.",
            )
        self.chunk_tokens = min(chunk_tokens or budget, budget)
        self.strategy = strategy
        self.max_rounds = max_rounds
        self.map_concurrency = map_concurrency
        self.splitter = RecursiveCharacterTextSplitter(
            chunk_size=self.chunk_tokens,
            chunk_overlap=min(32, self.chunk_tokens // 10),
            length_function=count_tokens,
        )
        self.step = StrOutputParser()

    def fits(self, text: str) -> bool:
        return self.count_tokens(text) <= self.chunk_tokens

    def split(self, text: str) -> list[str]:
        return [c for c in self.splitter.split_text(text) if c.strip()] or [text]

    def _text(self, payload: dict[str, Any] | SummarizeInput) -> str:
        data = (
            payload
            if isinstance(payload, SummarizeInput)
            else SummarizeInput.model_validate(payload)
        )
        if not data.text.strip():
            raise InputError("The text to summarise is blank.", fix="Send non-empty 'text'.")
        return data.text

    # The map and reduce rounds run here; the last prompt is returned for the streaming step.

    def prepare(self, payload: dict[str, Any] | SummarizeInput, config: RunnableConfig) -> Any:
        text = self._text(payload)
        if self.strategy == "refine":
            return self._refine(text, config)
        for round_ in range(self.max_rounds):
            if self.fits(text):
                prompt = REDUCE_PROMPT if round_ > 0 else MAP_PROMPT
                return prompt.invoke({"text": text})
            chunks = self.split(text)
            prompts: list[LanguageModelInput] = [MAP_PROMPT.invoke({"text": c}) for c in chunks]
            summaries = (self.model | self.step).batch(prompts, self._map_config(config))
            text = "\n\n".join(s.strip() for s in summaries)
        return REDUCE_PROMPT.invoke({"text": self._truncate(text)})

    async def aprepare(
        self, payload: dict[str, Any] | SummarizeInput, config: RunnableConfig
    ) -> Any:
        text = self._text(payload)
        if self.strategy == "refine":
            return await self._arefine(text, config)
        for round_ in range(self.max_rounds):
            if self.fits(text):
                prompt = REDUCE_PROMPT if round_ > 0 else MAP_PROMPT
                return prompt.invoke({"text": text})
            chunks = self.split(text)
            prompts: list[LanguageModelInput] = [MAP_PROMPT.invoke({"text": c}) for c in chunks]
            summaries = await (self.model | self.step).abatch(prompts, self._map_config(config))
            text = "\n\n".join(s.strip() for s in summaries)
        return REDUCE_PROMPT.invoke({"text": self._truncate(text)})

    def _map_config(self, config: RunnableConfig) -> RunnableConfig:
        return {**config, "max_concurrency": self.map_concurrency}

    def _truncate(self, text: str) -> str:
        # After max_rounds the merged text may still be too long: keep what fits.
        return self.split(text)[0]

    def _refine_chunks(self, text: str) -> list[str]:
        # Half the budget for the text, half for the running summary.
        if self.fits(text):
            return [text]
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=max(32, self.chunk_tokens // 2),
            chunk_overlap=0,
            length_function=self.count_tokens,
        )
        return [c for c in splitter.split_text(text) if c.strip()] or [text]

    def _refine(self, text: str, config: RunnableConfig) -> Any:
        chunks = self._refine_chunks(text)
        if len(chunks) == 1:
            return MAP_PROMPT.invoke({"text": chunks[0]})
        summary = (MAP_PROMPT | self.model | self.step).invoke({"text": chunks[0]}, config)
        for chunk in chunks[1:-1]:
            summary = (REFINE_PROMPT | self.model | self.step).invoke(
                {"summary": summary, "text": chunk}, config
            )
        return REFINE_PROMPT.invoke({"summary": summary, "text": chunks[-1]})

    async def _arefine(self, text: str, config: RunnableConfig) -> Any:
        chunks = self._refine_chunks(text)
        if len(chunks) == 1:
            return MAP_PROMPT.invoke({"text": chunks[0]})
        summary = await (MAP_PROMPT | self.model | self.step).ainvoke({"text": chunks[0]}, config)
        for chunk in chunks[1:-1]:
            summary = await (REFINE_PROMPT | self.model | self.step).ainvoke(
                {"summary": summary, "text": chunk}, config
            )
        return REFINE_PROMPT.invoke({"summary": summary, "text": chunks[-1]})


def summarize_chain(ctx: ChainContext) -> Runnable[Any, str]:
    s = ctx.settings
    summarizer = Summarizer(
        model=ctx.model,
        count_tokens=ctx.count_tokens,
        n_ctx=ctx.n_ctx,
        max_tokens=s.model.max_tokens,
        chunk_tokens=s.summarize.chunk_tokens,
        strategy=s.summarize.strategy,
        max_rounds=s.summarize.max_rounds,
        map_concurrency=s.summarize.map_concurrency,
    )
    prepare = RunnableLambda(summarizer.prepare, afunc=summarizer.aprepare, name="map_reduce")
    chain = prepare | ctx.model | StrOutputParser()
    return chain.with_types(input_type=SummarizeInput, output_type=str).with_config(
        run_name="summarize"
    )
