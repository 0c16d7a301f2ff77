"""A local GGUF model through llama-cpp-python, as a LangChain chat model.

The chat model holds only sampling parameters and a reference to the engine; the engine owns the
model, the context, the queue and the worker. Streaming is token by token, and the async path
never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field

from langdeploy.models.engine import Delta, GenParams, LlamaEngine
from langdeploy.models.messages import to_openai_messages
from langdeploy.settings import BackendSettings


class ChatLlamaEngine(BaseChatModel):
    """Chat with a model loaded in a :class:`LlamaEngine`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    engine: LlamaEngine = Field(exclude=True)
    model_name: str = "local"
    temperature: float = 0.7
    top_k: int = 40
    top_p: float = 0.95
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    seed: int = -1
    stop_sequences: list[str] = Field(default_factory=list)
    # Empty: plain text. Not Optional: the playground's config form cannot render a null type.
    response_format: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_settings(cls, engine: LlamaEngine, settings: BackendSettings) -> ChatLlamaEngine:
        return cls(
            engine=engine,
            model_name=settings.name,
            temperature=settings.temperature,
            top_k=settings.top_k,
            top_p=settings.top_p,
            repeat_penalty=settings.repeat_penalty,
            max_tokens=settings.max_tokens,
            seed=settings.seed,
        )

    @property
    def _llm_type(self) -> str:
        return "langdeploy-llamacpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }

    def _params(self, stop: list[str] | None, **kwargs: Any) -> GenParams:
        return GenParams(
            temperature=kwargs.get("temperature", self.temperature),
            top_k=kwargs.get("top_k", self.top_k),
            top_p=kwargs.get("top_p", self.top_p),
            repeat_penalty=kwargs.get("repeat_penalty", self.repeat_penalty),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            seed=kwargs.get("seed", self.seed),
            stop=tuple((stop or []) + self.stop_sequences),
            response_format=kwargs.get("response_format", self.response_format) or None,
        )

    def get_num_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    # -- LangChain hooks -----------------------------------------------------------------------

    def _chunk(self, delta: Delta) -> ChatGenerationChunk:
        if delta.finish_reason is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=delta.text))
        prompt = delta.prompt_tokens or 0
        completion = delta.completion_tokens or 0
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={
                    "input_tokens": prompt,
                    "output_tokens": completion,
                    "total_tokens": prompt + completion,
                },
                response_metadata={
                    "finish_reason": delta.finish_reason,
                    "model_name": self.model_name,
                },
                chunk_position="last",
            ),
            generation_info={"finish_reason": delta.finish_reason},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for delta in self.engine.stream(to_openai_messages(messages), self._params(stop, **kwargs)):
            chunk = self._chunk(delta)
            if run_manager is not None and delta.text:
                run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        params = self._params(stop, **kwargs)
        async for delta in self.engine.astream(to_openai_messages(messages), params):
            chunk = self._chunk(delta)
            if run_manager is not None and delta.text:
                await run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _merge(list(self._stream(messages, stop, run_manager, **kwargs)))

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return _merge([c async for c in self._astream(messages, stop, run_manager, **kwargs)])


def _merge(chunks: list[ChatGenerationChunk]) -> ChatResult:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    message = merged.message
    return ChatResult(
        generations=[
            ChatGeneration(
                message=message_from_chunk(message), generation_info=merged.generation_info
            )
        ]
    )


def message_from_chunk(chunk: BaseMessage) -> BaseMessage:
    from langchain_core.messages import AIMessage

    return AIMessage(
        content=chunk.content,
        usage_metadata=getattr(chunk, "usage_metadata", None),
        response_metadata=chunk.response_metadata,
        id=chunk.id,
    )
