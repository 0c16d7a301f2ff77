"""The chat chain: ``{"messages": [...]}`` in, the assistant's message out."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    SystemMessage,
    convert_to_messages,
)
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel, Field, field_validator

from langdeploy.chains.registry import ChainContext


class ChatInput(BaseModel):
    """A conversation so far; the model answers the last message."""

    messages: list[AnyMessage] = Field(
        ...,
        min_length=1,
        description="The conversation: at least one message, e.g. "
        '[{"type": "human", "content": "Hello"}].',
    )

    @field_validator("messages", mode="before")
    @classmethod
    def _message_likes(cls, value: Any) -> Any:
        # Accept what LangChain accepts: ("human", "hi") pairs, {"role": "user", ...} dicts.
        if not isinstance(value, list):
            return value
        return [_convert(v) for v in value]


def _convert(value: Any) -> Any:
    pair = isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str)
    role_dict = isinstance(value, dict) and "role" in value and "type" not in value
    if pair or role_dict:
        try:
            return convert_to_messages([value])[0]
        except (ValueError, NotImplementedError, TypeError):
            role = value[0] if pair else value.get("role")
            raise ValueError(
                f"unknown message role {role!r}; use human/user, ai/assistant or system"
            ) from None
    if not isinstance(value, dict | BaseMessage):
        # pydantic's message union raises TypeError (a 500) on these; make it a 422.
        raise ValueError('each message must be an object like {"type": "human", "content": "..."}')
    return value


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
