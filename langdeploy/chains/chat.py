"""The chat chain: ``{"messages": [...]}`` in, the assistant's message out."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, Field

from langdeploy.chains.registry import ChainContext


class ChatInput(BaseModel):
    """A conversation so far; the model answers the last message."""

    messages: list[AnyMessage] = Field(
        ...,
        min_length=1,
        description="The conversation: at least one message, e.g. "
        '[{"type": "human", "content": "Hello"}].',
    )


def with_system_prompt(messages: list[BaseMessage], system_prompt: str | None) -> list[BaseMessage]:
    """Put the configured system prompt first, unless the conversation brings its own."""
    if not system_prompt or any(m.type == "system" for m in messages):
        return list(messages)
    return [SystemMessage(content=system_prompt), *messages]


def chat_chain(ctx: ChainContext) -> Runnable[Any, AIMessage]:
    system_prompt = ctx.settings.model.system_prompt

    def prepare(payload: dict[str, Any] | ChatInput) -> list[BaseMessage]:
        data = payload if isinstance(payload, ChatInput) else ChatInput.model_validate(payload)
        return with_system_prompt(list(data.messages), system_prompt)

    chain = RunnableLambda(prepare, name="prepare_messages") | ctx.model
    typed: Runnable[Any, AIMessage] = chain.with_types(  # type: ignore[assignment]
        input_type=ChatInput, output_type=AIMessage
    )
    return typed.with_config(run_name="chat")
